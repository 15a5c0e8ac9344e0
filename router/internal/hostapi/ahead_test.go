package hostapi

import (
	"encoding/binary"
	"testing"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"

	pluginv1 "github.com/vecino/vecino/pluginapi/v1"
)

// A peer can send messages that gossipsub drops before asking for their
// verdicts (their envelopes do not verify). What is kept of them for the
// worker must stay bounded however many come, and must not keep them.
func TestAheadKeepsABoundedNumberOfVerdicts(t *testing.T) {
	s := &Server{verdicts: map[uint64]chan pluginv1.Verdict{}}
	a := newAhead(s, nil)
	defer a.waiting.expireAll()
	go func() { // the plugin reads them as fast as they come
		for range a.queue {
		}
	}()
	defer close(a.queue)
	msg := func(i int) *pubsub.Message {
		return &pubsub.Message{Message: &pb.Message{From: []byte("peer"), Seqno: binary.BigEndian.AppendUint64(nil, uint64(i)), Data: make([]byte, 1<<10)}}
	}
	const n = 3 * aheadWaiting
	for i := range n {
		a.arrive(msg(i))
	}
	if _, parked := a.waiting.has(""); parked != aheadWaiting {
		t.Errorf("%d messages arrived, %d verdicts wait: want the bound, %d", n, parked, aheadWaiting)
	}
	s.mu.Lock()
	expected := len(s.verdicts)
	s.mu.Unlock()
	if expected > aheadWaiting {
		t.Errorf("%d verdicts expected, more than the %d that wait", expected, aheadWaiting)
	}
	for _, am := range a.waiting.spots {
		if am.v.m != nil {
			t.Fatal("a message sent ahead is still held while its verdict waits")
		}
	}
	// One past the bound is not claimed: the worker sends it itself.
	if _, ok := a.claim(msg(n - 1)); ok {
		t.Error("a message past the bound was claimed as sent ahead")
	}
	// One within it, but another copy under its ID, is not claimed either.
	if _, ok := a.claim(msg(0)); ok {
		t.Error("a different message under a waiting message's ID took its verdict")
	}
}
