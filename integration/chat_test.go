package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vecino/vecino/internal/testnet"
	"github.com/vecino/vecino/plugins/chat/wire"
)

const chatAPI = "/api/v1/plugins/chat"

// roomyChat lets a test send quickly: the per-author and per-address limits
// are far above what it sends.
const roomyChat = `rooms = ["lobby"]
rate = 10000.0
burst = 10000
ip_rate = 100000.0
ip_burst = 100000`

// chatter is a chat client: its own keys, talking to one node's API.
type chatter struct {
	t   testing.TB
	id  *wire.Identity
	n   *testnet.Node
	seq uint64
}

func newChatter(t testing.TB, n *testnet.Node) *chatter {
	id, err := wire.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return &chatter{t: t, id: id, n: n}
}

func (c *chatter) addr() string { return c.id.Address().String() }

// say signs and posts text to room, without the API token (chat paths are
// public), and fails the test unless the node accepts it.
func (c *chatter) say(room, text string) {
	c.t.Helper()
	c.post(room, text, nil)
}

// saySealed is say in a private room: the text sealed with its key k.
func (c *chatter) saySealed(room, text string, k wire.RoomKey) {
	c.t.Helper()
	c.post(room, text, &k)
}

func (c *chatter) post(room, text string, k *wire.RoomKey) {
	c.t.Helper()
	c.seq++
	raw, err := c.id.SignRoom(room, c.seq, time.Now(), text)
	if k != nil {
		raw, err = c.id.SignSealedRoom(room, c.seq, time.Now(), text, *k)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	if code, body := postChat(c.t, c.n, "/rooms/"+room+"/messages", raw); code != http.StatusAccepted {
		c.t.Fatalf("%s says %q: %d %s", c.addr()[:10], text, code, body)
	}
}

func postChat(t testing.TB, n *testnet.Node, path string, body []byte) (int, string) {
	t.Helper()
	code, out, err := n.Do("POST", chatAPI+path, body, false)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	return code, string(out)
}

type roomMsg struct {
	Cursor uint64 `json:"cursor"`
	ID     string `json:"id"`
	Room   string `json:"room"`
	From   string `json:"from"`
	Seq    uint64 `json:"seq"`
	Text   string `json:"text"`
	Sealed string `json:"sealed"`
	Name   string `json:"name"`
}

// readRoom returns the messages after cursor, waiting up to wait seconds
// for the first.
func readRoom(t testing.TB, n *testnet.Node, room string, after uint64, wait int) ([]roomMsg, uint64) {
	t.Helper()
	code, body, err := n.Do("GET", fmt.Sprintf("%s/rooms/%s/messages?after=%d&wait=%d&limit=1000", chatAPI, room, after, wait), nil, false)
	if err != nil || code != http.StatusOK {
		t.Fatalf("read %s: %d %v %s", room, code, err, body)
	}
	var page struct {
		Messages []roomMsg
		Cursor   uint64
	}
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatalf("read %s: %v", room, err)
	}
	return page.Messages, page.Cursor
}

func textsFrom(msgs []roomMsg, addr string) []string {
	var out []string
	for _, m := range msgs {
		if m.From == addr {
			out = append(out, m.Text)
		}
	}
	return out
}

// waitMesh has a probe client on each node post until every other node has
// its message, so that the gossipsub mesh carries the room both ways.
func waitMesh(t testing.TB, room string, nodes ...*testnet.Node) {
	t.Helper()
	for _, from := range nodes {
		probe := newChatter(t, from)
		deadline := time.Now().Add(30 * time.Second)
		for i := 0; ; i++ {
			probe.say(room, fmt.Sprintf("probe %d", i))
			time.Sleep(200 * time.Millisecond)
			all := true
			for _, to := range nodes {
				if msgs, _ := readRoom(t, to, room, 0, 0); len(textsFrom(msgs, probe.addr())) == 0 {
					all = false
				}
			}
			if all {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("room %s: the mesh did not form in 30s", room)
			}
		}
	}
}

func startChatNodes(t testing.TB, count int, chatConf string) []*testnet.Node {
	var nodes []*testnet.Node
	var boot []string
	for i := range count {
		n := testnet.Start(t, testnet.Options{Name: fmt.Sprintf("chat-%d", i), Plugins: map[string]string{"chat": chatConf}, Bootstrap: boot})
		boot = append(boot, n.TCPAddr())
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		n.WaitPeers(count-1, 30*time.Second)
		n.WaitPlugin("chat", 20*time.Second, testnet.Running)
	}
	return nodes
}

