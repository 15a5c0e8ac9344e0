package store

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/vecino/vecino/internal/damaged"
)

// blockstore keeps blocks appended to pack files (packs/NNNNNNNN.pack, at
// most 256 MiB each) and an index, CID -> where, in a bbolt file.
// A file per block cost an inode each: on the ext4 root of a test VM with
// no journal, allocating one meant scanning inodes freed in the last
// minutes, and that was 40 % of an add's CPU.
//
// Each record in a pack says what it is ("VB", the CID, the data length,
// the data), so the index can be rebuilt from the packs. Put appends and
// remembers the block in memory; Sync makes the packs durable and then
// commits what was appended, with how far each pack is committed, in one
// transaction. After a crash, what lies past a pack's committed end is
// read back, checked against its hashes and indexed, and a torn tail is
// cut off. Nothing that depends on a block (a pin) is recorded before the
// Sync that covers it. Every read checks the data against the CID's hash,
// so a rotten block is never served: a copy goes to corrupt/, it leaves
// the index, and it is reported. Garbage collection drops blocks from the
// index, punches holes where their data was and deletes empty packs.
type blockstore struct {
	dir     string // the packs
	corrupt string
	quota   int64
	packMax int64
	db      *bolt.DB
	// rebuilt names where an unreadable index was set aside at open (the
	// index was then rebuilt from the packs), or "".
	rebuilt string

	used   atomic.Int64
	count  atomic.Int64
	bad    atomic.Int64 // corrupt blocks found on read
	onCrpt func(cid.Cid)
	onPut  func(blocks.Block) // called for each block newly stored

	// mu is held shared by every read and append, and exclusively to
	// take a consistent cut for Sync and to drop a pack.
	mu      sync.RWMutex
	packs   sync.Map // uint32 -> *os.File
	appMu   sync.Mutex
	cur     uint32 // the pack appended to
	curEnd  int64
	dirty   map[uint32]bool // packs appended to since the last Sync
	pendMu  sync.Mutex
	pending map[string]loc // appended, not yet in the index
	syncMu  sync.Mutex
	syncing atomic.Bool
	noPunch atomic.Bool // the file system said no to punching holes
}

// loc is where a block's data lies.
type loc struct {
	pack uint32
	off  int64
	n    uint32
}

func (l loc) bytes() []byte {
	var b [16]byte
	binary.BigEndian.PutUint32(b[0:], l.pack)
	binary.BigEndian.PutUint64(b[4:], uint64(l.off))
	binary.BigEndian.PutUint32(b[12:], l.n)
	return b[:]
}

func parseLoc(b []byte) (loc, bool) {
	if len(b) != 16 {
		return loc{}, false
	}
	return loc{binary.BigEndian.Uint32(b), int64(binary.BigEndian.Uint64(b[4:])), binary.BigEndian.Uint32(b[12:])}, true
}

const (
	defaultPackMax = 256 << 20
	maxBlockSize   = 4 << 20 // bitswap's limit is 2 MiB
	maxCIDSize     = 1024
	recordMagic    = "VB"
	pendingFlush   = 1024 // blocks appended before a background Sync: what a crash leaves to read back
)

var (
	indexBucket = []byte("blocks")
	packBucket  = []byte("packs") // pack id -> committed end
)

// errNotFound is returned for blocks the store does not hold.
var errNotFound = errors.New("block not found")

// quotaError says a write would take the store past its quota.
type quotaError struct{ need, free, quota int64 }

func (e *quotaError) Error() string {
	if e.free < 0 { // quota_mib lowered below what the store held
		return fmt.Sprintf("store quota reached: need %d bytes, and %d MiB is already held, over the %d MiB quota ([plugins.store] quota_mib); unpin to make room", e.need, (e.quota-e.free)>>20, e.quota>>20)
	}
	return fmt.Sprintf("store quota reached: need %d bytes, %d of %d MiB free", e.need, e.free>>20, e.quota>>20)
}

// corruptError says a block on disk does not match its CID.
type corruptError struct {
	c     cid.Cid
	where string
}

func (e *corruptError) Error() string {
	return fmt.Sprintf("block %s on disk (%s) does not match its hash", e.c, e.where)
}

