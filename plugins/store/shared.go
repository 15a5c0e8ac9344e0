package store

import (
	"context"
	"sync"
)

// shared runs one call per key however many callers ask for it at once:
// two gets of the same content fetch each block once. The call runs under
// its own context, derived from the plugin's, and ends when the last caller
// waiting for it gives up, not when the first does: one user's cancelled
// download must not fail another's.
type shared[K comparable, V any] struct {
	mu    sync.Mutex
	calls map[K]*sharedCall[V]
}

type sharedCall[V any] struct {
	done    chan struct{}
	val     V
	err     error
	waiters int
	cancel  context.CancelFunc
}

// do waits for key's call, starting it with fn under a context of parent
// if none runs, until it ends or ctx does.
func (g *shared[K, V]) do(ctx, parent context.Context, key K, fn func(context.Context) (V, error)) (V, error) {
	g.mu.Lock()
	if g.calls == nil {
		g.calls = map[K]*sharedCall[V]{}
	}
	call := g.calls[key]
	if call == nil {
		cctx, cancel := context.WithCancel(parent)
		call = &sharedCall[V]{done: make(chan struct{}), cancel: cancel}
		g.calls[key] = call
		go func() {
			defer cancel()
			call.val, call.err = fn(cctx)
			g.forget(key, call)
			close(call.done)
		}()
	}
	call.waiters++
	g.mu.Unlock()
	select {
	case <-call.done:
		return call.val, call.err
	case <-ctx.Done():
		g.mu.Lock()
		if call.waiters--; call.waiters == 0 {
			call.cancel()
			// A caller that comes now starts afresh, not on a call
			// that is being cancelled.
			if g.calls[key] == call {
				delete(g.calls, key)
			}
		}
		g.mu.Unlock()
		var zero V
		return zero, ctx.Err()
	}
}

func (g *shared[K, V]) forget(key K, call *sharedCall[V]) {
	g.mu.Lock()
	if g.calls[key] == call {
		delete(g.calls, key)
	}
	g.mu.Unlock()
}
