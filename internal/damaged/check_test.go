package damaged

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/vecino/vecino/internal/testnet"
)

// TestDamagedPagesAreSetAside: a bbolt file whose meta pages are sound but
// whose other pages were written over opens without error, and reading it
// would panic. Open sets it aside whole and opens a new one, and the
// process that asked lives on; a sound file is opened as it is.
func TestDamagedPagesAreSetAside(t *testing.T) {
	for _, o := range []struct {
		name string
		opts *bolt.Options
	}{{"freelist kept", nil}, {"freelist not kept", &bolt.Options{NoFreelistSync: true}}} {
		t.Run(o.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			open := func() (*bolt.DB, error) { return bolt.Open(path, 0o600, o.opts) }
			fill(t, path, o.opts)
			if err := Check(path); err != nil {
				t.Fatalf("a sound file: %v", err)
			}
			db, gone, err := Open(path, open)
			if err != nil || gone != nil {
				t.Fatalf("a sound file opened with %v, set aside as %+v", err, gone)
			}
			db.Close()

			testnet.DamagePages(t, path, 0.25, 0.5)
			was, _ := os.ReadFile(path)
			db, gone, err = Open(path, open)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if gone == nil || !errors.Is(gone.Cause, ErrDamaged) {
				t.Fatalf("a damaged file was opened (gone %+v)", gone)
			}
			t.Logf("set aside: %v", gone.Cause)
			if kept, _ := os.ReadFile(gone.Path); !bytes.Equal(kept, was) {
				t.Errorf("%s does not hold what the damaged file did", gone.Path)
			}
			if err := db.View(func(tx *bolt.Tx) error {
				return tx.ForEach(func([]byte, *bolt.Bucket) error { return errors.New("a bucket") })
			}); err != nil {
				t.Errorf("the new file is not empty: %v", err)
			}
		})
	}
	if err := Check(filepath.Join(t.TempDir(), "none.db")); err != nil {
		t.Errorf("no file: %v", err)
	}
}

// TestCleanlyClosedFilesAreNotReadThrough: the pages of a file Closed said
// was closed cleanly are not checked at the next Open (damage bbolt does
// not see at open goes unnoticed then, until the file is left open by the
// crash it causes), and those of one left open are.
func TestCleanlyClosedFilesAreNotReadThrough(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	open := func() (*bolt.DB, error) { return bolt.Open(path, 0o600, nil) }
	fill(t, path, nil)
	db, _, err := Open(path, open)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	Closed(path)
	testnet.DamagePages(t, path, 0.25, 0.5)
	db, gone, err := Open(path, open)
	if err != nil || gone != nil {
		t.Fatalf("a file closed cleanly was checked: set aside %+v, %v", gone, err)
	}
	db.Close() // and not Closed: as if the process was killed
	if _, gone, _ = Open(path, open); gone == nil {
		t.Fatal("a file left open was not checked")
	}
}

// fill writes enough to path for a tree of many pages.
func fill(t *testing.T, path string, opts *bolt.Options) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("records"))
		if err != nil {
			return err
		}
		for i := range 5000 {
			if err := b.Put(fmt.Appendf(nil, "key %06d", i), bytes.Repeat([]byte{byte(i)}, 100)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// BenchmarkCheck: what the check adds to a plugin's start, for a file of
// 10,000 values of 1 KiB (the chat history of BenchmarkChatMemory).
func BenchmarkCheck(b *testing.B) {
	path := filepath.Join(b.TempDir(), "state.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucket([]byte("records"))
		if err != nil {
			return err
		}
		for i := range 10_000 {
			if err := bk.Put(fmt.Appendf(nil, "%08d", i), bytes.Repeat([]byte{'x'}, 1024)); err != nil {
				return err
			}
		}
		return nil
	})
	db.Close()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := Check(path); err != nil {
			b.Fatal(err)
		}
	}
	st, _ := os.Stat(path)
	b.ReportMetric(float64(st.Size())/(1<<20), "file-MiB")
}

// TestSalvageReadsAroundTheDamage: from a file with damaged pages, Salvage
// gets the keys before the damage and those after it, each with the value
// it had.
func TestSalvageReadsAroundTheDamage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	fill(t, path, nil)
	testnet.DamagePages(t, path, 0.25, 0.5)
	root, err := Salvage(path)
	if err != nil {
		t.Fatal(err)
	}
	got := root.Buckets["records"].Values
	var first, last bool
	for k, v := range got {
		var i int
		if _, err := fmt.Sscanf(k, "key %06d", &i); err != nil || !bytes.Equal(v, bytes.Repeat([]byte{byte(i)}, 100)) {
			t.Fatalf("salvaged %q = %x", k, v)
		}
		first, last = first || i == 0, last || i == 4999
	}
	t.Logf("salvaged %d of 5000", len(got))
	if !first || !last || len(got) >= 5000 {
		t.Errorf("salvaged %d of 5000 (the first: %v, the last: %v)", len(got), first, last)
	}
}

