package integration

import (
	"bytes"
	"crypto/rand"
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
