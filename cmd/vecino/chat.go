package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vecino/vecino/internal/atomicfile"
	"github.com/vecino/vecino/plugins/chat/wire"
)

const chatAPI = "/api/v1/plugins/chat"

// chatMessage is a room message as the node's API shows it.
type chatMessage struct {
	Cursor uint64 `json:"cursor"`
	wire.RoomBody
	// Private and Unread are the command's own: the room is one of the
	// user's private rooms; why a sealed text could not be opened.
	Private bool   `json:"private,omitempty"`
	Unread  string `json:"unread,omitempty"`
}

func (c *client) chat(args []string) error {
	if len(args) == 0 {
		return errors.New("chat: say id, name, send, read, private, join, leave, dm, inbox, block, unblock or blocked")
	}
	cmd, rest := args[0], args[1:]
	fs := flag.NewFlagSet("chat "+cmd, flag.ExitOnError)
	keyFile := fs.String("key", envOr("VECINO_CHAT_KEY", defaultKeyFile()), "your chat key file, made on first use (env VECINO_CHAT_KEY)")
	roomsFile := fs.String("rooms", os.Getenv("VECINO_CHAT_ROOMS"), "your private rooms' keys (env VECINO_CHAT_ROOMS; default: beside the chat key, .rooms for .key)")
	follow := fs.Bool("follow", false, "read: keep waiting for new messages")
	after := fs.Uint64("after", 0, "read: only messages after this cursor")
	asJSON := fs.Bool("json", false, "read, inbox: one JSON object a line")
	keep := fs.Bool("keep", false, "inbox: leave the mail on the node")
	note := fs.String("note", "", "block: why, kept with the block")
	newKey := fs.Bool("new", false, "private: give the room a new key (after someone left); older keys still read what came before")
	clearName := fs.Bool("clear", false, "name: send no name from now on")
	fs.Parse(rest)
	switch cmd { // the node operator's: no chat key needed
	case "block", "unblock", "blocked":
		return c.chatBlock(cmd, fs.Args(), *note)
	}
	id, err := loadOrCreateKey(*keyFile)
	if err != nil {
		return err
	}
	if *roomsFile == "" {
		*roomsFile = roomKeysFile(*keyFile)
	}
	keys, err := loadRoomKeys(*roomsFile)
	if err != nil {
		return err
	}
	nameFile := strings.TrimSuffix(*keyFile, ".key") + ".name"
	if id.Name, err = loadName(nameFile); err != nil {
		return err
	}
	switch cmd {
	case "id":
		fmt.Println(id.Address())
		return nil
	case "name":
		return chatName(nameFile, id, strings.Join(fs.Args(), " "), *clearName)
	case "send":
		switch {
		case fs.NArg() < 2:
			return errors.New("chat send [-key FILE] ROOM TEXT..., or ROOM - to send each line of stdin")
		case fs.NArg() == 2 && fs.Arg(1) == "-":
			return c.chatSendLines(id, keys, fs.Arg(0), os.Stdin)
		}
		return c.chatSend(id, keys, fs.Arg(0), strings.Join(fs.Args()[1:], " "))
	case "read":
		if fs.NArg() != 1 {
			return errors.New("chat read [-follow] [-after CURSOR] [-json] ROOM")
		}
		return c.chatRead(keys, fs.Arg(0), *after, *follow, *asJSON)
	case "private":
		if fs.NArg() != 1 {
			return errors.New("chat private [-new] ROOM: make ROOM private (or, with -new, give it a new key) and print its invite")
		}
		return c.chatPrivate(keys, fs.Arg(0), *newKey)
	case "join":
		if fs.NArg() != 1 {
			return errors.New("chat join INVITE: keep a private room's key (ROOM#KEY, or a chat page link)")
		}
		return c.chatJoin(keys, fs.Arg(0))
	case "leave":
		if fs.NArg() != 1 {
			return errors.New("chat leave ROOM: forget a private room's key")
		}
		return c.chatLeave(keys, fs.Arg(0))
	case "dm":
		if fs.NArg() < 2 {
			return errors.New("chat dm [-key FILE] ADDRESS TEXT...")
		}
		to, err := wire.ParseAddress(fs.Arg(0))
		if err != nil {
			return err
		}
		raw, err := id.Seal(to, time.Now(), strings.Join(fs.Args()[1:], " "))
		if err != nil {
			return err
		}
		var out struct{ ID string }
		if _, err := c.do("POST", chatAPI+"/mail", bytes.NewReader(raw), "application/json", &out); err != nil {
			return err
		}
		fmt.Println("sealed and left on the node:", out.ID)
		return nil
	case "inbox":
		return c.chatInbox(id, *keep, *asJSON)
	default:
		return fmt.Errorf("chat: unknown command %q (say id, name, send, read, private, join, leave, dm, inbox, block, unblock or blocked)", cmd)
	}
}

