package store

import (
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
)

// migrateBatch is how many blocks moved into packs a Sync covers before
// their old files go.
const migrateBatch = 256

// migrate moves blocks kept one file each (blocks/XX/CID, before packs)
// into packs. The files go once a Sync has the blocks, every migrateBatch
// blocks, so that the move needs little more room than the blocks take.
// A file that does not match its CID goes to corrupt/.
func (bs *blockstore) migrate(old string) error {
	if _, err := os.Stat(old); err != nil {
		return nil
	}
	var moved, bad int
	var done []string
	commit := func() error {
		if err := bs.Sync(); err != nil {
			return err
		}
		for _, p := range done {
			os.Remove(p)
		}
		done = done[:0]
		return nil
	}
	err := filepath.WalkDir(old, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		c, err := cid.Decode(d.Name())
		if err != nil {
			return nil // a write cut short (CID.tmp): nothing to keep
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !hashMatches(c, data) {
			bad++
			return os.Rename(path, filepath.Join(bs.corrupt, d.Name()))
		}
		b, _ := blocks.NewBlockWithCid(data, c)
		if err := bs.put(b, false); err != nil {
			return err
		}
		moved++
		if done = append(done, path); len(done) == migrateBatch {
			return commit()
		}
		return nil
	})
	if err == nil {
		err = commit()
	}
	if err != nil {
		return fmt.Errorf("move blocks from %s into packs (%d moved): %w", old, moved, err)
	}
	slog.Info("blocks moved from one file each into packs", "blocks", moved, "corrupt", bad)
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("remove %s: %w", old, err)
	}
	return nil
}
