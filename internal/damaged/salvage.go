package damaged

import (
	"fmt"
	"os"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// A file set aside for damaged pages may still hold most of what was in
// it: the pages that were not hit. Salvage reads them with rawFile, down
// from the newer sound meta page through every bucket, skipping each page
// that does not read and what hangs under it.

// Bucket is what was read of a bucket: its keys and values, and the
// buckets in it.
type Bucket struct {
	Values  map[string][]byte
	Buckets map[string]*Bucket
}

// Count is how many values b and the buckets in it hold.
func (b *Bucket) Count() int {
	n := len(b.Values)
	for _, sub := range b.Buckets {
		n += sub.Count()
	}
	return n
}

// Salvage returns what can still be read from the bbolt file at path,
// which may have damaged pages, as its root bucket: how much was lost is
// not known.
func Salvage(path string) (*Bucket, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("salvage %s: %w", path, err)
	}
	defer file.Close()
	info, err := file.Stat()
	if err != nil {
		return nil, fmt.Errorf("salvage %s: %w", path, err)
	}
	f, err := newRawFile(file, info.Size())
	if err != nil {
		return nil, fmt.Errorf("salvage %s: %w", path, err)
	}
	return f.tree(true), nil
}

// SalvageInto reads what can still be read from the bbolt file at aside
// (Salvage) and puts it into db's buckets of the same names, made if need
// be, for the top-level buckets named (all if none are), in one
// transaction: a value already there is kept. It returns how many values
// were read from those buckets.
func SalvageInto(db *bolt.DB, aside string, names ...string) (int, error) {
	root, err := Salvage(aside)
	if err != nil {
		return 0, err
	}
	n := 0
	err = db.Update(func(tx *bolt.Tx) error {
		for name, sub := range root.Buckets {
			if len(names) > 0 && !slices.Contains(names, name) {
				continue
			}
			dst, err := tx.CreateBucketIfNotExists([]byte(name))
			if err != nil {
				return err
			}
			if err := restoreInto(dst, sub); err != nil {
				return fmt.Errorf("restore %s: %w", name, err)
			}
			n += sub.Count()
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("put back what was read from %s: %w", aside, err)
	}
	return n, nil
}

func restoreInto(dst *bolt.Bucket, b *Bucket) error {
	for k, v := range b.Values {
		if dst.Get([]byte(k)) != nil || dst.Bucket([]byte(k)) != nil {
			continue
		}
		if err := dst.Put([]byte(k), v); err != nil {
			return err
		}
	}
	for name, sub := range b.Buckets {
		into, err := dst.CreateBucketIfNotExists([]byte(name))
		if err != nil {
			continue // the name is a value's here
		}
		if err := restoreInto(into, sub); err != nil {
			return err
		}
	}
	return nil
}
