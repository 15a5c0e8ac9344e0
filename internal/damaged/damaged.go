// Package damaged helps plugins, and the router, keep going past a state
// file that cannot be read: a bbolt file that is no database any more, or
// whose pages a crash or a power cut damaged (Check), is kept whole,
// beside where it was, for whoever wants to recover it; the process starts
// with a new one, and with what can still be read from the old (Salvage).
package damaged

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vecino/vecino/internal/atomicfile"
)

// SetAside renames path to path.unreadable-TIME (UTC) and returns the new
// name.
func SetAside(path string) (string, error) {
	aside := path + ".unreadable-" + time.Now().UTC().Format("20060102T150405Z")
	if err := os.Rename(path, aside); err != nil {
		return "", err
	}
	return aside, nil
}

// notBolt reports whether err, from opening a bbolt file, says the file is
// not a bbolt database (not damage in one, nor an error of the disk or of
// permissions).
func notBolt(err error) bool {
	return err != nil && (errors.Is(err, bolt.ErrInvalid) || errors.Is(err, bolt.ErrVersionMismatch) ||
		errors.Is(err, bolt.ErrChecksum) || strings.Contains(err.Error(), "file size too small"))
}

// Gone is a file set aside by Open, and why it could not be opened.
type Gone struct {
	Path  string // where it was moved
	Cause error
}

// Open calls open, which opens the bbolt file at path. If what is there is
// no bbolt database, or one with damaged pages (Check), it sets the file
// aside and calls open again for a new one; gone then says where the old
// one went, and why. An error of the disk, or a file another process holds,
// is returned as it is.
//
// Pages are checked only if the file was not closed cleanly (Closed) the
// last time it was opened: after a crash, a kill or a power cut, when
// damage is likeliest. Reading a large file through at every start would
// slow each one (a Pi reads some 40 MB a second from its card). The mark
// that says a file is open is made before it is opened, so damage that
// came to a file closed cleanly costs one crash, not a crash at every
// start: the next start checks it.
func Open[T any](path string, open func() (T, error)) (v T, gone *Gone, err error) {
	_, serr := os.Stat(path + openSuffix)
	if err := markOpen(path); err != nil {
		return v, nil, err
	}
	if serr == nil {
		err = Check(path)
	}
	if err == nil {
		v, err = open()
		if !notBolt(err) {
			return v, nil, err
		}
	}
	aside, rerr := SetAside(path)
	if rerr != nil {
		return v, nil, errors.Join(err, rerr)
	}
	gone = &Gone{Path: aside, Cause: err}
	v, err = open()
	return v, gone, err
}

// openSuffix names the mark beside a file that Open opened and nobody has
// yet said was Closed.
const openSuffix = ".open"

// markOpen leaves the mark, on disk before any write to the file can be.
func markOpen(path string) error {
	if err := atomicfile.Write(path+openSuffix, nil, 0o600); err != nil {
		return fmt.Errorf("mark %s open: %w", path, err)
	}
	return nil
}

// Close closes db, a bbolt file opened by Open, and says so (Closed).
func Close(db *bolt.DB) error {
	path := db.Path()
	if err := db.Close(); err != nil {
		return err
	}
	Closed(path)
	return nil
}

// Closed says the file at path, opened by Open, was closed cleanly: the
// next Open need not read it through. Call it after the close succeeded.
// The file is synced first: one written without syncing (the torrent
// engine's) is whole on disk only then.
func Closed(path string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	err = f.Sync()
	f.Close()
	if err == nil {
		os.Remove(path + openSuffix)
	}
}
