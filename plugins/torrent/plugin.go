// Package torrent is Vecino's seedbox plugin, on anacrolix/torrent. It owns
// the node's BitTorrent port; BitTorrent is not libp2p, so it is the one
// plugin with a socket of its own. It runs built into the router binary
// (`router plugin torrent`) or as its own binary (cmd/torrent).
package torrent

import (
	"fmt"
	"os"
	"syscall"

	"github.com/vecino/vecino/sdk"
)

// FileIOEnv picks the engine's file I/O, and only at package init. Its
// default maps every data file into memory: seeding 1 GiB then shows as
// 1 GiB of RSS, page faults stall the engine's threads on a slow SD card,
// and a data file truncated under it kills the plugin with SIGBUS.
// "classic" reads and writes with pread/pwrite, as Transmission does. The
// router sets it for the plugin's process.
const FileIOEnv = "TORRENT_STORAGE_DEFAULT_FILE_IO"

// New returns the plugin, for sdk.Serve.
func New() sdk.Plugin { return &seedbox{rpc: newRPCState()} }

// Main serves the plugin, first making sure FileIOEnv was set when this
// process started: if not, it runs itself again in place (same PID and
// pipes, so the router notices nothing) with it set.
func Main() {
	if os.Getenv(FileIOEnv) == "" {
		os.Setenv(FileIOEnv, "classic")
		exe, err := os.Executable()
		if err == nil {
			err = syscall.Exec(exe, os.Args, os.Environ())
		}
		fmt.Fprintf(os.Stderr, "torrent: re-exec with %s=classic: %v; data files will be memory-mapped\n", FileIOEnv, err)
	}
	sdk.Serve(New())
}
