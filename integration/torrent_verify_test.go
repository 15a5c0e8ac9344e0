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
// says so and the node seeds again.
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
}

// TestMissingDiskHoldsTheTorrent: the disk that holds a seeded torrent's
// data goes missing (here its folder is moved away), while the node runs
// and across a restart. The torrent shows an error and downloads nothing
// again, though a full seeder is at hand; when the data is back it is
// verified and seeded. A user who wants it downloaded anew starts it.
func TestMissingDiskHoldsTheTorrent(t *testing.T) {
	n, v, sums, port := albumFromAria2(t)
	data := filepath.Join(n.State, "plugins", "torrent", "data")
	album, away := filepath.Join(data, "album"), filepath.Join(t.TempDir(), "away")

	held := func(when string) {
		t.Helper()
		got := waitVecino(t, n, v.InfoHash, "error", 30*time.Second)
		if !strings.Contains(got.Error, "no data found at "+album) || !strings.Contains(got.Error, "mounted") {
			t.Errorf("%s: error %q does not say the data is missing", when, got.Error)
		}
		addPeer(t, n, v.InfoHash, port) // a seeder at hand
		time.Sleep(5 * time.Second)
		if _, err := os.Stat(album); !os.IsNotExist(err) {
			t.Fatalf("%s: the node wrote %s again (%v): it is downloading what was missing", when, album, err)
		}
		if got := vecinoTorrent(t, n, v.InfoHash); got.State != "error" {
			t.Errorf("%s: %s, want still held", when, got)
		}
	}
	back := func(when string) {
		t.Helper()
		if err := os.Rename(away, album); err != nil {
			t.Fatal(err)
		}
		waitVecino(t, n, v.InfoHash, "seeding", time.Minute)
		checkFiles(t, "vecino "+when, data, sums)
	}

	if err := os.Rename(album, away); err != nil { // while it runs
		t.Fatal(err)
	}
	held("while running")
	back("after the data came back")

	n.Stop() // and across a restart, as a disk not mounted at boot
	if err := os.Rename(album, away); err != nil {
		t.Fatal(err)
	}
	n.Restart()
	n.WaitPlugin("torrent", 30*time.Second, testnet.Running)
	held("after a restart")
	back("after the data came back, restarted")

	if err := os.Rename(album, away); err != nil { // gone for good
		t.Fatal(err)
	}
	waitVecino(t, n, v.InfoHash, "error", 30*time.Second)
	if out := vecinoCLI(t, n, true, "torrent", "start", v.InfoHash); !strings.Contains(out, v.InfoHash) {
		t.Errorf("start said:\n%s", out)
	}
	addPeer(t, n, v.InfoHash, port)
	waitVecino(t, n, v.InfoHash, "seeding", 2*time.Minute)
	checkFiles(t, "vecino, downloaded anew", data, sums)
}
