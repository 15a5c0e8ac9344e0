package store

import (
	"testing"
	"time"
)

// A root's announcement time goes when the root is unpinned: a box that
// pins and unpins files for years keeps only those of what it holds.
func TestProviderForgetsUnpinnedRoots(t *testing.T) {
	p := newProvider(nil)
	now := time.Now()
	for _, root := range []string{"kept", "unpinned", "also unpinned"} {
		p.last[root] = now
	}
	p.forgetUnpinned([]pin{{Root: "kept"}, {Root: "pinned, not yet announced"}})
	if len(p.last) != 1 || p.last["kept"] != now {
		t.Errorf("announcement times kept: %v, want the one of the root still pinned", p.last)
	}
}
