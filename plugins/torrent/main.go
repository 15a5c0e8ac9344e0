// Command torrent is Vecino's seedbox plugin, on anacrolix/torrent. It owns
// the node's BitTorrent port; BitTorrent is not libp2p, so it is the one
// plugin with a socket of its own.
package main

import (
	"fmt"
	"os"
	"syscall"

	"github.com/vecino/vecino/sdk"
)

// fileIOEnv picks the engine's file I/O, and only at package init. Its
// default maps every data file into memory: seeding 1 GiB then shows as
// 1 GiB of RSS, page faults stall the engine's threads on a slow SD card,
// and a data file truncated under it kills the plugin with SIGBUS.
// "classic" reads and writes with pread/pwrite, as Transmission does.
const fileIOEnv = "TORRENT_STORAGE_DEFAULT_FILE_IO"

func main() {
	if os.Getenv(fileIOEnv) == "" {
		// Too late for this process: the storage package has read it.
		// Run again in place (same PID and pipes, so the router notices
		// nothing) with it set.
		os.Setenv(fileIOEnv, "classic")
		exe, err := os.Executable()
		if err == nil {
			err = syscall.Exec(exe, os.Args, os.Environ())
		}
		fmt.Fprintf(os.Stderr, "torrent: re-exec with %s=classic: %v; data files will be memory-mapped\n", fileIOEnv, err)
	}
	sdk.Serve(&seedbox{})
}