// TestChatRoomAcrossThreeNodes: clients on three nodes share a room. Every
// message arrives once, in each author's order, at a client that was
// listening and at one that joins after the talk.
func TestChatRoomAcrossThreeNodes(t *testing.T) {
	nodes := startChatNodes(t, 3, roomyChat)
	waitMesh(t, "lobby", nodes...)
	_, start := readRoom(t, nodes[2], "lobby", 0, 0)

	// A listener on the third node, long-polling as the page does.
	var heard []roomMsg
	stop := make(chan struct{})
	listened := make(chan struct{})
	go func() {
		defer close(listened)
		cur := start
		for {
			select {
			case <-stop:
				return
			default:
			}
			msgs, next := readRoom(t, nodes[2], "lobby", cur, 2)
			heard, cur = append(heard, msgs...), next
		}
	}()

	const each = 100
	alice, bob := newChatter(t, nodes[0]), newChatter(t, nodes[1])
	var wg sync.WaitGroup
	for _, c := range []*chatter{alice, bob} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				c.say("lobby", fmt.Sprintf("%s %03d", c.addr()[:8], i))
			}
		}()
	}
	wg.Wait()

	want := func(c *chatter) []string {
		var w []string
		for i := range each {
			w = append(w, fmt.Sprintf("%s %03d", c.addr()[:8], i))
		}
		return w
	}
	check := func(who string, msgs []roomMsg) bool {
		ok := true
		for _, c := range []*chatter{alice, bob} {
			got := textsFrom(msgs, c.addr())
			if strings.Join(got, "|") != strings.Join(want(c), "|") {
				t.Logf("%s: from %s got %d messages, want %d in order: %v", who, c.addr()[:8], len(got), each, got)
				ok = false
			}
		}
		return ok
	}
	// The listener must have everything within a few seconds.
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) && len(textsFrom(heard, alice.addr()))+len(textsFrom(heard, bob.addr())) < 2*each {
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	<-listened
	if !check("listener on node 3", heard) {
		t.Error("the listening client did not get every message once, in order")
	}
	// A client that joins each node now gets the history.
	for i, n := range nodes {
		msgs, _ := readRoom(t, n, "lobby", 0, 0)
		if !check(fmt.Sprintf("late client on node %d", i+1), msgs) {
			t.Errorf("node %d's history is not every message once, in order", i+1)
		}
	}
	// Node 3 had every message checked by its plugin before passing it on,
	// and its /metrics say how long that took.
	if v := routerMetrics(t, nodes[2], `vecino_plugin_pubsub_validation_seconds_total{plugin="chat"}`)[0]; v <= 0 {
		t.Errorf("node 3's metrics show %g s validating chat messages", v)
	}
}

// TestChatMailboxSurvivesKillAndRestart: a direct message for someone
// offline is held, sealed, through a kill -9 of the plugin and a restart of
// the node, and delivered when they come; then it is gone everywhere.
func TestChatMailboxSurvivesKillAndRestart(t *testing.T) {
	nodes := startChatNodes(t, 2, roomyChat)
	b, a := nodes[0], nodes[1]
	waitMesh(t, "lobby", a, b)

	alice := newChatter(t, a)
	bob, err := wire.NewIdentity() // offline: nothing of bob's has touched a node
	if err != nil {
		t.Fatal(err)
	}
	const secret = "the spare key is under the third flowerpot"
	raw, err := alice.id.Seal(bob.Address(), time.Now(), secret)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := postChat(t, a, "/mail", raw); code != http.StatusAccepted {
		t.Fatalf("deposit: %d %s", code, body)
	}
	alice.say("lobby", "history that must survive too")

	listMail := func(n *testnet.Node) []wire.Mail { return listMail(t, n, bob) }
	waitMail := func(n *testnet.Node, want int) []wire.Mail { return waitMail(t, n, bob, want) }
	if got := waitMail(b, 1); len(got) != 1 {
		t.Fatalf("node b holds %d copies of the mail, want 1 (passed on over gossipsub)", len(got))
	}

	// kill -9 the chat plugin; the router restarts it.
	pid := a.Status().Plugin("chat").PID
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	a.WaitPlugin("chat", 30*time.Second, func(p testnet.PluginStatus) bool { return p.State == "running" && p.PID != pid })
	// The new plugin validates the room again: what b's clients say
	// reaches a's history, each message once and in order.
	waitMesh(t, "lobby", a, b)
	carol := newChatter(t, b)
	var said []string
	for i := range 20 {
		said = append(said, fmt.Sprintf("after the restart %02d", i))
		carol.say("lobby", said[i])
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		msgs, _ := readRoom(t, a, "lobby", 0, 0)
		got := textsFrom(msgs, carol.addr())
		if slices.Equal(got, said) {
			break
		}
		if time.Now().After(deadline) {
			_, st, _ := a.Do("GET", "/api/v1/status", nil, false)
			t.Logf("a's status: %s", st)
			t.Logf("a's log: %s", a.Log())
			t.Fatalf("a's history after its plugin restarted has %v of carol's, want %v", got, said)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Then restart the whole node.
	a.Stop()
	a.Restart()
	a.WaitPlugin("chat", 20*time.Second, testnet.Running)

	// Nothing on a's disk holds the plaintext.
	filepath.WalkDir(a.State, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if data, err := os.ReadFile(path); err == nil && bytes.Contains(data, []byte("third flowerpot")) {
				t.Errorf("%s holds the plaintext of the sealed message", path)
			}
		}
		return nil
	})
	if msgs, _ := readRoom(t, a, "lobby", 0, 0); len(textsFrom(msgs, alice.addr())) != 1 {
		t.Errorf("room history after kill -9 and restart: %v", msgs)
	}

	// bob comes online at a.
	got := listMail(a)
	if len(got) != 1 {
		t.Fatalf("after the restart a holds %d mails for bob, want 1", len(got))
	}
	body, err := bob.Open(got[0])
	if err != nil || body.Text != secret || body.From != alice.addr() {
		t.Fatalf("bob opens %+v, %v", body, err)
	}
	// Someone else cannot list or delete bob's box.
	eve, _ := wire.NewIdentity()
	forged, _ := json.Marshal(eve.AuthorizeMailbox("delete", time.Now(), []string{got[0].ID}))
	if code, _ := postChat(t, a, "/mail/"+bob.Address().String()+"/delete", forged); code != http.StatusForbidden {
		t.Errorf("eve's delete of bob's mail: %d, want 403", code)
	}
	del, _ := json.Marshal(bob.AuthorizeMailbox("delete", time.Now(), []string{got[0].ID}))
	if code, body := postChat(t, a, "/mail/"+bob.Address().String()+"/delete", del); code != http.StatusOK {
		t.Fatalf("delete: %d %s", code, body)
	}
	if left := listMail(a); len(left) != 0 {
		t.Errorf("a still holds %d mails after bob fetched them", len(left))
	}
	a.WaitPeers(1, 30*time.Second)
	if left := waitMail(b, 0); len(left) != 0 {
		t.Errorf("b still holds %d mails after bob deleted them at a", len(left))
	}
}

