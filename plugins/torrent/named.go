package torrent

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/anacrolix/torrent"
)

// Peers a user names for a torrent (POST /torrents/IH/peers, `vecino
// torrent peer`) are dialled at once and then, while the torrent runs and
// no connection to them is open, again every namedRetry for namedFor. The
// engine forgets a peer after one failed dial or handshake, and with no
// tracker or DHT to name it again, a friend's box that was off, or still
// checking its data, would never be tried again.
const (
	namedRetry = 20 * time.Second
	namedFor   = time.Hour
	maxNamed   = 32 // per torrent
)

// namedPeer is a peer a user named for a torrent; its address is its key
// in item.named.
type namedPeer struct {
	since time.Time // when it was last named
	tried time.Time // when it was last handed to the engine
}

// errNoTorrent is the error for an info hash the node does not carry.
var errNoTorrent = errors.New("no torrent")

// namePeer records p, named by the user for torrent ih, and hands it to
// the engine.
func (s *seedbox) namePeer(ih string, p netip.AddrPort) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.torrents[ih]
	if !ok {
		return fmt.Errorf("%w %s", errNoTorrent, ih)
	}
	return it.namePeer(p, time.Now())
}

// namePeer records p, named by the user, and hands it to the engine. The
// caller holds s.mu.
func (it *item) namePeer(p netip.AddrPort, now time.Time) error {
	if it.named == nil {
		it.named = map[netip.AddrPort]*namedPeer{}
	}
	if _, ok := it.named[p]; !ok && len(it.named) >= maxNamed {
		return fmt.Errorf("%d peers are named for this torrent already, the most it keeps trying (each for %s)", maxNamed, namedFor)
	}
	it.named[p] = &namedPeer{since: now, tried: now}
	it.t.AddPeers([]torrent.PeerInfo{{Addr: p, Trusted: true}})
	return nil
}

// retryNamed hands the engine again the named peers that it has no
// connection to, once namedRetry has passed since they were last tried,
// and forgets those named more than namedFor ago. Nothing is dialled for a
// torrent held back or done seeding. The caller holds s.mu.
func (it *item) retryNamed(now time.Time) {
	if len(it.named) == 0 {
		return
	}
	// A peer counts as connected by its address alone: a connection it
	// opened comes from a port of its own, not the one it listens on.
	connected := map[netip.Addr]bool{}
	for _, c := range it.t.PeerConns() {
		if ap, err := netip.ParseAddrPort(c.RemoteAddr.String()); err == nil {
			connected[bareAddr(ap.Addr())] = true
		}
	}
	idle := it.held() || it.rec.Finished
	var again []torrent.PeerInfo
	for addr, p := range it.named {
		switch {
		case now.Sub(p.since) > namedFor:
			delete(it.named, addr)
		case idle || connected[bareAddr(addr.Addr())] || now.Sub(p.tried) < namedRetry:
		default:
			p.tried = now
			again = append(again, torrent.PeerInfo{Addr: addr, Trusted: true})
		}
	}
	if len(again) > 0 {
		it.t.AddPeers(again)
	}
}

// bareAddr is a without its IPv4-in-IPv6 form or zone: how two addresses
// of one peer compare.
func bareAddr(a netip.Addr) netip.Addr { return a.Unmap().WithZone("") }
