package damaged

import (
	"errors"
	"fmt"
	"os"
)

// A bbolt file whose meta pages are sound but whose other pages a disk
// error (or a power cut, for a file written without syncing) damaged opens
// without error, then panics, or faults, when those pages are read: in
// goroutines of bbolt's own (it rebuilds a free list it does not keep by
// walking every page as it opens), or on a fault, where no recover reaches.
// A plugin reading such a file would crash at every start. So Open has the
// file read through first, by rawFile, which reads the pages itself and
// cannot panic: every page reachable from the meta page bbolt would use,
// through every bucket, and the free list, as bbolt's own check does.

// ErrDamaged says a bbolt file cannot be read through.
var ErrDamaged = errors.New("damaged pages")

// Check reads the bbolt file at path through and returns why it cannot be
// read (wrapping ErrDamaged), or nil if it can, if there is no file, or if
// neither of its meta pages holds (bbolt refuses to open it then, and Open
// sets it aside for that).
func Check(path string) error {
	file, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer file.Close()
	info, err := file.Stat()
	if err != nil {
		return nil
	}
	f, err := newRawFile(file, info.Size())
	if err != nil {
		return nil
	}
	f.tree(false)
	f.checkFreelist()
	if f.problem != nil {
		return fmt.Errorf("%s: %w: %w", path, ErrDamaged, f.problem)
	}
	return nil
}
