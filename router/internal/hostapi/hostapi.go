// Package hostapi is the router's side of the plugin API's Host service: the
// only way a plugin reaches the network. Each plugin gets its own Server, so
// every stream, message and byte is checked against what the plugin declared
// in Info and counted under its name.
package hostapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/multiformats/go-multihash"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pluginv1 "github.com/vecino/vecino/pluginapi/v1"
	"github.com/vecino/vecino/router/internal/p2p"
)

// Counters are what one plugin did on the network.
type Counters struct {
	BytesIn, BytesOut       atomic.Uint64
	StreamsIn, StreamsOut   atomic.Uint64
	MessagesIn, MessagesOut atomic.Uint64
	Refused                 atomic.Uint64
	// Validating is how long messages waited for the plugin's verdict, in
	// nanoseconds: gossipsub validates one message at a time, so its rate
	// is how busy that one worker is with this plugin's topics.
	Validating atomic.Uint64
}

// Server serves the Host service to one plugin.
type Server struct {
	pluginv1.UnimplementedHostServer
	node      *p2p.Node
	plugin    string
	protocols []string
	topics    []string
	dataDir   string
	counters  *Counters
	direct    *Direct
	log       *slog.Logger

	nextID  atomic.Uint64
	pending *parking[uint64, network.Stream]

	mu sync.Mutex
	// verdicts waits for the plugin's answer to each message it validates.
	verdicts map[uint64]chan pluginv1.Verdict
}

// New returns the Host service for plugin, limited to the protocols and
// topics it declared. counters outlive restarts of the plugin. direct, when
// not nil, carries the bytes of streams whose plugin asks for it.
func New(node *p2p.Node, plugin string, info *pluginv1.InfoResponse, dataDir string, counters *Counters, direct *Direct, log *slog.Logger) *Server {
	return &Server{
		node: node, plugin: plugin, protocols: info.Protocols, topics: info.Topics,
		dataDir: dataDir, counters: counters, direct: direct, log: log,
		pending: newParking[uint64](attachTimeout, func(st network.Stream) { st.Reset() }), verdicts: map[uint64]chan pluginv1.Verdict{},
	}
}

// allowed reports whether name matches one of the declared patterns; a
// pattern ending in "*" matches by prefix.
func allowed(name string, patterns []string) bool {
	for _, p := range patterns {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			if strings.HasPrefix(name, prefix) {
				return true
			}
		} else if p == name {
			return true
		}
	}
	return false
}

func (s *Server) refuse(format string, args ...any) error {
	s.counters.Refused.Add(1)
	return status.Errorf(codes.PermissionDenied, "plugin %s: "+format, append([]any{s.plugin}, args...)...)
}

func (s *Server) Self(context.Context, *pluginv1.SelfRequest) (*pluginv1.SelfResponse, error) {
	h := s.node.Host
	return &pluginv1.SelfResponse{PeerId: h.ID().String(), Addrs: addrStrings(h.Addrs())}, nil
}

func (s *Server) Peers(_ context.Context, req *pluginv1.PeersRequest) (*pluginv1.PeersResponse, error) {
	h := s.node.Host
	resp := &pluginv1.PeersResponse{}
	for _, id := range h.Network().Peers() {
		protos, _ := h.Peerstore().GetProtocols(id)
		if req.Protocol != "" && !hasProtocol(protos, req.Protocol) {
			continue
		}
		resp.Peers = append(resp.Peers, &pluginv1.PeerInfo{
			PeerId: id.String(), Addrs: addrStrings(h.Peerstore().Addrs(id)), Protocols: protocol.ConvertToStrings(protos),
		})
	}
	return resp, nil
}

func hasProtocol(ps []protocol.ID, want string) bool {
	for _, p := range ps {
		if string(p) == want {
			return true
		}
	}
	return false
}

func (s *Server) Connect(ctx context.Context, req *pluginv1.ConnectRequest) (*pluginv1.ConnectResponse, error) {
	id, err := peer.Decode(req.PeerId)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "peer id %q: %v", req.PeerId, err)
	}
	ai := peer.AddrInfo{ID: id}
	for _, a := range req.Addrs {
		m, err := ma.NewMultiaddr(a)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "address %q: %v", a, err)
		}
		ai.Addrs = append(ai.Addrs, m)
	}
	if len(ai.Addrs) == 0 && s.node.DHT != nil {
		found, err := s.node.DHT.FindPeer(ctx, id)
		if err != nil {
			return nil, status.Errorf(codes.NotFound, "find %s on the DHT: %v", id, err)
		}
		ai = found
	}
	if err := s.node.Host.Connect(ctx, ai); err != nil {
		return nil, status.Errorf(codes.Unavailable, "connect %s: %v", id, err)
	}
	return &pluginv1.ConnectResponse{}, nil
}