// listMail lists the mail that n holds for id.
func listMail(t *testing.T, n *testnet.Node, id *wire.Identity) []wire.Mail {
	t.Helper()
	auth, _ := json.Marshal(id.AuthorizeMailbox("list", time.Now(), nil))
	code, body := postChat(t, n, "/mail/"+id.Address().String()+"/list", auth)
	if code != http.StatusOK {
		t.Fatalf("list mail: %d %s", code, body)
	}
	var out struct{ Mail []wire.Mail }
	json.Unmarshal([]byte(body), &out)
	return out.Mail
}

// waitMail lists id's mail on n until it holds want (15 s at most).
func waitMail(t *testing.T, n *testnet.Node, id *wire.Identity, want int) []wire.Mail {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		m := listMail(t, n, id)
		if len(m) == want || time.Now().After(deadline) {
			return m
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestChatRefusesBadMessages sends what a broken or hostile client would:
// each is refused with a clear error, counted, and the plugin keeps serving
// everyone else.
func TestChatRefusesBadMessages(t *testing.T) {
	n := testnet.Start(t, testnet.Options{Plugins: map[string]string{"chat": `rooms = ["lobby"]
rate = 1.0
burst = 3
max_message_bytes = 100
rooms_per_client = 2
max_rooms = 3`}})
	n.WaitPlugin("chat", 20*time.Second, testnet.Running)
	alice, mallory := newChatter(t, n), newChatter(t, n)

	good, _ := alice.id.SignRoom("lobby", 1, time.Now(), "hello")
	var env wire.Envelope
	json.Unmarshal(good, &env)
	forged, _ := json.Marshal(wire.Envelope{Body: strings.Replace(env.Body, "hello", "hellO", 1), Sig: env.Sig})
	long, _ := alice.id.SignRoom("lobby", 2, time.Now(), strings.Repeat("x", 101))
	old, _ := alice.id.SignRoom("lobby", 3, time.Now().Add(-30*24*time.Hour), "from last month")
	other, _ := alice.id.SignRoom("general", 4, time.Now(), "wrong room")
	for _, c := range []struct {
		name   string
		body   []byte
		code   int
		reason string
	}{
		{"not JSON", []byte("{not json"), 400, "malformed"},
		{"unsigned", []byte(`{"body":"{\"room\":\"lobby\",\"text\":\"hi\"}"}`), 400, "unsigned"},
		{"forged", forged, 400, "bad_signature"},
		{"too long", long, 413, "too_large"},
		{"a month old", old, 400, "stale"},
		{"for another room", other, 400, "wrong_room"},
		{"good", good, 202, ""},
		{"replayed", good, 409, "replayed"},
	} {
		code, body := postChat(t, n, "/rooms/lobby/messages", c.body)
		if code != c.code || !strings.Contains(body, c.reason) {
			t.Errorf("%s: %d %s, want %d %s", c.name, code, body, c.code, c.reason)
		}
	}

	// A bundle: each message judged on its own, the request taken whole
	// only if it is a well-formed bundle.
	bob := newChatter(t, n)
	hi, _ := bob.id.SignRoom("lobby", 1, time.Now(), "hi")
	there, _ := bob.id.SignRoom("lobby", 2, time.Now(), "there")
	code, body := postChat(t, n, "/rooms/lobby/messages", wire.Bundle([][]byte{hi, forged, there}))
	var answer struct {
		Accepted int
		Results  []struct{ ID, Reason string }
	}
	if json.Unmarshal([]byte(body), &answer); code != 202 || answer.Accepted != 2 || len(answer.Results) != 3 || answer.Results[1].Reason != "bad_signature" || answer.Results[2].ID == "" {
		t.Errorf("a bundle with a forgery in the middle: %d %s", code, body)
	}
	if code, body := postChat(t, n, "/rooms/lobby/messages", []byte(`[`+string(good)+`,`)); code != 400 || !strings.Contains(body, "malformed") {
		t.Errorf("a bundle cut short: %d %s", code, body)
	}

	// mallory floods: after the burst of 3 she is refused; alice is not.
	var codes []int
	for i := range 6 {
		raw, _ := mallory.id.SignRoom("lobby", uint64(i+1), time.Now(), "spam")
		code, _ := postChat(t, n, "/rooms/lobby/messages", raw)
		codes = append(codes, code)
	}
	if fmt.Sprint(codes) != "[202 202 202 429 429 429]" {
		t.Errorf("mallory's flood got %v, want three accepted then 429", codes)
	}
	alice.seq = 10
	alice.say("lobby", "still here")

	// Rooms: this node carries at most 3, and a client speaks in at most 2.
	carol := newChatter(t, n)
	carol.say("lobby", "hi")
	carol.say("kitchen", "hi")
	raw, _ := carol.id.SignRoom("garden", 99, time.Now(), "hi")
	if code, body := postChat(t, n, "/rooms/garden/messages", raw); code != http.StatusForbidden || !strings.Contains(body, "rooms_per_client") {
		t.Errorf("carol's third room: %d %s", code, body)
	}
	dave := newChatter(t, n)
	dave.say("garden", "third room of the node")
	raw, _ = dave.id.SignRoom("attic", 99, time.Now(), "hi")
	if code, body := postChat(t, n, "/rooms/attic/messages", raw); code != http.StatusForbidden || !strings.Contains(body, "room_limit") {
		t.Errorf("a fourth room on the node: %d %s", code, body)
	}

	st := n.Status().Plugin("chat")
	dropped, _ := st.Details["dropped"].(map[string]any)
	for _, reason := range []string{"malformed", "unsigned", "bad_signature", "too_large", "stale", "replayed", "rate", "room_limit"} {
		if v, _ := dropped[reason].(float64); v < 1 {
			t.Errorf("status does not count %q refusals: %v", reason, dropped)
		}
	}
	if st.State != "running" || st.Restarts != 0 {
		t.Errorf("chat plugin %s with %d restarts after bad input", st.State, st.Restarts)
	}
}

// TestChatCLI: the vecino command as a user runs it. Lines piped to "chat
// send ROOM -" all arrive, once and in order, at another node, though the
// node's limits refuse some on the way (the command sends those again);
// "chat read" shows the whole history, past one page; a direct message left
// with "chat dm" is in the recipient's "chat inbox".
func TestChatCLI(t *testing.T) {
	nodes := startChatNodes(t, 2, `rooms = ["lobby"]
rate = 100.0
burst = 20
ip_rate = 1000.0
ip_burst = 40`)
	waitMesh(t, "lobby", nodes...)
	dir := t.TempDir()
	aliceKey, bobKey := filepath.Join(dir, "alice.key"), filepath.Join(dir, "bob.key")
	alice := strings.TrimSpace(vecinoCLI(t, nodes[0], true, "chat", "id", "-key", aliceKey))
	bob := strings.TrimSpace(vecinoCLI(t, nodes[1], true, "chat", "id", "-key", bobKey))
	if !strings.HasPrefix(alice, "vc1") || alice == bob {
		t.Fatalf("chat id printed %q and %q", alice, bob)
	}
	if fi, err := os.Stat(aliceKey); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}

	const lines = 300
	var in strings.Builder
	for i := range lines {
		fmt.Fprintf(&in, "line %d\n", i)
		if i%100 == 0 {
			in.WriteString("   \n") // blank: not sent
		}
	}
	send := vecinoCmd(t, nodes[0], "chat", "send", "-key", aliceKey, "lobby", "-")
	send.Stdin = strings.NewReader(in.String())
	if out := runCLI(t, send, true); !strings.Contains(out, fmt.Sprintf("messages sent: %d", lines)) {
		t.Fatalf("chat send -: %s", out)
	}
	st := nodes[0].Status().Plugin("chat")
	if dropped, _ := st.Details["dropped"].(map[string]any); dropped["rate"] == nil && dropped["ip_rate"] == nil {
		t.Errorf("the node's limits refused nothing (%v): the command's sending again was not tested", dropped)
	}

	var got []string
	deadline := time.Now().Add(30 * time.Second)
	for len(got) < lines && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		got = got[:0]
		for _, line := range strings.Split(vecinoCLI(t, nodes[1], true, "chat", "read", "-json", "lobby"), "\n") {
			var m struct{ From, Text string }
			if json.Unmarshal([]byte(line), &m) == nil && m.From == alice {
				got = append(got, m.Text)
			}
		}
	}
	var want []string
	for i := range lines {
		want = append(want, fmt.Sprintf("line %d", i))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("node 2 has %d of alice's %d lines, not each once in order: %.300v", len(got), lines, got)
	}

	vecinoCLI(t, nodes[1], true, "chat", "dm", "-key", bobKey, alice, "psst")
	if out := vecinoCLI(t, nodes[0], true, "chat", "inbox", "-key", aliceKey); !strings.Contains(out, "psst") {
		t.Errorf("alice's inbox: %q", out)
	}
}

