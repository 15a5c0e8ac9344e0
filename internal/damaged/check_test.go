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