func openBlockstore(dir string, quota int64) (*blockstore, error) {
	bs := &blockstore{dir: filepath.Join(dir, "packs"), corrupt: filepath.Join(dir, "corrupt"), quota: quota, packMax: defaultPackMax, pending: map[string]loc{}, dirty: map[uint32]bool{}}
	for _, d := range []string{bs.dir, bs.corrupt} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	// An unreadable index is rebuilt from the packs: load reads every
	// record of a pack the index does not know.
	db, aside, err := openOrSetAside(filepath.Join(dir, "blocks.db"), indexBucket, packBucket)
	if err != nil {
		return nil, err
	}
	bs.db, bs.rebuilt = db, aside
	if err := bs.load(); err != nil {
		bs.closeFiles()
		return nil, fmt.Errorf("open blocks in %s: %w", dir, err)
	}
	if err := bs.migrate(filepath.Join(dir, "blocks")); err != nil {
		bs.closeFiles()
		return nil, err
	}
	return bs, nil
}

// load opens the packs, indexes what lies past each one's committed end
// and counts what the index holds.
func (bs *blockstore) load() error {
	ends := map[uint32]int64{}
	err := bs.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(packBucket).ForEach(func(k, v []byte) error {
			if len(k) == 4 && len(v) == 8 {
				ends[binary.BigEndian.Uint32(k)] = int64(binary.BigEndian.Uint64(v))
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	ids, err := bs.packIDs()
	if err != nil {
		return err
	}
	// A pack removed just before a crash may have left its row: a new
	// pack of that number must not inherit its committed end.
	if err := bs.db.Update(func(tx *bolt.Tx) error {
		for id := range ends {
			if !slices.Contains(ids, id) {
				if err := tx.Bucket(packBucket).Delete(binary.BigEndian.AppendUint32(nil, id)); err != nil {
					return err
				}
			}
		}
		return nil
	}); err != nil {
		return err
	}
	for _, id := range ids {
		f, err := os.OpenFile(bs.packPath(id), os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("open pack: %w", err)
		}
		bs.packs.Store(id, f)
		end, err := bs.recover(id, f, ends[id])
		if err != nil {
			return err
		}
		bs.cur, bs.curEnd = id, end
	}
	if len(bs.pending) > 0 {
		slog.Info("blocks written before a crash recovered", "blocks", len(bs.pending))
		if err := bs.Sync(); err != nil {
			return err
		}
	}
	return bs.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(indexBucket).ForEach(func(k, v []byte) error {
			if l, ok := parseLoc(v); ok {
				bs.used.Add(int64(l.n))
				bs.count.Add(1)
			}
			return nil
		})
	})
}

func (bs *blockstore) packPath(id uint32) string {
	return filepath.Join(bs.dir, fmt.Sprintf("%08d.pack", id))
}

// packIDs lists the packs on disk in order.
func (bs *blockstore) packIDs() ([]uint32, error) {
	ents, err := os.ReadDir(bs.dir)
	if err != nil {
		return nil, fmt.Errorf("list packs: %w", err)
	}
	var ids []uint32
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".pack")
		if id, err := strconv.ParseUint(name, 10, 32); ok && err == nil {
			ids = append(ids, uint32(id))
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids, nil
}

// recover reads the records of pack id past from, which the index does
// not know, and adds each whole one to pending; it cuts the pack after
// the last whole record and returns that length.
func (bs *blockstore) recover(id uint32, f *os.File, from int64) (int64, error) {
	info, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("pack %d: %w", id, err)
	}
	off := from
	if off > info.Size() {
		slog.Error("pack shorter than its index says: blocks past its end are lost", "pack", f.Name(), "bytes", info.Size(), "indexed", off)
		off = info.Size() // appends go on from its end, with no hole
	}
	if off < info.Size() {
		bs.dirty[id] = true
	}
	for off < info.Size() {
		c, data, next, err := readRecord(f, off)
		if err != nil {
			slog.Warn("pack ends in a torn record: cut off", "pack", f.Name(), "offset", off, "bytes", info.Size()-off, "err", err)
			break
		}
		k := string(c.Bytes())
		if _, dup := bs.pending[k]; !dup {
			bs.pending[k] = loc{pack: id, off: next - int64(len(data)), n: uint32(len(data))}
		}
		off = next
	}
	if off < info.Size() {
		if err := f.Truncate(off); err != nil {
			return 0, fmt.Errorf("cut torn pack %s: %w", f.Name(), err)
		}
	}
	return off, nil
}

