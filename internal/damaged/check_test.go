package damaged

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
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

			damage(t, path)
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
	damage(t, path)
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

// damage writes over the pages of path's second quarter, as a disk error
// would, and leaves its meta pages (the first two) as they were.
func damage(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	page := os.Getpagesize()
	for i := len(data) / 4 / page * page; i < len(data)/2; i++ {
		data[i] = 0xa5
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
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