// A replay is refused even when the message it copies has left the
// history (the room keeps only 2 here) and the node restarted since: the
// node remembers each author's last seq for as long as the age check could
// let a copy through.
func TestChatReplayRefusedAfterTrimAndRestart(t *testing.T) {
	n := testnet.Start(t, testnet.Options{Plugins: map[string]string{"chat": roomyChat + "\nhistory = 2"}})
	n.WaitPlugin("chat", 20*time.Second, testnet.Running)
	alice, bob := newChatter(t, n), newChatter(t, n)
	old, err := alice.id.SignRoom("lobby", 1, time.Now(), "an old message")
	if err != nil {
		t.Fatal(err)
	}
	if code, body := postChat(t, n, "/rooms/lobby/messages", old); code != http.StatusAccepted {
		t.Fatalf("first post: %d %s", code, body)
	}
	bob.say("lobby", "one")
	bob.say("lobby", "two")
	msgs, _ := readRoom(t, n, "lobby", 0, 0)
	if len(msgs) != 2 {
		t.Fatalf("history holds %d messages, want 2", len(msgs))
	}
	for _, m := range msgs {
		if m.From == alice.addr() {
			t.Fatalf("alice's message is still in a history of 2: %+v", m)
		}
	}

	n.Stop()
	n.Restart()
	n.WaitPlugin("chat", 20*time.Second, testnet.Running)
	if code, body := postChat(t, n, "/rooms/lobby/messages", old); code != http.StatusConflict || !strings.Contains(body, "replayed") {
		t.Fatalf("replay after trim and restart: %d %s, want 409 replayed", code, body)
	}
	alice.seq = 1
	alice.say("lobby", "a new message") // seq 2: taken
}