// chatBlock blocks an author on the node, unblocks one, or lists them.
func (c *client) chatBlock(cmd string, args []string, note string) error {
	switch {
	case cmd == "blocked" && len(args) == 0:
		var out struct {
			Blocked []struct {
				Author, Note string
				At           int64
				Config       bool
			}
		}
		if err := c.getJSON(chatAPI+"/blocked", &out); err != nil {
			return err
		}
		for _, b := range out.Blocked {
			when := "in the TOML file"
			if !b.Config {
				when = time.UnixMilli(b.At).Format("2006-01-02 15:04")
			}
			fmt.Printf("%s\t%s\t%s\n", b.Author, when, b.Note)
		}
		return nil
	case cmd == "block" && len(args) == 1:
		var out struct{ Removed int }
		if _, err := c.postJSON(chatAPI+"/blocked", map[string]string{"author": args[0], "note": note}, &out); err != nil {
			return err
		}
		fmt.Printf("blocked %s: %d of their messages removed from this node's history\n", args[0], out.Removed)
		return nil
	case cmd == "unblock" && len(args) == 1:
		if _, err := c.do("DELETE", chatAPI+"/blocked/"+url.PathEscape(args[0]), nil, "", nil); err != nil {
			return err
		}
		fmt.Println("unblocked", args[0])
		return nil
	}
	return errors.New("chat block [-note WHY] ADDRESS | chat unblock ADDRESS | chat blocked")
}

func defaultKeyFile() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "vecino-chat.key"
	}
	return filepath.Join(dir, "vecino", "chat.key")
}

// loadOrCreateKey reads the key file, or makes a new identity there.
func loadOrCreateKey(path string) (*wire.Identity, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		id, err := wire.UnmarshalKeys(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return id, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read chat key: %w", err)
	}
	id, err := wire.NewIdentity()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("chat key: %w", err)
	}
	if err := atomicfile.Write(path, id.MarshalKeys(), 0o600); err != nil {
		return nil, fmt.Errorf("save chat key: %w", err)
	}
	fmt.Fprintf(os.Stderr, "vecino: made a new chat key in %s\n", path)
	return id, nil
}

// lastSeq keeps this process's sequence numbers increasing even when two
// messages share a microsecond.
var lastSeq uint64

func nextSeq() uint64 {
	lastSeq = max(lastSeq+1, uint64(time.Now().UnixMicro()))
	return lastSeq
}

func (c *client) chatSend(id *wire.Identity, keys *roomKeys, room, text string) error {
	raw, err := keys.sign(id, room, nextSeq(), text)
	if err != nil {
		return err
	}
	var out struct {
		ID     string
		Cursor uint64
	}
	if _, err := c.do("POST", chatAPI+"/rooms/"+url.PathEscape(room)+"/messages", bytes.NewReader(raw), "application/json", &out); err != nil {
		return err
	}
	fmt.Println("sent", out.Cursor)
	return nil
}

// linesPerRequest bounds the lines chatSendLines sends in one request.
const linesPerRequest = 64

