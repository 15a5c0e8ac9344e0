package integration

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vecino/vecino/internal/testnet"
)

// threePlugins is the node `make run` starts: torrent, chat and store.
var threePlugins = testnet.Options{Plugins: map[string]string{"torrent": "", "chat": `rooms = ["lobby"]`, "store": ""}}

// memory is one process's resident and proportional set size, in bytes.
type memory struct{ rss, pss, pssAnon int64 }

// readMemory reads /proc/PID/smaps_rollup.
func readMemory(pid int) (memory, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return memory{}, err
	}
	defer f.Close()
	var m memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			continue
		}
		switch fields[0] {
		case "Rss:":
			m.rss = kb << 10
		case "Pss:":
			m.pss = kb << 10
		case "Pss_Anon:":
			m.pssAnon = kb << 10
		}
	}
	return m, sc.Err()
}

func peakOf(a, b memory) memory {
	return memory{rss: max(a.rss, b.rss), pss: max(a.pss, b.pss), pssAnon: max(a.pssAnon, b.pssAnon)}
}

// reportMemory reports two processes' peak RSS and PSS and their ratios.
func reportMemory(b *testing.B, name string, m memory, other string, o memory) {
	b.ReportMetric(float64(m.rss)/(1<<20), name+"-peak-RSS-MiB")
	b.ReportMetric(float64(o.rss)/(1<<20), other+"-peak-RSS-MiB")
	b.ReportMetric(float64(m.rss)/float64(o.rss), "RSS-x")
	b.ReportMetric(float64(m.pss)/(1<<20), name+"-peak-PSS-MiB")
	b.ReportMetric(float64(o.pss)/(1<<20), other+"-peak-PSS-MiB")
	b.ReportMetric(float64(m.pss)/float64(o.pss), "PSS-x")
}

// samplePeak samples pid's RSS and PSS every 50 ms until the returned
// function is called; that returns the highest of each, in bytes. RSS
// counts pages shared with other processes in full (the built-in plugins
// share the router's binary); PSS divides them among their sharers.
func samplePeak(pid int) func() memory {
	stop := make(chan struct{})
	var peak memory
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if m, err := readMemory(pid); err == nil {
				peak.rss, peak.pss = max(peak.rss, m.rss), max(peak.pss, m.pss)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	return func() memory {
		close(stop)
		wg.Wait()
		return peak
	}
}

// BenchmarkIdleMemory starts a node with the three plugins, lets it settle,
// and reports the RSS and PSS of the router plus its plugins, in MiB.
// Target: under 80 MiB in all.
func BenchmarkIdleMemory(b *testing.B) {
	const settle = 10 * time.Second
	var rss, pss float64
	for range b.N {
		b.StopTimer()
		n := testnet.Start(b, threePlugins)
		pids := []int{n.PID()}
		for _, name := range []string{"torrent", "chat", "store"} {
			pids = append(pids, n.WaitPlugin(name, 30*time.Second, testnet.Running).PID)
		}
		time.Sleep(settle)
		b.StartTimer()
		for i, pid := range pids {
			m, err := readMemory(pid)
			if err != nil {
				b.Fatalf("read memory of pid %d: %v", pid, err)
			}
			rss += float64(m.rss)
			pss += float64(m.pss)
			if b.N == 1 {
				name := []string{"router", "torrent", "chat", "store"}[i]
				b.Logf("%-8s rss %.1f MiB  pss %.1f MiB", name, float64(m.rss)/(1<<20), float64(m.pss)/(1<<20))
			}
		}
		n.Stop()
	}
	b.ReportMetric(rss/float64(b.N)/(1<<20), "rss-MiB")
	b.ReportMetric(pss/float64(b.N)/(1<<20), "pss-MiB")
}

// BenchmarkKillToServing kills the chat plugin with SIGKILL and measures the
// time until the router has restarted it and it answers an HTTP request
// through the router again. Each iteration uses a fresh node, so every kill
// is a first crash (later quick crashes back off on purpose). Target: < 1 s.
func BenchmarkKillToServing(b *testing.B) {
	var total, worst time.Duration
	for range b.N {
		b.StopTimer()
		n := testnet.Start(b, testnet.Options{Plugins: map[string]string{"chat": `rooms = ["lobby"]`}})
		before := n.WaitPlugin("chat", 30*time.Second, testnet.Running)
		b.StartTimer()
		start := time.Now()
		if err := syscall.Kill(before.PID, syscall.SIGKILL); err != nil {
			b.Fatal(err)
		}
		// Wait for the kill to be seen, then for the new process to serve.
		for deadline := start.Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("chat not serving 30 s after kill:\n%s", n.Log())
			}
			st, err := n.TryStatus()
			if err != nil {
				b.Fatalf("router stopped answering: %v", err)
			}
			p := st.Plugin("chat")
			if p.PID == before.PID || p.PID == 0 {
				continue
			}
			if code, _, _ := n.Do("GET", "/api/v1/plugins/chat/rooms", nil, false); code == http.StatusOK {
				break
			}
		}
		d := time.Since(start)
		b.StopTimer()
		total += d
		worst = max(worst, d)
		n.Stop()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/restart")
	b.ReportMetric(float64(worst.Milliseconds()), "worst-ms")
}