// TestChatSetsAsideAnUnreadableDatabase: the chat plugin's database is
// not a database any more (a disk error wrote over it). At the next start
// the file is set aside, kept whole for whoever wants it, the status says
// so, and the relay takes messages again: it is not restarted in a loop.
func TestChatSetsAsideAnUnreadableDatabase(t *testing.T) {
	n := testnet.Start(t, testnet.Options{Plugins: map[string]string{"chat": roomyChat}})
	n.WaitPlugin("chat", 20*time.Second, testnet.Running)
	alice := newChatter(t, n)
	alice.say("lobby", "before the disk error")
	n.Stop()
	path := filepath.Join(n.State, "plugins", "chat", "chat.db")
	junk := bytes.Repeat([]byte("not a database "), 8<<10)
	if err := os.WriteFile(path, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	n.Restart()
	p := n.WaitPlugin("chat", 20*time.Second, testnet.Running)
	if p.Restarts != 0 || !strings.Contains(p.Summary, "unreadable chat.db was set aside") {
		t.Errorf("chat after its database was overwritten: restarts %d, summary %q", p.Restarts, p.Summary)
	}
	kept, _ := filepath.Glob(path + ".unreadable-*")
	if len(kept) != 1 {
		t.Fatalf("set-aside files: %v, want one", kept)
	}
	if b, err := os.ReadFile(kept[0]); err != nil || !bytes.Equal(b, junk) {
		t.Errorf("the set-aside file does not hold what was there: %v", err)
	}
	alice.say("lobby", "after the disk error")
	if msgs, _ := readRoom(t, n, "lobby", 0, 0); len(msgs) != 1 || msgs[0].Text != "after the disk error" {
		t.Errorf("history after the restart: %+v", msgs)
	}
}

// TestChatReadsBackADamagedDatabase: a power cut leaves pages of the chat
// plugin's database damaged. At the next start the file is set aside, and
// what its sound pages hold is put back: the relay starts with that part
// of its history, each message as it was said, and takes new ones.
func TestChatReadsBackADamagedDatabase(t *testing.T) {
	n := testnet.Start(t, testnet.Options{Plugins: map[string]string{"chat": roomyChat}, Group: true})
	n.WaitPlugin("chat", 20*time.Second, testnet.Running)
	alice := newChatter(t, n)
	said := map[string]bool{}
	for i := range 300 {
		text := fmt.Sprintf("said before the power cut %03d %s", i, strings.Repeat("x", 500))
		alice.say("lobby", text)
		said[text] = true
	}
	n.PowerCut()
	path := filepath.Join(n.State, "plugins", "chat", "chat.db")
	testnet.DamagePages(t, path, 0.2, 0.6)
	n.Restart()
	p := n.WaitPlugin("chat", 20*time.Second, testnet.Running)
	if p.Restarts != 0 || !strings.Contains(p.Summary, "unreadable chat.db was set aside") {
		t.Fatalf("chat after a power cut damaged its database: restarts %d, summary %q", p.Restarts, p.Summary)
	}
	msgs, _ := readRoom(t, n, "lobby", 0, 0)
	got := textsFrom(msgs, alice.addr())
	for i, text := range got {
		if !said[text] || i > 0 && text <= got[i-1] {
			t.Fatalf("read back %.40q after %.40q: not what was said, or out of order", text, got[max(i-1, 0)])
		}
	}
	t.Logf("%d of 300 messages read back; %v records", len(got), p.Details["salvaged"])
	if len(got) == 0 || p.Details["salvaged"] == float64(0) {
		t.Errorf("nothing read back: %d messages, status %v", len(got), p.Details)
	}
	alice.say("lobby", "after the power cut")
	if msgs, _ := readRoom(t, n, "lobby", 0, 0); msgs[len(msgs)-1].Text != "after the power cut" {
		t.Errorf("the relay does not take new messages: %+v", msgs[len(msgs)-1])
	}
}

// TestChatFullOrReadOnlyDisk: the chat plugin's disk fills up (the torrent
// plugin's downloads, say, on the same SD card). A client's new message
// and mail are refused with 507 and a reason saying so, nothing
// half-kept; the plugin is not restarted (it was, every 6 s: its health
// check failed on the last commit's error); history already kept is
// served. Once there is space the node takes messages again, and they
// survive a restart. A disk turned read-only is refused the same way, 503.
func TestChatFullOrReadOnlyDisk(t *testing.T) {
	n := testnet.Start(t, testnet.Options{Plugins: map[string]string{"chat": roomyChat}})
	n.WaitPlugin("chat", 20*time.Second, testnet.Running)
	n.Stop()
	dir := filepath.Join(n.State, "plugins", "chat")
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	mountTmpfs(t, dir, "4m")
	n.Restart()
	n.WaitPlugin("chat", 20*time.Second, testnet.Running)
	alice, bob := newChatter(t, n), newChatter(t, n)
	alice.say("lobby", "before the disk filled")

	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for buf := make([]byte, 64<<10); ; {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	f.Close()
	n.WaitPlugin("chat", 5*time.Second, func(p testnet.PluginStatus) bool { return strings.Contains(p.Summary, "is full") })
	alice.seq++
	raw, _ := alice.id.SignRoom("lobby", alice.seq, time.Now(), "while full")
	if code, body := postChat(t, n, "/rooms/lobby/messages", raw); code != http.StatusInsufficientStorage || !strings.Contains(body, "disk_full") || !strings.Contains(body, "is full") {
		t.Fatalf("a post onto a full disk: %d %s", code, body)
	}
	mail, err := alice.id.Seal(bob.id.Address(), time.Now(), "while full")
	if err != nil {
		t.Fatal(err)
	}
	if code, body := postChat(t, n, "/mail", mail); code != http.StatusInsufficientStorage || !strings.Contains(body, "disk_full") {
		t.Errorf("mail onto a full disk: %d %s", code, body)
	}
	time.Sleep(8 * time.Second) // past three health checks
	if p := n.Status().Plugin("chat"); p.Restarts != 0 || p.State != "running" || !strings.Contains(p.Summary, "full") {
		t.Errorf("while the disk is full: %s, %d restarts, summary %q", p.State, p.Restarts, p.Summary)
	}
	if msgs, _ := readRoom(t, n, "lobby", 0, 0); len(msgs) == 0 || msgs[0].Text != "before the disk filled" {
		t.Errorf("history while the disk is full: %+v", msgs)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	sayOnceTaken := func(when, text string) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			alice.seq++
			raw, _ := alice.id.SignRoom("lobby", alice.seq, time.Now(), text)
			code, body := postChat(t, n, "/rooms/lobby/messages", raw)
			if code == http.StatusAccepted {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d %s", when, code, body)
			}
		}
	}
	sayOnceTaken("with space again", "after")

	// The plugin keeps chat.db open for writing, so the file system
	// cannot be remounted read-only under it here (ext4 does it from the
	// kernel after disk errors); a read-only bind mount over the folder
	// is what statfs then shows.
	mount := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
			t.Fatalf("mount %v: %v %s", args, err, out)
		}
	}
	mount("--bind", dir, dir)
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	mount("-o", "remount,bind,ro", dir)
	n.WaitPlugin("chat", 5*time.Second, func(p testnet.PluginStatus) bool { return strings.Contains(p.Summary, "read-only") })
	alice.seq++
	raw, _ = alice.id.SignRoom("lobby", alice.seq, time.Now(), "while read-only")
	if code, body := postChat(t, n, "/rooms/lobby/messages", raw); code != http.StatusServiceUnavailable || !strings.Contains(body, "disk_read_only") {
		t.Errorf("a post onto a read-only disk: %d %s", code, body)
	}
	if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
		t.Fatalf("umount the read-only bind: %v %s", err, out)
	}
	sayOnceTaken("writable again", "after")
	n.Stop()
	n.Restart()
	n.WaitPlugin("chat", 20*time.Second, testnet.Running)
	msgs, _ := readRoom(t, n, "lobby", 0, 0)
	if got := textsFrom(msgs, alice.addr()); len(got) < 2 || got[0] != "before the disk filled" || got[len(got)-1] != "after" {
		t.Errorf("history after a restart: %q", got)
	}
}

