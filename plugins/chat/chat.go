package chat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"maps"
	"net/http"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/time/rate"

	"github.com/vecino/vecino/internal/damaged"
	"github.com/vecino/vecino/plugins/chat/wire"
	"github.com/vecino/vecino/sdk"
)

type settings struct {
	// Rooms the node always carries; clients may join others, up to
	// MaxRooms in all. Rooms carried before a restart are carried after
	// it, with Rooms, even past a MaxRooms lowered meanwhile.
	Rooms          []string      `toml:"rooms"`
	History        int           `toml:"history"`
	HistoryAge     time.Duration `toml:"history_age"`
	MaxRooms       int           `toml:"max_rooms"`
	RoomsPerClient int           `toml:"rooms_per_client"`
	// Rate and Burst limit each author's messages; IPRate and IPBurst each
	// address that posts through the HTTP API.
	Rate            float64       `toml:"rate"`
	Burst           int           `toml:"burst"`
	IPRate          float64       `toml:"ip_rate"`
	IPBurst         int           `toml:"ip_burst"`
	MaxMessageBytes int           `toml:"max_message_bytes"`
	MailboxMessages int           `toml:"mailbox_messages"`
	MailboxKiB      int           `toml:"mailbox_kib"`
	MailboxTTL      time.Duration `toml:"mailbox_ttl"`
	// BundleInterval is the least time between two publishes of one busy
	// room: what arrives meanwhile leaves as one bundle.
	BundleInterval time.Duration `toml:"bundle_interval"`
	// Blocked lists authors ("vc1...") whose room messages this node
	// refuses; block.go.
	Blocked []string `toml:"blocked"`
}

func defaults() settings {
	return settings{
		Rooms: []string{"lobby"}, History: 1000, HistoryAge: 7 * 24 * time.Hour,
		MaxRooms: 64, RoomsPerClient: 16, Rate: 5, Burst: 20, IPRate: 50, IPBurst: 200,
		MaxMessageBytes: 8 << 10, MailboxMessages: 200, MailboxKiB: 1024, MailboxTTL: 14 * 24 * time.Hour,
		BundleInterval: 5 * time.Millisecond, Blocked: []string{},
	}
}

func (s *settings) check() sdk.ConfigErrors {
	var errs sdk.ConfigErrors
	bad := func(key, format string, args ...any) {
		errs = append(errs, sdk.KeyError{Key: key, Message: fmt.Sprintf(format, args...)})
	}
	for _, r := range s.Rooms {
		if !wire.RoomName.MatchString(r) {
			bad("rooms", "room %q: use lower-case letters, digits, - and _ (at most 64)", r)
		}
	}
	ints := []struct {
		key       string
		v, lo, hi int
	}{
		{"history", s.History, 1, 1_000_000},
		{"max_rooms", s.MaxRooms, len(s.Rooms), 10_000},
		{"rooms_per_client", s.RoomsPerClient, 1, 10_000},
		{"burst", s.Burst, 1, 1_000_000},
		{"ip_burst", s.IPBurst, 1, 1_000_000},
		{"max_message_bytes", s.MaxMessageBytes, 1, wire.MaxText},
		{"mailbox_messages", s.MailboxMessages, 1, 1_000_000},
		{"mailbox_kib", s.MailboxKiB, 1, 1 << 20},
	}
	for _, i := range ints {
		if i.v < i.lo || i.v > i.hi {
			bad(i.key, "must be from %d to %d, not %d", i.lo, i.hi, i.v)
		}
	}
	if s.Rate <= 0 || s.IPRate <= 0 {
		bad("rate", "rate and ip_rate must be positive (messages per second)")
	}
	if s.HistoryAge < time.Minute || s.MailboxTTL < time.Minute {
		bad("history_age", "history_age and mailbox_ttl must be at least 1m")
	}
	for i, a := range s.Blocked {
		if _, err := wire.ParseAddress(a); err != nil {
			bad("blocked", "entry %d (%q): %v", i+1, a, err)
		}
	}
	if s.BundleInterval < 0 || s.BundleInterval > time.Second {
		bad("bundle_interval", "must be from 0 to 1s, not %s", s.BundleInterval)
	}
	return errs
}

type chat struct {
	cfg settings
	env sdk.Env
	db  *db
	ctx context.Context

	cancel context.CancelFunc
	wg     sync.WaitGroup
	joinMu sync.Mutex
	// pubMu serialises accept+publish per author (by hash), so one author's
	// messages leave in the order they were accepted.
	pubMu [64]sync.Mutex
	seed  maphash.Seed

	mu          sync.Mutex
	rooms       map[string]*room
	boxes       map[string]*mailbox
	authorRooms map[string]map[string]bool
	authors     *limiters
	ips         *limiters
	catchUps    *limiters // neighbours' catch-up requests, by peer
	// live is set once Start has joined the rooms the node carried: a
	// room joined after that catches up on its own.
	live     atomic.Bool
	dropped  map[string]int64
	accepted int64
	caughtUp int64 // of accepted: taken from neighbours' catch-up answers
	// gone is the mail IDs recipients deleted here, each until its
	// deletion's expiry (Unix ms, keepDeletion); kept, the expiries of the
	// deletions kept, one each.
	gone map[string]int64
	kept []int64
	// setAside names the file an unreadable chat.db was moved to at start,
	// and salvaged is how many records were read back from it.
	setAside string
	salvaged int
	// disk says why the plugin's disk cannot take new messages, while it
	// cannot (watchDisk): full or read-only.
	disk *refusal
	// blocked is the authors whose room messages the node refuses, by
	// address (block.go).
	blocked map[string]Block
}

