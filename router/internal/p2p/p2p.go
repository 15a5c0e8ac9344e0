// Package p2p is the node's one libp2p host: its identity, transports,
// resource limits, relay service, DHT and gossipsub, built from [network].
package p2p

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p-kad-dht/dual"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/core/routing"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/vecino/vecino/config"
	"github.com/vecino/vecino/router/internal/dhtstore"
)

// Node is the router's libp2p host and the services on it.
type Node struct {
	Host   host.Host
	PubSub *pubsub.PubSub
	// DHT is nil when [network] dht = "off". It is two, as in kubo: the
	// public IPFS DHT, with peers on public addresses only, and the LAN
	// DHT (/ipfs/lan/kad/1.0.0) of the peers on private networks, the
	// neighbourhood's, where IPFS nodes nearby look for content too.
	DHT *dual.DHT

	log *slog.Logger
	// gater holds [network] allow_peers in force; allowMu orders the
	// changes to it (SetAllowPeers).
	gater     allowGater
	allowMu   sync.Mutex
	bootstrap []peer.AddrInfo
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	mdns      mdns.Service
	records   *dhtstore.Store // the DHT's, nil without one

	mu       sync.Mutex
	topics   map[string]*topicRef
	handlers map[string]string // protocol -> plugin that handles it

	arriveMu sync.RWMutex
	arrivals map[string]func(*pubsub.Message) // topic -> its validator's, see Validate

	valMu       sync.Mutex
	validations map[string]*validation // by topic, see Validate
}

// New starts the host described by cfg, with the identity kept under
// stateDir. Close stops it.
func New(cfg config.Network, stateDir string, log *slog.Logger) (*Node, error) {
	key, err := LoadOrCreateKey(KeyPath(stateDir))
	if err != nil {
		return nil, err
	}
	limits, err := resourceLimits(cfg.MaxMemoryMiB)
	if err != nil {
		return nil, err
	}
	rm, err := rcmgr.NewResourceManager(limits)
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	cm, err := connmgr.NewConnManager(cfg.ConnLow, cfg.ConnHigh, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	n := &Node{log: log, topics: map[string]*topicRef{}, handlers: map[string]string{}, arrivals: map[string]func(*pubsub.Message){}, validations: map[string]*validation{}}
	for _, s := range cfg.Bootstrap {
		ai, err := peer.AddrInfoFromString(s)
		if err != nil {
			return nil, fmt.Errorf("bootstrap peer %q: %w", s, err)
		}
		n.bootstrap = append(n.bootstrap, *ai)
	}
	dhtPeers := append([]peer.AddrInfo(nil), n.bootstrap...)
	if cfg.PublicBootstrap {
		dhtPeers = append(dhtPeers, dht.GetDefaultBootstrapPeerAddrInfos()...)
	}

	opts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.ListenAddrStrings(cfg.Listen...),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.UserAgent("vecino"),
		libp2p.Transport(tcp.NewTCPTransport),
	}
	if cfg.PrivateNetworkKeyFile != "" {
		psk, err := loadPSK(cfg.PrivateNetworkKeyFile)
		if err != nil {
			return nil, err
		}
		opts = append(opts, libp2p.PrivateNetwork(psk))
	} else {
		opts = append(opts, libp2p.Transport(quic.NewTransport))
	}
	// Always a gater, so that allow_peers can be set while the node runs.
	allow, err := parseAllowPeers(cfg.AllowPeers)
	if err != nil {
		return nil, err
	}
	n.gater.set(allow)
	opts = append(opts, libp2p.ConnectionGater(&n.gater))
	switch cfg.Reachability {
	case "public":
		opts = append(opts, libp2p.ForceReachabilityPublic())
	case "private":
		opts = append(opts, libp2p.ForceReachabilityPrivate())
	}
	if cfg.RelayService {
		r := cfg.Relay
		opts = append(opts, libp2p.EnableRelayService(relayv2.WithResources(relayv2.Resources{
			Limit: &relayv2.RelayLimit{
				Duration: r.CircuitDuration,
				Data:     r.CircuitDataKiB << 10,
			},
			ReservationTTL:        r.ReservationTTL,
			MaxReservations:       r.MaxReservations,
			MaxCircuits:           r.MaxCircuits,
			BufferSize:            2048,
			MaxReservationsPerIP:  r.MaxReservationsPerIP,
			MaxReservationsPerASN: 4 * r.MaxReservationsPerIP,
		})))
	}
	if cfg.PortMapping {
		opts = append(opts, libp2p.NATPortMap())
	}
	if cfg.HolePunching {
		opts = append(opts, libp2p.EnableHolePunching())
	}
	if cfg.DHT != "off" {
		// The records the DHT keeps (what this node provides, what others
		// ask it to hold) live on disk, not on the heap; see dhtstore.
		if n.records, err = dhtstore.Open(filepath.Join(stateDir, "dht.db"), log); err != nil {
			return nil, err
		}
		mode := map[string]dht.ModeOpt{"auto": dht.ModeAuto, "server": dht.ModeServer, "client": dht.ModeClient}[cfg.DHT]
		dopts := []dual.Option{
			dual.DHTOption(dht.Mode(mode), dht.BootstrapPeers(n.bootstrap...)),
			// The public bootstrap peers seed the public DHT only.
			dual.WanDHTOption(dht.BootstrapPeers(dhtPeers...),
				dht.Datastore(namespace.Wrap(n.records, ds.NewKey("/wan")))),
			dual.LanDHTOption(dht.Datastore(namespace.Wrap(n.records, ds.NewKey("/lan")))),
		}
		if loopbackOnly(cfg.Listen) {
			// The LAN DHT leaves loopback addresses out of what it tells
			// others; a node that listens on loopback alone (a test, a
			// demo on one machine) has no other address to tell.
			dopts = append(dopts, dual.LanDHTOption(dht.AddressFilter(nil)))
		}
		opts = append(opts, libp2p.Routing(func(h host.Host) (routing.PeerRouting, error) {
			d, err := dual.New(h, dopts...)
			n.DHT = d
			return d, err
		}))
	}

	h, err := libp2p.New(opts...)
	if err != nil {
		if n.records != nil {
			n.records.Close()
		}
		return nil, fmt.Errorf("start libp2p host: %w", err)
	}
	n.Host = h
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.PubSub, err = pubsub.NewGossipSub(ctx, h,
		pubsub.WithPeerExchange(cfg.RelayService),
		// gossipsub drops messages when a queue is full; its defaults (32)
		// lose chat messages at a few thousand a second.
		pubsub.WithValidateQueueSize(pubsubQueue),
		pubsub.WithPeerOutboundQueueSize(pubsubQueue),
		// One validation worker keeps each author's messages in the order
		// they came; several reorder them. It still checks ~20k signatures
		// a second.
		pubsub.WithValidateWorkers(1),
		// Validators see each message as it arrives, so they can work on
		// several at once ahead of that worker (Validate).
		pubsub.WithAppSpecificRpcInspector(n.inspect),
	)
	if err != nil {
		n.Close()
		return nil, fmt.Errorf("start gossipsub: %w", err)
	}
	if cfg.MDNS {
		n.mdns = mdns.NewMdnsService(h, "vecino", &mdnsNotifee{n: n, ctx: ctx})
		if err := n.mdns.Start(); err != nil {
			n.Close()
			return nil, fmt.Errorf("start mdns: %w", err)
		}
	}
	n.wg.Add(1)
	go n.keepBootstrapped(ctx)
	log.Info("libp2p host up", "id", h.ID().String(), "addrs", h.Addrs(), "dht", cfg.DHT, "relay_service", cfg.RelayService)
	return n, nil
}