// recordHead is what a record has before its data.
func recordHead(c cid.Cid, n int64) []byte {
	head := binary.AppendUvarint([]byte(recordMagic), uint64(c.ByteLen()))
	head = append(head, c.Bytes()...)
	return binary.AppendUvarint(head, uint64(n))
}

// readRecord reads and checks the record at off, returning the offset
// after it.
func readRecord(f io.ReaderAt, off int64) (cid.Cid, []byte, int64, error) {
	var head [len(recordMagic) + binary.MaxVarintLen64]byte
	n, _ := f.ReadAt(head[:], off)
	if n < len(recordMagic)+1 || string(head[:len(recordMagic)]) != recordMagic {
		return cid.Undef, nil, 0, errors.New("no record header")
	}
	clen, k := binary.Uvarint(head[len(recordMagic):n])
	if k <= 0 || clen == 0 || clen > maxCIDSize {
		return cid.Undef, nil, 0, errors.New("bad CID length")
	}
	off += int64(len(recordMagic) + k)
	cb := make([]byte, int(clen)+binary.MaxVarintLen64)
	n, _ = f.ReadAt(cb, off)
	if n <= int(clen) {
		return cid.Undef, nil, 0, errors.New("short CID")
	}
	c, err := cid.Cast(cb[:clen])
	if err != nil {
		return cid.Undef, nil, 0, fmt.Errorf("bad CID: %w", err)
	}
	dlen, k := binary.Uvarint(cb[clen:n])
	if k <= 0 || dlen > maxBlockSize {
		return cid.Undef, nil, 0, errors.New("bad data length")
	}
	off += int64(int(clen) + k)
	data := make([]byte, dlen)
	if _, err := f.ReadAt(data, off); err != nil {
		return cid.Undef, nil, 0, fmt.Errorf("short data: %w", err)
	}
	if !hashMatches(c, data) {
		return cid.Undef, nil, 0, errors.New("data does not match its CID")
	}
	return c, data, off + int64(dlen), nil
}

func hashMatches(c cid.Cid, data []byte) bool {
	sum, err := c.Prefix().Sum(data)
	return err == nil && bytes.Equal(sum.Hash(), c.Hash())
}

// Close indexes what is pending, so that the next open has nothing to
// read back, and closes the packs and the index; call it once nothing
// else runs.
func (bs *blockstore) Close() error {
	return errors.Join(bs.Sync(), bs.closeFiles())
}

func (bs *blockstore) closeFiles() error {
	bs.packs.Range(func(_, f any) bool {
		f.(*os.File).Close()
		return true
	})
	return damaged.Close(bs.db)
}

// lookup says where c is.
func (bs *blockstore) lookup(c cid.Cid) (loc, bool) {
	bs.pendMu.Lock()
	l, ok := bs.pending[string(c.Bytes())]
	bs.pendMu.Unlock()
	if ok {
		return l, true
	}
	return bs.fromIndex(c)
}

// indexed says whether c is pending or in the index; pendMu is held.
func (bs *blockstore) indexed(c cid.Cid) bool {
	if _, ok := bs.pending[string(c.Bytes())]; ok {
		return true
	}
	_, ok := bs.fromIndex(c)
	return ok
}

func (bs *blockstore) fromIndex(c cid.Cid) (l loc, ok bool) {
	bs.db.View(func(tx *bolt.Tx) error {
		l, ok = parseLoc(tx.Bucket(indexBucket).Get(c.Bytes()))
		return nil
	})
	return l, ok
}

func (bs *blockstore) Has(c cid.Cid) bool { return bs.Size(c) >= 0 }

// Size is the stored size of c, or -1.
func (bs *blockstore) Size(c cid.Cid) int64 {
	if l, ok := bs.lookup(c); ok {
		return int64(l.n)
	}
	return -1
}

// Get reads c and checks it against its hash.
func (bs *blockstore) Get(c cid.Cid) (blocks.Block, error) {
	data, err := bs.read(c, nil)
	if err != nil {
		return nil, err
	}
	return blocks.NewBlockWithCid(data, c)
}

