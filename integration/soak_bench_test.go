package integration

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vecino/vecino/internal/testnet"
)

// soakSample is what one process holds at a moment.
type soakSample struct {
	pss, anon int64 // all, and of it anonymous (not the binary, not mapped files)
	files     int
	disk      int64 // the bytes its state directory takes on disk
	goMemory
}

// goMemory is what the Go runtime of a process says it holds.
type goMemory struct {
	heap   int64 // its live heap, right after a collection
	held   int64 // the heap memory the runtime holds from the system (HeapSys - HeapReleased)
	stacks int64 // goroutine stacks (StackSys)
	all    int64 // all it holds from the system: heap, stacks, GC and other metadata (Sys - HeapReleased)
}

// heapFigures are the Go runtime's figures of the process whose profiles
// are at prefix (the router's "", a plugin's "/api/v1/plugins/NAME"): the
// heap profile asked for with gc=1 collects first, and its text form ends
// with the runtime's figures.
func heapFigures(t testing.TB, n *testnet.Node, prefix string) goMemory {
	code, body, err := n.Do("GET", prefix+"/debug/pprof/heap?gc=1&debug=1", nil, true)
	if err != nil || code != http.StatusOK {
		t.Fatalf("heap profile at %s: %d %v", prefix, code, err)
	}
	// "# HeapAlloc = 123", and for some "# Stack = 12 / 34" (in use / Sys).
	figures := map[string]int64{}
	for line := range strings.Lines(string(body)) {
		if name, v, ok := strings.Cut(strings.TrimPrefix(line, "# "), " = "); ok {
			if _, sys, ok := strings.Cut(v, " / "); ok {
				name, v = name+"Sys", sys
			}
			if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				figures[name] = n
			}
		}
	}
	for _, name := range []string{"HeapAlloc", "HeapSys", "HeapReleased", "StackSys", "Sys"} {
		if _, ok := figures[name]; !ok {
			t.Fatalf("heap profile at %s has no %s", prefix, name)
		}
	}
	return goMemory{
		heap:   figures["HeapAlloc"],
		held:   figures["HeapSys"] - figures["HeapReleased"],
		stacks: figures["StackSys"],
		all:    figures["Sys"] - figures["HeapReleased"],
	}
}

// keepHeapProfile writes the heap profile served at prefix to path.
func keepHeapProfile(t testing.TB, n *testnet.Node, prefix, path string) {
	code, body, err := n.Do("GET", prefix+"/debug/pprof/heap?gc=1", nil, true)
	if err != nil || code != http.StatusOK {
		t.Fatalf("heap profile at %s: %d %v", prefix, code, err)
	}
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatalf("keep heap profile: %v", err)
	}
}

func sampleProcess(t testing.TB, pid int, dir string) soakSample {
	m, err := readMemory(pid)
	if err != nil {
		t.Fatalf("read memory of pid %d: %v", pid, err)
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("list open files of pid %d: %v", pid, err)
	}
	var disk int64 // allocated, as du counts: the store punches holes in its packs
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				disk += fi.Sys().(*syscall.Stat_t).Blocks * 512
			}
		}
		return nil
	})
	return soakSample{pss: m.pss, anon: m.pssAnon, files: len(fds), disk: disk}
}

// routerMetrics reads gauges from one fetch of the router's /metrics, in
// the order named.
func routerMetrics(t testing.TB, n *testnet.Node, names ...string) []float64 {
	_, body, err := n.Do("GET", "/metrics", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float64, len(names))
	for i, name := range names {
		found := false
		for line := range strings.Lines(string(body)) {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				if out[i], err = strconv.ParseFloat(strings.TrimSpace(v), 64); err != nil {
					t.Fatalf("/metrics %s: %v", name, err)
				}
				found = true
				break
			}
		}
		if !found {
			t.Fatalf("no %s in /metrics", name)
		}
	}
	return out
}

