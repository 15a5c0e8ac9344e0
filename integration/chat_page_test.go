package integration

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vecino/vecino/internal/testnet"
	"github.com/vecino/vecino/plugins/chat/wire"
)

// TestChatPageInChromium: a person uses the chat page in a real browser. It
// shows the room's history and what arrives later, sends a message that a
// CLI-style client reads with a good signature, and opens a sealed direct
// message left for it.
func TestChatPageInChromium(t *testing.T) {
	wd := startWebDriver(t)
	n := testnet.Start(t, testnet.Options{Name: "page-node", Plugins: map[string]string{"chat": roomyChat}})
	n.WaitPlugin("chat", 20*time.Second, testnet.Running)
	neighbour := newChatter(t, n)
	neighbour.say("lobby", "welcome to the lobby")

	neighbour.say("garden", "the tomatoes are in")
	wd.open(n.API + chatAPI + "/")
	wd.waitText("#log", "welcome to the lobby", 15*time.Second)
	// The room field offers the rooms the node carries.
	var offered []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && len(offered) < 2; time.Sleep(100 * time.Millisecond) {
		wd.exec("return [...document.querySelectorAll('#rooms option')].map(o => o.value + ' ' + o.label)", &offered)
	}
	if !slices.Contains(offered, "lobby 1 message") || !slices.Contains(offered, "garden 1 message") {
		t.Errorf("the room field offers %q, want lobby and garden with their counts", offered)
	}
	if href := wd.attr("#node-link", "href"); href != n.API+"/" {
		t.Errorf("the page's link to the node's status goes to %q", href)
	}
	neighbour.say("lobby", "a message that came later")
	wd.waitText("#log", "a message that came later", 15*time.Second)

	wd.typeInto("#text", "hello from the browser")
	wd.click("#send button")
	wd.waitText("#log", "hello from the browser", 15*time.Second)
	wd.click("details summary") // direct messages, where the page shows its address
	pageAddr := strings.TrimSpace(wd.text("#addr"))
	if _, err := wire.ParseAddress(pageAddr); err != nil {
		t.Fatalf("the page shows address %q: %v", pageAddr, err)
	}
	msgs, _ := readRoom(t, n, "lobby", 0, 0)
	if got := textsFrom(msgs, pageAddr); len(got) != 1 || got[0] != "hello from the browser" {
		t.Fatalf("the node kept %v from the page's author, want its one message", got)
	}

	// Off the network, what is written waits, in the page and in the
	// browser's storage, and goes when the node can be reached again.
	wd.offline(true)
	for _, text := range []string{"written on the bus", "and a second"} {
		wd.typeInto("#text", text)
		wd.click("#send button")
	}
	wd.waitText("#pending", "waiting to send to lobby: and a second", 15*time.Second)
	wd.waitText("#status", "offline", 15*time.Second)
	var stored string
	wd.exec("return localStorage.getItem('vecino-chat-outbox')", &stored)
	if !strings.Contains(stored, "written on the bus") {
		t.Errorf("the browser's storage holds %q, want the waiting messages", stored)
	}
	if msgs, _ := readRoom(t, n, "lobby", 0, 0); len(textsFrom(msgs, pageAddr)) != 1 {
		t.Fatalf("the node has the page's messages while the page was offline: %v", textsFrom(msgs, pageAddr))
	}
	wd.offline(false)
	wd.waitText("#log", "and a second", 20*time.Second)
	if got := strings.TrimSpace(wd.text("#pending")); got != "" {
		t.Errorf("still shown as waiting: %q", got)
	}
	msgs, _ = readRoom(t, n, "lobby", 0, 0)
	if got := textsFrom(msgs, pageAddr); strings.Join(got, "|") != "hello from the browser|written on the bus|and a second" {
		t.Fatalf("the node kept %q from the page, want each message once, in order", got)
	}

	// A long wait: 64 messages near the size limit are more than one
	// bundle may carry (512 KiB), so the page sends them in two, and the
	// node takes them all, in order.
	wd.offline(true)
	wd.exec(`const t = document.getElementById("text");
for (let i = 0; i < 64; i++) { t.value = "long " + i + " " + "x".repeat(7990); document.getElementById("send").requestSubmit(); }`, nil)
	wd.waitText("#pending", "waiting to send to lobby: long 63 ", 15*time.Second)
	wd.offline(false)
	var long []string
	for deadline := time.Now().Add(30 * time.Second); len(long) < 64 && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		msgs, _ = readRoom(t, n, "lobby", 0, 0)
		long = long[:0]
		for _, text := range textsFrom(msgs, pageAddr) {
			if num, ok := strings.CutPrefix(text, "long "); ok {
				long = append(long, strings.Fields(num)[0])
			}
		}
	}
	if len(long) != 64 {
		t.Fatalf("the node has %d of the 64 long messages the page held (%v); the page says %q", len(long), long, wd.text("#status"))
	}
	for i, num := range long {
		if num != strconv.Itoa(i) {
			t.Fatalf("the long messages arrived as %v, want 0 to 63 in order", long)
		}
	}

	// A sealed direct message for the page's address.
	to, _ := wire.ParseAddress(pageAddr)
	raw, err := neighbour.id.Seal(to, time.Now(), "psst, only you can read this")
	if err != nil {
		t.Fatal(err)
	}
	if code, body := postChat(t, n, "/mail", raw); code != http.StatusAccepted {
		t.Fatalf("deposit: %d %s", code, body)
	}
	wd.click("#inbox")
	wd.waitText("#mail", "psst, only you can read this", 15*time.Second)
	// The page deleted what it read.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(n.Status().Plugin("chat").Summary, "0 direct messages held") {
		if time.Now().After(deadline) {
			t.Fatalf("mail still held after the page fetched it: %s", n.Status().Plugin("chat").Summary)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A room nobody has written in yet says where its messages will show.
	wd.clear("#room")
	wd.typeInto("#room", "quiet")
	wd.click("#join")
	wd.waitText("#log", "Messages in quiet show here", 10*time.Second)
}
