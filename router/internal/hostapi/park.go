package hostapi

import (
	"sync"
	"time"
)

// attachTimeout is how long a parked stream waits for its plugin.
const attachTimeout = 30 * time.Second

// parking holds values until someone takes them, for at most after;
// expire gets each value nobody took in time. Taking a
// value stops its timer: the router parks one per proxied request, and a
// running timer would keep each for the whole attachTimeout (the soak's
// climb, bench/README.md).
type parking[K comparable, V any] struct {
	after  time.Duration
	expire func(V)

	mu    sync.Mutex
	spots map[K]spot[V]
}

type spot[V any] struct {
	v     V
	timer *time.Timer
}

func newParking[K comparable, V any](after time.Duration, expire func(V)) *parking[K, V] {
	return &parking[K, V]{after: after, expire: expire, spots: map[K]spot[V]{}}
}

func (p *parking[K, V]) park(k K, v V) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.spots[k] = spot[V]{v: v, timer: time.AfterFunc(p.after, func() {
		if v, ok := p.take(k); ok {
			p.expire(v)
		}
	})}
}

// has reports whether k has a value parked, and how many values are.
func (p *parking[K, V]) has(k K) (bool, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.spots[k]
	return ok, len(p.spots)
}

// take removes k's value and reports whether it was still there.
func (p *parking[K, V]) take(k K) (V, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.spots[k]
	if ok {
		s.timer.Stop()
		delete(p.spots, k)
	}
	return s.v, ok
}

// expireAll expires every value still parked.
func (p *parking[K, V]) expireAll() {
	p.mu.Lock()
	spots := p.spots
	p.spots = map[K]spot[V]{}
	p.mu.Unlock()
	for _, s := range spots {
		s.timer.Stop()
		p.expire(s.v)
	}
}
