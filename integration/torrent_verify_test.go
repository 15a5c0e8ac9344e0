package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
