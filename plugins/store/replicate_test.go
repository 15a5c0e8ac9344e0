package store

import (
	"context"
	"fmt"
	"testing"
	"time"

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
