package store

import (
	"slices"
	"testing"
	"time"
)

// What the user unpinned is listed until it is old or pinned again.
func TestUnpinnedList(t *testing.T) {
	db, err := openPins(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a, b := rawBlock(t, 1, 10).Cid(), rawBlock(t, 2, 10).Cid()
	now := time.Now()
	for _, c := range []string{a.String(), b.String()} {
		if err := db.Put(pin{Root: c, Factor: 3}); err != nil {
			t.Fatal(err)
		}
	}
	db.Unpin(a, now.Add(-2*time.Hour))
	db.Unpin(b, now)
	if _, ok := db.Get(a); ok {
		t.Error("the pin is still there after Unpin")
	}
	if got, _ := db.Unpinned(now.Add(-3 * time.Hour)); !slices.Contains(got, a.String()) || !slices.Contains(got, b.String()) {
		t.Errorf("unpinned: %v", got)
	}
	if got, _ := db.Unpinned(now.Add(-time.Hour)); !slices.Equal(got, []string{b.String()}) {
		t.Errorf("unpinned in the last hour: %v, want only %s", got, b)
	}
	if got, _ := db.Unpinned(now.Add(-3 * time.Hour)); slices.Contains(got, a.String()) {
		t.Error("an entry past its time came back")
	}
	db.Put(pin{Root: b.String(), Factor: 3})
	if got, _ := db.Unpinned(now.Add(-time.Hour)); len(got) != 0 {
		t.Errorf("pinned again, still listed: %v", got)
	}
}
