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

// NotBolt reports whether err, from opening a bbolt file, says the file is
// not a bbolt database (not damage in one, nor an error of the disk or of
// permissions).
func NotBolt(err error) bool {
	return err != nil && (errors.Is(err, bolt.ErrInvalid) || errors.Is(err, bolt.ErrVersionMismatch) ||
		errors.Is(err, bolt.ErrChecksum) || strings.Contains(err.Error(), "file size too small"))
}