// chatSendLines sends each line of in that is not blank as a message, as
// the lines come: the lines waiting when a request leaves go together, as a
// bundle. Messages refused because this author or address is over the
// node's rate are sent again, in order, after a pause (and in smaller
// requests, if the node's burst per address is smaller than one); any other
// refusal is reported and counted, and makes the command fail at the end.
func (c *client) chatSendLines(id *wire.Identity, keys *roomKeys, room string, in io.Reader) error {
	lines := make(chan string, linesPerRequest)
	var readErr error
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64<<10), wire.MaxText+1)
		for sc.Scan() {
			if strings.TrimSpace(sc.Text()) != "" {
				lines <- sc.Text()
			}
		}
		readErr = sc.Err()
	}()
	s := &lineSender{c: c, id: id, keys: keys, room: room, path: chatAPI + "/rooms/" + url.PathEscape(room) + "/messages",
		limit: linesPerRequest, pause: lineSenderPause}
	for open := true; open || len(s.queue) > 0; {
		var err error
		if open, err = s.fill(lines); err != nil {
			return err
		}
		if err := s.send(); err != nil {
			return fmt.Errorf("after %d messages sent: %w", s.sent, err)
		}
	}
	fmt.Printf("messages sent: %d\n", s.sent)
	if readErr != nil {
		return fmt.Errorf("read stdin: %w", readErr)
	}
	if s.refused > 0 {
		return fmt.Errorf("messages refused: %d", s.refused)
	}
	return nil
}

// lineSenderPause is the first pause after the node asks to slow down.
const lineSenderPause = 250 * time.Millisecond

// lineSender is chatSendLines's state: what is signed and not yet taken,
// and how hard to push the node.
type lineSender struct {
	c             *client
	id            *wire.Identity
	keys          *roomKeys
	room, path    string
	queue         [][]byte      // signed, in order, not yet taken
	limit         int           // messages a request: halved while the address is over its burst
	pause         time.Duration // doubled while the node takes nothing
	sent, refused int
}

// fill signs lines into the queue, up to linesPerRequest: it waits for one
// when the queue is empty, and then takes only those already waiting. It
// reports whether lines is still open.
func (s *lineSender) fill(lines <-chan string) (bool, error) {
	for len(s.queue) < linesPerRequest {
		var text string
		open := true
		if len(s.queue) == 0 {
			text, open = <-lines
		} else {
			select {
			case text, open = <-lines:
			default:
			}
		}
		if !open {
			return false, nil
		}
		if text == "" { // none waiting
			break
		}
		raw, err := s.keys.sign(s.id, s.room, nextSeq(), text)
		if err != nil {
			return true, err
		}
		s.queue = append(s.queue, raw)
	}
	return true, nil
}

// send posts the first messages of the queue, as many as fit in a bundle,
// and keeps those the node asks to have again later.
func (s *lineSender) send() error {
	n, size := 0, 2
	for n < min(len(s.queue), s.limit) && (n == 0 || size+len(s.queue[n])+1 <= wire.MaxBundle) {
		size += len(s.queue[n]) + 1
		n++
	}
	if n == 0 {
		return nil
	}
	var out struct{ Results []chatPosted }
	bundle := append(append([]byte{'['}, bytes.Join(s.queue[:n], []byte{','})...), ']')
	code, err := s.c.do("POST", s.path, bytes.NewReader(bundle), "application/json", &out)
	if code == http.StatusTooManyRequests { // the address is over its rate
		s.limit = max(1, n/2)
		s.wait()
		return nil
	}
	if err == nil && len(out.Results) != n {
		err = fmt.Errorf("%d answers for %d messages", len(out.Results), n)
	}
	if err != nil {
		return err
	}
	var again [][]byte
	before := s.sent
	for i, p := range out.Results {
		switch {
		case p.Reason == "rate": // and so are this author's after it
			again = append(again, s.queue[i])
		case p.Error != "":
			s.refused++
			fmt.Fprintf(os.Stderr, "vecino: refused: %s\n", p.Error)
		default:
			s.sent++
		}
	}
	s.queue = append(again, s.queue[n:]...)
	if s.sent > before { // the node takes some: it is not slowing down
		s.pause = lineSenderPause
	}
	if len(again) > 0 {
		s.wait()
	}
	return nil
}