type room struct {
	name    string
	entries []entry // oldest first
	next    uint64  // the next message's cursor
	// lastSeq is each author's last message here, kept (on disk too) for
	// as long as a replay of it could pass the age check: long after the
	// message itself may have left the history.
	lastSeq map[string]seen
	wake    chan struct{} // closed and replaced when a message arrives
	joined  bool          // subscribed to the room's topic
	out     outbox        // accepted here, to publish
}

// entry is a message in a room's history. It keeps the JSON the API
// shows, encoded once as the message arrives: every client of the room reads
// every message, and a read is then a copy (BenchmarkReadPage, a page of 200
// 1 KiB messages: 0.29-0.34 ms encoded at each read, 0.013-0.015 copied).
type entry struct {
	Cursor   uint64
	Received int64  // Unix ms, on this node
	TS       int64  // Unix ms, when its author wrote it
	doc      []byte // an entryDoc
}

// entryDoc is a message as the API shows it.
type entryDoc struct {
	Cursor   uint64 `json:"cursor"`
	Received int64  `json:"received"` // Unix ms, on this node
	wire.RoomBody
	ID string `json:"id"`
}

func newEntry(cursor uint64, received time.Time, m *wire.RoomMessage) entry {
	e := entryDoc{Cursor: cursor, Received: received.UnixMilli(), RoomBody: m.RoomBody, ID: m.ID}
	doc, _ := json.Marshal(e) // strings, numbers: cannot fail
	return entry{Cursor: cursor, Received: e.Received, TS: m.TS, doc: doc}
}

// seen is what a room took of an author: its last (highest) seq and that
// message's time, the seqs of the seenKept-1 messages it took before that
// one, highest first, and Floor: no seq at or below it is taken. Gossipsub
// does not keep an author's order: a message can come by a slower path, or
// when asked for, after a later one. Such a late message is taken once, if
// it is above Floor; a second copy of it, or anything older, is a replay.
// Clients take seqs from their clock, so the seqs of an author's messages
// lie far apart; what is kept is the messages, not a range of seqs.
type seen struct {
	Seq   uint64
	TS    int64 // Unix ms, as the author wrote it
	Floor uint64
	older [seenKept - 1]uint64
	n     int // of older in use
}

// seenKept is how many of an author's messages a room keeps the seqs of: a
// message may come after up to seenKept-1 of the author's later ones.
const seenKept = 8

// fresh reports whether seq was not taken yet and is not too old to take.
func (s seen) fresh(seq uint64) bool {
	if seq > s.Seq {
		return true
	}
	return seq > s.Floor && seq != s.Seq && !slices.Contains(s.older[:s.n], seq)
}

// with is s once seq, written at ts, is taken too (seq is fresh).
func (s seen) with(seq uint64, ts int64) seen {
	var buf [seenKept]uint64
	kept := append(buf[:0], s.older[:s.n]...)
	if seq > s.Seq {
		if s.Seq > 0 {
			kept = slices.Insert(kept, 0, s.Seq)
		}
		s.Seq, s.TS = seq, ts
	} else {
		i := 0
		for i < len(kept) && kept[i] > seq {
			i++
		}
		kept = slices.Insert(kept, i, seq)
	}
	if len(kept) > len(s.older) {
		s.Floor = max(s.Floor, kept[len(kept)-1])
		kept = kept[:len(s.older)]
	}
	s.n = copy(s.older[:], kept)
	return s
}

// saw records what was taken of author before: its seen record on disk,
// then each of its messages in the history.
func (r *room) saw(author string, s seen) {
	last, known := r.lastSeq[author]
	switch {
	case !known:
		r.lastSeq[author] = s
	case last.fresh(s.Seq):
		r.lastSeq[author] = last.with(s.Seq, s.TS)
	}
}

// forgetSeen drops the authors whose last message is older than oldest (Unix
// ms): anything of theirs a replay could bring is refused as stale by then.
func (r *room) forgetSeen(oldest int64) []string {
	var gone []string
	for author, s := range r.lastSeq {
		if s.TS < oldest {
			delete(r.lastSeq, author)
			gone = append(gone, author)
		}
	}
	return gone
}

type mailbox struct {
	items []mailItem
	bytes int
}

type mailItem struct {
	wire.Mail
	recv time.Time
	size int
}

func newChat() *chat {
	return &chat{
		rooms: map[string]*room{}, boxes: map[string]*mailbox{}, authorRooms: map[string]map[string]bool{},
		dropped: map[string]int64{}, seed: maphash.MakeSeed(), gone: map[string]int64{}, blocked: map[string]Block{},
	}
}

func (c *chat) Info() sdk.Info {
	return sdk.Info{
		Name: "chat", Version: "0.2.0", Description: "rooms with history and sealed mailboxes, over gossipsub",
		Topics:      []string{wire.RoomTopicPrefix + "*", wire.MailTopic},
		Protocols:   []string{catchUpProtocol},
		PublicPaths: []string{"/rooms/*", "/mail*"}, Page: true,
	}
}

