package hostapi_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/vecino/vecino/config"
	pluginv1 "github.com/vecino/vecino/pluginapi/v1"
	"github.com/vecino/vecino/router/internal/hostapi"
	"github.com/vecino/vecino/router/internal/p2p"
)

// TestValidatorSeesMessagesAhead has a plugin validate a topic on node b
// while a publishes on it and c, a plain subscriber, relays too. The
// plugin must get every message before it answers the first (gossipsub
// judges one at a time, so before, it got one, then waited), each once
// though two peers send it (a, and c, which forwards what a sends), in the
// order a sent them.
func TestValidatorSeesMessagesAhead(t *testing.T) {
	const topic = "vecino/test/ahead"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, b, c := testNode(t), testNode(t), testNode(t)
	srv, plugin, subC := validating(t, ctx, topic, []*p2p.Node{a, b, c}, [][2]int{{0, 1}, {0, 2}, {1, 2}})
	for _, n := range []*p2p.Node{a, b, c} {
		for len(n.PubSub.ListPeers(topic)) < 2 {
			if ctx.Err() != nil {
				t.Fatalf("%s sees %d peers in the topic", n.Host.ID(), len(n.PubSub.ListPeers(topic)))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// A node lists a peer in the topic once the peer said it subscribed,
	// which can be before its own stream to that peer is open: until then
	// what it publishes goes nowhere. Probe until both b's plugin and c
	// have had one, and drop the probes (b ignores them).
	probed := false
	for i := 0; !probed; i++ {
		if ctx.Err() != nil {
			t.Fatal("no probe from a reached both b's plugin and c")
		}
		if err := a.Publish(ctx, topic, fmt.Appendf(nil, "probe %d", i)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		var toPlugin, toC bool
		for drained := false; !drained; {
			select {
			case m := <-plugin.msgs:
				toPlugin = true
				srv.Verdict(ctx, &pluginv1.VerdictRequest{ValidationId: m.ValidationId, Verdict: pluginv1.Verdict_VERDICT_IGNORE})
			default:
				drained = true
			}
		}
		for {
			short, stop := context.WithTimeout(ctx, 10*time.Millisecond)
			_, err := subC.Next(short)
			stop()
			if err != nil {
				break
			}
			toC = true
		}
		probed = toPlugin && toC
	}

	const n = 20
	for i := range n {
		if err := a.Publish(ctx, topic, fmt.Appendf(nil, "m%02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	var got []*pluginv1.PubsubMessage
	deadline := time.After(10 * time.Second)
	for len(got) < n {
		select {
		case m := <-plugin.msgs:
			got = append(got, m)
		case <-deadline:
			t.Fatalf("the plugin got %d messages of %d without answering any: the router waits for each verdict before it sends the next", len(got), n)
		}
	}
	for i, m := range got {
		if want := fmt.Sprintf("m%02d", i); string(m.Data) != want {
			t.Fatalf("message %d the plugin got is %q, want %q: out of order", i, m.Data, want)
		}
	}
	for i, m := range got {
		v := pluginv1.Verdict_VERDICT_ACCEPT
		if i%5 == 4 {
			v = pluginv1.Verdict_VERDICT_REJECT
		}
		if _, err := srv.Verdict(ctx, &pluginv1.VerdictRequest{ValidationId: m.ValidationId, Verdict: v}); err != nil {
			t.Fatalf("verdict on %q: %v: the router gave up on it before the plugin had the rest", m.Data, err)
		}
	}
	// c has each message once, from a directly or through b (in either
	// order: two paths), and forwards it to b.
	atC := map[string]bool{}
	for range n {
		m, err := subC.Next(ctx)
		if err != nil {
			t.Fatalf("c had %d messages of %d: %v", len(atC), n, err)
		}
		if atC[string(m.Data)] {
			t.Fatalf("c got %q twice", m.Data)
		}
		atC[string(m.Data)] = true
	}
	for i := range n {
		if want := fmt.Sprintf("m%02d", i); !atC[want] {
			t.Fatalf("c never got %q", want)
		}
	}
	time.Sleep(500 * time.Millisecond) // c's copies reach b, and must not go to the plugin
	select {
	case m := <-plugin.msgs:
		t.Fatalf("the plugin got %q again, from another peer", m.Data)
	default:
	}
	// One more, now that each verdict came: it goes to the plugin too.
	if err := a.Publish(ctx, topic, []byte("last")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-plugin.msgs:
		if string(m.Data) != "last" {
			t.Fatalf("the plugin got %q, want %q", m.Data, "last")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the last message never reached the plugin")
	}
}

// TestValidatorNotFooledByForgedID has a peer send b, ahead of a message
// from a, a forgery under that message's gossipsub ID (a's peer ID and its
// next counter) with an envelope signature that does not verify. The
// plugin sees and rejects the forgery; gossipsub drops it for its
// signature. a's real message must still be judged on its own, and reach d,
// which hears the topic only through b.
func TestValidatorNotFooledByForgedID(t *testing.T) {
	const topic = "vecino/test/forged"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, b, d := testNode(t), testNode(t), testNode(t)
	srv, plugin, subD := validating(t, ctx, topic, []*p2p.Node{a, b, d}, [][2]int{{0, 1}, {1, 2}})
	verdict := func(m *pluginv1.PubsubMessage, v pluginv1.Verdict) {
		t.Helper()
		if _, err := srv.Verdict(ctx, &pluginv1.VerdictRequest{ValidationId: m.ValidationId, Verdict: v}); err != nil {
			t.Fatalf("verdict on %q: %v", m.Data, err)
		}
	}
	// Probe until a probe from a, accepted by b's plugin, reaches d: every
	// stream on the way is open then. The last message the plugin had from
	// a gives a's counter.
	var last *pluginv1.PubsubMessage
	for i := 0; ; i++ {
		if ctx.Err() != nil {
			t.Fatal("no probe from a reached d through b")
		}
		if err := a.Publish(ctx, topic, fmt.Appendf(nil, "probe %d", i)); err != nil {
			t.Fatal(err)
		}
		select {
		case last = <-plugin.msgs:
			verdict(last, pluginv1.Verdict_VERDICT_ACCEPT)
		case <-time.After(100 * time.Millisecond):
			continue
		}
		short, stop := context.WithTimeout(ctx, 100*time.Millisecond)
		_, err := subD.Next(short)
		stop()
		if err == nil {
			break
		}
	}
	for drained := false; !drained; { // the probes still on their way
		select {
		case last = <-plugin.msgs:
			verdict(last, pluginv1.Verdict_VERDICT_ACCEPT)
		case <-time.After(300 * time.Millisecond):
			drained = true
		}
	}
	for { // and at d
		short, stop := context.WithTimeout(ctx, 300*time.Millisecond)
		_, err := subD.Next(short)
		stop()
		if err != nil {
			break
		}
	}

	next := binary.BigEndian.Uint64(last.Seqno) + 1
	x, err := libp2p.New(libp2p.NoListenAddrs, libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if err := x.Connect(ctx, peer.AddrInfo{ID: b.Host.ID(), Addrs: b.Host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	st, err := x.NewStream(ctx, b.Host.ID(), "/meshsub/1.1.0")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rpc := &pb.RPC{Publish: []*pb.Message{{
		From: []byte(a.Host.ID()), Seqno: binary.BigEndian.AppendUint64(nil, next),
		Data: []byte("forged"), Topic: proto.String(topic), Signature: make([]byte, 64),
	}}}
	raw, err := proto.Marshal(rpc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write(append(binary.AppendUvarint(nil, uint64(len(raw))), raw...)); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-plugin.msgs:
		if string(m.Data) != "forged" {
			t.Fatalf("the plugin got %q, want the forgery", m.Data)
		}
		verdict(m, pluginv1.Verdict_VERDICT_REJECT)
	case <-time.After(10 * time.Second):
		t.Fatal("the forgery never reached the plugin")
	}

	if err := a.Publish(ctx, topic, []byte("real")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-plugin.msgs:
		if string(m.Data) != "real" || binary.BigEndian.Uint64(m.Seqno) != next {
			t.Fatalf("the plugin got %q (counter %x), want a's next message, %x", m.Data, m.Seqno, next)
		}
		verdict(m, pluginv1.Verdict_VERDICT_ACCEPT)
	case <-time.After(10 * time.Second):
		t.Fatal("a's message never reached the plugin: it was given the forgery's verdict")
	}
	m, err := subD.Next(ctx)
	if err != nil {
		t.Fatalf("d never got a's message through b: %v", err)
	}
	if string(m.Data) != "real" {
		t.Fatalf("d got %q, want a's message", m.Data)
	}
}

// validating connects nodes as pairs says, has a plugin validate topic on
// nodes[1], and subscribes nodes[0] (the publisher) and nodes[2] (a plain
// subscriber, returned) to it. The plugin's subscription ends with ctx.
func validating(t *testing.T, ctx context.Context, topic string, nodes []*p2p.Node, pairs [][2]int) (*hostapi.Server, *fakeStream, *pubsub.Subscription) {
	t.Helper()
	for _, p := range pairs {
		to := nodes[p[1]].Host
		if err := nodes[p[0]].Host.Connect(ctx, peer.AddrInfo{ID: to.ID(), Addrs: to.Addrs()}); err != nil {
			t.Fatal(err)
		}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := hostapi.New(nodes[1], "validator", &pluginv1.InfoResponse{Topics: []string{topic}}, t.TempDir(), &hostapi.Counters{}, nil, log)
	plugin := &fakeStream{ctx: ctx, msgs: make(chan *pluginv1.PubsubMessage, 100)}
	subscribed := make(chan error, 1)
	go func() { subscribed <- srv.Subscribe(&pluginv1.SubscribeRequest{Topic: topic, Validate: true}, plugin) }()
	t.Cleanup(func() {
		if err := <-subscribed; err != nil {
			t.Errorf("subscribe: %v", err)
		}
	})
	plain, cancelPlain, err := nodes[2].Subscribe(topic)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cancelPlain)
	_, cancelPub, err := nodes[0].Subscribe(topic)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cancelPub)
	return srv, plugin, plain
}

func testNode(t *testing.T) *p2p.Node {
	t.Helper()
	cfg := config.Defaults().Network
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.DHT, cfg.RelayService, cfg.HolePunching = "off", false, false
	n, err := p2p.New(cfg, t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// fakeStream is the plugin's end of a subscription, in this process.
type fakeStream struct {
	grpc.ServerStream
	ctx  context.Context
	msgs chan *pluginv1.PubsubMessage
}

func (f *fakeStream) Send(m *pluginv1.PubsubMessage) error {
	f.msgs <- m
	return nil
}
func (f *fakeStream) SendHeader(metadata.MD) error { return nil }
func (f *fakeStream) Context() context.Context     { return f.ctx }