// FuzzSalvage: whatever bytes a file holds, reading it through (Salvage,
// Check) ends without a panic, and what Salvage returns was in the file.
func FuzzSalvage(f *testing.F) {
	path := filepath.Join(f.TempDir(), "seed.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{PageSize: 1024})
	if err != nil {
		f.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error {
		b, _ := tx.CreateBucket([]byte("records"))
		for i := range 40 {
			b.Put(fmt.Appendf(nil, "key %d", i), bytes.Repeat([]byte{'v'}, i))
		}
		tx.CreateBucket([]byte("inline"))
		tx.Bucket([]byte("inline")).Put([]byte("k"), []byte("v"))
		return nil
	})
	db.Close()
	seed, _ := os.ReadFile(path)
	f.Add(seed)
	f.Add([]byte("not a database"))
	var within func(t *testing.T, data []byte, b *Bucket, budget *int)
	within = func(t *testing.T, data []byte, b *Bucket, budget *int) {
		for k, v := range b.Values {
			if *budget--; *budget < 0 {
				return // enough looked at: each look scans the file
			}
			if !bytes.Contains(data, []byte(k)) || !bytes.Contains(data, v) {
				t.Fatalf("salvaged %q = %q, which the file does not hold", k, v)
			}
		}
		for _, sub := range b.Buckets {
			within(t, data, sub, budget)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		raw, err := newRawFile(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		budget := 64
		within(t, data, raw.tree(true), &budget)
		raw.seen = map[uint64]bool{}
		raw.tree(false)
		raw.checkFreelist()
	})
}

// TestSalvageRestoresBucketsInBuckets: a sound file's buckets, those in
// buckets and the small ones bbolt keeps inline, are read whole, and
// Restore puts them into a new file as they were.
func TestSalvageRestoresBucketsInBuckets(t *testing.T) {
	dir := t.TempDir()
	want := map[string]string{}
	old, err := bolt.Open(filepath.Join(dir, "old.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = old.Update(func(tx *bolt.Tx) error {
		rooms, _ := tx.CreateBucket([]byte("rooms"))
		for r, n := range map[string]int{"lobby": 500, "garden": 2} { // garden stays inline
			b, _ := rooms.CreateBucket([]byte(r))
			for i := range n {
				k, v := fmt.Sprintf("%08d", i), fmt.Sprintf("%s message %d", r, i)
				want["rooms/"+r+"/"+k] = v
				b.Put([]byte(k), []byte(v))
			}
		}
		mail, _ := tx.CreateBucket([]byte("mail"))
		want["mail/dave"] = "sealed"
		return mail.Put([]byte("dave"), []byte("sealed"))
	})
	old.Close()
	if err != nil {
		t.Fatal(err)
	}
	root, err := Salvage(filepath.Join(dir, "old.db"))
	if err != nil {
		t.Fatal(err)
	}
	if root.Count() != len(want) {
		t.Fatalf("salvaged %d values of a sound file, want %d", root.Count(), len(want))
	}
	db, err := bolt.Open(filepath.Join(dir, "new.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got := map[string]string{}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := Restore(tx, root); err != nil {
			return err
		}
		var walk func(prefix string, b *bolt.Bucket)
		walk = func(prefix string, b *bolt.Bucket) {
			b.ForEach(func(k, v []byte) error {
				if v == nil {
					walk(prefix+string(k)+"/", b.Bucket(k))
				} else {
					got[prefix+string(k)] = string(v)
				}
				return nil
			})
		}
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error { walk(string(name)+"/", b); return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, want) {
		t.Errorf("restored %d values; differing from what was written", len(got))
	}
}

// TestSoundFilesPassAndSalvageWhole: files bbolt wrote through many
// transactions (values small and large enough to overflow a page, buckets
// in buckets, buckets small enough to be kept inline, deletes that free
// pages, with and without a free list kept) pass the check, and Salvage
// reads every value of them: the check must never set a sound file aside.
func TestSoundFilesPassAndSalvageWhole(t *testing.T) {
	for _, opts := range []*bolt.Options{nil, {NoFreelistSync: true, FreelistType: bolt.FreelistMapType}, {PageSize: 16384}} {
		path := filepath.Join(t.TempDir(), "churn.db")
		db, err := bolt.Open(path, 0o600, opts)
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(1, 2))
		want := map[string]int{}
		for tx := range 300 {
			err := db.Update(func(tx *bolt.Tx) error {
				for range 1 + r.IntN(40) {
					top := fmt.Sprintf("top%d", r.IntN(3))
					b, _ := tx.CreateBucketIfNotExists([]byte(top))
					sub := fmt.Sprintf("sub%d", r.IntN(20))
					s, _ := b.CreateBucketIfNotExists([]byte(sub))
					k := fmt.Sprintf("%05d", r.IntN(2000))
					if r.IntN(4) == 0 {
						s.Delete([]byte(k))
						delete(want, top+"/"+sub+"/"+k)
						continue
					}
					size := r.IntN(200)
					if r.IntN(50) == 0 {
						size = 20000 // overflow pages
					}
					s.Put([]byte(k), bytes.Repeat([]byte{'v'}, size))
					want[top+"/"+sub+"/"+k] = size
				}
				return nil
			})
			if err != nil {
				t.Fatalf("tx %d: %v", tx, err)
			}
		}
		db.Close()
		if err := Check(path); err != nil {
			t.Fatalf("options %+v: a sound file fails the check: %v", opts, err)
		}
		root, err := Salvage(path)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		for top, b := range root.Buckets {
			for sub, s := range b.Buckets {
				for k, v := range s.Values {
					got[top+"/"+sub+"/"+k] = len(v)
				}
			}
		}
		if !maps.Equal(got, want) {
			t.Errorf("options %+v: salvaged %d values of a sound file, want %d", opts, len(got), len(want))
		}
	}
}
