package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/vecino/vecino/internal/testnet"
)

// BenchmarkSeed1GiB: Vecino and transmission-daemon each seed the same
// 1 GiB torrent, in turn, to a fresh aria2c that finds the one seeder
// through its own opentracker on loopback. It reports each seeder's
// throughput (the 1 GiB over aria2c's wall time, start-up and announce
// included, alike for both) and the seeder's peak RSS while seeding
// (sampled every 50 ms: the plugin process, or transmission-daemon).
// Targets: Vecino at least 1.0x Transmission's throughput; its RSS at most
// 1.5x Transmission's.
func BenchmarkSeed1GiB(b *testing.B) {
	testnet.NeedTools(b, "opentracker", "transmission-daemon", "transmission-create", "aria2c")
	const size = 1 << 30
	src := b.TempDir()
	writeRandom(b, filepath.Join(src, "big", "one.bin"), size)

	var vecinoRate, trRate float64
	var vecinoMem, trMem memory
	for range b.N {
		b.StopTimer()
		// Vecino: the node's data folder holds a hard link to the file.
		{
			tracker := startTracker(b)
			n := torrentNode(b)
			data := filepath.Join(n.State, "plugins", "torrent", "data", "big")
			linkTree(b, filepath.Join(src, "big"), data)
			file := makeTorrent(b, tracker, filepath.Join(src, "big"))
			code, body, err := n.Do("POST", "/api/v1/plugins/torrent/torrents", file, true)
			if err != nil || code/100 != 2 {
				b.Fatalf("add: %d %v %s", code, err, body)
			}
			ih := infoHashOf(b, body)
			tracker.allow(b, ih)
			waitVecino(b, n, ih, "seeding", 3*time.Minute)
			pid := n.Status().Plugin("torrent").PID
			secs, mem := downloadWithAria2(b, file, pid)
			vecinoRate += size / secs / (1 << 20)
			vecinoMem = peakOf(vecinoMem, mem)
			n.Stop()
		}
		// Transmission, the same way.
		{
			tracker := startTracker(b)
			tr := startTransmission(b)
			linkTree(b, filepath.Join(src, "big"), filepath.Join(tr.dir, "big"))
			file := makeTorrent(b, tracker, filepath.Join(src, "big"))
			tracker.allow(b, infoHash(b, file))
			tr.add(file)
			tr.wait(true, 3*time.Minute)
			tr.waitAnnounced(time.Minute)
			secs, mem := downloadWithAria2(b, file, tr.pid)
			trRate += size / secs / (1 << 20)
			trMem = peakOf(trMem, mem)
		}
	}
	b.ReportMetric(vecinoRate/float64(b.N), "vecino-MiB/s")
	b.ReportMetric(trRate/float64(b.N), "transmission-MiB/s")
	b.ReportMetric(vecinoRate/trRate, "throughput-x")
	reportMemory(b, "vecino", vecinoMem, "transmission", trMem)
}

func infoHashOf(t testing.TB, view []byte) string {
	var v torrentView
	if err := json.Unmarshal(view, &v); err != nil || v.InfoHash == "" {
		t.Fatalf("not a torrent view: %v %s", err, view)
	}
	return v.InfoHash
}

// writeRandom writes size pseudo-random bytes (incompressible, fast).
func writeRandom(t testing.TB, path string, size int64) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.NewChaCha8([32]byte{1})
	if _, err := io.CopyN(f, r, size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// linkTree hard-links every file under from into to, so that both seeders
// read the same bytes (and the same page cache) without a second copy.
func linkTree(t testing.TB, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if fi.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		return os.Link(p, filepath.Join(to, rel))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// downloadWithAria2 has a fresh aria2c download the torrent and returns the
// wall time and the peak RSS and PSS of process pid meanwhile.
func downloadWithAria2(t testing.TB, file []byte, pid int) (float64, memory) {
	t.Helper()
	// The download goes to memory when it can, so that the disk under
	// aria2c is not what is measured.
	dir := t.TempDir()
	if shm, err := os.MkdirTemp("/dev/shm", "vecino-bench-"); err == nil {
		dir = shm
		t.Cleanup(func() { os.RemoveAll(shm) })
	}
	tfile := filepath.Join(dir, "t.torrent")
	if err := os.WriteFile(tfile, file, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := aria2c(tfile, filepath.Join(dir, "out"), testnet.FreePort(t), "--file-allocation=none")
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	peak := samplePeak(pid)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(5 * time.Minute):
		cmd.Process.Kill()
		err = fmt.Errorf("not done in 5 min")
	}
	secs := time.Since(start).Seconds()
	mem := peak()
	if err != nil {
		t.Fatalf("aria2c: %v\n%s", err, log.String())
	}
	return secs, mem
}

// BenchmarkMakeTorrent1GiB: making a torrent of a 1 GiB file already on
// the machine (in the page cache: this is the hashing, not the disk), by
// Vecino (POST /create, then polling the making until it is done) and by
// transmission-create, with the same piece size. Reports each one's MiB/s.
func BenchmarkMakeTorrent1GiB(b *testing.B) {
	testnet.NeedTools(b, "transmission-create")
	const size = 1 << 30
	src := b.TempDir()
	writeRandom(b, filepath.Join(src, "big", "one.bin"), size)
	n := torrentNode(b)
	var vecinoSecs, trSecs float64
	for i := range b.N {
		b.StopTimer()
		name := fmt.Sprintf("big%d", i) // a new torrent each time, the same data
		linkTree(b, filepath.Join(src, "big"), filepath.Join(n.State, "plugins", "torrent", "data", name))
		b.StartTimer()
		start := time.Now()
		m := waitMaking(b, n, startMaking(b, n, name).ID, 5*time.Minute)
		vecinoSecs += time.Since(start).Seconds()
		b.StopTimer()
		if m.State != "done" {
			b.Fatalf("making %s: %+v", name, m)
		}
		out := filepath.Join(b.TempDir(), "big.torrent")
		start = time.Now()
		// -s: 1 MiB pieces, as the node chooses for 1 GiB.
		if out, err := exec.Command("transmission-create", "-s", "1024", "-o", out, filepath.Join(src, "big")).CombinedOutput(); err != nil {
			b.Fatalf("transmission-create: %v\n%s", err, out)
		}
		trSecs += time.Since(start).Seconds()
	}
	b.ReportMetric(float64(b.N)*size/(1<<20)/vecinoSecs, "vecino-MiB/s")
	b.ReportMetric(float64(b.N)*size/(1<<20)/trSecs, "transmission-MiB/s")
	b.ReportMetric(trSecs/vecinoSecs, "speed-x")
}
