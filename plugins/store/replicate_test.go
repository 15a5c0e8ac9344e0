package store

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"

	"github.com/vecino/vecino/sdk"
)

// A node with no peer to ask keeps nothing per pin it cannot repair: the
// soak's lone node added and unpinned a file a second, and each left an
// entry in the count of copies asked for, a few hundred bytes of heap per
// file for as long as the plugin ran.
func TestRepairWithNobodyToAskKeepsNothing(t *testing.T) {
	r := newReplicator(&store{env: sdk.Env{NodeID: "self"}})
	for i := range 100 {
		r.repair(context.Background(), pin{Root: fmt.Sprintf("root %d", i), Factor: 3, Added: time.Now()})
	}
	if len(r.pending) != 0 || len(r.asked) != 0 {
		t.Errorf("kept for repairs that asked nobody: %d pending, %d asked", len(r.pending), len(r.asked))
	}
}

// What steers repairs and trims goes once it no longer can: a peer asked
// for a root longer ago than askBackoff may be asked again anyway, and a
// root no longer pinned here is not trimmed.
func TestReplicatorForgets(t *testing.T) {
	r := newReplicator(&store{env: sdk.Env{NodeID: "self"}})
	now := time.Now()
	r.asked["kept"+"peer"] = now // root+peer
	r.asked["old"+"peer"] = now.Add(-askBackoff - time.Second)
	r.over["kept"] = now
	r.over["unpinned"] = now
	r.forget([]pin{{Root: "kept"}})
	if len(r.asked) != 1 || r.asked["kept"+"peer"] != now {
		t.Errorf("asked: %v, want the recent one only", r.asked)
	}
	if len(r.over) != 1 || r.over["kept"] != now {
		t.Errorf("over: %v, want the pinned root only", r.over)
	}
}

// However much a node holds, each announcement fits in a gossipsub
// message: one over 1 MiB is dropped without a word, and the node's peers
// took it for gone.
func TestAnnouncementFitsAMessage(t *testing.T) {
	a := announcement{Free: 1 << 40, Unpinned: []string{"gone"}}
	for i := range 20000 {
		c := rawBlock(t, uint64(i), 10).Cid().String()
		a.Pins = append(a.Pins, held{Root: c, Factor: 3, Size: 1 << 30})
	}
	whole, _ := json.Marshal(a)
	parts := a.split(42)
	seen := map[string]bool{}
	for i, p := range parts {
		b, _ := json.Marshal(p)
		if len(b) > pubsub.DefaultMaxMessageSize/2 {
			t.Errorf("part %d is %d bytes", i, len(b))
		}
		if p.Round != 42 || p.Part != i || p.Parts != len(parts) || (len(p.Unpinned) > 0) != (i == 0) {
			t.Errorf("part %d: round %d, part %d of %d, unpinned %v", i, p.Round, p.Part, p.Parts, p.Unpinned)
		}
		for _, h := range p.Pins {
			seen[h.Root] = true
		}
	}
	if len(seen) != len(a.Pins) {
		t.Errorf("the parts name %d pins of %d", len(seen), len(a.Pins))
	}
	t.Logf("%d pins: %d bytes whole, %d parts", len(a.Pins), len(whole), len(parts))
}

// A peer's holdings are replaced once every part of a round has come; a
// part's roots count at once, and a round with a part lost drops nothing.
func TestAnnouncementPartsReplaceHoldings(t *testing.T) {
	r := newReplicator(&store{env: sdk.Env{NodeID: "self"}})
	heard := func(round int64, part, parts int, roots ...string) {
		a := announcement{Round: round, Part: part, Parts: parts}
		for _, root := range roots {
			a.Pins = append(a.Pins, held{Root: root})
		}
		r.heard(context.Background(), "peer", a)
	}
	holds := func(want ...string) {
		t.Helper()
		got := slices.Sorted(maps.Keys(r.peers["peer"].roots))
		if !slices.Equal(got, want) {
			t.Errorf("holds %v, want %v", got, want)
		}
	}
	r.heard(context.Background(), "peer", announcement{Pins: []held{{Root: "old"}}})
	heard(1, 0, 2, "a")
	holds("a", "old")
	heard(2, 1, 2, "c") // round 1's second part was lost
	holds("a", "c", "old")
	heard(2, 0, 2, "b")
	holds("b", "c")
	heard(3, 5, 2, "hostile") // a part past the round's count
	holds("b", "c")
}

// A round a pin kicks names only the pins added since the last
// announcement; a peer, of this version or one that does not know
// "added", then knows all of them. A pin dropped since, or a ticker
// round, sends everything again.
func TestKickedRoundsAnnounceWhatWasAdded(t *testing.T) {
	r := newReplicator(&store{env: sdk.Env{NodeID: "self"}})
	holding := func(n int) announcement {
		a := announcement{Free: 1 << 40}
		for i := range n {
			a.Pins = append(a.Pins, held{Root: fmt.Sprintf("root%05d", i), Factor: 2, Size: 1 << 20})
		}
		return a
	}
	tombstones := func() []string { return []string{"gone"} }
	size := func(parts []announcement) (pins, bytes int) {
		for _, p := range parts {
			b, _ := json.Marshal(p)
			pins, bytes = pins+len(p.Pins), bytes+len(b)
		}
		return pins, bytes
	}
	full := r.toAnnounce(holding(10000), true, tombstones, 1)
	fullPins, fullBytes := size(full)
	if fullPins != 10000 || len(full[0].Unpinned) != 1 {
		t.Fatalf("a ticker round named %d pins, unpinned %v", fullPins, full[0].Unpinned)
	}
	kicked := r.toAnnounce(holding(10001), false, tombstones, 2)
	pins, bytes := size(kicked)
	if pins != 1 || len(kicked) != 1 || !kicked[0].Added || kicked[0].Pins[0].Root != "root10000" || kicked[0].Unpinned != nil {
		t.Fatalf("a round kicked by one new pin sent %+v", kicked)
	}
	t.Logf("10,000 pins held, one added: the kicked round sends %d bytes, the whole list %d", bytes, fullBytes)
	if again := r.toAnnounce(holding(10001), false, tombstones, 3); len(again) != 0 {
		t.Errorf("a kicked round with nothing new sent %d announcements", len(again))
	}

	// What peers make of it: a new one, and an older one that reads the
	// delta as a part of a round that never completes.
	for _, older := range []bool{false, true} {
		peer := newReplicator(&store{env: sdk.Env{NodeID: "peer"}})
		for _, a := range append(full, kicked...) {
			if older {
				a.Added = false
			}
			peer.heard(context.Background(), "self", a)
		}
		if got := len(peer.peers["self"].roots); got != 10001 {
			t.Errorf("older %v: the peer knows %d pins held, want 10001", older, got)
		}
	}

	// A pin dropped: the whole list again, without the tombstones.
	dropped := holding(10001)
	dropped.Pins = dropped.Pins[1:]
	whole := r.toAnnounce(dropped, false, tombstones, 4)
	if pins, _ := size(whole); pins != 10000 || whole[0].Added || whole[0].Unpinned != nil {
		t.Errorf("a kicked round after a pin was dropped named %d pins (added %v, unpinned %v)", pins, whole[0].Added, whole[0].Unpinned)
	}
}
