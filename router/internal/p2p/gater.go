package p2p

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// allowGater lets only listed peers connect, either way.
type allowGater map[peer.ID]bool

func newAllowGater(ids []string) (allowGater, error) {
	g := allowGater{}
	for _, s := range ids {
		id, err := peer.Decode(s)
		if err != nil {
			return nil, fmt.Errorf("allow_peers %q: %w", s, err)
		}
		g[id] = true
	}
	return g, nil
}

func (g allowGater) InterceptPeerDial(p peer.ID) bool                 { return g[p] }
func (g allowGater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return g[p] }
func (g allowGater) InterceptAccept(network.ConnMultiaddrs) bool      { return true }
func (g allowGater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g[p]
}
func (g allowGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}
