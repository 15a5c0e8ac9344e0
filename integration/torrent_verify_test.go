package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vecino/vecino/internal/testnet"
)

// TestVerifyFindsDamagedData: a user who doubts the disk asks the node to
// verify a torrent it seeds. Damage is found and the torrent goes back to
// downloading what was lost; once the data is whole again, a second verify
// says so and the node seeds again. The log does not fill with the
// engine's warnings about nothing.
func TestVerifyFindsDamagedData(t *testing.T) {
	n := torrentNode(t)
	data := filepath.Join(n.State, "plugins", "torrent", "data")
	makeFiles(t, data, album)
	v := createTorrent(t, n, "album")
	if out := vecinoCLI(t, n, true, "torrent", "verify", "-wait", v.InfoHash); !strings.Contains(out, "all good") {
		t.Fatalf("verify of whole data said:\n%s", out)
	}

	song := filepath.Join(data, "album", "02 song.flac")
	orig, err := os.ReadFile(song)
	if err != nil {
		t.Fatal(err)
	}
	damaged := append([]byte(nil), orig...)
	for i := 1 << 20; i < 1<<20+100; i++ {
		damaged[i] ^= 0xff
	}
	if err := os.WriteFile(song, damaged, 0o644); err != nil {
		t.Fatal(err)
	}
	if out := vecinoCLI(t, n, false, "torrent", "verify", "-wait", v.InfoHash); !strings.Contains(out, "of the data is good") {
		t.Fatalf("verify of damaged data said:\n%s", out)
	}
	if got := vecinoTorrent(t, n, v.InfoHash); got.Progress >= 1 || got.State != "downloading" {
		t.Errorf("after the damage was found: %s, want downloading, less than 100%%", got)
	}

	if err := os.WriteFile(song, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	if out := vecinoCLI(t, n, true, "torrent", "verify", "-wait", v.InfoHash); !strings.Contains(out, "all good") {
		t.Fatalf("verify after repair said:\n%s", out)
	}
	if got := vecinoTorrent(t, n, v.InfoHash); got.State != "seeding" {
		t.Errorf("after repair: %s, want seeding", got)
	}
	if out := vecinoCLI(t, n, false, "torrent", "verify", strings.Repeat("0", 40)); !strings.Contains(out, "404") {
		t.Errorf("verify of an unknown torrent said:\n%s", out)
	}
	// Three verifies of 11 MiB leave the log readable: the engine's
	// warnings about nothing (3,801 lines here before) are dropped.
	var warns []string
	for _, l := range strings.Split(n.Log(), "\n") {
		if strings.Contains(l, "level=WARN") && strings.Contains(l, "component=engine") {
			warns = append(warns, l)
		}
	}
	if len(warns) > 10 {
		t.Errorf("%d engine warnings in the log after three verifies; the first:\n%s", len(warns), strings.Join(warns[:3], "\n"))
	}
}

// TestMissingDiskHoldsTheTorrent: the disk that holds a seeded torrent's
// data goes missing (here its folder is moved away), while the node runs
// and across a restart. The torrent shows an error and downloads nothing
// again, though a full seeder is at hand; when the data is back it is
// verified and seeded. A user who wants it downloaded anew starts it.
func TestMissingDiskHoldsTheTorrent(t *testing.T) {
	n, v, sums, port := albumFromAria2(t)
	data := filepath.Join(n.State, "plugins", "torrent", "data")
	album := filepath.Join(data, "album")
	m := missingData{t: t, n: n, ih: v.InfoHash, port: port, data: data, sums: sums,
		path: album, away: filepath.Join(t.TempDir(), "away"), says: []string{"no data found at " + album, "mounted"}}

	m.goes() // while it runs
	m.held("while running")
	m.back("after the data came back")

	n.Stop() // and across a restart, as a disk not mounted at boot
	m.goes()
	n.Restart()
	n.WaitPlugin("torrent", 30*time.Second, testnet.Running)
	m.held("after a restart")
	m.back("after the data came back, restarted")

	m.goes() // gone for good
	m.downloadAnew()
}

// TestMissingFileHoldsTheTorrent: one file of a seeded torrent is moved
// away or deleted, the rest of its folder left. The engine went on
// counting the file's pieces as here (and would have written the rest
// of a download around the hole); now the torrent is held with an error
// naming the file, verified when it is back, and downloaded anew if the
// user starts it.
func TestMissingFileHoldsTheTorrent(t *testing.T) {
	n, v, sums, port := albumFromAria2(t)
	data := filepath.Join(n.State, "plugins", "torrent", "data")
	song := filepath.Join(data, "album", "02 song.flac")
	m := missingData{t: t, n: n, ih: v.InfoHash, port: port, data: data, sums: sums,
		path: song, away: filepath.Join(t.TempDir(), "song"), says: []string{"file " + song + " is missing", "verified data"}}

	m.goes()
	m.held("moved away")
	m.back("moved back")
	m.goes()
	m.downloadAnew()
}

// missingData takes a seeded torrent's file or folder path away and back.
type missingData struct {
	t          *testing.T
	n          *testnet.Node
	ih         string
	port       int // a full seeder's
	data       string
	sums       map[string]string
	path, away string
	says       []string // what the torrent's error must say
}

func (m missingData) goes() {
	m.t.Helper()
	if err := os.Rename(m.path, m.away); err != nil {
		m.t.Fatal(err)
	}
}

// held checks the torrent is held, saying why, and fetches nothing though
// a full seeder is at hand.
func (m missingData) held(when string) {
	t := m.t
	t.Helper()
	got := waitVecino(t, m.n, m.ih, "error", 30*time.Second)
	for _, s := range m.says {
		if !strings.Contains(got.Error, s) {
			t.Errorf("%s: error %q does not say %q", when, got.Error, s)
		}
	}
	addPeer(t, m.n, m.ih, m.port)
	time.Sleep(5 * time.Second)
	if _, err := os.Stat(m.path); !os.IsNotExist(err) {
		t.Fatalf("%s: the node wrote %s again (%v): it is downloading what was missing", when, m.path, err)
	}
	if got := vecinoTorrent(t, m.n, m.ih); got.State != "error" {
		t.Errorf("%s: %s, want still held", when, got)
	}
}

// back puts the data back: it is verified and seeded, whole.
func (m missingData) back(when string) {
	m.t.Helper()
	if err := os.Rename(m.away, m.path); err != nil {
		m.t.Fatal(err)
	}
	waitVecino(m.t, m.n, m.ih, "seeding", time.Minute)
	checkFiles(m.t, "vecino "+when, m.data, m.sums)
}

// downloadAnew starts the held torrent, as a user whose data is gone for
// good does: it is downloaded again from the seeder, whole.
func (m missingData) downloadAnew() {
	t := m.t
	t.Helper()
	waitVecino(t, m.n, m.ih, "error", 30*time.Second)
	if out := vecinoCLI(t, m.n, true, "torrent", "start", m.ih); !strings.Contains(out, m.ih) {
		t.Errorf("start said:\n%s", out)
	}
	addPeer(t, m.n, m.ih, m.port)
	waitVecino(t, m.n, m.ih, "seeding", 2*time.Minute)
	checkFiles(t, "vecino, downloaded anew", m.data, m.sums)
}
