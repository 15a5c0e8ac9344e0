package hostapi

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
	"weak"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pluginv1 "github.com/vecino/vecino/pluginapi/v1"
)

// aheadQueue bounds the messages waiting to be sent to a validating plugin
// ahead of the validation worker. They leave as fast as the plugin reads
// them, so this is full only when the plugin is far behind; then messages
// go to it from the worker, as they would without this queue.
const aheadQueue = 1024

// aheadWaiting bounds the messages sent ahead whose verdicts wait to be
// claimed: gossipsub's validation queue holds 4096 (p2p.pubsubQueue), so
// more than that are messages gossipsub dropped (a peer's forgeries whose
// envelopes do not verify, say), which are kept no longer than aheadExpiry.
// Past the bound, messages are sent when the worker asks, as before.
const aheadWaiting = 4096

// aheadExpiry is how long a verdict sent ahead waits to be claimed. A
// message waits in gossipsub's queue for the ones before it, each judged
// within 2 s, but a full queue of 4096 with verdicts ready goes in well
// under this.
const aheadExpiry = 10 * time.Second

// recentFor is how long a message whose verdict was taken is remembered (one
// to two of these), so that a copy of it from another peer is not sent to
// the plugin again: gossipsub drops such copies without asking, for two
// minutes (its seen-messages TTL).
const recentFor = time.Minute

// validate serves a validating subscription: every message from a peer
// goes to the plugin with a validation ID, and gossipsub passes it on only
// if the plugin accepts it. The node stays subscribed to the topic for as
// long (and a little longer, for a plugin that restarts: p2p.Validate).
//
// gossipsub judges one message at a time, in the order they came (one
// validation worker). So that the plugin need not answer one before it
// sees the next, each message is sent to it as it arrives (p2p.Validate's
// arrive), in that order, and its verdict waits here until the worker asks
// for it. A message that was not sent ahead (its queue was full) is sent
// when the worker asks, as a plugin that answers at once would see it.
func (s *Server) validate(topic string, srv grpc.ServerStreamingServer[pluginv1.PubsubMessage]) error {
	out := &validStream{srv: srv, topic: topic}
	a := newAhead(s, out)
	self := s.node.Host.ID()
	judge := func(ctx context.Context, _ peer.ID, m *pubsub.Message) pubsub.ValidationResult {
		if m.ReceivedFrom == self {
			return pubsub.ValidationAccept // the plugin published it
		}
		start := time.Now()
		defer func() { s.counters.Validating.Add(uint64(time.Since(start))) }()
		am, ok := a.claim(m)
		if !ok {
			am = s.expect(m)
			s.counters.MessagesIn.Add(1)
			if err := out.send(am); err != nil {
				s.forget(am.vid)
				return pubsub.ValidationIgnore
			}
		}
		defer s.forget(am.vid)
		select {
		case v := <-am.verdict:
			switch v {
			case pluginv1.Verdict_VERDICT_ACCEPT:
				return pubsub.ValidationAccept
			case pluginv1.Verdict_VERDICT_REJECT:
				return pubsub.ValidationReject
			}
		case <-ctx.Done():
		case <-srv.Context().Done():
		}
		return pubsub.ValidationIgnore
	}
	unregister, err := s.node.Validate(topic, s.plugin, judge, a.arrive)
	if err != nil {
		return status.Errorf(codes.FailedPrecondition, "%v", err)
	}
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		a.sendAll()
	}()
	defer func() {
		unregister() // a.arrive is not called after this
		close(a.queue)
		<-sent
		a.waiting.expireAll()
	}()
	if err := out.header(); err != nil {
		return err
	}
	<-srv.Context().Done() // the plugin went away or the node is stopping
	return nil
}

// aheadMsg is a message sent to the plugin for its verdict, with the
// validation ID the verdict comes back under. Once it is sent, only a weak
// pointer to it is kept, to tell it from another message under its ID
// (claim); a message gossipsub dropped is not kept alive by its spot here.
type aheadMsg struct {
	m       *pubsub.Message
	sent    weak.Pointer[pb.Message]
	vid     uint64
	verdict chan pluginv1.Verdict
}