// read reads c into buf (or new memory, if buf is too small) and checks
// it against its hash.
func (bs *blockstore) read(c cid.Cid, buf []byte) ([]byte, error) {
	bs.mu.RLock()
	l, ok := bs.lookup(c)
	if !ok {
		bs.mu.RUnlock()
		return nil, fmt.Errorf("%s: %w", c, errNotFound)
	}
	if cap(buf) < int(l.n) {
		buf = make([]byte, l.n)
	}
	data := buf[:l.n]
	// A pack gone, or shorter than the index says, lost the block: that
	// is handled as rot is.
	var err error
	lost := true
	if f, ok := bs.packs.Load(l.pack); ok {
		if _, err = f.(*os.File).ReadAt(data, l.off); errors.Is(err, io.EOF) {
			err = nil
		} else {
			lost = false
		}
	}
	bs.mu.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("read block %s: %w", c, err)
	}
	if lost || !hashMatches(c, data) {
		if !bs.quarantine(c, l, data) {
			return nil, fmt.Errorf("%s: %w", c, errNotFound)
		}
		return nil, &corruptError{c: c, where: fmt.Sprintf("%s at %d", bs.packPath(l.pack), l.off)}
	}
	return data, nil
}

// quarantine takes a corrupt block out of the index, keeps a copy aside
// (for inspection, never served) and reports it. It says false when the
// block had left the index already (garbage collected meanwhile).
func (bs *blockstore) quarantine(c cid.Cid, l loc, data []byte) bool {
	if bs.drop([]cid.Cid{c}, func(have loc) bool { return have == l }) == 0 {
		return false
	}
	os.WriteFile(filepath.Join(bs.corrupt, c.String()), data, 0o600)
	bs.bad.Add(1)
	slog.Error("corrupt block on disk", "cid", c.String(), "pack", bs.packPath(l.pack), "offset", l.off)
	if bs.onCrpt != nil {
		bs.onCrpt(c)
	}
	return true
}

// Put stores b unless it is there already. The caller has checked that
// b's data matches its CID (blocks built here, or blocks whose CID was
// computed from the data received).
func (bs *blockstore) Put(b blocks.Block) error { return bs.put(b, true) }

// put is Put; quota says whether the quota applies.
func (bs *blockstore) put(b blocks.Block, quota bool) error {
	if bs.Has(b.Cid()) {
		return nil
	}
	data := b.RawData()
	n := int64(len(data))
	if n > maxBlockSize || b.Cid().ByteLen() > maxCIDSize {
		return fmt.Errorf("block %s: %d bytes, more than the %d a block may have, or a CID longer than %d", b.Cid(), n, maxBlockSize, maxCIDSize)
	}
	if used := bs.used.Load(); quota && used+n > bs.quota {
		return &quotaError{need: n, free: bs.quota - used, quota: bs.quota}
	}
	head := recordHead(b.Cid(), n)

	bs.mu.RLock()
	f, id, off, err := bs.reserve(int64(len(head)) + n)
	if err == nil {
		if err = pwritev(f, head, data, off); err != nil {
			bs.unreserve(id, off, int64(len(head))+n)
		}
	}
	if err != nil {
		bs.mu.RUnlock()
		return fmt.Errorf("write block %s: %w", b.Cid(), err)
	}
	unix.SyncFileRange(int(f.Fd()), off, int64(len(head))+n, unix.SYNC_FILE_RANGE_WRITE)
	l := loc{pack: id, off: off + int64(len(head)), n: uint32(n)}
	bs.pendMu.Lock()
	// Stored meanwhile by another Put (and maybe synced since)? Under
	// pendMu, a block not pending any more is in the index already.
	had := bs.indexed(b.Cid())
	bs.pending[string(b.Cid().Bytes())] = l
	flush := len(bs.pending) >= pendingFlush
	bs.pendMu.Unlock()
	bs.mu.RUnlock()

	if !had {
		bs.used.Add(n)
		bs.count.Add(1)
	}
	if flush {
		bs.syncSoon()
	}
	if bs.onPut != nil {
		bs.onPut(b)
	}
	return nil
}

// syncSoon starts a Sync in the background, unless one it started runs:
// blocks appended outside an add or a pin (fetched to be read) get
// indexed too, and a crash leaves little to read back.
func (bs *blockstore) syncSoon() {
	if !bs.syncing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer bs.syncing.Store(false)
		if err := bs.Sync(); err != nil {
			slog.Error("sync blocks", "err", err)
		}
	}()
}

