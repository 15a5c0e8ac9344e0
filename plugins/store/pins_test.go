package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vecino/vecino/internal/testnet"
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
	if got, _ := db.Unpinned(now.Add(-3*time.Hour), 10); !slices.Contains(got, a.String()) || !slices.Contains(got, b.String()) {
		t.Errorf("unpinned: %v", got)
	}
	if got, _ := db.Unpinned(now.Add(-time.Hour), 10); !slices.Equal(got, []string{b.String()}) {
		t.Errorf("unpinned in the last hour: %v, want only %s", got, b)
	}
	if got, _ := db.Unpinned(now.Add(-3*time.Hour), 10); slices.Contains(got, a.String()) {
		t.Error("an entry past its time came back")
	}
	db.Put(pin{Root: b.String(), Factor: 3})
	if got, _ := db.Unpinned(now.Add(-time.Hour), 10); len(got) != 0 {
		t.Errorf("pinned again, still listed: %v", got)
	}
}

// Only the newest unpins are listed, newest first, and the others are
// forgotten: a box that adds and unpins files all day must not announce
// a week of them (every announcement once grew by each unpin).
func TestUnpinnedListIsBounded(t *testing.T) {
	db, err := openPins(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Now()
	var roots []string
	for i := range 5 {
		c := rawBlock(t, uint64(i), 10).Cid()
		roots = append(roots, c.String())
		if err := db.Put(pin{Root: c.String(), Factor: 3}); err != nil {
			t.Fatal(err)
		}
		if err := db.Unpin(c, now.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{roots[4], roots[3], roots[2]}
	if got, err := db.Unpinned(now.Add(-time.Hour), 3); err != nil || !slices.Equal(got, want) {
		t.Fatalf("newest 3 unpinned: %v (%v), want %v", got, err, want)
	}
	if got, _ := db.Unpinned(now.Add(-time.Hour), 10); !slices.Equal(got, want) {
		t.Errorf("after a bounded listing: %v, want only the %v it kept", got, want)
	}
}

// A pins.db that is no database any more (a disk error wrote over it) is
// set aside whole and the store starts; garbage collection waits, since
// any block might have been pinned, until the set-aside file is deleted.
func TestUnreadablePinsHoldGarbageCollection(t *testing.T) {
	dir := t.TempDir()
	junk := bytes.Repeat([]byte("not a database "), 1<<10)
	if err := os.WriteFile(filepath.Join(dir, "pins.db"), junk, 0o600); err != nil {
		t.Fatal(err)
	}
	pins, err := openPins(dir)
	if err != nil {
		t.Fatalf("open over an unreadable pins.db: %v", err)
	}
	defer pins.Close()
	if b, err := os.ReadFile(pins.lost); err != nil || !bytes.Equal(b, junk) {
		t.Fatalf("the set-aside pins.db (%q) does not hold what was there: %v", pins.lost, err)
	}
	s := &store{pins: pins}
	if _, _, err := s.gc(context.Background()); !errors.Is(err, errGCHeld) || !strings.Contains(err.Error(), filepath.Base(pins.lost)) {
		t.Fatalf("gc with the pins unknown: %v", err)
	}
	if err := os.Remove(pins.lost); err != nil {
		t.Fatal(err)
	}
	if err := s.heldGC(); err != nil {
		t.Errorf("gc still held once the set-aside file is gone: %v", err)
	}
}

// A pins.db left with damaged pages by a crash or a power cut is set aside
// too, and the pins still readable from it are put back, each as it was;
// garbage collection waits all the same, since some may be missing.
func TestDamagedPinsAreReadBack(t *testing.T) {
	dir := t.TempDir()
	pins, err := openPins(dir)
	if err != nil {
		t.Fatal(err)
	}
	had := map[string]pin{}
	for i := range 2000 {
		pn := pin{Root: rawBlock(t, uint64(i), 10).Cid().String(), Name: fmt.Sprintf("file %d", i), Factor: 2, Size: int64(i), Added: time.Unix(int64(i), 0).UTC()}
		if err := pins.Put(pn); err != nil {
			t.Fatal(err)
		}
		had[pn.Root] = pn
	}
	pins.db.Close() // not pins.Close: as a power cut leaves it
	testnet.DamagePages(t, filepath.Join(dir, "pins.db"), 0.3, 0.5)

	pins, err = openPins(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer pins.Close()
	if pins.lost == "" {
		t.Fatal("a pins.db with damaged pages was not set aside")
	}
	all, err := pins.All()
	if err != nil {
		t.Fatal(err)
	}
	for _, pn := range all {
		if was := had[pn.Root]; pn != was {
			t.Fatalf("read back %+v, was %+v", pn, was)
		}
	}
	t.Logf("%d of %d pins read back", len(all), len(had))
	if len(all) != pins.salvaged || len(all) < len(had)/2 || len(all) == len(had) {
		t.Errorf("%d of %d pins read back (counted %d)", len(all), len(had), pins.salvaged)
	}
	s := &store{pins: pins}
	if err := s.heldGC(); !errors.Is(err, errGCHeld) || !strings.Contains(err.Error(), fmt.Sprintf("%d pins were read back", len(all))) {
		t.Errorf("gc with some pins read back: %v", err)
	}
}
