package damaged

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
)

// rawFile reads a bbolt file's pages itself, with bbolt's page layout (v1.3,
// version 2 of the format, little-endian as on amd64 and arm64), each read
// from the file as it is wanted: no mapping, every offset checked, nothing
// that can panic or fault on what a disk error left. A page that is not
// what should be there (not in the file, or past the meta page's count of
// pages; another page's id; the wrong kind; counts or offsets out of its
// bounds; met twice) is noted and skipped, with what hangs under it.
type rawFile struct {
	r        io.ReaderAt
	size     int64
	pageSize int
	meta     []byte // the newer sound meta, after its page header
	seen     map[uint64]bool
	problem  error // the first page skipped, and why
	// steps bounds the elements read: a sound file holds fewer than a
	// sixteenth of its size, but damaged ones can point many elements at
	// the same bytes, over and over, down buckets kept inline.
	steps int64
}

// bbolt's on-disk constants (page.go, db.go, bucket.go, freelist.go).
const (
	pageHeader     = 16 // id u64, flags u16, count u16, overflow u32
	elementSize    = 16 // branch: pos, ksize u32, pgid u64; leaf: flags, pos, ksize, vsize u32
	branchPage     = 0x01
	leafPage       = 0x02
	freelistPage   = 0x10
	bucketLeaf     = 0x01
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	bucketHeader   = 16 // root pgid u64, sequence u64
	metaSize       = 64 // magic, version, page size, flags u32; root bucket; freelist, pgid, txid, checksum u64
	metaChecksumAt = 56
	noFreelist     = 0xffffffffffffffff
)

var le = binary.LittleEndian

// errNoMeta says neither meta page holds: bbolt will not open the file.
var errNoMeta = errors.New("no sound meta page: not a bbolt file, or both its meta pages are damaged")

// newRawFile finds the page size and the newer of the two meta pages whose
// checksum holds, as bbolt does.
func newRawFile(r io.ReaderAt, size int64) (*rawFile, error) {
	f := &rawFile{r: r, size: size, seen: map[uint64]bool{}, steps: size/8 + 1024}
	first := f.read(pageHeader, metaSize)
	sizes := []int{4096, 16384, 65536}
	if first != nil {
		sizes = append([]int{int(le.Uint32(first[8:]))}, sizes...)
	}
	for _, ps := range sizes {
		for i := range 2 {
			m := f.read(int64(i)*int64(ps)+pageHeader, metaSize)
			if soundMeta(m, ps) && (f.meta == nil || le.Uint64(m[48:]) > le.Uint64(f.meta[48:])) {
				f.meta = m
			}
		}
		if f.meta != nil {
			f.pageSize = ps
			return f, nil
		}
	}
	return nil, errNoMeta
}

func soundMeta(m []byte, size int) bool {
	if m == nil || le.Uint32(m) != boltMagic || le.Uint32(m[4:]) != boltVersion || int(le.Uint32(m[8:])) != size || size < 512 {
		return false
	}
	h := fnv.New64a()
	h.Write(m[:metaChecksumAt])
	return h.Sum64() == le.Uint64(m[metaChecksumAt:])
}

func (f *rawFile) root() uint64      { return le.Uint64(f.meta[16:]) }
func (f *rawFile) freelist() uint64  { return le.Uint64(f.meta[32:]) }
func (f *rawFile) highWater() uint64 { return le.Uint64(f.meta[40:]) }

// read is n bytes at off, or nil if they are not all in the file.
func (f *rawFile) read(off int64, n int) []byte {
	if off < 0 || n < 0 || off > f.size || int64(n) > f.size-off {
		return nil
	}
	b := make([]byte, n)
	if _, err := f.r.ReadAt(b, off); err != nil {
		return nil
	}
	return b
}

// skip notes the first page skipped.
func (f *rawFile) skip(id uint64, why string, args ...any) {
	if f.problem == nil {
		f.problem = fmt.Errorf("page %d: %s", id, fmt.Sprintf(why, args...))
	}
}

// step counts an element read, and says whether reading goes on.
func (f *rawFile) step(id uint64) bool {
	if f.steps--; f.steps >= 0 {
		return true
	}
	if f.steps == -1 {
		f.skip(id, "more elements than the file can hold: pages or buckets that point at each other")
	}
	return false
}

// page returns the bytes of page id, overflow included, of one of kinds.
func (f *rawFile) page(id uint64, kinds uint16) []byte {
	switch {
	case f.seen[id]:
		f.skip(id, "met twice")
		return nil
	case id < 2 || id >= f.highWater():
		f.skip(id, "out of the file's %d pages", f.highWater())
		return nil
	}
	f.seen[id] = true
	off := int64(id) * int64(f.pageSize)
	head := f.read(off, pageHeader)
	switch {
	case head == nil:
		f.skip(id, "past the end of the file")
		return nil
	case le.Uint64(head) != id:
		f.skip(id, "holds page %d", le.Uint64(head))
		return nil
	case le.Uint16(head[8:])&kinds == 0:
		f.skip(id, "of kind %#x, not %#x", le.Uint16(head[8:]), kinds)
		return nil
	}
	overflow := uint64(le.Uint32(head[12:]))
	if id+overflow >= f.highWater() {
		f.skip(id, "its %d overflow pages run past the file's %d pages", overflow, f.highWater())
		return nil
	}
	p := f.read(off, int(overflow+1)*f.pageSize)
	if p == nil {
		f.skip(id, "its %d overflow pages run past the end of the file", overflow)
		return nil
	}
	for o := range overflow {
		f.seen[id+1+o] = true
	}
	return p
}