// reserve sets aside size bytes at the end of the current pack, starting
// a new pack when it is full.
func (bs *blockstore) reserve(size int64) (*os.File, uint32, int64, error) {
	bs.appMu.Lock()
	defer bs.appMu.Unlock()
	f, ok := bs.packs.Load(bs.cur)
	if !ok || bs.curEnd+size > bs.packMax && bs.curEnd > 0 {
		id := bs.cur + 1
		nf, err := os.OpenFile(bs.packPath(id), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, 0, 0, fmt.Errorf("new pack: %w", err)
		}
		bs.packs.Store(id, nf)
		bs.cur, bs.curEnd, f = id, 0, nf
	}
	off := bs.curEnd
	bs.curEnd += size
	bs.dirty[bs.cur] = true
	return f.(*os.File), bs.cur, off, nil
}

// unreserve gives back a reservation that was not written, if nothing
// was reserved after it, so that no hole is left in the pack.
func (bs *blockstore) unreserve(id uint32, off, size int64) {
	bs.appMu.Lock()
	defer bs.appMu.Unlock()
	if bs.cur == id && bs.curEnd == off+size {
		bs.curEnd = off
		if f, ok := bs.packs.Load(id); ok {
			f.(*os.File).Truncate(off)
		}
	}
}

// pwritev writes head and data at off in one call when it can.
func pwritev(f *os.File, head, data []byte, off int64) error {
	n, err := unix.Pwritev(int(f.Fd()), [][]byte{head, data}, off)
	if err != nil {
		return err
	}
	rest := append(head[min(n, len(head)):len(head):len(head)], data[max(0, n-len(head)):]...)
	if len(rest) > 0 {
		_, err = f.WriteAt(rest, off+int64(n))
	}
	return err
}

// Sync makes every block written so far durable and indexed.
func (bs *blockstore) Sync() error {
	bs.syncMu.Lock()
	defer bs.syncMu.Unlock()
	cut, dirty, ends, err := bs.cut()
	if err == nil {
		err = bs.commit(cut, ends)
	}
	if err != nil { // the next Sync tries these packs again
		bs.appMu.Lock()
		for id := range dirty {
			bs.dirty[id] = true
		}
		bs.appMu.Unlock()
		return err
	}
	bs.pendMu.Lock()
	for k, l := range cut {
		if bs.pending[k] == l {
			delete(bs.pending, k)
		}
	}
	bs.pendMu.Unlock()
	return nil
}

// cut takes, with no append in flight (so every reserved byte is
// written), the blocks pending, the packs appended to since the last
// Sync and how long those are.
func (bs *blockstore) cut() (map[string]loc, map[uint32]bool, map[uint32]int64, error) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	bs.pendMu.Lock()
	cut := make(map[string]loc, len(bs.pending))
	for k, l := range bs.pending {
		cut[k] = l
	}
	bs.pendMu.Unlock()
	bs.appMu.Lock()
	dirty := bs.dirty
	bs.dirty = map[uint32]bool{}
	bs.appMu.Unlock()
	ends := map[uint32]int64{}
	for id := range dirty {
		if f, ok := bs.packs.Load(id); ok {
			info, err := f.(*os.File).Stat()
			if err != nil {
				return nil, dirty, nil, fmt.Errorf("sync packs: %w", err)
			}
			ends[id] = info.Size()
		}
	}
	return cut, dirty, ends, nil
}

