package store

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"time"

	"github.com/ipfs/go-cid"
	bolt "go.etcd.io/bbolt"

	"github.com/vecino/vecino/internal/damaged"
)

// pin keeps a DAG (every block under root) from garbage collection. Pins
// a user made have no origin; pins held for another node's replication
// request name that node.
type pin struct {
	Root   string    `json:"cid"`
	Name   string    `json:"name,omitempty"`
	Factor int       `json:"replication"`
	Origin string    `json:"origin,omitempty"`
	Size   int64     `json:"size"`
	Blocks int       `json:"blocks"`
	Added  time.Time `json:"added"`
}

// pinnedRoots is the set of pins' roots.
func pinnedRoots(pins []pin) map[string]bool {
	set := make(map[string]bool, len(pins))
	for _, p := range pins {
		set[p.Root] = true
	}
	return set
}

// pinDB is the pin set in a bbolt file: every change is a fsynced
// transaction, so pins survive a kill -9 and a power cut.
type pinDB struct {
	db *bolt.DB
	// lost names where an unreadable pins.db was set aside at open: the
	// pins it held are not all known, so garbage collection waits
	// (heldGC). salvaged is how many of them were read back from it.
	lost     string
	salvaged int
}

var (
	pinBucket = []byte("pins")
	// unpinnedBucket holds root -> when this node's user unpinned it
	// (Unix seconds), for the announcements that tell replicas.
	unpinnedBucket = []byte("unpinned")
)

func openPins(dir string) (*pinDB, error) {
	db, aside, err := openOrSetAside(filepath.Join(dir, "pins.db"), pinBucket, unpinnedBucket)
	if err != nil {
		return nil, err
	}
	p := &pinDB{db: db, lost: aside}
	if aside != "" {
		if err := p.salvage(); err != nil {
			damaged.Close(db)
			return nil, err
		}
	}
	return p, nil
}

// salvage puts back the pins, and the unpins, that can still be read from
// the pins.db set aside: a disk error that damaged some of its pages left
// the others. Each must be a pin of the CID it is kept under.
func (p *pinDB) salvage() error {
	root, err := damaged.Salvage(p.lost)
	if err != nil {
		slog.Warn("no pins could be read back from the pins.db set aside", "err", err)
		return nil
	}
	var pins, unpins map[string][]byte
	if b := root.Buckets[string(pinBucket)]; b != nil {
		pins = b.Values
	}
	if b := root.Buckets[string(unpinnedBucket)]; b != nil {
		unpins = b.Values
	}
	err = p.db.Update(func(tx *bolt.Tx) error {
		for k, v := range pins {
			var pn pin
			c, err := cid.Cast([]byte(k))
			if err != nil || json.Unmarshal(v, &pn) != nil || pn.Root != c.String() {
				continue
			}
			if err := tx.Bucket(pinBucket).Put([]byte(k), v); err != nil {
				return err
			}
			p.salvaged++
		}
		for k, v := range unpins {
			if _, err := cid.Cast([]byte(k)); err != nil || len(v) != 8 {
				continue
			}
			if err := tx.Bucket(unpinnedBucket).Put([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("put back what was read from %s: %w", p.lost, err)
	}
	slog.Warn("pins read back from the pins.db set aside", "pins", p.salvaged, "kept_as", p.lost)
	return nil
}

// openOrSetAside is openDB, except that a file that is no bbolt database
// (a disk error wrote over it) is set aside, kept whole, and a new one
// made; it returns where the old one went, or "".
func openOrSetAside(path string, buckets ...[]byte) (*bolt.DB, string, error) {
	db, gone, err := damaged.Open(path, func() (*bolt.DB, error) { return openDB(path, buckets...) })
	if gone == nil {
		return db, "", err
	}
	slog.Error("unreadable: set aside, starting a new one", "file", path, "err", gone.Cause, "kept_as", gone.Path)
	return db, gone.Path, err
}

// openDB opens a bbolt file with the buckets given.
func openDB(path string, buckets ...[]byte) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range buckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}

func (p *pinDB) Close() error { return damaged.Close(p.db) }

func (p *pinDB) Put(pn pin) error {
	c, err := cid.Decode(pn.Root)
	if err != nil {
		return fmt.Errorf("pin %q: %w", pn.Root, err)
	}
	v, err := json.Marshal(pn)
	if err != nil {
		return err
	}
	return p.db.Update(func(tx *bolt.Tx) error {
		if pn.Origin == "" { // pinned again by the user: no longer unpinned
			if err := tx.Bucket(unpinnedBucket).Delete(c.Bytes()); err != nil {
				return err
			}
		}
		return tx.Bucket(pinBucket).Put(c.Bytes(), v)
	})
}

// Unpin deletes the user's pin of c and remembers when, so that
// announcements tell the replicas for a while.
func (p *pinDB) Unpin(c cid.Cid, at time.Time) error {
	return p.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(pinBucket).Delete(c.Bytes()); err != nil {
			return err
		}
		return tx.Bucket(unpinnedBucket).Put(c.Bytes(), binary.BigEndian.AppendUint64(nil, uint64(at.Unix())))
	})
}

// Unpinned lists the newest roots, at most max, that the user unpinned
// since then, newest first, and forgets the others: older ones, and those
// past max, which no announcement would name again.
func (p *pinDB) Unpinned(since time.Time, max int) ([]string, error) {
	type tomb struct {
		root cid.Cid
		at   int64
	}
	var kept []tomb
	var old [][]byte
	err := p.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(unpinnedBucket).ForEach(func(k, v []byte) error {
			// k is bbolt's memory, valid only in this transaction: Cast
			// copies it, and so does Clone.
			c, err := cid.Cast(k)
			if err != nil || len(v) != 8 || int64(binary.BigEndian.Uint64(v)) < since.Unix() {
				old = append(old, bytes.Clone(k))
			} else {
				kept = append(kept, tomb{c, int64(binary.BigEndian.Uint64(v))})
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(kept, func(a, b tomb) int { return cmp.Compare(b.at, a.at) })
	if len(kept) > max {
		for _, t := range kept[max:] {
			old = append(old, t.root.Bytes())
		}
		kept = kept[:max]
	}
	out := make([]string, 0, len(kept))
	for _, t := range kept {
		out = append(out, t.root.String())
	}
	if len(old) > 0 {
		err = p.db.Update(func(tx *bolt.Tx) error {
			for _, k := range old {
				if err := tx.Bucket(unpinnedBucket).Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return out, err
}

func (p *pinDB) Get(c cid.Cid) (pin, bool) {
	var pn pin
	var ok bool
	p.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(pinBucket).Get(c.Bytes()); v != nil {
			ok = json.Unmarshal(v, &pn) == nil
		}
		return nil
	})
	return pn, ok
}

func (p *pinDB) Delete(c cid.Cid) error {
	return p.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(pinBucket).Delete(c.Bytes()) })
}

// All lists the pins in CID byte order.
func (p *pinDB) All() ([]pin, error) {
	var out []pin
	err := p.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(pinBucket).ForEach(func(k, v []byte) error {
			var pn pin
			if err := json.Unmarshal(v, &pn); err != nil {
				return fmt.Errorf("pin record %x: %w", k, err)
			}
			out = append(out, pn)
			return nil
		})
	})
	return out, err
}
