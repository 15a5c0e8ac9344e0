package testnet

import (
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
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

// FreePort returns a port on 127.0.0.1, free for TCP and UDP a moment
// ago, that it has not returned before in this process. It comes from
// below the kernel's ephemeral range: a port from inside it could be
// handed, once closed, to the next program that listens on port 0 (a
// router's API did take a torrent plugin's port so), and two programs
// told the same port would fight over it.
func FreePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	low := ephemeralLow()
	for range 1000 {
		port := 10000 + rand.IntN(low-10000)
		if given[port] || !bindable(port) {
			continue
		}
		given[port] = true
		return port
	}
	t.Fatalf("no free port on 127.0.0.1 between 10000 and %d in 1000 tries", low)
	return 0
}

// ephemeralLow is the lowest port the kernel picks for port 0.
func ephemeralLow() int {
	const fallback = 32768
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return fallback
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return fallback
	}
	low, err := strconv.Atoi(f[0])
	if err != nil || low <= 10000+1000 {
		return fallback
	}
	return low
}

// bindable reports whether both TCP and UDP port on 127.0.0.1 are free.
func bindable(port int) bool {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer ln.Close()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	pc.Close()
	return true
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

// DamagePages writes over the pages of the bbolt file at path that lie
// between the fractions from and to of its length, as a disk error or a
// power cut mid-write would, and never over its two meta pages: bbolt
// opens it, and meets the damage when it reads those pages.
func DamagePages(t testing.TB, path string, from, to float64) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	page := os.Getpagesize()
	start := max(2*page, int(from*float64(len(data)))/page*page)
	for i := start; i < int(to*float64(len(data))); i++ {
		data[i] ^= 0x5a
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
