package sdk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginv1 "github.com/vecino/vecino/pluginapi/v1"
)

// Host is the plugin's way to the network: every call goes to the router,
// which owns the node's libp2p host.
type Host struct {
	c pluginv1.HostClient
	// streamSocket, when set, carries stream bytes outside gRPC.
	streamSocket string
}

// PeerInfo describes a peer.
type PeerInfo struct {
	ID        string   `json:"id"`
	Addrs     []string `json:"addrs"`
	Protocols []string `json:"protocols,omitempty"`
}

func peerInfos(ps []*pluginv1.PeerInfo) []PeerInfo {
	out := make([]PeerInfo, len(ps))
	for i, p := range ps {
		out[i] = PeerInfo{ID: p.PeerId, Addrs: p.Addrs, Protocols: p.Protocols}
	}
	return out
}

// Self returns this node's peer ID and addresses.
func (h *Host) Self(ctx context.Context) (PeerInfo, error) {
	r, err := h.c.Self(ctx, &pluginv1.SelfRequest{})
	if err != nil {
		return PeerInfo{}, fmt.Errorf("host self: %w", err)
	}
	return PeerInfo{ID: r.PeerId, Addrs: r.Addrs}, nil
}

// Peers lists connected peers; with protocol set, only those that speak it.
func (h *Host) Peers(ctx context.Context, protocol string) ([]PeerInfo, error) {
	r, err := h.c.Peers(ctx, &pluginv1.PeersRequest{Protocol: protocol})
	if err != nil {
		return nil, fmt.Errorf("host peers: %w", err)
	}
	return peerInfos(r.Peers), nil
}

// Connect dials a peer at the given multiaddrs (or finds it on the DHT).
func (h *Host) Connect(ctx context.Context, peerID string, addrs ...string) error {
	if _, err := h.c.Connect(ctx, &pluginv1.ConnectRequest{PeerId: peerID, Addrs: addrs}); err != nil {
		return fmt.Errorf("connect %s: %w", peerID, err)
	}
	return nil
}

// waitRegistered returns once the router has registered a server-streaming
// call (it sends headers then), or with the router's refusal.
func waitRegistered(s grpc.ClientStream) error {
	md, err := s.Header()
	if err != nil {
		return err
	}
	if md == nil {
		if err := s.RecvMsg(new(pluginv1.IncomingStream)); err != nil {
			return err
		}
		return errors.New("router ended the call without registering it")
	}
	return nil
}

// Handle asks the router to deliver streams for protocol; each one is passed
// to handler in its own goroutine. It returns once the protocol is
// registered; delivery lasts until ctx ends.
func (h *Host) Handle(ctx context.Context, protocol string, handler func(*Stream)) error {
	rpc, err := h.c.HandleProtocol(ctx, &pluginv1.HandleProtocolRequest{Protocol: protocol})
	if err == nil {
		err = waitRegistered(rpc)
	}
	if err != nil {
		return fmt.Errorf("handle %s: %w", protocol, err)
	}
	go func() {
		for {
			in, err := rpc.Recv()
			if err != nil {
				if ctx.Err() == nil {
					slog.Warn("protocol handler ended", "protocol", protocol, "err", err)
				}
				return
			}
			go func() {
				s, err := h.attach(ctx, in)
				if err != nil {
					slog.Warn("attach stream", "protocol", protocol, "peer", in.PeerId, "err", err)
					return
				}
				handler(s)
			}()
		}
	}()
	return nil
}

func (h *Host) attach(ctx context.Context, in *pluginv1.IncomingStream) (*Stream, error) {
	a := &pluginv1.AttachStream{StreamId: in.StreamId, Direct: h.streamSocket != ""}
	return h.stream(ctx, &pluginv1.StreamFrame{Frame: &pluginv1.StreamFrame_Attach{Attach: a}})
}

// OpenStream opens a stream to peerID on the first of protocols it speaks.
func (h *Host) OpenStream(ctx context.Context, peerID string, protocols ...string) (*Stream, error) {
	o := &pluginv1.OpenStream{PeerId: peerID, Protocols: protocols, Direct: h.streamSocket != ""}
	s, err := h.stream(ctx, &pluginv1.StreamFrame{Frame: &pluginv1.StreamFrame_Open{Open: o}})
	if err != nil {
		return nil, fmt.Errorf("open stream to %s: %w", peerID, err)
	}
	return s, nil
}

func (h *Host) stream(ctx context.Context, first *pluginv1.StreamFrame) (*Stream, error) {
	rctx, cancel := context.WithCancel(ctx)
	rpc, err := h.c.Stream(rctx)
	if err == nil {
		err = rpc.Send(first)
	}
	var f *pluginv1.StreamFrame
	if err == nil {
		f, err = rpc.Recv()
	}
	if err == nil && f.GetOpened() == nil {
		err = errors.New("router answered without opening the stream")
	}
	if err != nil {
		cancel()
		return nil, err
	}
	o := f.GetOpened()
	s := &Stream{rpc: rpc, cancel: cancel, peer: o.PeerId, proto: o.Protocol}
	if o.DirectToken == nil {
		return s, nil
	}
	// The router granted the stream socket: the gRPC call is over.
	cancel()
	if s.conn, err = claimSocket(ctx, h.streamSocket, o.DirectToken); err != nil {
		return nil, err
	}
	return s, nil
}