// expect gives m a validation ID, and a place for its verdict.
func (s *Server) expect(m *pubsub.Message) aheadMsg {
	am := aheadMsg{m: m, sent: weak.Make(m.Message), vid: s.nextID.Add(1), verdict: make(chan pluginv1.Verdict, 1)}
	s.mu.Lock()
	s.verdicts[am.vid] = am.verdict
	s.mu.Unlock()
	return am
}

// forget stops waiting for validation ID vid's verdict.
func (s *Server) forget(vid uint64) {
	s.mu.Lock()
	delete(s.verdicts, vid)
	s.mu.Unlock()
}

// validStream is a validating subscription's stream to its plugin. The
// first message may be sent before the header; sending it sends the header
// with it.
type validStream struct {
	srv   grpc.ServerStreamingServer[pluginv1.PubsubMessage]
	topic string

	mu         sync.Mutex
	headerSent bool
}

func (o *validStream) send(am aheadMsg) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.headerSent = true
	m := am.m
	return o.srv.Send(&pluginv1.PubsubMessage{
		Topic: o.topic, From: m.GetFrom().String(), ReceivedFrom: m.ReceivedFrom.String(),
		Data: m.Data, Seqno: m.Seqno, ValidationId: am.vid,
	})
}

func (o *validStream) header() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.headerSent {
		return nil
	}
	o.headerSent = true
	return o.srv.SendHeader(metadata.MD{})
}

// ahead sends a validating plugin each message as it arrives and keeps its
// verdict until the validation worker claims it, by gossipsub message ID.
type ahead struct {
	s       *Server
	out     *validStream
	queue   chan aheadMsg // to be sent, in the order they came
	waiting *parking[string, aheadMsg]

	mu            sync.Mutex
	seed          maphash.Seed
	recent, older map[uint64]struct{} // hashed IDs claimed lately, see recentFor
	rotated       time.Time
}

func newAhead(s *Server, out *validStream) *ahead {
	return &ahead{
		s: s, out: out, queue: make(chan aheadMsg, aheadQueue),
		waiting: newParking[string](aheadExpiry, func(m aheadMsg) { s.forget(m.vid) }),
		seed:    maphash.MakeSeed(), recent: map[uint64]struct{}{}, older: map[uint64]struct{}{}, rotated: time.Now(),
	}
}

// arrive queues m to be sent to the plugin, unless it was sent already. It
// runs in gossipsub's event loop: it never blocks.
func (a *ahead) arrive(m *pubsub.Message) {
	id := pubsub.DefaultMsgIdFn(m.Message)
	a.mu.Lock()
	defer a.mu.Unlock()
	if now := time.Now(); now.Sub(a.rotated) > recentFor {
		a.older, a.recent, a.rotated = a.recent, map[uint64]struct{}{}, now
	}
	h := maphash.String(a.seed, id)
	_, r := a.recent[h]
	_, o := a.older[h]
	waiting, n := a.waiting.has(id)
	if r || o || waiting {
		return // another peer's copy
	}
	if n >= aheadWaiting {
		return // the worker will send it when it gets to it
	}
	am := a.s.expect(m)
	select {
	case a.queue <- am:
		am.m = nil // the queue has it until it is sent
		a.waiting.park(id, am)
	default:
		a.s.forget(am.vid)
	}
}

// claim takes the verdict on m, if m was sent ahead. The copy sent must be
// m itself, not only have its ID: a peer could send a forgery under the ID
// of a message still to come (gossipsub's IDs are the author and a
// counter), and gossipsub drops the forgery, whose envelope does not
// verify, without asking; the message itself must not get its verdict.
func (a *ahead) claim(m *pubsub.Message) (aheadMsg, bool) {
	id := pubsub.DefaultMsgIdFn(m.Message)
	a.mu.Lock()
	defer a.mu.Unlock()
	am, ok := a.waiting.take(id)
	if !ok {
		return am, false
	}
	a.recent[maphash.String(a.seed, id)] = struct{}{}
	if am.sent != weak.Make(m.Message) {
		a.s.forget(am.vid)
		return am, false
	}
	return am, true
}

// sendAll sends the queued messages until the queue is closed. Once a send
// fails the stream is gone; the rest are dropped, and the worker's wait
// for them ends with the stream's context.
func (a *ahead) sendAll() {
	var failed bool
	for am := range a.queue {
		if failed {
			continue
		}
		a.s.counters.MessagesIn.Add(1)
		failed = a.out.send(am) != nil
	}
}