func (c *chat) Configure(_ context.Context, raw []byte, env sdk.Env) error {
	cfg := defaults()
	errs := append(sdk.DecodeSettings(raw, &cfg), cfg.check()...)
	if len(errs) > 0 {
		return errs
	}
	c.cfg, c.env = cfg, env
	c.authors = newLimiters(cfg.Rate, cfg.Burst)
	c.ips = newLimiters(cfg.IPRate, cfg.IPBurst)
	// A node that starts asks for every room it carries at once; then
	// one request every 5 s.
	c.catchUps = newLimiters(0.2, max(cfg.MaxRooms, 16))
	return nil
}

func (c *chat) Start(context.Context) error {
	path := filepath.Join(c.env.DataDir, "chat.db")
	// The relay keeps working past an unreadable chat.db: the file is kept
	// for whoever wants to recover it, what its sound pages hold is put
	// back, and the other nodes still hold the rest of the rooms and mail.
	d, gone, err := damaged.Open(path, func() (*db, error) { return openDB(path) })
	if gone != nil {
		slog.Error("chat.db unreadable: set aside; history and mailboxes start with what can be read back from it", "err", gone.Cause, "kept_as", gone.Path)
		c.setAside = gone.Path
	}
	if err != nil {
		return err
	}
	if gone != nil {
		c.salvaged = d.salvage(gone.Path)
	}
	c.db = d
	c.ctx, c.cancel = context.WithCancel(context.Background())
	now := time.Now()
	// The configured rooms first: they are carried whatever else was, even
	// when max_rooms was lowered, or rooms added, since the node carried
	// what it has on disk (max_rooms limits the rooms clients ask for).
	for _, name := range c.cfg.Rooms {
		c.roomLocked(name)
	}
	badBlocked, err := d.loadBlocked(func(b Block) { c.blocked[b.Author] = b })
	if err != nil {
		return fmt.Errorf("load blocked authors: %w", err)
	}
	for _, a := range c.cfg.Blocked {
		b := c.blocked[a]
		b.Author, b.Config = a, true
		c.blocked[a] = b
	}
	// Messages of authors blocked since they were kept (in the TOML file,
	// say) are dropped as the history loads.
	unwanted := map[string][]uint64{}
	// A room name no client could give is damage: its records are skipped,
	// or joining it would fail the start, every time.
	badRooms := 0
	if err := d.loadSeen(func(room, author string, last seen) {
		if !wire.RoomName.MatchString(room) {
			badRooms++
			return
		}
		c.roomLocked(room).saw(author, last)
	}); err != nil {
		return fmt.Errorf("load authors' last messages: %w", err)
	}
	bad, err := d.loadRooms(func(name string, cur uint64, recv time.Time, m *wire.RoomMessage) {
		if !wire.RoomName.MatchString(name) {
			badRooms++
			return
		}
		r := c.roomLocked(name)
		if _, ok := c.blocked[m.From]; ok {
			unwanted[name] = append(unwanted[name], cur)
			r.next = cur + 1
			return
		}
		r.entries = append(r.entries, newEntry(cur, recv, m))
		r.next = cur + 1
		r.saw(m.From, seen{Seq: m.Seq, TS: m.TS})
	})
	if err != nil {
		return fmt.Errorf("load history: %w", err)
	}
	badMail, err := d.loadMail(func(m *wire.Mail, recv time.Time, size int) {
		c.boxLocked(m.To).add(mailItem{Mail: *m, recv: recv, size: size})
	})
	if err != nil {
		return fmt.Errorf("load mailboxes: %w", err)
	}
	badGone, err := d.loadGone(func(expiry int64, del *wire.MailDelete) {
		if expiry > now.UnixMilli() {
			c.noteDeletionLocked(expiry, del)
		}
	})
	if err != nil {
		return fmt.Errorf("load deleted mail: %w", err)
	}
	if bad+badMail+badRooms+badGone+badBlocked > 0 {
		slog.Warn("skipped damaged records", "history", bad, "mail", badMail, "bad_room_names", badRooms, "deletions", badGone, "blocked", badBlocked)
	}
	if len(unwanted) > 0 {
		if err := d.write(deleteMessages(unwanted)).wait(); err != nil {
			slog.Error("messages of blocked authors not deleted from chat.db", "err", err)
		}
		slog.Info("dropped the messages of blocked authors", "rooms", len(unwanted))
	}
	slog.Info("history loaded", "rooms", len(c.rooms), "mailboxes", len(c.boxes), "took", time.Since(now).String())
	if err := c.env.Host.Handle(c.ctx, catchUpProtocol, c.serveCatchUp); err != nil {
		return err
	}
	names := append([]string(nil), c.cfg.Rooms...)
	for name := range c.rooms {
		names = append(names, name)
	}
	for _, name := range names {
		if _, err := c.join(name); err != nil {
			return err
		}
	}
	sub, err := c.env.Host.Validate(c.ctx, wire.MailTopic)
	if err != nil {
		return err
	}
	c.wg.Add(3)
	go consume(c, sub, "mail message", func([]byte, time.Time) struct{} { return struct{}{} }, func(_ struct{}, data []byte, now time.Time) sdk.Verdict {
		return c.verdict(c.mailOp(data, now))
	})
	go c.sweep()
	c.watchDisk(time.Now())
	go func() { defer c.wg.Done(); sdk.Every(c.ctx, time.Second, c.watchDisk) }()
	// Last: a start that fails leaves nothing asking.
	c.wg.Add(1)
	go c.watchNeighbours()
	c.live.Store(true)
	return nil
}

