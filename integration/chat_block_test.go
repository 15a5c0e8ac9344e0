package integration

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vecino/vecino/internal/testnet"
)

// TestChatOperatorBlocksAnAuthor: node a's operator blocks a spammer with
// the CLI. What a held of theirs leaves its history; what they post on a
// is refused with a reason, and what they post on b, which does not block
// them, reaches b's clients but not a's, while others' messages cross as
// before. After a restart a still blocks them, and catching up from b,
// which holds their messages, does not bring them back. Only the secret
// blocks; unblocked, the author is taken again.
func TestChatOperatorBlocksAnAuthor(t *testing.T) {
	nodes := startChatNodes(t, 2, roomyChat)
	b, a := nodes[0], nodes[1] // a dials b: after a restart, a finds b again
	waitMesh(t, "lobby", a, b)
	spammer, alice := newChatter(t, b), newChatter(t, a)
	spammer.say("lobby", "buy now")
	spammer.say("lobby", "buy more")
	alice.say("lobby", "hello")
	waitFor(t, a, "lobby", spammer.addr(), 2)

	if code, _, _ := a.Do("POST", chatAPI+"/blocked", []byte(`{"author":"`+spammer.addr()+`"}`), false); code != http.StatusUnauthorized {
		t.Errorf("a block without the API secret: %d, want 401", code)
	}
	if out := vecinoCLI(t, a, true, "chat", "block", "-note", "sells things", spammer.addr()); !strings.Contains(out, "2 of their messages removed") {
		t.Errorf("chat block printed %q", out)
	}
	if msgs, _ := readRoom(t, a, "lobby", 0, 0); len(textsFrom(msgs, spammer.addr())) != 0 {
		t.Errorf("a still serves the blocked author's messages: %q", textsFrom(msgs, spammer.addr()))
	}
	if out := vecinoCLI(t, a, true, "chat", "blocked"); !strings.Contains(out, spammer.addr()) || !strings.Contains(out, "sells things") {
		t.Errorf("chat blocked printed %q", out)
	}

	// On a: refused with the reason. On b: taken there, not at a.
	direct := &chatter{t: t, id: spammer.id, n: a, seq: spammer.seq + 1}
	raw, err := direct.id.SignRoom("lobby", direct.seq, time.Now(), "let me in")
	if err != nil {
		t.Fatal(err)
	}
	if code, body := postChat(t, a, "/rooms/lobby/messages", raw); code != http.StatusForbidden || !strings.Contains(body, "blocked") {
		t.Errorf("the blocked author posting on a: %d %s, want 403 saying blocked", code, body)
	}
	spammer.seq = direct.seq
	spammer.say("lobby", "buy via b")
	alice2 := newChatter(t, b)
	alice2.say("lobby", "hi from b")
	waitFor(t, a, "lobby", alice2.addr(), 1) // sent after the spam, through the same mesh
	waitFor(t, b, "lobby", spammer.addr(), 3)
	if msgs, _ := readRoom(t, a, "lobby", 0, 0); len(textsFrom(msgs, spammer.addr())) != 0 {
		t.Errorf("a took the blocked author's message from b: %q", textsFrom(msgs, spammer.addr()))
	}
	st := a.Status().Plugin("chat")
	if dropped, _ := st.Details["dropped"].(map[string]any); dropped["blocked"] == nil {
		t.Errorf("a's status counts no message dropped as blocked: %v", st.Details["dropped"])
	}

	// A restart, and a catch-up from b, which holds all of the spam.
	a.Stop()
	a.Restart()
	a.WaitPlugin("chat", 20*time.Second, testnet.Running)
	a.WaitPeers(1, 30*time.Second)
	waitFor(t, a, "lobby", alice2.addr(), 1)
	time.Sleep(3 * time.Second) // a asks b for what it missed as b comes up as its neighbour
	if msgs, _ := readRoom(t, a, "lobby", 0, 0); len(textsFrom(msgs, spammer.addr())) != 0 {
		t.Errorf("after a restart and a catch-up a holds the blocked author's messages: %q", textsFrom(msgs, spammer.addr()))
	}

	vecinoCLI(t, a, true, "chat", "unblock", spammer.addr())
	spammer.n = a
	spammer.say("lobby", "sorry")
	if msg := vecinoCLI(t, a, false, "chat", "unblock", spammer.addr()); !strings.Contains(msg, "not blocked") {
		t.Errorf("unblocking twice said %q", msg)
	}
}