// walk calls fn with each key and value (and its leaf flags) of the tree
// whose root is page id.
func (f *rawFile) walk(id uint64, fn func(k, v []byte, flags uint32)) {
	p := f.page(id, branchPage|leafPage)
	if p == nil {
		return
	}
	if le.Uint16(p[8:])&leafPage != 0 {
		f.leaf(id, p, fn)
		return
	}
	for i := range int(le.Uint16(p[10:])) {
		e := slice(p, pageHeader+i*elementSize, elementSize)
		if e == nil {
			f.skip(id, "element %d past the page's end", i)
			return
		}
		if !f.step(id) {
			return
		}
		f.walk(le.Uint64(e[8:]), fn)
	}
}

// leaf calls fn with each element of the leaf page p (page id, or 0 for a
// bucket kept inline).
func (f *rawFile) leaf(id uint64, p []byte, fn func(k, v []byte, flags uint32)) {
	if len(p) < pageHeader || le.Uint16(p[8:])&leafPage == 0 {
		f.skip(id, "an inline bucket that is no leaf page")
		return
	}
	for i := range int(le.Uint16(p[10:])) {
		at := pageHeader + i*elementSize
		e := slice(p, at, elementSize)
		if e == nil {
			f.skip(id, "element %d past the page's end", i)
			return
		}
		if !f.step(id) {
			return
		}
		flags, pos, ksize, vsize := le.Uint32(e), int64(le.Uint32(e[4:])), int64(le.Uint32(e[8:])), int64(le.Uint32(e[12:]))
		kv := slice(p, int(int64(at)+pos), int(ksize+vsize))
		if kv == nil {
			f.skip(id, "element %d's key and value past the page's end", i)
			continue
		}
		fn(kv[:ksize], kv[ksize:], flags)
	}
}

// bucket reads the bucket whose elements each calls fn with, and the
// buckets in it; keep says whether to keep its values.
func (f *rawFile) bucket(id uint64, each func(fn func(k, v []byte, flags uint32)), keep bool) *Bucket {
	b := &Bucket{Values: map[string][]byte{}, Buckets: map[string]*Bucket{}}
	each(func(k, v []byte, flags uint32) {
		switch {
		case flags&bucketLeaf == 0:
			if keep {
				b.Values[string(k)] = v
			}
		case len(v) < bucketHeader:
			f.skip(id, "bucket %q's header cut short", k)
		case le.Uint64(v) != 0:
			sub := le.Uint64(v)
			b.Buckets[string(k)] = f.bucket(sub, func(fn func(k, v []byte, flags uint32)) { f.walk(sub, fn) }, keep)
		default: // inline: a leaf page follows the header within the value
			inline := v[bucketHeader:]
			b.Buckets[string(k)] = f.bucket(id, func(fn func(k, v []byte, flags uint32)) { f.leaf(0, inline, fn) }, keep)
		}
	})
	return b
}

// tree reads every bucket from the root.
func (f *rawFile) tree(keep bool) *Bucket {
	root := f.root()
	return f.bucket(root, func(fn func(k, v []byte, flags uint32)) { f.walk(root, fn) }, keep)
}

// checkFreelist checks the free list page, if the file keeps one: bbolt
// panics on one that is not, when it opens the file.
func (f *rawFile) checkFreelist() {
	id := f.freelist()
	if id == noFreelist {
		return
	}
	p := f.page(id, freelistPage)
	if p == nil {
		return
	}
	count, at := int64(le.Uint16(p[10:])), int64(pageHeader)
	if count == 0xFFFF { // the count is the first element
		if c := slice(p, pageHeader, 8); c != nil {
			count, at = int64(le.Uint64(c)), pageHeader+8
		}
	}
	if count < 0 || count > (int64(len(p))-at)/8 {
		f.skip(id, "a free list of %d pages does not fit", count)
		return
	}
	for i := range count {
		if free := le.Uint64(p[at+8*i:]); free < 2 || free >= f.highWater() || f.seen[free] {
			f.skip(id, "frees page %d, which is a meta page, past the file's pages, or in use", free)
			return
		}
	}
}

// slice is b[at:at+n], or nil if that is not within b.
func slice(b []byte, at, n int) []byte {
	if at < 0 || n < 0 || at > len(b) || n > len(b)-at {
		return nil
	}
	return b[at : at+n]
}