// commit makes the packs durable up to ends, then indexes cut and
// records the ends, in one transaction.
func (bs *blockstore) commit(cut map[string]loc, ends map[uint32]int64) error {
	for id := range ends {
		if f, ok := bs.packs.Load(id); ok {
			if err := unix.Fdatasync(int(f.(*os.File).Fd())); err != nil {
				return fmt.Errorf("sync packs: %w", err)
			}
		}
	}
	if len(cut) == 0 && len(ends) == 0 {
		return nil
	}
	err := bs.db.Update(func(tx *bolt.Tx) error {
		idx, pb := tx.Bucket(indexBucket), tx.Bucket(packBucket)
		for k, l := range cut {
			if err := idx.Put([]byte(k), l.bytes()); err != nil {
				return err
			}
		}
		for id, end := range ends {
			if err := pb.Put(binary.BigEndian.AppendUint32(nil, id), binary.BigEndian.AppendUint64(nil, uint64(end))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("index blocks: %w", err)
	}
	return nil
}

// drop takes the blocks in cs out of the index, those whose place match
// accepts (nil: wherever they are), and returns how many went. Their bytes
// stay in their packs until the packs are rewritten.
func (bs *blockstore) drop(cs []cid.Cid, match func(loc) bool) int {
	bs.syncMu.Lock() // a Sync in progress would put them back
	defer bs.syncMu.Unlock()
	type dropped struct {
		key       string
		pend, idx *loc // where it was, pending and indexed
	}
	var gone []dropped
	err := bs.db.Update(func(tx *bolt.Tx) error {
		gone = gone[:0]
		idx := tx.Bucket(indexBucket)
		bs.pendMu.Lock()
		defer bs.pendMu.Unlock()
		for _, c := range cs {
			d := dropped{key: string(c.Bytes())}
			if l, ok := bs.pending[d.key]; ok && (match == nil || match(l)) {
				d.pend = &l
			}
			if l, ok := parseLoc(idx.Get(c.Bytes())); ok && (match == nil || match(l)) {
				if err := idx.Delete(c.Bytes()); err != nil {
					return err
				}
				d.idx = &l
			}
			if d.pend != nil || d.idx != nil {
				gone = append(gone, d)
			}
		}
		return nil
	})
	if err != nil {
		slog.Error("drop blocks from the index", "err", err)
		return 0
	}
	bs.pendMu.Lock() // now that the index agrees
	for _, d := range gone {
		if d.pend != nil && bs.pending[d.key] == *d.pend {
			delete(bs.pending, d.key)
		}
	}
	bs.pendMu.Unlock()
	for _, d := range gone {
		for _, l := range []*loc{d.pend, d.idx} {
			if l != nil {
				bs.punch(*l)
			}
		}
		bs.used.Add(-int64(cmp.Or(d.pend, d.idx).n))
		bs.count.Add(-1)
	}
	return len(gone)
}

// keepOnly drops every block keep refuses, frees their space and
// deletes the packs left with no block. It returns the blocks and bytes
// dropped.
func (bs *blockstore) keepOnly(keep func(cid.Cid) bool) (int, int64, error) {
	if err := bs.Sync(); err != nil {
		return 0, 0, err
	}
	var victims []cid.Cid
	var freed int64
	live := map[uint32]int{}
	err := bs.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(indexBucket).ForEach(func(k, v []byte) error {
			c, err := cid.Cast(k)
			l, ok := parseLoc(v)
			switch {
			case !ok:
			case err != nil || !keep(c):
				victims = append(victims, c)
				freed += int64(l.n)
			default:
				live[l.pack]++
			}
			return nil
		})
	})
	if err != nil {
		return 0, 0, fmt.Errorf("list blocks: %w", err)
	}
	var n int
	for chunk := range slices.Chunk(victims, 4096) { // transactions of a bounded size
		n += bs.drop(chunk, nil)
	}
	ids, err := bs.packIDs()
	if err != nil {
		return n, freed, err
	}
	for _, id := range ids {
		bs.appMu.Lock()
		current := id == bs.cur
		bs.appMu.Unlock()
		if live[id] == 0 && !current {
			if err := bs.removePack(id); err != nil {
				return n, freed, err
			}
		}
	}
	return n, freed, nil
}

// removePack deletes a pack no block of the index is in, unless a block
// appended since the index was read is.
func (bs *blockstore) removePack(id uint32) error {
	bs.mu.Lock() // no read or append in flight
	defer bs.mu.Unlock()
	bs.pendMu.Lock()
	for _, l := range bs.pending {
		if l.pack == id {
			bs.pendMu.Unlock()
			return nil
		}
	}
	bs.pendMu.Unlock()
	if f, ok := bs.packs.LoadAndDelete(id); ok {
		f.(*os.File).Close()
	}
	if err := os.Remove(bs.packPath(id)); err != nil {
		return fmt.Errorf("remove empty pack: %w", err)
	}
	return bs.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(packBucket).Delete(binary.BigEndian.AppendUint32(nil, id))
	})
}

// punch gives the space of a dropped block back to the file system; the
// pack keeps its length, with a hole where the data was.
func (bs *blockstore) punch(l loc) {
	f, ok := bs.packs.Load(l.pack)
	if !ok {
		return
	}
	err := unix.Fallocate(int(f.(*os.File).Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, l.off, int64(l.n))
	if err != nil && bs.noPunch.CompareAndSwap(false, true) {
		slog.Warn("this file system cannot free parts of a pack: garbage takes space until its whole pack is garbage", "dir", bs.dir, "err", err)
	}
}