// BenchmarkSoak leaves a node running under a steady mixed load, as a
// neighbourhood box lives: a chat room taking 20 posts a second (history
// capped at 500, full within the warm-up) with 20 readers on long polls
// that come and go, a 256 KiB file added to the store, read back and
// unpinned every second with a gc every 10 s, a torrent seeding and the
// status and torrent pages polled. After a minute's warm-up, and again at
// the end, it samples every process's PSS and open files and the router's
// goroutines, and reports the growth: an always-on box must show none
// that keeps going (pss-growth-late: from the middle sample on). VECINO_SOAK sets how long the load runs after the
// warm-up (default 2m).
func BenchmarkSoak(b *testing.B) {
	const warmup = time.Minute
	length := 2 * time.Minute
	if v := os.Getenv("VECINO_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("VECINO_SOAK=%q: %v", v, err)
		}
		length = d
	}
	// VECINO_SOAK_PROFILES=DIR keeps every process's heap profile at
	// each sample, for `go tool pprof -base first last`.
	profiles := os.Getenv("VECINO_SOAK_PROFILES")
	names := []string{"router", "torrent", "chat", "store"}
	for range b.N {
		b.StopTimer()
		n := testnet.Start(b, testnet.Options{Plugins: map[string]string{
			"torrent": "", "chat": roomyChat + "\nhistory = 500", "store": ""}})
		pids := map[string]int{"router": n.PID()}
		for _, name := range names[1:] {
			pids[name] = n.WaitPlugin(name, 30*time.Second, testnet.Running).PID
		}
		makeFiles(b, n.State+"/plugins/torrent/data", album)
		createTorrent(b, n, "album")

		var posts, reads, adds, failures atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		every := func(period time.Duration, do func()) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tick := time.NewTicker(period)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						do()
					}
				}
			}()
		}
		writer := newChatter(b, n)
		every(50*time.Millisecond, func() {
			writer.seq++
			raw, _ := writer.id.SignRoom("lobby", writer.seq, time.Now(), padded(time.Now(), "soak", int(writer.seq)))
			if _, err := benchPostMessages(n, [][]byte{raw}, false); err != nil {
				failures.Add(1)
				return
			}
			posts.Add(1)
		})
		for range 20 {
			wg.Add(1)
			go func() { // a reader: long polls, then goes away and comes back
				defer wg.Done()
				var cur uint64
				for {
					select {
					case <-stop:
						return
					default:
					}
					cl := &http.Client{Timeout: 30 * time.Second}
					for range 5 {
						resp, err := cl.Get(fmt.Sprintf("%s%s/rooms/lobby/messages?after=%d&wait=2", n.API, chatAPI, cur))
						if err != nil {
							failures.Add(1)
							break
						}
						var got struct{ Cursor uint64 }
						if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&got) != nil {
							failures.Add(1)
						}
						resp.Body.Close()
						if got.Cursor > cur {
							cur = got.Cursor
						}
						reads.Add(1)
					}
					cl.CloseIdleConnections()
				}
			}()
		}
		file := make([]byte, 256<<10)
		every(time.Second, func() {
			rand.Read(file)
			code, body, err := n.Do("POST", "/api/v1/plugins/store/add?name=soak", file, true)
			var p struct {
				CID string `json:"cid"`
			}
			if err != nil || code != http.StatusOK || json.Unmarshal(body, &p) != nil {
				failures.Add(1)
				return
			}
			if code, got, err := n.Do("GET", "/api/v1/plugins/store/cat/"+p.CID, nil, false); err != nil || code != http.StatusOK || !bytes.Equal(got, file) {
				failures.Add(1)
			}
			if code, _, err := n.Do("DELETE", "/api/v1/plugins/store/pin/"+p.CID, nil, true); err != nil || code/100 != 2 {
				failures.Add(1)
			}
			adds.Add(1)
		})
		every(10*time.Second, func() {
			if code, _, err := n.Do("POST", "/api/v1/plugins/store/gc", nil, true); err != nil || code/100 != 2 {
				failures.Add(1)
			}
		})
		every(2*time.Second, func() {
			for _, path := range []string{"/", "/api/v1/status", "/api/v1/plugins/torrent/torrents", "/api/v1/plugins/torrent/creates"} {
				if code, _, err := n.Do("GET", path, nil, false); err != nil || code != http.StatusOK {
					failures.Add(1)
				}
			}
		})

		time.Sleep(warmup)
		// The router's goroutines, sampled alongside.
		var goroutines []float64
		var samples int
		sample := func() (map[string]soakSample, int) {
			samples++
			s := map[string]soakSample{}
			for name, pid := range pids {
				dir, prefix := filepath.Join(n.State, "plugins", name), "/api/v1/plugins/"+name
				if name == "router" {
					dir, prefix = n.State, "" // all of the state, the plugins' too
				}
				ps := sampleProcess(b, pid, dir)
				ps.goMemory = heapFigures(b, n, prefix)
				if profiles != "" {
					keepHeapProfile(b, n, prefix, filepath.Join(profiles, fmt.Sprintf("%s-%d.pb.gz", name, samples)))
				}
				s[name] = ps
			}
			goroutines = append(goroutines, routerMetrics(b, n, "go_goroutines")[0])
			return s, int(goroutines[len(goroutines)-1])
		}
		// Six samples, the load's start to its end: growth that goes on
		// in the second half is a leak; a rise that levels off is not.
		const steps = 5
		var series []map[string]soakSample
		first, g0 := sample()
		series = append(series, first)
		b.StartTimer()
		for range steps {
			time.Sleep(length / steps)
			s, _ := sample()
			series = append(series, s)
		}
		b.StopTimer()
		last, g1 := sample()
		close(stop)
		wg.Wait()

		mid := series[steps/2+1]
		var grew, late float64
		for _, name := range names {
			f, l := first[name], last[name]
			d := float64(l.pss-f.pss) / (1 << 20)
			grew += d
			late += float64(l.pss-mid[name].pss) / (1 << 20)
			var pss, heap strings.Builder
			for _, s := range series {
				fmt.Fprintf(&pss, " %.1f", float64(s[name].pss)/(1<<20))
				fmt.Fprintf(&heap, " %.1f", float64(s[name].heap)/(1<<20))
			}
			mib := func(a, b int64) string { return fmt.Sprintf("%.1f -> %.1f", float64(a)/(1<<20), float64(b)/(1<<20)) }
			b.Logf("%-8s PSS MiB%s (%+.1f; anonymous %s); live heap MiB%s; heap held %s, stacks %s, all the Go runtime holds %s MiB; open files %d -> %d; state on disk %.1f -> %.1f MiB",
				name, pss.String(), d, mib(f.anon, l.anon), heap.String(), mib(f.held, l.held), mib(f.stacks, l.stacks), mib(f.all, l.all),
				f.files, l.files, float64(f.disk)/(1<<20), float64(l.disk)/(1<<20))
		}
		st := n.Status()
		for _, name := range names[1:] {
			if p := st.Plugin(name); p.Restarts != 0 || p.PID != pids[name] {
				b.Errorf("%s restarted during the soak: %+v", name, p)
			}
		}
		b.Logf("router goroutines %v", goroutines)
		b.Logf("router goroutines %d -> %d; over %s: %d chat posts, %d long polls, %d store add/cat/unpin rounds, %d failures",
			g0, g1, length, posts.Load(), reads.Load(), adds.Load(), failures.Load())
		if failures.Load() > 0 {
			b.Errorf("%d requests failed during the soak", failures.Load())
		}
		b.ReportMetric(grew, "pss-growth-MiB")
		b.ReportMetric(late, "pss-growth-late-MiB")
		b.ReportMetric(float64(g1-g0), "goroutine-growth")
		fd := 0
		for _, name := range names {
			fd += last[name].files - first[name].files
		}
		b.ReportMetric(float64(fd), "fd-growth")
		n.Stop()
	}
}
