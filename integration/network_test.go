package integration

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/vecino/vecino/internal/testnet"
)

var echoAndChat = map[string]string{"echo": "", "chat": `rooms = ["lobby"]`}

// TestStreamCrossesTwoRouters has the echo plugin on one node open a stream,
// through its router and the other node's router, to the echo plugin there.
func TestStreamCrossesTwoRouters(t *testing.T) {
	a := testnet.Start(t, testnet.Options{Name: "a", Plugins: echoAndChat})
	b := testnet.Start(t, testnet.Options{Name: "b", Plugins: echoAndChat, Bootstrap: []string{a.TCPAddr()}})
	a.WaitPeers(1, 20*time.Second)
	for _, n := range []*testnet.Node{a, b} {
		n.WaitPlugin("echo", 20*time.Second, testnet.Running)
	}

	small := []byte("hello, neighbour")
	big := make([]byte, 3<<20)
	rand.Read(big)
	for _, msg := range [][]byte{small, big} {
		code, got, err := a.Do("POST", "/api/v1/plugins/echo/echo?peer="+b.ID, msg, true)
		if err != nil || code != http.StatusOK {
			t.Fatalf("echo through routers: %d %v %.300s\nnode a:\n%s\nnode b:\n%s", code, err, got, a.Log(), b.Log())
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("echo returned %d bytes, want the %d sent", len(got), len(msg))
		}
	}
	st := b.Status().Plugin("echo")
	if streams, _ := st.Details["streams"].(float64); streams < 2 {
		t.Errorf("b's echo plugin saw %v streams, want 2", st.Details["streams"])
	}
}

type chatMessage struct {
	Text string `json:"text"`
	From string `json:"from"`
}

func roomMessages(t *testing.T, n *testnet.Node) []chatMessage {
	t.Helper()
	code, body, err := n.Do("GET", "/api/v1/plugins/chat/rooms/lobby/messages", nil, false)
	if err != nil || code != http.StatusOK {
		t.Fatalf("messages: %d %v %s", code, err, body)
	}
	var msgs []chatMessage
	if err := json.Unmarshal(body, &msgs); err != nil {
		t.Fatalf("messages: %v: %s", err, body)
	}
	return msgs
}

// TestPubsubCrossesTwoRouters publishes from the chat plugin on each node and
// finds the message in the other node's room history.
func TestPubsubCrossesTwoRouters(t *testing.T) {
	a := testnet.Start(t, testnet.Options{Name: "a", Plugins: echoAndChat})
	b := testnet.Start(t, testnet.Options{Name: "b", Plugins: echoAndChat, Bootstrap: []string{a.TCPAddr()}})
	a.WaitPeers(1, 20*time.Second)
	a.WaitPlugin("chat", 20*time.Second, testnet.Running)
	b.WaitPlugin("chat", 20*time.Second, testnet.Running)

	for i, pair := range [][2]*testnet.Node{{a, b}, {b, a}} {
		from, to := pair[0], pair[1]
		text := fmt.Sprintf("message %d from %s", i, from.ID)
		// The gossipsub mesh forms within a heartbeat or two of connecting:
		// publish until the other side has it, a bounded number of times.
		deadline := time.Now().Add(20 * time.Second)
		for found := false; !found; {
			code, body, err := from.Do("POST", "/api/v1/plugins/chat/rooms/lobby/messages", []byte(text), true)
			if err != nil || code != http.StatusAccepted {
				t.Fatalf("publish: %d %v %s", code, err, body)
			}
			for wait := time.Now().Add(time.Second); time.Now().Before(wait) && !found; time.Sleep(50 * time.Millisecond) {
				for _, m := range roomMessages(t, to) {
					if m.Text == text {
						if m.From != from.ID {
							t.Errorf("message from %s, want %s", m.From, from.ID)
						}
						found = true
					}
				}
			}
			if !found && time.Now().After(deadline) {
				t.Fatalf("message never crossed from %s to %s\n%s", from.ID, to.ID, to.Log())
			}
		}
	}
}