// HandleProtocol registers the protocol for as long as the call lasts and
// announces each incoming stream; the plugin claims it with Stream(attach).
func (s *Server) HandleProtocol(req *pluginv1.HandleProtocolRequest, srv grpc.ServerStreamingServer[pluginv1.IncomingStream]) error {
	proto := req.Protocol
	if !allowed(proto, s.protocols) {
		return s.refuse("protocol %s was not declared in Info", proto)
	}
	if err := s.node.ClaimProtocol(proto, s.plugin); err != nil {
		return status.Error(codes.AlreadyExists, err.Error())
	}
	defer s.node.ReleaseProtocol(proto)

	incoming := make(chan network.Stream, 32)
	h := s.node.Host
	h.SetStreamHandler(protocol.ID(proto), func(st network.Stream) {
		select {
		case incoming <- st:
		default:
			s.log.Warn("plugin is not accepting streams; resetting", "protocol", proto, "peer", st.Conn().RemotePeer().String())
			st.Reset()
		}
	})
	defer h.RemoveStreamHandler(protocol.ID(proto))
	if err := srv.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	s.log.Info("plugin handles protocol", "protocol", proto)
	ctx := srv.Context()
	for {
		select {
		case <-ctx.Done():
			return nil
		case st := <-incoming:
			id := s.nextID.Add(1)
			s.pending.park(id, st)
			s.counters.StreamsIn.Add(1)
			err := srv.Send(&pluginv1.IncomingStream{
				StreamId: id, PeerId: st.Conn().RemotePeer().String(), Protocol: proto,
				RemoteAddr: st.Conn().RemoteMultiaddr().String(),
			})
			if err != nil {
				if st, ok := s.pending.take(id); ok {
					st.Reset()
				}
				return err
			}
		}
	}
}

// Stream bridges one libp2p stream and one gRPC stream.
func (s *Server) Stream(srv grpc.BidiStreamingServer[pluginv1.StreamFrame, pluginv1.StreamFrame]) error {
	first, err := srv.Recv()
	if err != nil {
		return err
	}
	var (
		st     network.Stream
		direct bool
	)
	switch f := first.Frame.(type) {
	case *pluginv1.StreamFrame_Open:
		st, err = s.open(srv.Context(), f.Open)
		if err != nil {
			return err
		}
		s.counters.StreamsOut.Add(1)
		direct = f.Open.Direct
	case *pluginv1.StreamFrame_Attach:
		var ok bool
		if st, ok = s.pending.take(f.Attach.StreamId); !ok {
			return status.Errorf(codes.NotFound, "stream %d is gone (claimed already, or not claimed within %s)", f.Attach.StreamId, attachTimeout)
		}
		direct = f.Attach.Direct
	default:
		return status.Error(codes.InvalidArgument, "first frame must be open or attach")
	}
	opened := &pluginv1.StreamOpened{PeerId: st.Conn().RemotePeer().String(), Protocol: string(st.Protocol())}
	if direct && s.direct != nil {
		if opened.DirectToken, err = s.direct.register(st, s.counters); err != nil {
			st.Reset()
			return status.Errorf(codes.Internal, "direct stream: %v", err)
		}
	}
	if err := srv.Send(&pluginv1.StreamFrame{Frame: &pluginv1.StreamFrame_Opened{Opened: opened}}); err != nil {
		st.Reset()
		return err
	}
	if opened.DirectToken != nil {
		return nil // the bytes go by the stream socket
	}
	return s.bridge(srv, st)
}

func (s *Server) open(ctx context.Context, o *pluginv1.OpenStream) (network.Stream, error) {
	id, err := peer.Decode(o.PeerId)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "peer id %q: %v", o.PeerId, err)
	}
	if len(o.Protocols) == 0 {
		return nil, status.Error(codes.InvalidArgument, "open needs at least one protocol")
	}
	for _, p := range o.Protocols {
		if !allowed(p, s.protocols) {
			return nil, s.refuse("protocol %s was not declared in Info", p)
		}
	}
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err := s.node.Host.NewStream(octx, id, protocol.ConvertFromStrings(o.Protocols)...)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "open %v to %s: %v", o.Protocols, id, err)
	}
	return st, nil
}

// bridge copies frames both ways until both directions are closed. Either
// side failing resets the libp2p stream and ends the call.
func (s *Server) bridge(srv grpc.BidiStreamingServer[pluginv1.StreamFrame, pluginv1.StreamFrame], st network.Stream) error {
	errc := make(chan error, 2)
	go func() { // plugin -> peer
		for {
			f, err := srv.Recv()
			if errors.Is(err, io.EOF) || (err == nil && f.GetCloseWrite() != nil) {
				errc <- st.CloseWrite()
				return
			}
			if err != nil {
				errc <- err
				return
			}
			d := f.GetData()
			if _, err := st.Write(d); err != nil {
				errc <- fmt.Errorf("write to peer: %w", err)
				return
			}
			s.counters.BytesOut.Add(uint64(len(d)))
		}
	}()
	go func() { // peer -> plugin
		// Send marshals (copies) the frame before it returns, so one
		// buffer serves every read.
		buf := make([]byte, 256<<10)
		for {
			n, err := st.Read(buf)
			if n > 0 {
				s.counters.BytesIn.Add(uint64(n))
				if err := srv.Send(&pluginv1.StreamFrame{Frame: &pluginv1.StreamFrame_Data{Data: buf[:n]}}); err != nil {
					errc <- err
					return
				}
			}
			if errors.Is(err, io.EOF) {
				errc <- srv.Send(&pluginv1.StreamFrame{Frame: &pluginv1.StreamFrame_CloseWrite{CloseWrite: &pluginv1.CloseWrite{}}})
				return
			}
			if err != nil {
				errc <- fmt.Errorf("read from peer: %w", err)
				return
			}
		}
	}()
	for range 2 {
		if err := <-errc; err != nil {
			st.Reset()
			return status.Errorf(codes.Aborted, "stream with %s: %v", st.Conn().RemotePeer(), err)
		}
	}
	return st.Close()
}

