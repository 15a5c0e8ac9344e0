package hostapi_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"sync"
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
	srv, plugin, subC, _ := validating(t, ctx, topic, []*p2p.Node{a, b, c}, [][2]int{{0, 1}, {0, 2}, {1, 2}})
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
	srv, plugin, subD, _ := validating(t, ctx, topic, []*p2p.Node{a, b, d}, [][2]int{{0, 1}, {1, 2}})
	verdict := func(m *pluginv1.PubsubMessage, v pluginv1.Verdict) { t.Helper(); give(t, ctx, srv, m, v) }
	last := probeThrough(t, ctx, a, topic, srv, plugin, subD)

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

// TestValidatorOutlivesAPluginRestart: a validating plugin on b goes away
// and comes back, as a crashed one does. b stays in the topic meanwhile:
// a message a sends in the gap waits for the plugin and is judged by it
// once it is back, then reaches d behind b. A plugin away for longer than a
// verdict may take has its messages ignored, not passed on unjudged.
func TestValidatorOutlivesAPluginRestart(t *testing.T) {
	const topic = "vecino/test/restart"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, b, d := testNode(t), testNode(t), testNode(t)
	srv, plugin, subD, stop1 := validating(t, ctx, topic, []*p2p.Node{a, b, d}, [][2]int{{0, 1}, {1, 2}})
	probeThrough(t, ctx, a, topic, srv, plugin, subD)
	restart := func(stopOld func(), away time.Duration, during ...string) (*hostapi.Server, *fakeStream, func()) {
		t.Helper()
		stopOld()
		for _, m := range during {
			if err := a.Publish(ctx, topic, []byte(m)); err != nil {
				t.Fatal(err)
			}
			time.Sleep(away / time.Duration(len(during)))
		}
		return startValidator(t, ctx, b, topic)
	}
	judged := func(plugin *fakeStream, srv *hostapi.Server, want string) {
		t.Helper()
		select {
		case m := <-plugin.msgs:
			if string(m.Data) != want {
				t.Fatalf("the plugin got %q, want %q", m.Data, want)
			}
			give(t, ctx, srv, m, pluginv1.Verdict_VERDICT_ACCEPT)
		case <-time.After(10 * time.Second):
			t.Fatalf("%q never reached the plugin", want)
		}
		m, err := subD.Next(ctx)
		if err != nil || string(m.Data) != want {
			t.Fatalf("d got %v %v, want %q through b", m, err, want)
		}
	}
	// Back within a fraction of a second, as a crashed plugin is.
	srv2, plugin2, stop2 := restart(stop1, 300*time.Millisecond, "in the gap")
	judged(plugin2, srv2, "in the gap")
	// Away for longer than a verdict may take (2 s): what came meanwhile is
	// dropped, not passed on unjudged; what comes after is judged again.
	srv3, plugin3, stop3 := restart(stop2, 3*time.Second, "unjudged 1", "unjudged 2")
	defer stop3()
	if err := a.Publish(ctx, topic, []byte("after")); err != nil {
		t.Fatal(err)
	}
	judged(plugin3, srv3, "after")
}

// validating connects nodes as pairs says, has a plugin validate topic on
// nodes[1], and subscribes nodes[0] (the publisher) and nodes[2] (a plain
// subscriber, returned) to it. The plugin's subscription ends with ctx.
func validating(t *testing.T, ctx context.Context, topic string, nodes []*p2p.Node, pairs [][2]int) (*hostapi.Server, *fakeStream, *pubsub.Subscription, func()) {
	t.Helper()
	for _, p := range pairs {
		to := nodes[p[1]].Host
		if err := nodes[p[0]].Host.Connect(ctx, peer.AddrInfo{ID: to.ID(), Addrs: to.Addrs()}); err != nil {
			t.Fatal(err)
		}
	}
	srv, plugin, stop := startValidator(t, ctx, nodes[1], topic)
	t.Cleanup(stop)
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
	return srv, plugin, plain, stop
}

