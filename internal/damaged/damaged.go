// Package damaged helps plugins keep going past a state file that cannot
// be read: the file is kept whole, beside where it was, for whoever wants
// to recover it, and the plugin starts without it.
package damaged

import (
	"errors"
	"os"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
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
func Open[T any](path string, open func() (T, error)) (v T, gone *Gone, err error) {
	err = Check(path)
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