func (c *chat) Stop(context.Context) error {
	if c.cancel != nil {
		c.cancel()
		c.wg.Wait()
	}
	if c.db != nil {
		return c.db.close()
	}
	return nil
}

// Health fails only when the plugin does not work: a full disk is a
// state the status shows, not a reason to restart it.
func (c *chat) Health(context.Context) error {
	if c.db == nil {
		return errors.New("not started")
	}
	return nil
}

func (c *chat) Status(context.Context) (sdk.Status, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rooms := map[string]any{}
	total := 0
	for name, r := range c.rooms {
		rooms[name] = len(r.entries)
		total += len(r.entries)
	}
	held := 0
	for _, b := range c.boxes {
		held += len(b.items)
	}
	dropped := map[string]any{}
	for k, v := range c.dropped {
		dropped[k] = v
	}
	st := sdk.Status{
		Summary: fmt.Sprintf("%s, %s kept, %s held", plural(len(c.rooms), "room"), plural(total, "message"), plural(held, "direct message")),
		Details: map[string]any{"rooms": rooms, "mailboxes": len(c.boxes), "held": held, "accepted": c.accepted, "caught_up": c.caughtUp, "dropped": dropped, "deletions_kept": len(c.kept), "blocked": len(c.blocked)},
	}
	if c.setAside != "" {
		st.Summary += fmt.Sprintf("; an unreadable chat.db was set aside as %s, %d records read back from it", filepath.Base(c.setAside), c.salvaged)
		st.Details["set_aside"] = c.setAside
		st.Details["salvaged"] = c.salvaged
	}
	if c.disk != nil {
		st.Summary += "; " + c.disk.Error()
		st.Details[c.disk.reason] = c.disk.Error()
	}
	return st, nil
}

// roomLocked returns the room called name, making it if need be.
func (c *chat) roomLocked(name string) *room {
	r := c.rooms[name]
	if r == nil {
		r = &room{name: name, lastSeq: map[string]seen{}, wake: make(chan struct{}), next: 1, out: outbox{kick: make(chan struct{}, 1)}}
		c.rooms[name] = r
	}
	return r
}

// join makes sure the node carries room name: it is subscribed to its topic
// and keeps its history.
func (c *chat) join(name string) (*room, error) {
	if !wire.RoomName.MatchString(name) {
		return nil, &refusal{http.StatusBadRequest, "bad_room", fmt.Errorf("room %.70q: use lower-case letters, digits, - and _ (at most 64)", name)}
	}
	c.joinMu.Lock()
	defer c.joinMu.Unlock()
	c.mu.Lock()
	_, ok := c.rooms[name]
	if !ok && len(c.rooms) >= c.cfg.MaxRooms {
		c.mu.Unlock()
		return nil, &refusal{http.StatusForbidden, "room_limit", fmt.Errorf("this node carries its limit of %d rooms ([plugins.chat] max_rooms); %q is not one of them", c.cfg.MaxRooms, name)}
	}
	r := c.roomLocked(name)
	joined := r.joined
	c.mu.Unlock()
	if joined {
		return r, nil
	}
	sub, err := c.env.Host.Validate(c.ctx, wire.RoomTopicPrefix+name)
	if err != nil {
		return nil, fmt.Errorf("join room %s: %w", name, err)
	}
	c.mu.Lock()
	r.joined = true
	c.mu.Unlock()
	c.wg.Add(2)
	go consume(c, sub, "room message", c.check, c.receive(r))
	go c.publishLoop(r)
	if c.live.Load() {
		c.wg.Add(1)
		go c.catchUp([]*room{r}, false)
	}
	return r, nil
}

// refusal is a message or request the node will not take, with the HTTP
// status to answer and the name it is counted under.
type refusal struct {
	status int
	reason string
	err    error
}

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

// count counts err under its refusal's reason. Refusals are counted where
// they leave the plugin: in the HTTP answer and in the network loop.
func (c *chat) count(err error) {
	var ref *refusal
	if errors.As(err, &ref) {
		c.mu.Lock()
		c.dropped[ref.reason]++
		c.mu.Unlock()
	}
}

func parseRefusal(err error) *refusal {
	reason := "malformed"
	switch {
	case errors.Is(err, wire.ErrStale):
		reason = "stale"
	case errors.Is(err, wire.ErrUnsigned):
		reason = "unsigned"
	case errors.Is(err, wire.ErrBadSignature):
		reason = "bad_signature"
	case errors.Is(err, wire.ErrTooLarge):
		return &refusal{http.StatusRequestEntityTooLarge, "too_large", err}
	}
	return &refusal{http.StatusBadRequest, reason, err}
}

