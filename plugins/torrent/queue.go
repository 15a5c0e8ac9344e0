package torrent

// The queue: at most max_active torrents transfer at once, the first in
// the queue's order; the rest wait. A torrent goes in at the end, in the
// order torrents are added; the owner moves one to the top (download this
// next), up, down, to the bottom, or to a position, as Transmission's
// queue-move-* calls do. The order is kept across restarts.

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
)

// queueKey is a torrent's place in the queue's order: its own, once the
// owner moved it or another, else when it was added (so that torrents
// added later come after every torrent placed by hand).
func (r *record) queueKey() int64 {
	if r.Queue != 0 {
		return r.Queue
	}
	return r.AddedAt.UnixNano()
}

// queueLocked is every torrent in the queue's order.
func (s *seedbox) queueLocked() []*item {
	all := make([]*item, 0, len(s.torrents))
	for _, it := range s.torrents {
		all = append(all, it)
	}
	slices.SortFunc(all, func(a, b *item) int {
		return cmp.Or(cmp.Compare(a.rec.queueKey(), b.rec.queueKey()), cmp.Compare(a.rec.InfoHash, b.rec.InfoHash))
	})
	return all
}

// requeue moves torrent ih in the queue: "top", "up", "down", "bottom",
// or to a position (from 0; past the end is the end).
func (s *seedbox) requeue(ih, where string) (View, error) {
	return s.change(ih, func(it *item) error {
		q := s.queueLocked()
		i := slices.Index(q, it)
		to := i
		switch where {
		case "top":
			to = 0
		case "up":
			to = max(0, i-1)
		case "down":
			to = min(len(q)-1, i+1)
		case "bottom":
			to = len(q) - 1
		default:
			n, err := strconv.Atoi(where)
			if err != nil || n < 0 {
				return fmt.Errorf("queue move %q: say top, up, down, bottom or a position from 0", where)
			}
			to = min(len(q)-1, n)
		}
		q = slices.Insert(slices.Delete(q, i, i+1), to, it)
		// Every torrent gets its place by hand: 1, 2, 3... all before
		// the keys of torrents added from now on (their time added).
		for n, it := range q {
			it.rec.Queue = int64(n + 1)
		}
		s.log.Info("queue moved", "torrent", it.rec.Name, "position", to)
		return nil
	})
}
