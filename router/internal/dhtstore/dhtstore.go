// Package dhtstore keeps the DHT's records in a file under the state
// directory instead of in memory.
//
// kad-dht keeps a provider record for every key the node provides, and
// for every key others ask it to hold, for 48 hours; and the values put
// to it. Its default datastore is a map on the heap, so a node that adds
// a file a second grows by megabytes an hour, and forgets every record
// when it restarts. Here they live in a bbolt file: the heap holds only
// what kad-dht caches, the file's pages are the kernel's to drop, and a
// node that reboots still answers for what it provided.
//
// The records are soft state (their owners put them again before they
// expire), so a damaged file is moved aside and a new one started, rather
// than keeping the router from starting.
package dhtstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	bolt "go.etcd.io/bbolt"

	"github.com/vecino/vecino/internal/damaged"
)

var bucket = []byte("dht")

// page is how many entries a query reads under one read transaction.
// kad-dht deletes records while it walks a query; a bbolt write that
// grows the file waits for every read transaction to end, so a query
// must not hold one open between pages.
const page = 256

// Store is a go-datastore Batching over one bbolt file.
type Store struct {
	db *bolt.DB
}

var _ ds.Batching = (*Store)(nil)

// lockWait is how long Open waits for another process (a router still
// stopping) to let go of the file.
var lockWait = 5 * time.Second

// Open opens the store at path, creating it if need be. A file that is no
// bbolt database, or has damaged pages (damaged.Check: bbolt panics on
// them, and this is the router), is set aside as
// path.unreadable-TIME and a new one started; a file another process holds
// is an error, not damage.
func Open(path string, log *slog.Logger) (*Store, error) {
	db, gone, err := damaged.Open(path, func() (*bolt.DB, error) { return open(path) })
	if gone != nil && err == nil {
		// What the sound pages hold comes back: kad-dht checks each
		// record's age as it reads it.
		n, _ := damaged.SalvageInto(db, gone.Path, string(bucket))
		log.Warn("DHT records unreadable; starting with what could be read back", "path", path, "kept_as", gone.Path, "err", gone.Cause, "records", n)
	}
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("open %s: another process has it open after %s (is another router running on this state directory?)", path, lockWait)
	}
	if err != nil {
		return nil, err
	}
	return &Store{db: db}, nil
}

func open(path string) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockWait, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}

// Get returns a copy of the value at k.
func (s *Store) Get(_ context.Context, k ds.Key) (value []byte, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucket).Get(k.Bytes())
		if v == nil {
			return ds.ErrNotFound
		}
		value = bytes.Clone(v)
		return nil
	})
	return value, err
}

func (s *Store) Has(ctx context.Context, k ds.Key) (bool, error) {
	_, err := s.GetSize(ctx, k)
	if errors.Is(err, ds.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

func (s *Store) GetSize(_ context.Context, k ds.Key) (size int, err error) {
	size = -1
	err = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucket).Get(k.Bytes())
		if v == nil {
			return ds.ErrNotFound
		}
		size = len(v)
		return nil
	})
	return size, err
}

func (s *Store) Put(ctx context.Context, k ds.Key, value []byte) error {
	b := s.newBatch()
	b.Put(ctx, k, value)
	return b.Commit(ctx)
}

func (s *Store) Delete(ctx context.Context, k ds.Key) error {
	b := s.newBatch()
	b.Delete(ctx, k)
	return b.Commit(ctx)
}

// Sync does nothing: every write is on disk when it returns.
func (s *Store) Sync(context.Context, ds.Key) error { return nil }

func (s *Store) Close() error { return damaged.Close(s.db) }

// Query walks the keys under q.Prefix in order, a page at a time; the
// filters, orders, offset and limit are go-datastore's own.
func (s *Store) Query(_ context.Context, q dsq.Query) (dsq.Results, error) {
	prefix := []byte(ds.NewKey(q.Prefix).String())
	if !bytes.Equal(prefix, []byte("/")) {
		prefix = append(prefix, '/')
	}
	var (
		buf  []dsq.Entry
		next = prefix // the first key not yet read
		done bool
	)
	fill := func() error {
		return s.db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucket).Cursor()
			k, v := c.Seek(next)
			for ; k != nil && bytes.HasPrefix(k, prefix) && len(buf) < page; k, v = c.Next() {
				e := dsq.Entry{Key: string(k), Size: len(v)}
				if !q.KeysOnly {
					e.Value = bytes.Clone(v)
				}
				buf = append(buf, e)
			}
			if k == nil || !bytes.HasPrefix(k, prefix) {
				done = true
			} else {
				next = bytes.Clone(k)
			}
			return nil
		})
	}
	it := dsq.Iterator{Next: func() (dsq.Result, bool) {
		if len(buf) == 0 && !done {
			if err := fill(); err != nil {
				done = true
				return dsq.Result{Error: fmt.Errorf("query %s: %w", q.Prefix, err)}, true
			}
		}
		if len(buf) == 0 {
			return dsq.Result{}, false
		}
		e := buf[0]
		buf = buf[1:]
		return dsq.Result{Entry: e}, true
	}}
	// The prefix is already applied; the rest is go-datastore's.
	rest := q
	rest.Prefix = ""
	return dsq.NaiveQueryApply(rest, dsq.ResultsFromIterator(q, it)), nil
}

// Batch collects puts and deletes and writes them in one transaction.
func (s *Store) Batch(context.Context) (ds.Batch, error) { return s.newBatch(), nil }

type op struct {
	key   []byte
	value []byte // nil: delete
}

type batch struct {
	s   *Store
	ops []op
}

func (s *Store) newBatch() *batch { return &batch{s: s} }

func (b *batch) Put(_ context.Context, k ds.Key, value []byte) error {
	v := bytes.Clone(value)
	if v == nil {
		v = []byte{} // an empty value, not a delete
	}
	b.ops = append(b.ops, op{key: k.Bytes(), value: v})
	return nil
}

func (b *batch) Delete(_ context.Context, k ds.Key) error {
	b.ops = append(b.ops, op{key: k.Bytes()})
	return nil
}

func (b *batch) Commit(context.Context) error {
	if len(b.ops) == 0 {
		return nil
	}
	err := b.s.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucket)
		for _, o := range b.ops {
			var err error
			if o.value == nil {
				err = bk.Delete(o.key)
			} else {
				err = bk.Put(o.key, o.value)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", o.key, err)
			}
		}
		return nil
	})
	b.ops = b.ops[:0]
	if err != nil {
		return fmt.Errorf("write DHT records: %w", err)
	}
	return nil
}