// claimSocket connects to the router's stream socket and presents token.
func claimSocket(ctx context.Context, path string, token []byte) (*net.UnixConn, error) {
	if path == "" {
		return nil, errors.New("stream socket: the router offered none")
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("stream socket: %w", err)
	}
	if _, err := c.Write(token); err != nil {
		c.Close()
		return nil, fmt.Errorf("stream socket: %w", err)
	}
	return c.(*net.UnixConn), nil
}

// Publish sends data to everyone subscribed to topic.
func (h *Host) Publish(ctx context.Context, topic string, data []byte) error {
	if _, err := h.c.Publish(ctx, &pluginv1.PublishRequest{Topic: topic, Data: data}); err != nil {
		return fmt.Errorf("publish to %s: %w", topic, err)
	}
	return nil
}

// Message is one pubsub message.
type Message struct {
	Topic        string
	From         string
	ReceivedFrom string
	Data         []byte
	Local        bool
	// validation is the router's ID for the answer a validating
	// subscription owes; 0 when none is owed.
	validation uint64
}

// Subscription delivers a topic's messages until its context ends.
type Subscription struct {
	ctx context.Context
	c   pluginv1.HostClient
	rpc pluginv1.Host_SubscribeClient
}

// Next blocks for the next message.
func (s *Subscription) Next() (Message, error) {
	m, err := s.rpc.Recv()
	if err != nil {
		return Message{}, err
	}
	return Message{Topic: m.Topic, From: m.From, ReceivedFrom: m.ReceivedFrom, Data: m.Data, Local: m.Local, validation: m.ValidationId}, nil
}

// Verdict is what a validating subscription says of a message.
type Verdict int

const (
	// Accept: valid and taken; the router passes it on.
	Accept Verdict = iota + 1
	// Reject: invalid (malformed, forged); dropped, and gossipsub holds it
	// against the peer that sent it.
	Reject
	// Ignore: valid but not wanted here (a duplicate, a replay, over a
	// limit); dropped without blame.
	Ignore
)

// Judge answers m, from a subscription made with Validate; the router
// holds m until then (2 s at most). For other messages it does nothing.
func (s *Subscription) Judge(m Message, v Verdict) error {
	if m.validation == 0 {
		return nil
	}
	verdict := pluginv1.Verdict_VERDICT_IGNORE
	switch v {
	case Accept:
		verdict = pluginv1.Verdict_VERDICT_ACCEPT
	case Reject:
		verdict = pluginv1.Verdict_VERDICT_REJECT
	}
	if _, err := s.c.Verdict(s.ctx, &pluginv1.VerdictRequest{ValidationId: m.validation, Verdict: verdict}); err != nil {
		return fmt.Errorf("verdict on a %s message: %w", m.Topic, err)
	}
	return nil
}

// Subscribe joins topic; it returns once the router has subscribed.
func (h *Host) Subscribe(ctx context.Context, topic string) (*Subscription, error) {
	return h.subscribe(ctx, &pluginv1.SubscribeRequest{Topic: topic})
}

// Validate joins topic as its validator: Next delivers each message from a
// peer before the router passes it on to anyone, and the router forwards it
// only if Judge accepts it. What this node publishes is not delivered.
func (h *Host) Validate(ctx context.Context, topic string) (*Subscription, error) {
	return h.subscribe(ctx, &pluginv1.SubscribeRequest{Topic: topic, Validate: true})
}

func (h *Host) subscribe(ctx context.Context, req *pluginv1.SubscribeRequest) (*Subscription, error) {
	rpc, err := h.c.Subscribe(ctx, req)
	if err == nil {
		err = waitRegistered(rpc)
	}
	if err != nil {
		return nil, fmt.Errorf("subscribe to %s: %w", req.Topic, err)
	}
	return &Subscription{ctx: ctx, c: h.c, rpc: rpc}, nil
}

// ErrNoDHT is what Provide and FindProviders fail with when the router
// runs no DHT ([network] dht = "off").
var ErrNoDHT = errors.New("the router runs no DHT")

// dhtError marks the router's "no DHT" refusal so callers can tell it
// from a lookup that failed.
func dhtError(err error) error {
	if status.Code(err) == codes.FailedPrecondition {
		return fmt.Errorf("%w: %w", ErrNoDHT, err)
	}
	return err
}

// Provide announces on the DHT that this node has key (a CID).
func (h *Host) Provide(ctx context.Context, key string) error {
	if _, err := h.c.Provide(ctx, &pluginv1.ProvideRequest{Key: key}); err != nil {
		return fmt.Errorf("provide %s: %w", key, dhtError(err))
	}
	return nil
}

// FindProviders looks up nodes that provide key, at most limit of them.
func (h *Host) FindProviders(ctx context.Context, key string, limit int) ([]PeerInfo, error) {
	r, err := h.c.FindProviders(ctx, &pluginv1.FindProvidersRequest{Key: key, Limit: uint32(limit)})
	if err != nil {
		return nil, fmt.Errorf("find providers of %s: %w", key, dhtError(err))
	}
	return peerInfos(r.Providers), nil
}

func (v Verdict) String() string {
	switch v {
	case Accept:
		return "accept"
	case Reject:
		return "reject"
	case Ignore:
		return "ignore"
	}
	return fmt.Sprintf("Verdict(%d)", int(v))
}