// TestChatStartsWhateverItCarried: what a node carried must not keep its
// chat from starting again. Here the node carries its max_rooms, one of
// them a room a client asked for; the operator then adds a room to
// `rooms`, and a disk error has left a room whose name no client could
// give. The plugin starts at once, with the rooms it carried, the new
// one, and without the damaged one.
func TestChatStartsWhateverItCarried(t *testing.T) {
	n := testnet.Start(t, testnet.Options{Plugins: map[string]string{"chat": roomyChat + "\nmax_rooms = 2"}})
	n.WaitPlugin("chat", 20*time.Second, testnet.Running)
	alice := newChatter(t, n)
	alice.say("kitchen", "in the room a client asked for")
	n.Stop()

	conf, err := os.ReadFile(n.Config)
	if err != nil {
		t.Fatal(err)
	}
	more := bytes.Replace(conf, []byte(`rooms = ["lobby"]`), []byte(`rooms = ["lobby", "garden"]`), 1)
	if bytes.Equal(more, conf) {
		t.Fatalf("no rooms line in %s", n.Config)
	}
	if err := os.WriteFile(n.Config, more, 0o600); err != nil {
		t.Fatal(err)
	}
	damage(t, filepath.Join(n.State, "plugins", "chat", "chat.db"), "kitchen", "Not A Room!")

	n.Restart()
	p := n.WaitPlugin("chat", 20*time.Second, testnet.Running)
	if p.Restarts != 0 {
		t.Errorf("chat restarted %d times: %s", p.Restarts, p.LastError)
	}
	if msgs, _ := readRoom(t, n, "kitchen", 0, 0); len(msgs) != 1 || msgs[0].Text != "in the room a client asked for" {
		t.Errorf("kitchen after the restart: %+v", msgs)
	}
	alice.say("garden", "in the room the operator added")
	alice.say("lobby", "in the lobby")
	if code, body := postChat(t, n, "/rooms/attic/messages", nil); code != http.StatusForbidden || !strings.Contains(body, "room_limit") {
		t.Errorf("a fourth room: %d %s, want 403 room_limit", code, body)
	}
	if !strings.Contains(n.Log(), "skipped damaged records") {
		t.Errorf("the damaged room was not reported in the log")
	}
}

