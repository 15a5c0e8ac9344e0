package damaged

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/vecino/vecino/internal/testnet"
)

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
// SalvageInto puts them into a new file as they were.
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
	if n, err := SalvageInto(db, filepath.Join(dir, "old.db")); err != nil || n != len(want) {
		t.Fatalf("put back %d values (%v), want %d", n, err, len(want))
	}
	got := map[string]string{}
	err = db.View(func(tx *bolt.Tx) error {
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
