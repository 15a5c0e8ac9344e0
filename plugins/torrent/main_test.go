package torrent

import (
	"fmt"
	"os"
	"syscall"
	"testing"
)

// TestMain runs the tests with the engine's file I/O the plugin runs with
// (FileIOEnv, read at package init only): memory-mapped files go on
// reading data that was deleted, and tests of data gone would see it.
func TestMain(m *testing.M) {
	if os.Getenv(FileIOEnv) != "classic" {
		os.Setenv(FileIOEnv, "classic")
		err := syscall.Exec(os.Args[0], os.Args, os.Environ())
		fmt.Fprintf(os.Stderr, "re-exec with %s=classic: %v\n", FileIOEnv, err)
		os.Exit(2)
	}
	os.Exit(m.Run())
}
