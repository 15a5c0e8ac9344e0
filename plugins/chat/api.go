package chat

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/vecino/vecino/internal/httpjson"
	"github.com/vecino/vecino/plugins/chat/wire"
	"github.com/vecino/vecino/sdk"
)

// web holds the chat page and tweetnacl-js 1.0.3 (public domain, from npm),
// which signs and seals in the browser where WebCrypto is not offered (any
// page not served over HTTPS or from localhost).
//
//go:embed web
var web embed.FS

// maxWait bounds a long poll.
const maxWait = 30 * time.Second

func (c *chat) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		serveFile(w, "web/page.html", "text/html; charset=utf-8")
	})
	mux.HandleFunc("GET /nacl-fast.min.js", func(w http.ResponseWriter, r *http.Request) {
		serveFile(w, "web/nacl-fast.min.js", "text/javascript")
	})
	mux.HandleFunc("GET /rooms", c.listRooms)
	mux.HandleFunc("GET /rooms/{room}/messages", c.getMessages)
	mux.HandleFunc("POST /rooms/{room}/messages", c.postMessage)
	mux.HandleFunc("POST /mail", c.postMail)
	mux.HandleFunc("POST /mail/{addr}/list", c.listMail)
	mux.HandleFunc("POST /mail/{addr}/delete", c.deleteMail)
	// The operator's: blocked authors (block.go). Writes need the API
	// secret: these paths are not among the public ones.
	mux.HandleFunc("GET /blocked", func(w http.ResponseWriter, r *http.Request) {
		httpjson.Write(w, http.StatusOK, map[string]any{"blocked": c.blocks()})
	})
	mux.HandleFunc("POST /blocked", c.postBlock)
	mux.HandleFunc("DELETE /blocked/{author}", func(w http.ResponseWriter, r *http.Request) {
		if err := c.unblock(r.PathValue("author")); err != nil {
			refuse(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

// postBlock blocks an author: body {"author": "vc1...", "note": "why"}.
func (c *chat) postBlock(w http.ResponseWriter, r *http.Request) {
	var req struct{ Author, Note string }
	if !httpjson.Read(w, r, 8<<10, &req, `{"author": "vc1...", "note": "..."}`, nil) {
		return
	}
	n, err := c.block(req.Author, req.Note, time.Now())
	if err != nil {
		refuse(w, err)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"author": req.Author, "removed": n})
}

// refuse answers err with its refusal's status, or 500, without counting
// it: an operator's request, not a message.
func refuse(w http.ResponseWriter, err error) {
	var ref *refusal
	if errors.As(err, &ref) {
		httpjson.Write(w, ref.status, map[string]string{"error": ref.Error(), "reason": ref.reason})
		return
	}
	httpjson.Error(w, http.StatusInternalServerError, err)
}

func serveFile(w http.ResponseWriter, name, ctype string) {
	b, err := web.ReadFile(name)
	if err != nil {
		httpjson.Error(w, http.StatusInternalServerError, err)
		return
	}
	w.Header().Set("Content-Type", ctype)
	w.Write(b)
}

// fail counts err and answers it with its refusal's status, or 500.
func (c *chat) fail(w http.ResponseWriter, err error) {
	c.count(err)
	refuse(w, err)
}

type roomInfo struct {
	Name     string `json:"name"`
	Messages int    `json:"messages"`
	Last     uint64 `json:"last_cursor"`
}

func (c *chat) listRooms(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	out := make([]roomInfo, 0, len(c.rooms))
	for name, rm := range c.rooms {
		out = append(out, roomInfo{Name: name, Messages: len(rm.entries), Last: rm.next - 1})
	}
	c.mu.Unlock()
	httpjson.Write(w, http.StatusOK, out)
}

// getMessages answers the messages after ?after= (a cursor of this node),
// at most ?limit=; with ?wait=SECONDS it waits that long for the first.
func (c *chat) getMessages(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after, err1 := queryUint(q.Get("after"), 0)
	limit, err2 := queryUint(q.Get("limit"), 200)
	wait, err3 := queryUint(q.Get("wait"), 0)
	if err := errors.Join(err1, err2, err3); err != nil {
		httpjson.Error(w, http.StatusBadRequest, err)
		return
	}
	rm, err := c.join(r.PathValue("room"))
	if err != nil {
		c.fail(w, err)
		return
	}
	// A page is built whole in memory (and crosses to the router whole), so
	// it is bounded: 1,000 clients catching up must not take gigabytes.
	limit = min(max(limit, 1), 1000)
	deadline := time.NewTimer(min(time.Duration(wait)*time.Second, maxWait))
	defer deadline.Stop()
	for {
		msgs, more := c.since(rm, after, int(limit))
		if len(msgs) > 0 || wait == 0 {
			next := after
			if len(msgs) > 0 {
				next = msgs[len(msgs)-1].Cursor
			}
			writePage(w, rm.name, msgs, next)
			return
		}
		select {
		case <-more:
		case <-deadline.C:
			wait = 0
		case <-r.Context().Done():
			return
		}
	}
}

var comma = []byte{','}

// writePage answers a page of a room's messages, {"room", "messages",
// "cursor"}: the messages' JSON as their entries keep it, written as it is.
func writePage(w http.ResponseWriter, room string, msgs []entry, cursor uint64) {
	name, _ := json.Marshal(room)
	head := append(append([]byte(`{"room":`), name...), `,"messages":[`...)
	tail := strconv.AppendUint([]byte(`],"cursor":`), cursor, 10)
	tail = append(tail, "}\n"...)
	n := len(head) + len(tail) + max(len(msgs)-1, 0) // the commas
	for _, e := range msgs {
		n += len(e.doc)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(n))
	w.WriteHeader(http.StatusOK)
	w.Write(head)
	for i, e := range msgs {
		if i > 0 {
			w.Write(comma)
		}
		w.Write(e.doc)
	}
	w.Write(tail)
}

func queryUint(s string, def uint64) (uint64, error) {
	if s == "" {
		return def, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("query value %q: not a whole number", s)
	}
	return v, nil
}

// body reads a request body of at most limit bytes after checking the
// caller's address against its rate limit.
func (c *chat) body(w http.ResponseWriter, r *http.Request, limit int) ([]byte, bool) {
	if !c.allowIP(w, r, 1) {
		return nil, false
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	if err == nil && len(b) > limit {
		err = fmt.Errorf("request body is over %d bytes: %w", limit, wire.ErrTooLarge)
	}
	if err != nil {
		c.fail(w, &refusal{http.StatusRequestEntityTooLarge, "too_large", err})
		return nil, false
	}
	return b, true
}

// allowIP takes n from the caller's address's allowance, or answers that it
// is over its rate.
func (c *chat) allowIP(w http.ResponseWriter, r *http.Request, n int) bool {
	ip, _, err := net.SplitHostPort(r.Header.Get(sdk.RemoteAddrHeader))
	if err != nil {
		ip = r.Header.Get(sdk.RemoteAddrHeader)
	}
	c.mu.Lock()
	ok := c.ips.allow(ip, time.Now(), n)
	c.mu.Unlock()
	if !ok {
		c.fail(w, &refusal{http.StatusTooManyRequests, "ip_rate", fmt.Errorf("address %s is over %g requests a second (burst %d; each message of a bundle counts): slow down", ip, c.cfg.IPRate, c.cfg.IPBurst)})
	}
	return ok
}

// postMessage takes a room message, or a bundle of them (a JSON array, at
// most wire.MaxBundleMessages), as a client that has several to send at
// once (a queue kept while offline, a script) sends them.
func (c *chat) postMessage(w http.ResponseWriter, r *http.Request) {
	raw, ok := c.body(w, r, wire.MaxBundle)
	if !ok {
		return
	}
	rm, err := c.join(r.PathValue("room"))
	if err != nil {
		c.fail(w, err)
		return
	}
	if wire.IsBundle(raw) {
		c.postBundle(w, r, rm, raw)
		return
	}
	id, cursor, err := c.post(rm, raw)
	if err != nil {
		c.fail(w, err)
		return
	}
	httpjson.Write(w, http.StatusAccepted, map[string]any{"id": id, "cursor": cursor})
}

// postBundle answers a bundle with one result per message.
func (c *chat) postBundle(w http.ResponseWriter, r *http.Request, rm *room, raw []byte) {
	envs, err := wire.SplitRoom(raw)
	if err != nil {
		c.fail(w, parseRefusal(err))
		return
	}
	if err := c.diskRefusal(); err != nil {
		c.fail(w, err)
		return
	}
	if !c.allowIP(w, r, len(envs)-1) { // the request itself took one
		return
	}
	results := c.postAll(rm, envs)
	taken := 0
	for _, p := range results {
		if p.Error == "" {
			taken++
		}
	}
	httpjson.Bulk(w, http.StatusAccepted, map[string]any{"accepted": taken, "results": results})
}

func (c *chat) postMail(w http.ResponseWriter, r *http.Request) {
	raw, ok := c.body(w, r, wire.MaxMail)
	if !ok {
		return
	}
	if err := c.diskRefusal(); err != nil {
		c.fail(w, err)
		return
	}
	m, saved, err := c.deposit(raw, time.Now())
	if err != nil {
		c.fail(w, err)
		return
	}
	if saved != nil { // new here: tell the other nodes
		op, _ := json.Marshal(wire.MailOp{Deposit: raw})
		if err := c.env.Host.Publish(r.Context(), wire.MailTopic, op); err != nil {
			slog.Warn("mail kept here but not passed on", "err", err)
		}
		if err := notKept(saved.wait(), "passed on"); err != nil {
			c.fail(w, err)
			return
		}
	}
	httpjson.Write(w, http.StatusAccepted, map[string]any{"id": m.ID})
}

// mailboxAuth reads and checks a signed mailbox request for op.
func (c *chat) mailboxAuth(w http.ResponseWriter, r *http.Request, op string) (string, wire.MailboxAuth, bool) {
	var a wire.MailboxAuth
	raw, ok := c.body(w, r, 64<<10)
	if !ok {
		return "", a, false
	}
	addr := r.PathValue("addr")
	err := json.Unmarshal(raw, &a)
	if err == nil {
		err = wire.CheckMailboxAuth(addr, op, a, time.Now(), mailAuthWindow)
	}
	if err != nil {
		c.fail(w, &refusal{http.StatusForbidden, "bad_signature", fmt.Errorf("mailbox %s: %w", op, err)})
		return "", a, false
	}
	return addr, a, true
}

func (c *chat) listMail(w http.ResponseWriter, r *http.Request) {
	addr, _, ok := c.mailboxAuth(w, r, "list")
	if !ok {
		return
	}
	c.mu.Lock()
	out := []wire.Mail{}
	if b := c.boxes[addr]; b != nil {
		for _, it := range b.items {
			out = append(out, it.Mail)
		}
	}
	c.mu.Unlock()
	httpjson.Bulk(w, http.StatusOK, map[string]any{"mail": out})
}

func (c *chat) deleteMail(w http.ResponseWriter, r *http.Request) {
	addr, a, ok := c.mailboxAuth(w, r, "delete")
	if !ok {
		return
	}
	del := &wire.MailDelete{To: addr, Auth: a}
	saved := c.forgetMail(del)
	op, _ := json.Marshal(wire.MailOp{Delete: del})
	if err := c.env.Host.Publish(r.Context(), wire.MailTopic, op); err != nil {
		slog.Warn("mail deleted here but other nodes not told", "err", err)
	}
	if err := saved.wait(); err != nil {
		c.fail(w, fmt.Errorf("mail deleted here and on the other nodes, but the deletion is not on disk: it may come back at a restart: %w", err))
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"deleted": len(a.IDs)})
}
