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
	Text     string `json:"text"`
	Verified bool   `json:"verified"`
	Error    string `json:"error"`
}

// TestJSLibp2pClientChatsThroughNode: a js-libp2p client (gossipsub, noise,
// yamux, tcp from npm) joins a room on node a; a Vecino client talks on
// node b. Each hears the other, and each side checks the other's signature.
func TestJSLibp2pClientChatsThroughNode(t *testing.T) {
	script := jsClient(t)
	nodes := startChatNodes(t, 2, roomyChat)
	a, b := nodes[0], nodes[1]
	waitMesh(t, "lobby", a, b)
	goClient := newChatter(t, b)

	cmd := exec.Command("node", script, a.TCPAddr(), "lobby", "hola from js-libp2p", "hola from vecino")
	cmd.Dir = filepath.Dir(script)
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
				goClient.say("lobby", "hola from vecino")
			case "message":
				if e.Text == "hola from vecino" {
					heard = e.Verified && e.From == goClient.addr()
				}
			}
		case <-tick.C:
			if jsAddr != "" && !heard { // the mesh may take a heartbeat to include the js peer
				goClient.say("lobby", "hola from vecino")
			}
		case <-timeout:
			t.Fatalf("js client still running after 70s; stderr:\n%s", stderr.String())
		}
	}
	// The js client's message reached node b, whose chat plugin checked its
	// signature before keeping it.
	deadline := time.Now().Add(20 * time.Second)
	for {
		msgs, _ := readRoom(t, b, "lobby", 0, 0)
		if got := textsFrom(msgs, jsAddr); len(got) == 1 && got[0] == "hola from js-libp2p" {
			break
		}
		if time.Now().After(deadline) {
			atA, _ := readRoom(t, a, "lobby", 0, 0)
			t.Fatalf("node b never kept the js client's message; node a kept from it %q; node b's history: %+v", textsFrom(atA, jsAddr), msgs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("js client: %v; stderr:\n%s", err, stderr.String())
	}
}