func (s *Server) Publish(ctx context.Context, req *pluginv1.PublishRequest) (*pluginv1.PublishResponse, error) {
	if !allowed(req.Topic, s.topics) {
		return nil, s.refuse("topic %s was not declared in Info", req.Topic)
	}
	if err := s.node.Publish(ctx, req.Topic, req.Data); err != nil {
		return nil, status.Errorf(codes.Unavailable, "publish: %v", err)
	}
	s.counters.MessagesOut.Add(1)
	return &pluginv1.PublishResponse{}, nil
}

func (s *Server) Subscribe(req *pluginv1.SubscribeRequest, srv grpc.ServerStreamingServer[pluginv1.PubsubMessage]) error {
	if !allowed(req.Topic, s.topics) {
		return s.refuse("topic %s was not declared in Info", req.Topic)
	}
	if req.Validate {
		return s.validate(req.Topic, srv)
	}
	sub, cancel, err := s.node.Subscribe(req.Topic)
	if err != nil {
		return status.Errorf(codes.Unavailable, "%v", err)
	}
	defer cancel()
	if err := srv.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	self := s.node.Host.ID()
	for {
		m, err := sub.Next(srv.Context())
		if err != nil {
			return nil // the plugin went away or the node is stopping
		}
		s.counters.MessagesIn.Add(1)
		err = srv.Send(&pluginv1.PubsubMessage{
			Topic: req.Topic, From: m.GetFrom().String(), ReceivedFrom: m.ReceivedFrom.String(),
			Data: m.Data, Seqno: m.Seqno, Local: m.ReceivedFrom == self,
		})
		if err != nil {
			return err
		}
	}
}

// Verdict passes the plugin's answer on to the message waiting for it.
func (s *Server) Verdict(_ context.Context, req *pluginv1.VerdictRequest) (*pluginv1.VerdictResponse, error) {
	s.mu.Lock()
	c := s.verdicts[req.ValidationId]
	s.mu.Unlock()
	if c == nil {
		return nil, status.Errorf(codes.NotFound, "no message waits for verdict %d (answered already, or past its 2 s)", req.ValidationId)
	}
	select {
	case c <- req.Verdict:
	default:
	}
	return &pluginv1.VerdictResponse{}, nil
}

// keyCID accepts a CID, or hashes any other key into one.
func keyCID(key string) (cid.Cid, error) {
	if key == "" {
		return cid.Undef, status.Error(codes.InvalidArgument, "empty key")
	}
	if c, err := cid.Decode(key); err == nil {
		return c, nil
	}
	h, err := multihash.Sum([]byte(key), multihash.SHA2_256, -1)
	if err != nil {
		return cid.Undef, status.Errorf(codes.Internal, "hash key: %v", err)
	}
	return cid.NewCidV1(cid.Raw, h), nil
}

func (s *Server) dht() error {
	if s.node.DHT == nil {
		return status.Error(codes.FailedPrecondition, "the DHT is off ([network] dht = \"off\")")
	}
	return nil
}

func (s *Server) Provide(ctx context.Context, req *pluginv1.ProvideRequest) (*pluginv1.ProvideResponse, error) {
	if err := s.dht(); err != nil {
		return nil, err
	}
	c, err := keyCID(req.Key)
	if err != nil {
		return nil, err
	}
	if err := s.node.DHT.Provide(ctx, c, true); err != nil {
		return nil, status.Errorf(codes.Unavailable, "provide %s: %v", c, err)
	}
	return &pluginv1.ProvideResponse{}, nil
}

func (s *Server) FindProviders(ctx context.Context, req *pluginv1.FindProvidersRequest) (*pluginv1.FindProvidersResponse, error) {
	if err := s.dht(); err != nil {
		return nil, err
	}
	c, err := keyCID(req.Key)
	if err != nil {
		return nil, err
	}
	limit := int(req.Limit)
	if limit <= 0 || limit > 100 {
		limit = 20
	}
	resp := &pluginv1.FindProvidersResponse{}
	for ai := range s.node.DHT.FindProvidersAsync(ctx, c, limit) {
		resp.Providers = append(resp.Providers, &pluginv1.PeerInfo{PeerId: ai.ID.String(), Addrs: addrStrings(ai.Addrs)})
	}
	return resp, nil
}

func (s *Server) DataDir(context.Context, *pluginv1.DataDirRequest) (*pluginv1.DataDirResponse, error) {
	return &pluginv1.DataDirResponse{Path: s.dataDir}, nil
}

func addrStrings(as []ma.Multiaddr) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}