// wait pauses, longer each time until the node takes something again.
func (s *lineSender) wait() {
	time.Sleep(s.pause)
	s.pause = min(2*s.pause, 5*time.Second)
}

// chatPosted is what became of one message of a bundle.
type chatPosted struct {
	ID, Error, Reason string
	Cursor            uint64
}

func (c *client) chatRead(keys *roomKeys, room string, after uint64, follow, asJSON bool) error {
	for {
		var page struct {
			Messages []chatMessage
			Cursor   uint64
		}
		wait := 0
		if follow {
			wait = 25
		}
		path := fmt.Sprintf("%s/rooms/%s/messages?after=%d&wait=%d", chatAPI, url.PathEscape(room), after, wait)
		if err := c.getJSON(path, &page); err != nil {
			return err
		}
		for _, m := range page.Messages {
			text, private, unread := keys.open(&m.RoomBody)
			if asJSON {
				m.Text, m.Sealed, m.Private, m.Unread = text, "", private, unread
				printLine(m)
				continue
			}
			switch {
			case unread != "":
				text = "[" + unread + "]"
			case private && m.Sealed == "":
				text = "[not sealed: anyone can read this] " + text
			}
			who := short(m.From)
			if m.Name != "" {
				who = m.Name + " (" + who + ")"
			}
			fmt.Printf("%s %s: %s\n", time.UnixMilli(m.TS).Format("15:04:05"), who, text)
		}
		after = page.Cursor
		if !follow && len(page.Messages) == 0 {
			return nil
		}
	}
}

// loadName reads the name the user goes by in rooms ("" if none is set).
func loadName(path string) (string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read chat name: %w", err)
	}
	name := strings.TrimSpace(string(data))
	if err := wire.CheckName(name); err != nil {
		return "", fmt.Errorf("chat name in %s: %w", path, err)
	}
	return name, nil
}

// chatName shows, sets or clears the name that goes with the user's
// messages in public rooms.
func chatName(path string, id *wire.Identity, name string, clear bool) error {
	switch {
	case clear:
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("forget chat name: %w", err)
		}
		fmt.Println("no name: your messages show your address alone")
		return nil
	case name == "":
		if id.Name == "" {
			fmt.Println("no name set: chat name NAME sets one (-clear forgets it)")
		} else {
			fmt.Println(id.Name)
		}
		return nil
	}
	if err := wire.CheckName(name); err != nil {
		return fmt.Errorf("chat name: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("chat name: %w", err)
	}
	if err := atomicfile.Write(path, []byte(name+"\n"), 0o600); err != nil {
		return fmt.Errorf("save chat name: %w", err)
	}
	fmt.Printf("your messages in public rooms go as %q (private rooms': your address alone)\n", name)
	return nil
}

func short(addr string) string {
	if len(addr) > 12 {
		return addr[:12] + "…"
	}
	return addr
}

func (c *client) chatInbox(id *wire.Identity, keep, asJSON bool) error {
	me := id.Address().String()
	var box struct{ Mail []wire.Mail }
	if _, err := c.postJSON(chatAPI+"/mail/"+me+"/list", id.AuthorizeMailbox("list", time.Now(), nil), &box); err != nil {
		return err
	}
	var read []string
	for _, m := range box.Mail {
		b, err := id.Open(m)
		if err != nil {
			fmt.Fprintf(os.Stderr, "vecino: mail %s: %v (left on the node)\n", m.ID[:12], err)
			continue
		}
		if asJSON {
			printLine(b)
		} else {
			fmt.Printf("%s %s: %s\n", time.UnixMilli(b.TS).Format("2006-01-02 15:04"), short(b.From), b.Text)
		}
		read = append(read, m.ID)
	}
	if len(read) == 0 || keep {
		if !asJSON {
			fmt.Fprintf(os.Stderr, "vecino: %d direct messages\n", len(read))
		}
		return nil
	}
	_, err := c.postJSON(chatAPI+"/mail/"+me+"/delete", id.AuthorizeMailbox("delete", time.Now(), read), nil)
	return err
}

func printLine(v any) {
	b, _ := json.Marshal(v)
	fmt.Println(string(b))
}
