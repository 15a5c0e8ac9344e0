package store

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/vecino/vecino/sdk"
)

const (
	// provideRetry is how soon a root whose announcement failed (the
	// router's DHT had no peers yet, say) is tried again.
	provideRetry = 30 * time.Second
	// lookupTimeout bounds one search of the DHT for a DAG's holders.
	lookupTimeout = 30 * time.Second
	// lookupLimit is how many holders one search returns at most.
	lookupLimit = 8
)

// provider announces on the DHT, through the router, the root of every DAG
// this node holds pinned (its own and the copies it keeps for neighbours),
// so that a node that is not connected to this one can find it: as kubo
// does with its "roots" reprovide strategy. Records on the DHT expire, so
// each root is announced again every reprovide_interval.
type provider struct {
	s     *store
	kickC chan struct{}

	mu   sync.Mutex
	last map[string]time.Time // root -> last successful announcement

	provided, failed, found atomic.Int64
	off                     atomic.Bool // the router runs no DHT
}

func newProvider(s *store) *provider {
	return &provider{s: s, kickC: make(chan struct{}, 1), last: map[string]time.Time{}}
}

// kick announces new pins soon.
func (p *provider) kick() {
	select {
	case p.kickC <- struct{}{}:
	default:
	}
}

func (p *provider) loop(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-p.kickC:
		}
		wait := p.round(ctx)
		if p.off.Load() {
			slog.Info("not announcing pins on the DHT: the router runs none ([network] dht = \"off\")")
			return
		}
		t.Reset(wait)
	}
}

// round announces every pinned root not announced within the interval and
// says when the next round is due.
func (p *provider) round(ctx context.Context) time.Duration {
	pins, err := p.s.pins.All()
	if err != nil {
		slog.Error("list pins", "err", err)
		return provideRetry
	}
	p.forgetUnpinned(pins)
	every := p.s.cfg.ReprovideInterval
	next := every
	for _, pn := range pins {
		p.mu.Lock()
		due := time.Since(p.last[pn.Root]) >= every
		p.mu.Unlock()
		if !due {
			continue
		}
		err := p.s.env.Host.Provide(ctx, pn.Root)
		switch {
		case errors.Is(err, sdk.ErrNoDHT):
			p.off.Store(true)
			return every
		case ctx.Err() != nil:
			return every
		case err != nil:
			p.failed.Add(1)
			slog.Debug("root not announced on the DHT; trying again soon", "cid", pn.Root, "err", err)
			next = min(next, provideRetry)
		default:
			p.provided.Add(1)
			p.mu.Lock()
			p.last[pn.Root] = time.Now()
			p.mu.Unlock()
		}
	}
	return next
}

// forgetUnpinned drops the announcement times of roots no longer pinned:
// a box that pins and unpins for years must not keep one for each.
func (p *provider) forgetUnpinned(pins []pin) {
	pinned := pinnedRoots(pins)
	p.mu.Lock()
	defer p.mu.Unlock()
	for root := range p.last {
		if !pinned[root] {
			delete(p.last, root)
		}
	}
}

// find looks up on the DHT the nodes that announce one of keys, in order,
// connects to those of the first key that has any, and returns their IDs.
func (p *provider) find(ctx context.Context, keys ...cid.Cid) []string {
	if p.off.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	var out []string
	for i, k := range keys {
		if i > 0 && k == keys[i-1] {
			continue
		}
		found, err := p.s.env.Host.FindProviders(ctx, k.String(), lookupLimit)
		if errors.Is(err, sdk.ErrNoDHT) {
			p.off.Store(true)
			return nil
		}
		if err != nil {
			slog.Debug("DHT lookup failed", "cid", k.String(), "err", err)
			continue
		}
		for _, pi := range found {
			if pi.ID == p.s.env.NodeID {
				continue
			}
			if err := p.s.env.Host.Connect(ctx, pi.ID, pi.Addrs...); err != nil {
				slog.Debug("holder found on the DHT not reachable", "cid", k.String(), "peer", pi.ID, "err", err)
				continue
			}
			out = append(out, pi.ID)
		}
		if len(out) > 0 {
			slog.Info("holders found on the DHT", "cid", k.String(), "peers", len(out))
			p.found.Add(int64(len(out)))
			return out
		}
	}
	return nil
}
