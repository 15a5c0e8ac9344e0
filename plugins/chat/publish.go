package chat

import (
	"log/slog"
	"sync"

	"github.com/vecino/vecino/plugins/chat/wire"
)

// outbox holds a room's messages that were accepted here and are still to
// be published, in the order they were accepted. One goroutine per room
// publishes them: a message that finds the room idle leaves at once, alone;
// messages that arrive while a publish is on its way leave together, as one
// bundle, when it is done. A quiet room pays no delay, and a busy one pays
// gossipsub's per-message costs (the router's signature, the check of it on
// every node, the hops through each router and plugin) once per bundle.
type outbox struct {
	mu    sync.Mutex
	queue [][]byte
	kick  chan struct{}
}

func (o *outbox) add(raw []byte) {
	o.mu.Lock()
	o.queue = append(o.queue, raw)
	o.mu.Unlock()
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// take removes the oldest messages that fit in one bundle.
func (o *outbox) take() [][]byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	n, size := 0, 2
	for n < len(o.queue) && n < wire.MaxBundleMessages && (n == 0 || size+len(o.queue[n])+1 <= wire.MaxBundle) {
		size += len(o.queue[n]) + 1
		n++
	}
	batch := o.queue[:n:n]
	o.queue = o.queue[n:]
	if len(o.queue) == 0 {
		o.queue = nil
	}
	return batch
}

func (c *chat) publishLoop(r *room) {
	defer c.wg.Done()
	topic := wire.RoomTopicPrefix + r.name
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-r.out.kick:
		}
		for batch := r.out.take(); len(batch) > 0; batch = r.out.take() {
			if err := c.env.Host.Publish(c.ctx, topic, wire.Bundle(batch)); err != nil {
				slog.Warn("messages kept here but not published", "room", r.name, "messages", len(batch), "err", err)
			}
		}
	}
}
