package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

func rawBlock(t testing.TB, seed uint64, size int) blocks.Block {
	t.Helper()
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)}).Read(data)
	c, err := cid.NewPrefixV1(cid.Raw, mh.SHA2_256).Sum(data)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := blocks.NewBlockWithCid(data, c)
	return b
}

func openTestStore(t *testing.T, dir string) *blockstore {
	t.Helper()
	bs, err := openBlockstore(dir, 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	bs.packMax = 1 << 20
	t.Cleanup(func() { bs.closeFiles() }) // closing twice is harmless
	return bs
}

// reopen closes bs, as a clean stop does, and opens dir again.
func reopen(t *testing.T, bs *blockstore, dir string) *blockstore {
	t.Helper()
	if err := bs.Close(); err != nil {
		t.Fatal(err)
	}
	return openTestStore(t, dir)
}

func putAll(t *testing.T, bs *blockstore, bl []blocks.Block) {
	t.Helper()
	for _, b := range bl {
		if err := bs.Put(b); err != nil {
			t.Fatal(err)
		}
	}
}

// wantBlocks checks that bs holds exactly the blocks in have, whole, and
// none of those in gone.
func wantBlocks(t *testing.T, bs *blockstore, have, gone []blocks.Block) {
	t.Helper()
	var size int64
	for _, b := range have {
		got, err := bs.Get(b.Cid())
		if err != nil || !bytes.Equal(got.RawData(), b.RawData()) {
			t.Fatalf("block %s: %v", b.Cid(), err)
		}
		size += int64(len(b.RawData()))
	}
	for _, b := range gone {
		if _, err := bs.Get(b.Cid()); !errors.Is(err, errNotFound) {
			t.Fatalf("block %s should be gone, Get says %v", b.Cid(), err)
		}
	}
	if bs.count.Load() != int64(len(have)) || bs.used.Load() != size {
		t.Fatalf("store counts %d blocks, %d bytes; want %d, %d", bs.count.Load(), bs.used.Load(), len(have), size)
	}
}

func testBlocks(t testing.TB, from, n, size int) []blocks.Block {
	var bl []blocks.Block
	for i := range n {
		bl = append(bl, rawBlock(t, uint64(from+i), size))
	}
	return bl
}

// A store written, synced and opened again holds what it held, in
// several packs.
func TestBlockstoreReopen(t *testing.T) {
	dir := t.TempDir()
	bs := openTestStore(t, dir)
	bl := testBlocks(t, 0, 10, 256<<10)
	putAll(t, bs, bl)
	putAll(t, bs, bl[:3]) // again: stored once
	if err := bs.Sync(); err != nil {
		t.Fatal(err)
	}
	wantBlocks(t, bs, bl, nil)
	bs.Close()
	packs, _ := filepath.Glob(filepath.Join(dir, "packs", "*.pack"))
	if len(packs) < 3 {
		t.Errorf("%d packs for 2.5 MiB at 1 MiB a pack", len(packs))
	}
	bs = openTestStore(t, dir)
	wantBlocks(t, bs, bl, nil)
}

// closedStore writes ten 256 KiB blocks to a new store, closes it, and
// returns its folder and the blocks.
func closedStore(t *testing.T) (string, []blocks.Block) {
	t.Helper()
	dir := t.TempDir()
	bs := openTestStore(t, dir)
	bl := testBlocks(t, 0, 10, 256<<10)
	putAll(t, bs, bl)
	if err := bs.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, bl
}

// A store opened with a quota lowered below what it holds keeps all of
// it, and refuses new blocks with an error that says why and what to do.
func TestBlockstoreQuotaLoweredBelowWhatItHolds(t *testing.T) {
	dir, bl := closedStore(t)
	bs, err := openBlockstore(dir, 1<<20)
	if err != nil {
		t.Fatalf("open with a lower quota: %v", err)
	}
	defer bs.Close()
	wantBlocks(t, bs, bl, nil)
	err = bs.Put(testBlocks(t, 10, 1, 1024)[0])
	var qe *quotaError
	if !errors.As(err, &qe) || !strings.Contains(err.Error(), "2 MiB is already held, over the 1 MiB quota ([plugins.store] quota_mib)") {
		t.Errorf("a block past a lowered quota: %v", err)
	}
}

// An index that is no database any more is set aside whole, and rebuilt
// from the packs: every block is found again.
func TestBlockstoreRebuildsAnUnreadableIndex(t *testing.T) {
	dir, bl := closedStore(t)
	junk := bytes.Repeat([]byte("not a database "), 1<<10)
	if err := os.WriteFile(filepath.Join(dir, "blocks.db"), junk, 0o600); err != nil {
		t.Fatal(err)
	}
	bs := openTestStore(t, dir)
	wantBlocks(t, bs, bl, nil)
	if b, err := os.ReadFile(bs.rebuilt); err != nil || !bytes.Equal(b, junk) {
		t.Errorf("the set-aside index (%q) does not hold what was there: %v", bs.rebuilt, err)
	}
}

// Blocks appended but never synced (the process killed) are found in the
// packs' tails on the next open; a record cut in half is cut off.
func TestBlockstoreRecoversAfterCrash(t *testing.T) {
	dir := t.TempDir()
	bs := openTestStore(t, dir)
	synced := testBlocks(t, 0, 3, 100<<10)
	putAll(t, bs, synced)
	if err := bs.Sync(); err != nil {
		t.Fatal(err)
	}
	unsynced := testBlocks(t, 100, 3, 100<<10)
	putAll(t, bs, unsynced)
	torn := rawBlock(t, 200, 100<<10)
	putAll(t, bs, []blocks.Block{torn})
	bs.closeFiles() // no Sync: as if killed
	pack := filepath.Join(dir, "packs", "00000001.pack")
	info, _ := os.Stat(pack)
	os.Truncate(pack, info.Size()-1000)

	bs = openTestStore(t, dir)
	wantBlocks(t, bs, append(synced, unsynced...), []blocks.Block{torn})
	bs = reopen(t, bs, dir) // what was recovered is in the index now
	wantBlocks(t, bs, append(synced, unsynced...), []blocks.Block{torn})
	putAll(t, bs, []blocks.Block{torn})
	wantBlocks(t, bs, append(synced, append(unsynced, torn)...), nil)
}

// rot flips the byte at offset at of b's data where bs keeps it.
func rot(t *testing.T, bs *blockstore, b blocks.Block, at int64) {
	t.Helper()
	l, ok := bs.lookup(b.Cid())
	f, err := os.OpenFile(bs.packPath(l.pack), os.O_RDWR, 0)
	if !ok || err != nil {
		t.Fatalf("block %s: %v", b.Cid(), err)
	}
	defer f.Close()
	f.WriteAt([]byte{b.RawData()[at] ^ 1}, l.off+at)
}

// watchCorrupt collects the blocks bs reports corrupt.
func watchCorrupt(bs *blockstore) *[]cid.Cid {
	var reported []cid.Cid
	bs.onCrpt = func(c cid.Cid) { reported = append(reported, c) }
	return &reported
}

// A flipped byte is caught on read: the block leaves the index, a copy
// goes aside, the store reports it, and the block can be stored again.
func TestBlockstoreCorruptBlock(t *testing.T) {
	dir := t.TempDir()
	bs := openTestStore(t, dir)
	bl := testBlocks(t, 0, 3, 64<<10)
	putAll(t, bs, bl)
	bs.Sync()
	reported := watchCorrupt(bs)
	rot(t, bs, bl[1], 100)

	var ce *corruptError
	if _, err := bs.Get(bl[1].Cid()); !errors.As(err, &ce) {
		t.Fatalf("Get of a corrupt block: %v", err)
	}
	if len(*reported) != 1 || bs.bad.Load() != 1 {
		t.Errorf("reported %v, counted %d", *reported, bs.bad.Load())
	}
	kept, err := os.ReadFile(filepath.Join(dir, "corrupt", bl[1].Cid().String()))
	if err != nil || len(kept) != 64<<10 || bytes.Equal(kept, bl[1].RawData()) {
		t.Errorf("copy kept aside: %v", err)
	}
	wantBlocks(t, bs, []blocks.Block{bl[0], bl[2]}, bl[1:2])
	putAll(t, bs, bl[1:2])
	wantBlocks(t, bs, bl, nil)
}

// Garbage collection drops what is not kept, gives its space back at
// once (holes in the packs), and deletes packs left empty.
func TestBlockstoreKeepOnly(t *testing.T) {
	dir := t.TempDir()
	bs := openTestStore(t, dir)
	bl := testBlocks(t, 0, 12, 256<<10) // 3 a pack: 4 packs
	putAll(t, bs, bl)
	keep := map[cid.Cid]bool{}
	var kept, dropped []blocks.Block
	for i, b := range bl {
		// the first pack wholly garbage; in the others, every other block
		if i >= 3 && i%2 == 0 {
			keep[b.Cid()] = true
			kept = append(kept, b)
		} else {
			dropped = append(dropped, b)
		}
	}
	before := diskUse(t, dir)
	n, freed, err := bs.keepOnly(func(c cid.Cid) bool { return keep[c] })
	if err != nil || n != len(dropped) || freed != int64(len(dropped))*256<<10 {
		t.Fatalf("keepOnly: %d blocks, %d bytes, %v", n, freed, err)
	}
	wantBlocks(t, bs, kept, dropped)
	if _, err := os.Stat(bs.packPath(1)); !os.IsNotExist(err) {
		t.Errorf("the pack with no block left is still there: %v", err)
	}
	if after := diskUse(t, dir); before-after < freed*9/10 {
		t.Errorf("disk use went from %d to %d bytes; %d were freed", before, after, freed)
	}
	bs = reopen(t, bs, dir)
	wantBlocks(t, bs, kept, dropped)
}

func diskUse(t *testing.T, dir string) int64 {
	var total int64
	packs, _ := filepath.Glob(filepath.Join(dir, "packs", "*.pack"))
	for _, p := range packs {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		total += st.Blocks * 512
	}
	return total
}

// A store from before packs (a file per block) is moved into packs when
// opened; a half-written file is dropped, a rotten one kept aside.
func TestBlockstoreMigratesBlockFiles(t *testing.T) {
	dir := t.TempDir()
	bl := testBlocks(t, 0, 4, 10<<10)
	for _, b := range bl {
		s := b.Cid().String()
		os.MkdirAll(filepath.Join(dir, "blocks", s[len(s)-2:]), 0o700)
		os.WriteFile(filepath.Join(dir, "blocks", s[len(s)-2:], s), b.RawData(), 0o600)
	}
	rot := rawBlock(t, 99, 10<<10)
	s := rot.Cid().String()
	os.MkdirAll(filepath.Join(dir, "blocks", s[len(s)-2:]), 0o700)
	os.WriteFile(filepath.Join(dir, "blocks", s[len(s)-2:], s), make([]byte, 10<<10), 0o600)
	os.WriteFile(filepath.Join(dir, "blocks", s[len(s)-2:], s+".tmp"), rot.RawData()[:10], 0o600)

	// A quota lowered below what the old store held loses nothing.
	bs, err := openBlockstore(dir, 1024)
	if err != nil {
		t.Fatal(err)
	}
	wantBlocks(t, bs, bl, []blocks.Block{rot})
	if _, err := os.Stat(filepath.Join(dir, "blocks")); !os.IsNotExist(err) {
		t.Errorf("the old block folder is still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "corrupt", s)); err != nil {
		t.Errorf("the rotten block file was not kept aside: %v", err)
	}
}

// Puts from many goroutines, some of the same blocks, while Syncs run.
func TestBlockstoreConcurrentPuts(t *testing.T) {
	dir := t.TempDir()
	bs := openTestStore(t, dir)
	bl := testBlocks(t, 0, 64, 20<<10)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := range bl {
				b := bl[(i*(w+1))%len(bl)]
				if err := bs.Put(b); err != nil {
					errs <- fmt.Errorf("put: %w", err)
					return
				}
				if i%16 == w {
					if err := bs.Sync(); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	bs.Sync()
	wantBlocks(t, bs, bl, nil)
	bs = reopen(t, bs, dir)
	if bs.count.Load() != int64(len(bl)) {
		t.Errorf("reopened store counts %d blocks, want %d", bs.count.Load(), len(bl))
	}
}

// A pack cut short or gone (a disk fault, a slip by hand) loses its
// blocks, and each is reported corrupt when read, to be fetched again;
// the rest of the store goes on, and so do appends.
func TestBlockstoreLostPack(t *testing.T) {
	dir := t.TempDir()
	bs := openTestStore(t, dir)
	bl := testBlocks(t, 0, 9, 256<<10) // 3 a pack
	putAll(t, bs, bl)
	bs.Sync()
	bs.Close()
	os.Remove(filepath.Join(dir, "packs", "00000001.pack"))
	last := filepath.Join(dir, "packs", "00000003.pack")
	info, _ := os.Stat(last)
	os.Truncate(last, info.Size()-1000)

	bs = openTestStore(t, dir)
	reported := watchCorrupt(bs)
	lost := append(append([]blocks.Block{}, bl[:3]...), bl[8])
	for _, b := range lost {
		var ce *corruptError
		if _, err := bs.Get(b.Cid()); !errors.As(err, &ce) {
			t.Errorf("block %s of a lost pack: %v", b.Cid(), err)
		}
	}
	if len(*reported) != 4 {
		t.Errorf("%d blocks reported, want 4", len(*reported))
	}
	wantBlocks(t, bs, bl[3:8], lost)
	putAll(t, bs, lost)
	bs = reopen(t, bs, dir)
	wantBlocks(t, bs, bl, nil)
}

// A pack removed by gc just before a crash leaves no committed end behind
// for a new pack of the same number to inherit.
func TestBlockstoreForgetsRemovedPacks(t *testing.T) {
	dir := t.TempDir()
	bs := openTestStore(t, dir)
	bl := testBlocks(t, 0, 3, 256<<10) // pack 1
	putAll(t, bs, bl)
	bs.Sync()
	bs.closeFiles()
	os.Remove(filepath.Join(dir, "packs", "00000001.pack")) // its row stays, as after a crash

	bs = openTestStore(t, dir)
	fresh := testBlocks(t, 10, 2, 100<<10) // into a new pack 1
	putAll(t, bs, fresh)
	bs.closeFiles() // crash before any Sync
	bs = openTestStore(t, dir)
	for _, b := range fresh {
		if !bs.Has(b.Cid()) {
			t.Errorf("block %s, appended to the new pack 1 before a crash, was not recovered", b.Cid())
		}
	}
}