// parse checks a room message's form and signature.
func (c *chat) parse(raw []byte, now time.Time) (*wire.RoomMessage, error) {
	m, err := wire.ParseRoom(raw, now, c.cfg.HistoryAge)
	if err != nil {
		return nil, parseRefusal(err)
	}
	return m, nil
}

// accept checks a parsed room message against this node's limits and adds
// it to r's history. The returned batch is done once it is on disk.
func (c *chat) accept(r *room, m *wire.RoomMessage, now time.Time) (entry, *batch, error) {
	return c.admit(r, m, now, true)
}

// acceptOld is accept for a message a neighbour kept (catchUp): its
// author's rate then is not now.
func (c *chat) acceptOld(r *room, m *wire.RoomMessage, now time.Time) (entry, *batch, error) {
	return c.admit(r, m, now, false)
}

func (c *chat) admit(r *room, m *wire.RoomMessage, now time.Time, rated bool) (entry, *batch, error) {
	if m.Room != r.name {
		return entry{}, nil, &refusal{http.StatusBadRequest, "wrong_room", fmt.Errorf("message is for room %q, not %q", m.Room, r.name)}
	}
	if n := m.Size(); n > c.cfg.MaxMessageBytes {
		return entry{}, nil, &refusal{http.StatusRequestEntityTooLarge, "too_large", fmt.Errorf("text is %d bytes; this node takes at most %d ([plugins.chat] max_message_bytes)", n, c.cfg.MaxMessageBytes)}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addLocked(r, m, now, rated)
}

// addLocked adds m to r's history, unless it is a replay or over a limit;
// rated says whether the author's rate limit applies.
func (c *chat) addLocked(r *room, m *wire.RoomMessage, now time.Time, rated bool) (entry, *batch, error) {
	if err := c.blockedLocked(m.From); err != nil {
		return entry{}, nil, err
	}
	last, known := r.lastSeq[m.From]
	if known && !last.fresh(m.Seq) {
		return entry{}, nil, &refusal{http.StatusConflict, "replayed", fmt.Errorf("seq %d from this author was already seen here, or is older than the %d messages of theirs kept (last %d): a replay or a duplicate", m.Seq, seenKept, last.Seq)}
	}
	rooms := c.authorRooms[m.From]
	if !rooms[r.name] && len(rooms) >= c.cfg.RoomsPerClient {
		return entry{}, nil, &refusal{http.StatusForbidden, "rooms_per_client", fmt.Errorf("this author already speaks in %d rooms here, the limit ([plugins.chat] rooms_per_client)", len(rooms))}
	}
	if rated && !c.authors.allow(m.From, now, 1) {
		return entry{}, nil, &refusal{http.StatusTooManyRequests, "rate", fmt.Errorf("this author is over %g messages a second (burst %d): slow down", c.cfg.Rate, c.cfg.Burst)}
	}
	if rooms == nil {
		rooms = map[string]bool{}
		c.authorRooms[m.From] = rooms
	}
	rooms[r.name] = true
	e := newEntry(r.next, now, m)
	r.next++
	r.lastSeq[m.From] = last.with(m.Seq, m.TS)
	r.entries = append(r.entries, e)
	if n := len(r.entries) - c.cfg.History; n > 0 {
		r.entries = append(r.entries[:0:0], r.entries[n:]...)
	}
	close(r.wake)
	r.wake = make(chan struct{})
	c.accepted++
	keepFrom := r.entries[0].Cursor
	return e, c.db.write(saveRoom(r.name, e.Cursor, now, m, r.lastSeq[m.From], keepFrom)), nil
}

// consume judges each message others publish on sub's topic, for as long
// as the node runs: check on several at once, take in the order they came
// (sdk.JudgeAll). The topics are validated here: the router passes a
// message on to other nodes only once take accepts it, so what does not
// verify goes no further than this node.
func consume[T any](c *chat, sub *sdk.Subscription, what string, check func(data []byte, now time.Time) T, take func(T, []byte, time.Time) sdk.Verdict) {
	defer c.wg.Done()
	_ = sdk.JudgeAll(sub, func(m sdk.Message) (t T) {
		if m.Local {
			return t
		}
		return check(m.Data, time.Now())
	}, func(m sdk.Message, t T) sdk.Verdict {
		if m.Local {
			return sdk.Ignore
		}
		v := take(t, m.Data, time.Now())
		if v != sdk.Accept {
			slog.Debug("not passed on: "+what, "topic", m.Topic, "via", m.ReceivedFrom, "verdict", v)
		}
		return v
	})
}

// verdict counts err, if any, and says what becomes of the message that
// caused it: forwarded if taken; dropped, with blame on the peer that sent
// it, if it is malformed or forged; dropped without blame if it is valid
// but not wanted here (a replay, over a limit of this node's).
func (c *chat) verdict(err error) sdk.Verdict {
	if err == nil {
		return sdk.Accept
	}
	c.count(err)
	if !c.blameless(err) {
		return sdk.Reject
	}
	return sdk.Ignore
}

// blameless reports whether err refuses a message that is well formed and
// signed (a replay, or over a limit of this node's), rather than one no
// honest node would pass on.
func (c *chat) blameless(err error) bool {
	var ref *refusal
	if errors.As(err, &ref) {
		switch ref.reason {
		case "malformed", "unsigned", "bad_signature", "wrong_room":
			return false
		}
	}
	return true
}

// checked is a room message, or a bundle of them, from the network, parsed
// and its signatures checked: each member, or why it is refused; or why
// the whole cannot be split.
type checked struct {
	msgs []*wire.RoomMessage
	errs []error
	err  error
}

// check splits a room message from the network and checks each member.
func (c *chat) check(data []byte, now time.Time) checked {
	envs, err := wire.SplitRoom(data)
	if err != nil {
		return checked{err: parseRefusal(err)}
	}
	msgs, errs := c.parseAll(envs, now)
	return checked{msgs: msgs, errs: errs}
}

// receive takes a room message, or a bundle of them, checked. A member
// that is refused is counted alone; the others are kept. A bundle with a
// malformed or forged member is not passed on.
func (c *chat) receive(r *room) func(checked, []byte, time.Time) sdk.Verdict {
	return func(ch checked, _ []byte, now time.Time) sdk.Verdict {
		if ch.err != nil {
			return c.verdict(ch.err)
		}
		out := sdk.Ignore
		for i, m := range ch.msgs {
			err := ch.errs[i]
			if err == nil {
				_, _, err = c.accept(r, m, now)
			}
			switch v := c.verdict(err); {
			case v == sdk.Reject:
				out = sdk.Reject
			case v == sdk.Accept && out == sdk.Ignore:
				out = sdk.Accept
			}
		}
		return out
	}
}

// parseAll checks a bundle's members on every core at once: the router
// holds the bundle, and every message behind it, until they are checked.
func (c *chat) parseAll(envs [][]byte, now time.Time) ([]*wire.RoomMessage, []error) {
	msgs, errs := make([]*wire.RoomMessage, len(envs)), make([]error, len(envs))
	if len(envs) == 1 { // a lone message, as in a quiet room: no goroutine
		msgs[0], errs[0] = c.parse(envs[0], now)
		return msgs, errs
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(envs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < len(envs); i = int(next.Add(1) - 1) {
				msgs[i], errs[i] = c.parse(envs[i], now)
			}
		}()
	}
	wg.Wait()
	return msgs, errs
}

// post accepts a message from a local client, queues it to be published
// and returns once it is on disk, with the message's ID and cursor here.
func (c *chat) post(r *room, raw []byte) (string, uint64, error) {
	if err := c.diskRefusal(); err != nil {
		return "", 0, err
	}
	now := time.Now()
	m, err := c.parse(raw, now)
	if err != nil {
		return "", 0, err
	}
	e, saved, err := c.queue(r, m, raw, now)
	if err != nil {
		return "", 0, err
	}
	return m.ID, e.Cursor, notKept(saved.wait(), "passed on")
}

// queue accepts m, a local client's message, and queues raw, its envelope,
// to be published. One author's messages are queued in the order they were
// accepted.
func (c *chat) queue(r *room, m *wire.RoomMessage, raw []byte, now time.Time) (entry, *batch, error) {
	mu := &c.pubMu[maphash.String(c.seed, m.From)%uint64(len(c.pubMu))]
	mu.Lock()
	defer mu.Unlock()
	e, saved, err := c.accept(r, m, now)
	if err == nil {
		r.out.add(raw)
	}
	return e, saved, err
}

// posted is what became of one message of a client's request: its ID and
// cursor here, or why it was refused.
type posted struct {
	ID     string `json:"id,omitempty"`
	Cursor uint64 `json:"cursor,omitempty"`
	Error  string `json:"error,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// postAll accepts messages a local client sent together (a bundle), each
// on its own and in the order given, queues those taken to be published and
// returns once they are on disk. Their signatures are checked on every core
// at once. All are judged at one instant, so once an author is over the
// rate, the rest of that author's messages in the request are too, and the
// client can send them again, in order.
func (c *chat) postAll(r *room, raws [][]byte) []posted {
	now := time.Now()
	msgs, errs := c.parseAll(raws, now)
	out := make([]posted, len(raws))
	saved := make([]*batch, len(raws))
	for i, m := range msgs {
		err := errs[i]
		if err == nil {
			var e entry
			if e, saved[i], err = c.queue(r, m, raws[i], now); err == nil {
				out[i] = posted{ID: m.ID, Cursor: e.Cursor}
			}
		}
		if err != nil {
			c.count(err)
			out[i] = postedError(err)
		}
	}
	for i, b := range saved {
		if b == nil {
			continue
		}
		if err := notKept(b.wait(), "passed on"); err != nil {
			c.count(err)
			out[i] = postedError(err)
		}
	}
	return out
}

func postedError(err error) posted {
	p := posted{Error: err.Error(), Reason: "not_kept"}
	if ref := (*refusal)(nil); errors.As(err, &ref) {
		p.Reason = ref.reason
	}
	return p
}

// since returns up to limit messages after cursor, and a channel closed when
// there are more.
func (c *chat) since(r *room, after uint64, limit int) ([]entry, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := sort.Search(len(r.entries), func(i int) bool { return r.entries[i].Cursor > after })
	out := r.entries[i:]
	if len(out) > limit {
		out = out[:limit]
	}
	return append([]entry(nil), out...), r.wake
}

// ---------------------------------------------------------------- mailboxes

func (c *chat) boxLocked(to string) *mailbox {
	b := c.boxes[to]
	if b == nil {
		b = &mailbox{}
		c.boxes[to] = b
	}
	return b
}

func (b *mailbox) add(it mailItem) { b.items = append(b.items, it); b.bytes += it.size }

func (b *mailbox) has(id string) bool {
	for _, it := range b.items {
		if it.ID == id {
			return true
		}
	}
	return false
}

// remove drops the items keep says no to and returns their IDs.
func (b *mailbox) remove(drop func(mailItem) bool) []string {
	var gone []string
	kept := b.items[:0]
	for _, it := range b.items {
		if drop(it) {
			gone = append(gone, it.ID)
			b.bytes -= it.size
		} else {
			kept = append(kept, it)
		}
	}
	b.items = kept
	return gone
}

// deposit holds a sealed direct message for its recipient.
func (c *chat) deposit(raw []byte, now time.Time) (*wire.Mail, *batch, error) {
	m, err := wire.ParseMail(raw, now, c.cfg.MailboxTTL)
	if err != nil {
		return nil, nil, parseRefusal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, deleted := c.gone[m.ID]; deleted {
		return m, nil, nil // its recipient has had it
	}
	b := c.boxLocked(m.To)
	if b.has(m.ID) {
		return m, nil, nil
	}
	if len(b.items) >= c.cfg.MailboxMessages || b.bytes+len(raw) > c.cfg.MailboxKiB<<10 {
		return nil, nil, &refusal{http.StatusInsufficientStorage, "mailbox_full", fmt.Errorf("the mailbox of %.20s... is full here (%d messages, %d KiB; limits %d and %d KiB): it must fetch its mail first", m.To, len(b.items), b.bytes>>10, c.cfg.MailboxMessages, c.cfg.MailboxKiB)}
	}
	b.add(mailItem{Mail: *m, recv: now, size: len(raw)})
	return m, c.db.write(saveMail(m, now, raw)), nil
}

// forgetMail carries out a recipient's signed deletion: the mail it names
// leaves the mailbox, here and on disk. If this node held any of it, the
// deletion is kept (keepDeletion), so that no copy is taken again from a
// node that was away when it was made, and so that such a node, catching
// up from this one, drops its copy too.
func (c *chat) forgetMail(del *wire.MailDelete) *batch {
	want := map[string]bool{}
	for _, id := range del.Auth.IDs {
		want[id] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var held []string
	if b := c.boxes[del.To]; b != nil {
		held = b.remove(func(it mailItem) bool { return want[it.ID] })
		if len(b.items) == 0 {
			delete(c.boxes, del.To)
		}
	}
	if len(held) == 0 {
		return doneBatch
	}
	drop := deleteMail(del.To, held)
	if len(c.kept) >= maxDeletionsKept || len(del.Auth.IDs) > c.cfg.MailboxMessages {
		return c.db.write(drop)
	}
	expiry := del.Auth.TS + keepDeletion(c.cfg.MailboxTTL).Milliseconds()
	c.noteDeletionLocked(expiry, del)
	op, _ := json.Marshal(wire.MailOp{Delete: del})
	keep := saveGone(goneKey(expiry, op), op)
	return c.db.write(func(tx *bolt.Tx) error {
		if err := drop(tx); err != nil {
			return err
		}
		return keep(tx)
	})
}

// keepDeletion is how long after its signing a deletion is kept: for as
// long as a copy of the mail it names could be taken (its time stamp is
// within ttl, and at most MaxSkew after the deletion's on the recipient's
// clock), and the node's own clock may be MaxSkew ahead.
func keepDeletion(ttl time.Duration) time.Duration { return ttl + 2*wire.MaxSkew }

// maxDeletionsKept bounds the deletions kept. Past it, mail is still
// deleted, but a copy held by a node that was away may come back.
const maxDeletionsKept = 10_000

func (c *chat) noteDeletionLocked(expiry int64, del *wire.MailDelete) {
	for _, id := range del.Auth.IDs {
		c.gone[id] = max(c.gone[id], expiry)
	}
	c.kept = append(c.kept, expiry)
}

// caughtUpDeletion carries out a deletion a neighbour kept: signed by the
// recipient, no older than a deletion is kept.
func (c *chat) caughtUpDeletion(del *wire.MailDelete, now time.Time) error {
	if time.UnixMilli(del.Auth.TS).After(now.Add(wire.MaxSkew)) {
		return parseRefusal(fmt.Errorf("deletion signed at %d: %w (ahead of this node's clock)", del.Auth.TS, wire.ErrStale))
	}
	if err := wire.CheckMailboxAuth(del.To, "delete", del.Auth, now, keepDeletion(c.cfg.MailboxTTL)); err != nil {
		return parseRefusal(err)
	}
	c.forgetMail(del)
	return nil
}

func (c *chat) mailOp(data []byte, now time.Time) error {
	var op wire.MailOp
	if err := json.Unmarshal(data, &op); err != nil {
		return &refusal{http.StatusBadRequest, "malformed", fmt.Errorf("mail op: %w", err)}
	}
	switch {
	case op.Deposit != nil:
		_, _, err := c.deposit(op.Deposit, now)
		return err
	case op.Delete != nil:
		if err := wire.CheckMailboxAuth(op.Delete.To, "delete", op.Delete.Auth, now, mailAuthWindow); err != nil {
			return &refusal{http.StatusForbidden, "bad_signature", err}
		}
		c.forgetMail(op.Delete)
		return nil
	}
	return &refusal{http.StatusBadRequest, "malformed", errors.New("mail op: neither deposit nor delete")}
}

// mailAuthWindow is how old a signed mailbox request may be.
const mailAuthWindow = 5 * time.Minute

// sweep drops history past its age and mail past its time to live, once a
// minute.
func (c *chat) sweep() {
	defer c.wg.Done()
	sdk.Every(c.ctx, time.Minute, c.expire)
}

func (c *chat) expire(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	oldest := now.Add(-c.cfg.HistoryAge).UnixMilli()
	for _, r := range c.rooms {
		if forgot := r.forgetSeen(oldest); len(forgot) > 0 {
			c.db.write(deleteSeen(r.name, forgot))
			// Nor does the author speak in the room any more, as far
			// as rooms_per_client goes: a relay that runs for years
			// keeps no trace of each author it ever carried.
			for _, a := range forgot {
				delete(c.authorRooms[a], r.name)
				if len(c.authorRooms[a]) == 0 {
					delete(c.authorRooms, a)
				}
			}
		}
		i := sort.Search(len(r.entries), func(i int) bool { return r.entries[i].Received >= oldest })
		if i == 0 {
			continue
		}
		keep := r.next
		if i < len(r.entries) {
			keep = r.entries[i].Cursor
		}
		r.entries = append(r.entries[:0:0], r.entries[i:]...)
		c.db.write(pruneRoom(r.name, keep))
	}
	for to, b := range c.boxes {
		gone := b.remove(func(it mailItem) bool { return now.Sub(it.recv) > c.cfg.MailboxTTL })
		if len(gone) > 0 {
			c.db.write(deleteMail(to, gone))
		}
		if len(b.items) == 0 {
			delete(c.boxes, to)
		}
	}
	ms := now.UnixMilli()
	if kept := slices.DeleteFunc(c.kept, func(e int64) bool { return e < ms }); len(kept) < len(c.kept) {
		c.kept = kept
		maps.DeleteFunc(c.gone, func(_ string, e int64) bool { return e < ms })
		c.db.write(pruneGone(ms))
	}
	c.authors.forget(now)
	c.ips.forget(now)
	c.catchUps.forget(now)
}

// limiters is a token bucket per key (an author, an address).
type limiters struct {
	limit rate.Limit
	burst int
	m     map[string]*rate.Limiter
}

func newLimiters(perSecond float64, burst int) *limiters {
	return &limiters{limit: rate.Limit(perSecond), burst: burst, m: map[string]*rate.Limiter{}}
}

// allow takes a token from key's bucket; callers hold chat.mu.
func (l *limiters) allow(key string, now time.Time, n int) bool {
	lim := l.m[key]
	if lim == nil {
		lim = rate.NewLimiter(l.limit, l.burst)
		l.m[key] = lim
	}
	return lim.AllowN(now, n)
}

// forget drops buckets that are full again: they hold no state.
func (l *limiters) forget(now time.Time) {
	for k, lim := range l.m {
		if lim.TokensAt(now) >= float64(l.burst) {
			delete(l.m, k)
		}
	}
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// diskLow is the free space in the plugin's folder below which clients'
// new messages and mail are refused: what is not kept would be lost at
// the next restart.
const diskLow = 1 << 20

// watchDisk notes, once a second, whether the plugin's disk can take new
// messages: it may be full, or read-only (as ext4 remounts itself after
// disk errors).
func (c *chat) watchDisk(time.Time) {
	free, readOnly, err := sdk.DiskSpace(c.env.DataDir)
	if err != nil {
		return
	}
	var problem *refusal
	switch {
	case readOnly:
		problem = &refusal{http.StatusServiceUnavailable, "disk_read_only", fmt.Errorf("the disk of %s is read-only (a disk error, or mounted so): clients' new messages are refused until it can be written", c.env.DataDir)}
	case free < diskLow:
		problem = &refusal{http.StatusInsufficientStorage, "disk_full", fmt.Errorf("the disk of %s is full (%d KiB free): clients' new messages are refused until there is space", c.env.DataDir, free>>10)}
	}
	c.mu.Lock()
	was := c.disk
	c.disk = problem
	c.mu.Unlock()
	switch {
	case problem != nil && (was == nil || was.reason != problem.reason):
		slog.Error("disk cannot take new messages: refusing them", "dir", c.env.DataDir, "reason", problem.reason)
	case problem == nil && was != nil:
		slog.Info("disk can take new messages again", "dir", c.env.DataDir)
	}
}

// diskRefusal refuses a client's new message while the disk cannot take it.
func (c *chat) diskRefusal() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.disk == nil {
		return nil
	}
	return c.disk
}

// notKept is the error for a write that did not reach the disk, after
// the message was done with otherwise (done: "passed on", say).
func notKept(err error, done string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.ENOSPC):
		return &refusal{http.StatusInsufficientStorage, "disk_full", fmt.Errorf("this node %s the message but could not keep it: its disk is full: %w", done, err)}
	}
	return fmt.Errorf("this node %s the message but could not keep it: %w", done, err)
}
