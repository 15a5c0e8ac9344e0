package dhtstore

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	dssync "github.com/ipfs/go-datastore/sync"
	dstest "github.com/ipfs/go-datastore/test"
	"github.com/libp2p/go-libp2p-kad-dht/records"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/test"
	"github.com/libp2p/go-libp2p/p2p/host/peerstore/pstoremem"
	mh "github.com/multiformats/go-multihash"

	"github.com/vecino/vecino/internal/testnet"
)

func openT(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// go-datastore's own conformance suite: gets, puts, queries with
// prefixes, filters, orders, offsets and limits, batches.
func TestDatastoreSuite(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "dht.db"))
	defer s.Close()
	// Its query combinations put thousands of keys one by one; without
	// an fsync each they take seconds, not minutes.
	s.db.NoSync = true
	dstest.SubtestAll(t, s)
}

// kad-dht's record GC walks every provider record and deletes the
// expired ones in batches while it walks, as new records come in. The
// walk reads a page at a time, so it must pick up where it left off
// across pages whose keys are gone, and stay under its prefix.
func TestDeleteWhileQuerying(t *testing.T) {
	ctx := t.Context()
	s := openT(t, filepath.Join(t.TempDir(), "dht.db"))
	defer s.Close()
	const n = 5 * page
	b, _ := s.Batch(ctx)
	for i := range n {
		b.Put(ctx, ds.NewKey(fmt.Sprintf("/providers/%05d", i)), make([]byte, 512))
	}
	b.Put(ctx, ds.NewKey("/providersx/not-under-the-prefix"), []byte("x"))
	if err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	done := make(chan int)
	go func() {
		res, err := s.Query(ctx, dsq.Query{Prefix: "/providers"})
		if err != nil {
			t.Error(err)
		}
		seen := 0
		del, _ := s.Batch(ctx)
		for r := range res.Next() {
			if r.Error != nil {
				t.Error(r.Error)
			}
			seen++
			del.Delete(ctx, ds.RawKey(r.Key))
			// Grow the file meanwhile, as new records arriving do.
			s.Put(ctx, ds.NewKey(fmt.Sprintf("/other/%05d", seen)), make([]byte, 4096))
			if seen%100 == 0 {
				if err := del.Commit(ctx); err != nil {
					t.Error(err)
				}
			}
		}
		if err := del.Commit(ctx); err != nil {
			t.Error(err)
		}
		done <- seen
	}()
	select {
	case seen := <-done:
		if seen != n {
			t.Fatalf("query walked %d records, want %d", seen, n)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("query and deletes still running after 30 s: deadlocked")
	}
	left, err := s.Query(ctx, dsq.Query{Prefix: "/providers", KeysOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	rest, _ := left.Rest()
	if len(rest) != 0 {
		t.Fatalf("%d records left under /providers after deleting all, first %s", len(rest), rest[0].Key)
	}
	if ok, _ := s.Has(ctx, ds.NewKey("/providersx/not-under-the-prefix")); !ok {
		t.Fatal("a key that only shares the prefix's letters was deleted")
	}
}

// What a node provided is still answered for after it restarts.
func TestProviderRecordsSurviveRestart(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "dht.db")
	self, other := test.RandPeerIDFatal(t), test.RandPeerIDFatal(t)
	key, _ := mh.Sum([]byte("a file the store provides"), mh.SHA2_256, -1)

	providers := func(s *Store) *records.ProviderManager {
		ps, err := pstoremem.NewPeerstore()
		if err != nil {
			t.Fatal(err)
		}
		pm, err := records.NewProviderManager(self, ps, s)
		if err != nil {
			t.Fatal(err)
		}
		return pm
	}
	s := openT(t, path)
	pm := providers(s)
	for _, p := range []peer.ID{self, other} {
		if err := pm.AddProvider(ctx, key, peer.AddrInfo{ID: p}); err != nil {
			t.Fatal(err)
		}
	}
	pm.Close() // flushes what it buffered
	s.Close()

	s = openT(t, path)
	defer s.Close()
	pm = providers(s)
	defer pm.Close()
	got, err := pm.GetProviders(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("after a restart, %d providers for the key, want 2 (%v)", len(got), got)
	}
}

// A file bbolt cannot read does not keep the router from starting: it is
// moved aside, kept for a look, and the node starts with no records.
func TestUnreadableFileIsMovedAside(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dht.db")
	junk := []byte("this is not a bbolt file, but it is long enough to be read as one's first page ")
	for len(junk) < 8192 {
		junk = append(junk, junk...)
	}
	if err := os.WriteFile(path, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	s := openT(t, path)
	defer s.Close()
	if err := s.Put(context.Background(), ds.NewKey("/a"), []byte("b")); err != nil {
		t.Fatal(err)
	}
	aside, _ := filepath.Glob(path + ".unreadable-*")
	if len(aside) != 1 {
		t.Fatalf("set aside: %v, want one file", aside)
	}
	if kept, err := os.ReadFile(aside[0]); err != nil || string(kept) != string(junk) {
		t.Fatalf("the unreadable file was not kept whole as %s: %v", aside[0], err)
	}
}

// A file whose meta pages are sound and whose other pages a disk error
// wrote over opens in bbolt, which then panics in a goroutine of its own
// while it rebuilds its free list: the router itself would crash at every
// start. Left open by a crash, or by that panic, it is checked and set
// aside, and the records its sound pages hold come back.
func TestDamagedPagesAreSetAside(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dht.db")
	s := openT(t, path)
	for i := range 3000 {
		if err := s.Put(t.Context(), ds.NewKey(fmt.Sprintf("/record/%d", i)), make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
	}
	s.db.Close() // not s.Close: as a crash leaves it
	testnet.DamagePages(t, path, 0.3, 0.6)
	s = openT(t, path)
	defer s.Close()
	back := 0
	for i := range 3000 {
		v, err := s.Get(t.Context(), ds.NewKey(fmt.Sprintf("/record/%d", i)))
		if err == nil {
			back++
			if !bytes.Equal(v, make([]byte, 100)) {
				t.Fatalf("record %d came back as %x", i, v)
			}
		}
	}
	t.Logf("%d of 3000 records read back", back)
	if back == 0 || back == 3000 {
		t.Errorf("%d of 3000 records read back", back)
	}
	if aside, _ := filepath.Glob(path + ".unreadable-*"); len(aside) != 1 {
		t.Errorf("set aside: %v, want one file", aside)
	}
}

// A file another process holds (a router still stopping, or a second
// one started on the same state directory) is not damage: Open says so
// and leaves the file be.
func TestFileInUseIsNotMovedAside(t *testing.T) {
	defer func(d time.Duration) { lockWait = d }(lockWait)
	lockWait = 200 * time.Millisecond
	path := filepath.Join(t.TempDir(), "dht.db")
	s := openT(t, path)
	defer s.Close()
	if err := s.Put(t.Context(), ds.NewKey("/kept"), []byte("yes")); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "another router running") {
		t.Fatalf("opening a file in use: %v, want an error that says another process has it", err)
	}
	if aside, _ := filepath.Glob(path + ".unreadable-*"); len(aside) != 0 {
		t.Fatal("a file in use was moved aside as damaged")
	}
	if v, err := s.Get(t.Context(), ds.NewKey("/kept")); err != nil || string(v) != "yes" {
		t.Fatalf("the first store lost its record: %q %v", v, err)
	}
}

// BenchmarkProviderRecordHeap is what each key a node provides keeps on
// the heap, with kad-dht's default datastore (a map) and with this one:
// the store plugin provides every file it adds, and a record lives 48
// hours.
func BenchmarkProviderRecordHeap(b *testing.B) {
	const n = 20000
	stores := []struct {
		name string
		open func(b *testing.B) ds.Batching
	}{
		{"map", func(*testing.B) ds.Batching { return dssync.MutexWrap(ds.NewMapDatastore()) }},
		{"bolt", func(b *testing.B) ds.Batching {
			s := openT(b, filepath.Join(b.TempDir(), "dht.db"))
			b.Cleanup(func() { s.Close() })
			return s
		}},
	}
	for _, st := range stores {
		b.Run(st.name, func(b *testing.B) {
			for range b.N {
				store := st.open(b)
				ps, err := pstoremem.NewPeerstore()
				if err != nil {
					b.Fatal(err)
				}
				self := test.RandPeerIDFatal(b)
				pm, err := records.NewProviderManager(self, ps, store)
				if err != nil {
					b.Fatal(err)
				}
				before := testnet.LiveHeap()
				start := time.Now()
				for i := range n {
					key, _ := mh.Sum(fmt.Appendf(nil, "file %d", i), mh.SHA2_256, -1)
					if err := pm.AddProvider(b.Context(), key, peer.AddrInfo{ID: self}); err != nil {
						b.Fatal(err)
					}
				}
				took := time.Since(start)
				after := testnet.LiveHeap()
				b.ReportMetric(float64(int64(after)-int64(before))/n, "heap-B/record")
				b.ReportMetric(float64(took.Nanoseconds())/n, "ns/record")
				pm.Close()
			}
		})
	}
}
