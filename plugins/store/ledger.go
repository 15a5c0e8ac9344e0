package store

import (
	"sync"
	"time"

	"github.com/ipfs/boxo/bitswap/message/pb"
	"github.com/ipfs/go-cid"
)

const (
	// keptPerPeer bounds the wants kept for one peer: blocks it asked for
	// that this node did not have, sent to it if they arrive.
	keptPerPeer = 1024
	// keepFor is how long such a want is kept; peers that still want a
	// block say so again well within it (kubo every 30 s).
	keepFor = 5 * time.Minute
)

// ledger keeps the wants this node could not answer, by block and peer,
// at most keptPerPeer a peer and each for keepFor.
type ledger struct {
	mu      sync.Mutex
	byCID   map[cid.Cid]map[string]keptWant
	perPeer map[string]int
}

type keptWant struct {
	wantType pb.Message_Wantlist_WantType
	at       time.Time
}

func (l *ledger) keep(c cid.Cid, peer string, wt pb.Message_Wantlist_WantType, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ws := l.byCID[c]
	if _, ok := ws[peer]; !ok {
		if l.perPeer[peer] >= keptPerPeer {
			return
		}
		if ws == nil {
			ws = map[string]keptWant{}
			l.byCID[c] = ws
		}
		l.perPeer[peer]++
	}
	ws[peer] = keptWant{wt, now}
}

// take removes and returns the live wants for c.
func (l *ledger) take(c cid.Cid, now time.Time) map[string]pb.Message_Wantlist_WantType {
	l.mu.Lock()
	defer l.mu.Unlock()
	ws := l.byCID[c]
	if ws == nil {
		return nil
	}
	out := map[string]pb.Message_Wantlist_WantType{}
	for peer, w := range ws {
		if now.Sub(w.at) < keepFor {
			out[peer] = w.wantType
		}
		l.release(peer)
	}
	delete(l.byCID, c)
	return out
}

func (l *ledger) drop(c cid.Cid, peer string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.byCID[c][peer]; ok {
		delete(l.byCID[c], peer)
		if len(l.byCID[c]) == 0 {
			delete(l.byCID, c)
		}
		l.release(peer)
	}
}

// dropPeer forgets every want of peer (it sent its full wantlist anew).
func (l *ledger) dropPeer(peer string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perPeer[peer] == 0 {
		return
	}
	for c, ws := range l.byCID {
		if _, ok := ws[peer]; ok {
			delete(ws, peer)
			if len(ws) == 0 {
				delete(l.byCID, c)
			}
		}
	}
	delete(l.perPeer, peer)
}

// expire forgets the wants older than keepFor.
func (l *ledger) expire(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c, ws := range l.byCID {
		for peer, w := range ws {
			if now.Sub(w.at) >= keepFor {
				delete(ws, peer)
				l.release(peer)
			}
		}
		if len(ws) == 0 {
			delete(l.byCID, c)
		}
	}
}

func (l *ledger) release(peer string) {
	if l.perPeer[peer]--; l.perPeer[peer] <= 0 {
		delete(l.perPeer, peer)
	}
}

// size is the number of wants kept.
func (l *ledger) size() (n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range l.perPeer {
		n += k
	}
	return n
}
