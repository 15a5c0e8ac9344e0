package damaged

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A bbolt file whose meta pages are sound but whose other pages a disk
// error (or a power cut, for a file written without syncing) damaged opens
// without error, then panics, or faults, when those pages are read: in
// goroutines of bbolt's own, or on a fault, where no recover catches it.
// A plugin reading such a file would crash at every start. So the file is
// read through first in a process of its own: this program, run again with
// checkEnv set, which init below turns into the check and nothing else.

// checkEnv names the file the process is to check.
const checkEnv = "VECINO_CHECK_BOLT"

// The check's exit codes besides 0 (sound). A Go program that panics, or
// faults, exits with 2.
const (
	exitDamaged   = 3 // the check found damage
	exitUndecided = 4 // it could not tell: the file is in use, or unreadable to this process
	exitPanicked  = 2
)

func init() {
	if path := os.Getenv(checkEnv); path != "" {
		os.Exit(checkMain(path))
	}
}

// checkMain is the checking process: it opens path read-only, has bbolt
// check its pages, and reads every key and value.
func checkMain(path string) int {
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		if notBolt(err) {
			return exitDamaged
		}
		return exitUndecided
	}
	err = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err // the first says it all
		}
		return tx.ForEach(func(_ []byte, b *bolt.Bucket) error { return readAll(b) })
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitDamaged
	}
	return 0
}

// readAll reads every key and value of b and of the buckets in it. The
// first and last byte of a value bound the pages it spans.
func readAll(b *bolt.Bucket) error {
	var sum byte
	return b.ForEach(func(k, v []byte) error {
		if v == nil {
			if sub := b.Bucket(k); sub != nil {
				return readAll(sub)
			}
			return nil
		}
		if len(v) > 0 {
			sum += v[0] + v[len(v)-1]
		}
		return nil
	})
}

// ErrDamaged says a bbolt file cannot be read through.
var ErrDamaged = errors.New("damaged pages")

// Check reads the bbolt file at path through, in a process of its own, and
// returns why it cannot be read (wrapping ErrDamaged), or nil if it can,
// if there is no file, or if the check could not tell (the file in use by
// another process, no executable to run): the file's open then meets
// whatever it meets.
func Check(path string) error {
	if _, err := os.Stat(path); err != nil {
		return nil
	}
	exe, err := os.Executable()
	if err != nil {
		return nil
	}
	// Damaged pages could send bbolt round in a loop, and a plugin must
	// start within 30 s: past 20 s (a Pi reads some 800 MB from its card
	// in that time), the check decides nothing.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), checkEnv+"="+path)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || (exit.ExitCode() != exitDamaged && exit.ExitCode() != exitPanicked) {
		return nil
	}
	return fmt.Errorf("%s: %w: %s", path, ErrDamaged, firstLine(out.String()))
}

// firstLine is the first non-empty line of a check's output, short: a
// panic's message, not its stack.
func firstLine(s string) string {
	for _, line := range strings.Split(s, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			if len(line) > 200 {
				line = line[:200] + "..."
			}
			return line
		}
	}
	return "the check stopped without a word"
}
