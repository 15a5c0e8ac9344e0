package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/vecino/vecino/internal/testnet"
	"github.com/vecino/vecino/plugins/chat/wire"
)

// jsClient finds the js-libp2p client and its npm packages (.ci/run installs
// them with npm ci in integration/js).
func jsClient(t *testing.T) string {
	testnet.NeedTools(t, "node")
	dir, _ := filepath.Abs("js")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "libp2p")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("integration/js/node_modules is missing; .ci/run runs npm ci there")
		}
		t.Skip("run npm ci in integration/js first")
	}
	return filepath.Join(dir, "chat-client.mjs")
}

type jsEvent struct {
	Event    string `json:"event"`
	Address  string `json:"address"`
	From     string `json:"from"`
	Name     string `json:"name"`
	Text     string `json:"text"`
	Sealed   bool   `json:"sealed"`
	Verified bool   `json:"verified"`
	Error    string `json:"error"`
}

// TestJSLibp2pClientChatsThroughNode: a js-libp2p client (gossipsub, noise,
// yamux, tcp from npm) joins a room on node a; a Vecino client talks on
// node b. Each hears the other, by name, and each side checks the other's
// signature.
// Then the same in a private room: each seals what it sends and opens
// what it hears, the js client with what docs/chat-wire.md says alone.
func TestJSLibp2pClientChatsThroughNode(t *testing.T) {
	script := jsClient(t)
	nodes := startChatNodes(t, 2, roomyChat)
	a, b := nodes[0], nodes[1]
	waitMesh(t, "lobby", a, b)
	t.Run("room", func(t *testing.T) { jsChat(t, script, a, b, "lobby", nil) })
	waitMesh(t, "club", a, b)
	key, err := wire.NewRoomKey()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("private room", func(t *testing.T) { jsChat(t, script, a, b, "club", &key) })
}

// jsChat has the js client on node a and a Vecino client on node b talk
// in room, sealed with key if it is given.
func jsChat(t *testing.T, script string, a, b *testnet.Node, room string, key *wire.RoomKey) {
	goClient := newChatter(t, b)
	goClient.id.Name = "Vecino in Go"
	say := func(text string) {
		if key != nil {
			goClient.saySealed(room, text, *key)
		} else {
			goClient.say(room, text)
		}
	}
	args := []string{script, a.TCPAddr(), room, "hola from js-libp2p", "hola from vecino"}
	if key != nil {
		args = append(args, key.String())
	}
	cmd := exec.Command("node", args...)
	cmd.Dir = filepath.Dir(script)
	cmd.Env = append(os.Environ(), "VECINO_CHAT_NAME=Ana in js")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe() // closed to let it go
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	events := make(chan jsEvent)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var e jsEvent
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				events <- e
			}
		}
	}()
	var jsAddr string
	heard := false
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	timeout := time.After(70 * time.Second)
	for !heard {
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatalf("js client ended before it heard the Vecino message: %v; stderr:\n%s", cmd.Wait(), stderr.String())
			}
			t.Logf("js: %+v", e)
			switch e.Event {
			case "ready":
				jsAddr = e.Address
				say("hola from vecino")
			case "message":
				if e.Text == "hola from vecino" {
					// Names go in public rooms only (the Go client leaves
					// them out of sealed messages).
					heard = e.Verified && e.From == goClient.addr() && e.Sealed == (key != nil) && (e.Name == "Vecino in Go") == (key == nil)
				}
			}
		case <-tick.C:
			if jsAddr != "" && !heard { // the mesh may take a heartbeat to include the js peer
				say("hola from vecino")
			}
		case <-timeout:
			t.Fatalf("js client still running after 70s; stderr:\n%s", stderr.String())
		}
	}
	// The js client's message reached node b, whose chat plugin checked its
	// signature before keeping it.
	deadline := time.Now().Add(20 * time.Second)
	var msgs []roomMsg
	for {
		msgs, _ = readRoom(t, b, room, 0, 0)
		if got := jsTexts(t, msgs, jsAddr, key); len(got) == 1 && got[0] == "hola from js-libp2p" {
			break
		}
		if time.Now().After(deadline) {
			atA, _ := readRoom(t, a, room, 0, 0)
			t.Fatalf("node b never kept the js client's message; node a kept from it %q; node b's history: %+v", jsTexts(t, atA, jsAddr, key), msgs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	wantName := "Ana in js"
	if key != nil {
		wantName = "" // a private room's messages carry none
	}
	for _, m := range msgs {
		if m.From == jsAddr && m.Name != wantName {
			t.Errorf("node b holds the js client's message with name %q, want %q", m.Name, wantName)
		}
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("js client: %v; stderr:\n%s", err, stderr.String())
	}
}

// jsTexts is what the js client (at addr) said in msgs, opened with key
// in a private room, where each must have come sealed.
func jsTexts(t *testing.T, msgs []roomMsg, addr string, key *wire.RoomKey) []string {
	if key == nil {
		return textsFrom(msgs, addr)
	}
	var out []string
	for _, m := range msgs {
		if m.From != addr {
			continue
		}
		text, err := (&wire.RoomBody{Room: m.Room, From: m.From, Sealed: m.Sealed}).Open(*key)
		if err != nil || m.Text != "" {
			t.Fatalf("the js client's message in a private room: text %q, sealed %.20q: %v", m.Text, m.Sealed, err)
		}
		out = append(out, text)
	}
	return out
}