// damage copies room's history and its authors' seen records in chat.db
// under a room name that no client could have given.
func damage(t *testing.T, path, room, bad string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		from := tx.Bucket([]byte("rooms")).Bucket([]byte(room))
		to, err := tx.Bucket([]byte("rooms")).CreateBucket([]byte(bad))
		if err != nil {
			return err
		}
		if err := from.ForEach(func(k, v []byte) error { return to.Put(k, v) }); err != nil {
			return err
		}
		seen := tx.Bucket([]byte("seen"))
		var keys, vals [][]byte
		seen.ForEach(func(k, v []byte) error {
			if r, author, ok := strings.Cut(string(k), "/"); ok && r == room {
				keys, vals = append(keys, []byte(bad+"/"+author)), append(vals, v)
			}
			return nil
		})
		for i := range keys {
			if err := seen.Put(keys[i], vals[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestChatCatchesUpAfterBeingAway: gossipsub does not replay what was said
// while a node was away. Node b is stopped while alice, on node a, talks
// in the lobby, leaves mail for dave, and bob starts a room b never
// carried. Started again, b asks a for what it missed: its clients read
// all of alice's messages, in order, once each, and the room bob started
// once one of them opens it; dave finds his mail on b.
func TestChatCatchesUpAfterBeingAway(t *testing.T) {
	nodes := startChatNodes(t, 2, roomyChat)
	a, b := nodes[0], nodes[1]
	waitMesh(t, "lobby", a, b)
	alice, bob := newChatter(t, a), newChatter(t, a)
	alice.say("lobby", "before b went away")
	waitFor(t, b, "lobby", alice.addr(), 1)

	b.Stop()
	var said []string
	for i := range 5 {
		said = append(said, fmt.Sprintf("while b was away %d", i))
		alice.say("lobby", said[i])
	}
	bob.say("garden", "a room b never carried")
	dave, err := wire.NewIdentity() // offline, and will fetch from b
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := alice.id.Seal(dave.Address(), time.Now(), "left on a while b was away")
	if err != nil {
		t.Fatal(err)
	}
	if code, body := postChat(t, a, "/mail", sealed); code != http.StatusAccepted {
		t.Fatalf("deposit: %d %s", code, body)
	}
	// Past gossipsub's message cache on a (5 heartbeats of 1 s): a's
	// gossip cannot bring these back to b, as it would a moment later.
	time.Sleep(6 * time.Second)
	b.Restart()
	b.WaitPlugin("chat", 20*time.Second, testnet.Running)

	got := waitFor(t, b, "lobby", alice.addr(), 6)
	if want := append([]string{"before b went away"}, said...); !slices.Equal(got, want) {
		t.Errorf("b's lobby after catching up:\n%q\nwant\n%q", got, want)
	}
	if got := waitFor(t, b, "garden", bob.addr(), 1); got[0] != "a room b never carried" {
		t.Errorf("b's garden: %q", got)
	}
	if got := waitMail(t, b, dave, 1); len(got) != 1 {
		t.Errorf("b holds %d of dave's mail after catching up, want 1", len(got))
	}
	if st := b.Status().Plugin("chat"); st.Details["caught_up"] == float64(0) {
		t.Errorf("b's status counts nothing caught up: %v", st.Details)
	}
}

// TestDeletedMailStaysDeleted: dave fetches and deletes his mail at a while
// b, which held a copy, is away. Back, b learns of the deletion from a and
// drops its copy, and a does not take it again from b: dave is not handed
// mail he had, and it does not use his quota until its time to live ends.
func TestDeletedMailStaysDeleted(t *testing.T) {
	nodes := startChatNodes(t, 2, roomyChat)
	a, b := nodes[0], nodes[1]
	alice, dave := newChatter(t, a), newChatter(t, a).id
	sealed, err := alice.id.Seal(dave.Address(), time.Now(), "read it at a")
	if err != nil {
		t.Fatal(err)
	}
	if code, body := postChat(t, a, "/mail", sealed); code != http.StatusAccepted {
		t.Fatalf("deposit: %d %s", code, body)
	}
	if got := waitMail(t, b, dave, 1); len(got) != 1 {
		t.Fatalf("b holds %d of dave's mail, want 1", len(got))
	}

	b.Stop()
	got := listMail(t, a, dave)
	del, _ := json.Marshal(dave.AuthorizeMailbox("delete", time.Now(), []string{got[0].ID}))
	if code, body := postChat(t, a, "/mail/"+dave.Address().String()+"/delete", del); code != http.StatusOK {
		t.Fatalf("delete: %d %s", code, body)
	}
	b.Restart()
	b.WaitPlugin("chat", 20*time.Second, testnet.Running)
	b.WaitPeers(1, 30*time.Second)
	if left := waitMail(t, b, dave, 0); len(left) != 0 {
		t.Errorf("b still holds %d of dave's mail after catching up with a, where he deleted it", len(left))
	}
	// a asks b, back, for mail within 2 s of seeing it: give it twice that.
	time.Sleep(5 * time.Second)
	if left := listMail(t, a, dave); len(left) != 0 {
		t.Errorf("a holds %d of dave's mail again, taken from b", len(left))
	}
	for _, n := range nodes {
		if kept := n.Status().Plugin("chat").Details["deletions_kept"]; kept != float64(1) {
			t.Errorf("%s keeps %v deletions, want 1", n.ID, kept)
		}
	}
}

// TestChatCatchesUpAfterAnOutage: two nodes on a LAN of the test's own
// lose the link between them for longer than their connection outlives (a
// Wi-Fi outage, a cable pulled) while alice talks on a. Neither restarts.
// Once the link is back and b has reconnected, b's lobby holds what alice
// said meanwhile, which gossipsub alone does not bring.
func TestChatCatchesUpAfterAnOutage(t *testing.T) {
	lan := testnet.NewLAN(t)
	start := func(i int, boot []string) *testnet.Node {
		return testnet.Start(t, testnet.Options{
			Name: fmt.Sprintf("chat-lan-%d", i), Netns: lan.NS[i], Bootstrap: boot,
			Listen:  []string{"/ip4/" + lan.IP[i] + "/tcp/0", "/ip4/" + lan.IP[i] + "/udp/0/quic-v1"},
			Plugins: map[string]string{"chat": roomyChat},
		})
	}
	a := start(0, nil)
	b := start(1, []string{a.TCPAddr()})
	for _, n := range []*testnet.Node{a, b} {
		n.WaitPeers(1, 30*time.Second)
		n.WaitPlugin("chat", 20*time.Second, testnet.Running)
	}
	waitMesh(t, "lobby", a, b)
	alice := newChatter(t, a)
	alice.say("lobby", "before the outage")
	waitFor(t, b, "lobby", alice.addr(), 1)
	caughtUp := b.Status().Plugin("chat").Details["caught_up"]

	lan.Link(t, false)
	cut := time.Now()
	for a.Status().Peers+b.Status().Peers > 0 {
		if time.Since(cut) > 2*time.Minute {
			t.Fatalf("a and b still count each other as peers 2 min after the link went down")
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("a and b lost each other %s after the link went down", time.Since(cut).Round(time.Second))
	var said []string
	for i := range 3 {
		said = append(said, fmt.Sprintf("during the outage %d", i))
		alice.say("lobby", said[i])
	}
	// Past gossipsub's message cache on a (5 heartbeats of 1 s), so that
	// its gossip cannot bring these to b once they meet again.
	time.Sleep(6 * time.Second)
	lan.Link(t, true)
	b.WaitPeers(1, time.Minute) // b redials a, its bootstrap peer, every 15 s

	got := waitFor(t, b, "lobby", alice.addr(), 4)
	if want := append([]string{"before the outage"}, said...); !slices.Equal(got, want) {
		t.Errorf("b's lobby after the outage:\n%q\nwant\n%q", got, want)
	}
	if st := b.Status().Plugin("chat"); st.Restarts != 0 || st.Details["caught_up"] == caughtUp {
		t.Errorf("b's chat restarted %d times, and counts %v caught up (%v before the outage)", st.Restarts, st.Details["caught_up"], caughtUp)
	}
}

// waitFor reads room on n until from's messages there number want (20 s
// at most), and returns their texts.
func waitFor(t *testing.T, n *testnet.Node, room, from string, want int) []string {
	t.Helper()
	var got []string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		msgs, _ := readRoom(t, n, room, 0, 0)
		if got = textsFrom(msgs, from); len(got) >= want {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s on %s: %d messages from %s after 20 s, want %d: %q", room, n.ID, len(got), from[:10], want, got)
		}
	}
}