// give answers m with v, as the plugin would, and fails the test if the
// router no longer waits for that answer.
func give(t *testing.T, ctx context.Context, srv *hostapi.Server, m *pluginv1.PubsubMessage, v pluginv1.Verdict) {
	t.Helper()
	if _, err := srv.Verdict(ctx, &pluginv1.VerdictRequest{ValidationId: m.ValidationId, Verdict: v}); err != nil {
		t.Fatalf("verdict on %q: %v", m.Data, err)
	}
}

// startValidator has a plugin (this test) validate topic on node, until
// stop, which waits for its subscription to end.
func startValidator(t *testing.T, ctx context.Context, node *p2p.Node, topic string) (*hostapi.Server, *fakeStream, func()) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := hostapi.New(node, "validator", &pluginv1.InfoResponse{Topics: []string{topic}}, t.TempDir(), &hostapi.Counters{}, nil, log)
	ctx, cancel := context.WithCancel(ctx)
	plugin := &fakeStream{ctx: ctx, msgs: make(chan *pluginv1.PubsubMessage, 100), ready: make(chan struct{})}
	subscribed := make(chan error, 1)
	go func() { subscribed <- srv.Subscribe(&pluginv1.SubscribeRequest{Topic: topic, Validate: true}, plugin) }()
	// A message that comes before the router has taken the subscription is
	// not the plugin's to judge: wait as a plugin does.
	select {
	case <-plugin.ready:
	case err := <-subscribed:
		t.Fatalf("subscribe: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the router never took the subscription")
	}
	var once sync.Once
	return srv, plugin, func() {
		once.Do(func() {
			cancel()
			if err := <-subscribed; err != nil {
				t.Errorf("subscribe: %v", err)
			}
		})
	}
}

// probeThrough has a publish probes until one, accepted by the plugin,
// reaches sub, the plain subscriber behind the validating node: every
// stream on the way is open then. It answers and drains the probes still on
// their way, and returns the last message the plugin had from a.
func probeThrough(t *testing.T, ctx context.Context, a *p2p.Node, topic string, srv *hostapi.Server, plugin *fakeStream, sub *pubsub.Subscription) *pluginv1.PubsubMessage {
	t.Helper()
	accept := func(m *pluginv1.PubsubMessage) { give(t, ctx, srv, m, pluginv1.Verdict_VERDICT_ACCEPT) }
	var last *pluginv1.PubsubMessage
	for i := 0; ; i++ {
		if ctx.Err() != nil {
			t.Fatal("no probe from a reached the subscriber through the validating node")
		}
		if err := a.Publish(ctx, topic, fmt.Appendf(nil, "probe %d", i)); err != nil {
			t.Fatal(err)
		}
		select {
		case last = <-plugin.msgs:
			accept(last)
		case <-time.After(100 * time.Millisecond):
			continue
		}
		short, stop := context.WithTimeout(ctx, 100*time.Millisecond)
		_, err := sub.Next(short)
		stop()
		if err == nil {
			break
		}
	}
	for drained := false; !drained; { // the probes still on their way
		select {
		case last = <-plugin.msgs:
			accept(last)
		case <-time.After(300 * time.Millisecond):
			drained = true
		}
	}
	for { // and at the subscriber
		short, stop := context.WithTimeout(ctx, 300*time.Millisecond)
		_, err := sub.Next(short)
		stop()
		if err != nil {
			break
		}
	}
	return last
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
// Its header, or its first message, closes ready: the router has taken the
// subscription then, as the SDK's Subscribe waits for.
type fakeStream struct {
	grpc.ServerStream
	ctx   context.Context
	msgs  chan *pluginv1.PubsubMessage
	ready chan struct{}
	once  sync.Once
}

func (f *fakeStream) Send(m *pluginv1.PubsubMessage) error {
	f.once.Do(func() { close(f.ready) })
	f.msgs <- m
	return nil
}

func (f *fakeStream) SendHeader(metadata.MD) error {
	f.once.Do(func() { close(f.ready) })
	return nil
}
func (f *fakeStream) Context() context.Context { return f.ctx }
