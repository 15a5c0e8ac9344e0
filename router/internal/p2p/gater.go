package p2p

import (
	"fmt"
	"maps"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// allowGater lets only the listed peers connect, either way; with no
// list, everyone. The list changes while the node runs (SetAllowPeers).
type allowGater struct {
	ids atomic.Pointer[map[peer.ID]bool] // nil: everyone
}

// parseAllowPeers reads [network] allow_peers; nil for an empty list.
func parseAllowPeers(ids []string) (map[peer.ID]bool, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	m := map[peer.ID]bool{}
	for _, s := range ids {
		id, err := peer.Decode(s)
		if err != nil {
			return nil, fmt.Errorf("allow_peers %q: %w", s, err)
		}
		m[id] = true
	}
	return m, nil
}

func (g *allowGater) allowed(p peer.ID) bool {
	m := g.ids.Load()
	return m == nil || (*m)[p]
}

// list is the list in force; nil: everyone.
func (g *allowGater) list() map[peer.ID]bool {
	if m := g.ids.Load(); m != nil {
		return *m
	}
	return nil
}

func (g *allowGater) set(m map[peer.ID]bool) {
	if m == nil {
		g.ids.Store(nil)
		return
	}
	g.ids.Store(&m)
}

func (g *allowGater) InterceptPeerDial(p peer.ID) bool                 { return g.allowed(p) }
func (g *allowGater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return g.allowed(p) }
func (g *allowGater) InterceptAccept(network.ConnMultiaddrs) bool      { return true }
func (g *allowGater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.allowed(p)
}
func (g *allowGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}

// SetAllowPeers puts a new [network] allow_peers in force (empty: every
// peer may connect) and closes the connections of the peers it leaves
// out. It reports whether the list changed.
func (n *Node) SetAllowPeers(ids []string) (bool, error) {
	m, err := parseAllowPeers(ids)
	if err != nil {
		return false, err
	}
	n.allowMu.Lock()
	defer n.allowMu.Unlock()
	if maps.Equal(m, n.gater.list()) {
		return false, nil
	}
	n.gater.set(m)
	dropped := 0
	for _, p := range n.Host.Network().Peers() {
		if !n.gater.allowed(p) {
			n.Host.Network().ClosePeer(p)
			dropped++
		}
	}
	n.log.Info("allow_peers changed", "peers_listed", len(m), "disconnected", dropped)
	return true, nil
}
