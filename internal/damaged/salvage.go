package damaged

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// A file set aside for damaged pages may still hold most of what was in
// it: the pages that were not hit. Salvage reads them itself, from the
// file's bytes, with bbolt's page layout (v1.3, version 2 of the format,
// little-endian as on amd64 and arm64): from the newer sound meta page,
// down the tree of branch pages to the bucket wanted, and down its tree to
// the leaves. A page that does not look like what should be there (wrong
// kind, counts or offsets out of its bounds, seen twice) is skipped with
// what hangs under it; the rest is read. Nothing here can panic or fault:
// every offset is checked, and no file is mapped.

// bbolt's on-disk constants (page.go, db.go, bucket.go).
const (
	pageHeader     = 16 // id u64, flags u16, count u16, overflow u32
	elementSize    = 16 // branch: pos, ksize u32, pgid u64; leaf: flags, pos, ksize, vsize u32
	branchPage     = 0x01
	leafPage       = 0x02
	metaPage       = 0x04
	bucketLeaf     = 0x01
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	bucketHeader   = 16 // root pgid u64, sequence u64
	metaChecksumAt = 56 // within the meta, after the page header
)

var le = binary.LittleEndian

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
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("salvage %s: %w", path, err)
	}
	root, err := salvage(data)
	if err != nil {
		return nil, fmt.Errorf("salvage %s: %w", path, err)
	}
	return root, nil
}

// salvage is Salvage of the file's bytes.
func salvage(data []byte) (*Bucket, error) {
	f, root, err := newRawFile(data)
	if err != nil {
		return nil, err
	}
	return f.bucket(func(fn func(k, v []byte, flags uint32)) { f.walk(root, fn) }), nil
}

// bucket reads the bucket whose elements each calls fn with.
func (f *rawFile) bucket(each func(fn func(k, v []byte, flags uint32))) *Bucket {
	b := &Bucket{Values: map[string][]byte{}, Buckets: map[string]*Bucket{}}
	each(func(k, v []byte, flags uint32) {
		switch {
		case flags&bucketLeaf == 0:
			b.Values[string(k)] = bytes.Clone(v)
		case len(v) < bucketHeader:
		case le.Uint64(v) != 0:
			sub := le.Uint64(v)
			b.Buckets[string(k)] = f.bucket(func(fn func(k, v []byte, flags uint32)) { f.walk(sub, fn) })
		default: // inline: a leaf page follows the header within the value
			inline := v[bucketHeader:]
			b.Buckets[string(k)] = f.bucket(func(fn func(k, v []byte, flags uint32)) { f.leaf(inline, fn) })
		}
	})
	return b
}

// Restore puts what b holds into tx's buckets of the same names, made if
// need be, for the top-level buckets named (all if none are): a value
// already there is kept.
func Restore(tx *bolt.Tx, b *Bucket, names ...string) error {
	for name, sub := range b.Buckets {
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
	}
	return nil
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

type rawFile struct {
	data     []byte
	pageSize int
	seen     map[uint64]bool
}

// newRawFile finds the page size and the root bucket's page from the newer
// of the two meta pages whose checksum holds.
func newRawFile(data []byte) (*rawFile, uint64, error) {
	var best []byte
	for _, size := range []int{int(readU32(data, pageHeader+8)), 4096, 16384, 65536} {
		for i := range 2 {
			m := slice(data, i*size+pageHeader, metaChecksumAt+8)
			if !soundMeta(m, size) {
				continue
			}
			if best == nil || le.Uint64(m[48:]) > le.Uint64(best[48:]) {
				best = m
			}
		}
		if best != nil {
			return &rawFile{data: data, pageSize: size, seen: map[uint64]bool{}}, le.Uint64(best[16:]), nil
		}
	}
	return nil, 0, errors.New("no sound meta page: not a bbolt file, or both its meta pages are damaged")
}

func soundMeta(m []byte, size int) bool {
	if m == nil || le.Uint32(m) != boltMagic || le.Uint32(m[4:]) != boltVersion || int(le.Uint32(m[8:])) != size || size < 1024 {
		return false
	}
	h := fnv.New64a()
	h.Write(m[:metaChecksumAt])
	return h.Sum64() == le.Uint64(m[metaChecksumAt:])
}

// page returns the bytes of page id, overflow included, if they lie in the
// file and it was not met before.
func (f *rawFile) page(id uint64) []byte {
	if f.seen[id] || id < 2 || id > uint64(len(f.data)/f.pageSize) {
		return nil
	}
	f.seen[id] = true
	head := slice(f.data, int(id)*f.pageSize, pageHeader)
	if head == nil || le.Uint64(head) != id {
		return nil // not the page it should be
	}
	return slice(f.data, int(id)*f.pageSize, (int(le.Uint32(head[12:]))+1)*f.pageSize)
}

// walk calls fn with each key and value (and its leaf flags) of the tree
// whose root is page id, skipping the pages that do not read.
func (f *rawFile) walk(id uint64, fn func(k, v []byte, flags uint32)) {
	p := f.page(id)
	if p == nil {
		return
	}
	switch le.Uint16(p[8:]) & (branchPage | leafPage | metaPage) {
	case branchPage:
		for i := range int(le.Uint16(p[10:])) {
			e := slice(p, pageHeader+i*elementSize, elementSize)
			if e == nil {
				return
			}
			f.walk(le.Uint64(e[8:]), fn)
		}
	case leafPage:
		f.leaf(p, fn)
	}
}

// leaf calls fn with each element of the leaf page p.
func (f *rawFile) leaf(p []byte, fn func(k, v []byte, flags uint32)) {
	if len(p) < pageHeader || le.Uint16(p[8:])&leafPage == 0 {
		return
	}
	for i := range int(le.Uint16(p[10:])) {
		at := pageHeader + i*elementSize
		e := slice(p, at, elementSize)
		if e == nil {
			return
		}
		flags, pos, ksize, vsize := le.Uint32(e), int(le.Uint32(e[4:])), int(le.Uint32(e[8:])), int(le.Uint32(e[12:]))
		kv := slice(p, at+pos, ksize+vsize)
		if kv == nil || ksize < 0 || vsize < 0 {
			continue
		}
		fn(kv[:ksize], kv[ksize:], flags)
	}
}

// slice is b[at:at+n], or nil if that is not within b.
func slice(b []byte, at, n int) []byte {
	if at < 0 || n < 0 || at > len(b) || n > len(b)-at {
		return nil
	}
	return b[at : at+n]
}

func readU32(b []byte, at int) uint32 {
	if s := slice(b, at, 4); s != nil {
		return le.Uint32(s)
	}
	return 0
}