// Close stops the host and everything on it.
func (n *Node) Close() error {
	n.valMu.Lock()
	for topic, v := range n.validations {
		v.mu.Lock()
		if v.release != nil {
			v.release.Stop()
		}
		v.mu.Unlock()
		v.leave() // its subscription, which pubsub's end does not close
		delete(n.validations, topic)
	}
	n.valMu.Unlock()
	n.cancel()
	n.wg.Wait()
	var errs []error
	if n.mdns != nil {
		errs = append(errs, n.mdns.Close())
	}
	if n.DHT != nil {
		errs = append(errs, n.DHT.Close())
	}
	if n.Host != nil {
		errs = append(errs, n.Host.Close())
	}
	if n.records != nil {
		errs = append(errs, n.records.Close())
	}
	return errors.Join(errs...)
}

// keepBootstrapped connects to the configured bootstrap peers and reconnects
// to those it loses, checking every 15 seconds.
func (n *Node) keepBootstrapped(ctx context.Context) {
	defer n.wg.Done()
	if len(n.bootstrap) == 0 {
		return
	}
	t := time.NewTicker(15 * time.Second)
	defer t.Stop()
	for {
		for _, ai := range n.bootstrap {
			if len(n.Host.Network().ConnsToPeer(ai.ID)) > 0 {
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if err := n.Host.Connect(cctx, ai); err != nil {
				n.log.Warn("bootstrap peer unreachable", "peer", ai.ID.String(), "err", err)
			} else {
				n.log.Info("connected to bootstrap peer", "peer", ai.ID.String())
			}
			cancel()
		}
		if n.DHT != nil {
			_ = n.DHT.Bootstrap(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

type mdnsNotifee struct {
	n   *Node
	ctx context.Context
}

func (m *mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	if ai.ID == m.n.Host.ID() {
		return
	}
	ctx, cancel := context.WithTimeout(m.ctx, 10*time.Second)
	defer cancel()
	if err := m.n.Host.Connect(ctx, ai); err == nil {
		m.n.log.Info("connected to LAN peer", "peer", ai.ID.String())
	}
}

func loadPSK(path string) (pnet.PSK, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("private network key: %w", err)
	}
	defer f.Close()
	psk, err := pnet.DecodeV1PSK(f)
	if err != nil {
		return nil, fmt.Errorf("private network key %s: %w", path, err)
	}
	return psk, nil
}

// DHTPeers returns the size of each DHT's routing table, by name ("wan",
// "lan"); nil when the DHT is off.
func (n *Node) DHTPeers() map[string]int {
	if n.DHT == nil {
		return nil
	}
	return map[string]int{"wan": n.DHT.WAN.RoutingTable().Size(), "lan": n.DHT.LAN.RoutingTable().Size()}
}

// loopbackOnly reports whether every listen address is a loopback one.
func loopbackOnly(listen []string) bool {
	for _, l := range listen {
		a, err := ma.NewMultiaddr(l)
		if err != nil || !manet.IsIPLoopback(a) {
			return false
		}
	}
	return len(listen) > 0
}
