package store

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"golang.org/x/sys/unix"
)

// blockstore keeps one file per block under dir/XX/CID, where XX is the
// CID's last two characters. A block is written to a temporary file and
// renamed into place; sync flushes everything written so far with one
// syncfs, and nothing that depends on a block (a pin) is recorded before
// that. Every read checks the data against the CID's hash, so a torn or
// rotten file is never served: it is moved to corrupt/ and reported.
type blockstore struct {
	dir     string
	corrupt string
	quota   int64

	used    atomic.Int64
	count   atomic.Int64
	bad     atomic.Int64 // corrupt blocks found on read
	onCrpt  func(cid.Cid)
	onPut   func(blocks.Block) // called for each block newly stored
	dirOnce sync.Map           // shard folders known to exist
}

// errNotFound is returned for blocks the store does not hold.
var errNotFound = errors.New("block not found")

// quotaError says a write would take the store past its quota.
type quotaError struct{ need, free, quota int64 }

func (e *quotaError) Error() string {
	return fmt.Sprintf("store quota reached: need %d bytes, %d of %d MiB free", e.need, e.free>>20, e.quota>>20)
}

// corruptError says a block file does not match its CID.
type corruptError struct {
	c    cid.Cid
	path string
}

func (e *corruptError) Error() string {
	return fmt.Sprintf("block %s on disk (%s) does not match its hash", e.c, e.path)
}

func openBlockstore(dir string, quota int64) (*blockstore, error) {
	bs := &blockstore{dir: filepath.Join(dir, "blocks"), corrupt: filepath.Join(dir, "corrupt"), quota: quota}
	for _, d := range []string{bs.dir, bs.corrupt} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	err := bs.walk(func(_ cid.Cid, path string, size int64) {
		if strings.HasSuffix(path, ".tmp") {
			os.Remove(path) // a write cut short by a crash
			return
		}
		bs.used.Add(size)
		bs.count.Add(1)
	})
	return bs, err
}

func (bs *blockstore) path(c cid.Cid) string {
	s := c.String()
	return filepath.Join(bs.dir, s[len(s)-2:], s)
}

// walk calls fn for every file in the store; files whose names are not
// CIDs get cid.Undef.
func (bs *blockstore) walk(fn func(c cid.Cid, path string, size int64)) error {
	return filepath.WalkDir(bs.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("walk blocks: %w", err)
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		c, _ := cid.Decode(d.Name())
		fn(c, path, info.Size())
		return nil
	})
}

func (bs *blockstore) Has(c cid.Cid) bool { return bs.Size(c) >= 0 }

// Size is the stored size of c, or -1.
func (bs *blockstore) Size(c cid.Cid) int64 {
	info, err := os.Stat(bs.path(c))
	if err != nil {
		return -1
	}
	return info.Size()
}

// Get reads c and checks it against its hash.
func (bs *blockstore) Get(c cid.Cid) (blocks.Block, error) {
	path := bs.path(c)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", c, errNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read block %s: %w", c, err)
	}
	sum, err := c.Prefix().Sum(data)
	if err != nil {
		return nil, fmt.Errorf("hash block %s: %w", c, err)
	}
	if !bytes.Equal(sum.Hash(), c.Hash()) {
		bs.quarantine(c, path)
		return nil, &corruptError{c: c, path: path}
	}
	return blocks.NewBlockWithCid(data, c)
}

// quarantine moves a corrupt file out of the store (kept for inspection,
// not served) and reports it.
func (bs *blockstore) quarantine(c cid.Cid, path string) {
	info, err := os.Stat(path)
	if err != nil {
		return
	}
	if os.Rename(path, filepath.Join(bs.corrupt, filepath.Base(path))) == nil {
		bs.forget(info.Size())
	}
	bs.bad.Add(1)
	slog.Error("corrupt block on disk", "cid", c.String(), "path", path)
	if bs.onCrpt != nil {
		bs.onCrpt(c)
	}
}

// Put stores b unless it is there already. The caller has checked that
// b's data matches its CID (blocks built here, or blocks whose CID was
// computed from the data received).
func (bs *blockstore) Put(b blocks.Block) error {
	path := bs.path(b.Cid())
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	n := int64(len(b.RawData()))
	if used := bs.used.Load(); used+n > bs.quota {
		return &quotaError{need: n, free: bs.quota - used, quota: bs.quota}
	}
	dir := filepath.Dir(path)
	if _, ok := bs.dirOnce.Load(dir); !ok {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", dir, err)
		}
		bs.dirOnce.Store(dir, true)
	}
	tmp := path + ".tmp"
	if err := writeBack(tmp, b.RawData()); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write block %s: %w", b.Cid(), err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("store block %s: %w", b.Cid(), err)
	}
	bs.used.Add(n)
	bs.count.Add(1)
	if bs.onPut != nil {
		bs.onPut(b)
	}
	return nil
}

// writeBack writes a file and starts its writeback to disk without
// waiting for it, so that the Sync that ends an add finds little left.
func writeBack(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	unix.SyncFileRange(int(f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	return f.Close()
}

// remove deletes a block file walk found, of size bytes; it reports
// whether the file went.
func (bs *blockstore) remove(path string, size int64) bool {
	if os.Remove(path) != nil {
		return false
	}
	bs.forget(size)
	return true
}

// forget takes a block of size bytes that left the store off the books.
func (bs *blockstore) forget(size int64) {
	bs.used.Add(-size)
	bs.count.Add(-1)
}

// Sync makes every block written so far durable.
func (bs *blockstore) Sync() error {
	f, err := os.Open(bs.dir)
	if err != nil {
		return fmt.Errorf("sync blocks: %w", err)
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("sync blocks: %w", err)
	}
	return nil
}
