package testnet

import (
	"net"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"testing"
)

// NeedTools checks for programs that .ci/run installs: on CI (CI set) a
// missing one fails the test, elsewhere it skips it.
func NeedTools(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is not installed; .ci/run installs it", n)
			}
			t.Skipf("%s not installed", n)
		}
	}
}

var (
	portsMu sync.Mutex
	given   = map[int]bool{}
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago and
// that it has not returned before in this process: the kernel may hand
// out a just-closed port again, and two programs told the same port (say
// Transmission's RPC and peer ports) would fight over it.
func FreePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !given[port] {
			given[port] = true
			return port
		}
	}
	t.Fatal("no new free port on 127.0.0.1 in 100 tries")
	return 0
}

// LiveHeap is this process's heap in use after two collections: what is
// still reachable, for benchmarks that report what a thing keeps.
func LiveHeap() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
