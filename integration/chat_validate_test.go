package integration

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/vecino/vecino/internal/testnet"
	"github.com/vecino/vecino/plugins/chat/wire"
)

// TestForgedMessagesGoNoFurther: a peer speaking gossipsub directly (no
// Vecino code) publishes into a room through node a. A forged message is
// dropped at a and never reaches node b behind it; a good message from the
// same peer reaches both. The router passes on only what the chat plugin
// has checked.
func TestForgedMessagesGoNoFurther(t *testing.T) {
	nodes := startChatNodes(t, 2, roomyChat)
	a, b := nodes[0], nodes[1]
	waitMesh(t, "lobby", a, b)

	h := natted(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ps, err := pubsub.NewGossipSub(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	ai, _ := peer.AddrInfoFromString(a.TCPAddr())
	if err := h.Connect(ctx, *ai); err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join(wire.RoomTopicPrefix + "lobby")
	if err != nil {
		t.Fatal(err)
	}
	sub, _ := topic.Subscribe() // to be in the mesh
	defer sub.Cancel()
	for len(topic.ListPeers()) == 0 {
		if ctx.Err() != nil {
			t.Fatal("node a never joined the room's mesh with the outside peer")
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second) // a heartbeat: a grafts the peer into its mesh

	mallory, _ := wire.NewIdentity()
	good, _ := mallory.SignRoom("lobby", 1, time.Now(), "signed and sound")
	bad, _ := mallory.SignRoom("lobby", 2, time.Now(), "signed and sound, then changed")
	var env wire.Envelope
	json.Unmarshal(bad, &env)
	forged, _ := json.Marshal(wire.Envelope{Body: strings.Replace(env.Body, "changed", "CHANGED", 1), Sig: env.Sig})
	if err := topic.Publish(ctx, forged); err != nil {
		t.Fatal(err)
	}
	if err := topic.Publish(ctx, good); err != nil {
		t.Fatal(err)
	}

	for name, n := range map[string]*testnet.Node{"a": a, "b": b} {
		deadline := time.Now().Add(15 * time.Second)
		for {
			msgs, _ := readRoom(t, n, "lobby", 0, 0)
			if got := textsFrom(msgs, mallory.Address().String()); len(got) == 1 && got[0] == "signed and sound" {
				break
			} else if len(got) > 1 || time.Now().After(deadline) {
				t.Fatalf("node %s holds %q from the outside peer, want its good message alone", name, got)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	forgeries := func(n *testnet.Node) float64 {
		dropped, _ := n.Status().Plugin("chat").Details["dropped"].(map[string]any)
		v, _ := dropped["bad_signature"].(float64)
		return v
	}
	if got := forgeries(a); got != 1 {
		t.Errorf("node a counted %v forged messages, want 1", got)
	}
	if got := forgeries(b); got != 0 {
		t.Errorf("node b saw %v forged messages: a passed the forgery on", got)
	}
}
