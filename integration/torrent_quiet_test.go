package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vecino/vecino/internal/testnet"
)

// quietHours is the quiet hours' state in the node's torrent list.
func quietHours(t testing.TB, n *testnet.Node) (on bool, why string) {
	t.Helper()
	var list struct {
		Quiet struct {
			On  bool
			Why string
		} `json:"quiet_hours"`
	}
	code, body, err := n.Do("GET", "/api/v1/plugins/torrent/torrents", nil, false)
	if err != nil || code != http.StatusOK || json.Unmarshal(body, &list) != nil {
		t.Fatalf("GET torrents: %d %v %s", code, err, body)
	}
	return list.Quiet.On, list.Quiet.Why
}

// TestQuietHoursSlowTheSeedbox: the node has no upload limit, but quiet
// hours that hold now at 1 MiB/s: aria2c takes as long as that limit
// asks. transmission-remote's turtle switch turns them off by hand, and
// the next aria2c is not held to it; the CLI gives them back to the
// schedule; the page shows them and switches them off.
func TestQuietHoursSlowTheSeedbox(t *testing.T) {
	testnet.NeedTools(t, "aria2c", "transmission-remote")
	now := time.Now()
	hours := fmt.Sprintf("%s-%s", now.Add(-2*time.Minute).Format("15:04"), now.Add(30*time.Minute).Format("15:04"))
	n := torrentNode(t, "alt_upload_kib_per_s = 1024", fmt.Sprintf("alt_hours = %q", hours))
	data := filepath.Join(n.State, "plugins", "torrent", "data")
	sums := makeFiles(t, data, map[string]int{"evening/big.bin": 12 << 20})
	v := createTorrent(t, n, "evening")
	if on, why := quietHours(t, n); !on || why != "schedule" {
		t.Fatalf("quiet hours %s: on %v (%q), want on by the schedule", hours, on, why)
	}
	if si := transmissionRemote(t, n, "-si"); !strings.Contains(si, "Enabled turtle limit: 1.05 MB/s") {
		t.Errorf("transmission-remote -si does not show the turtle on:\n%s", si)
	}

	file := torrentFileOf(t, n, v.InfoHash)
	out, took := aria2From(t, n, v.InfoHash, file, 2*time.Minute)
	checkFiles(t, "aria2c in quiet hours", out, sums)
	// 12 MiB at 1 MiB/s, a burst of 1 MiB allowed: 11 s at the least.
	if took < 9*time.Second {
		t.Errorf("aria2c had 12 MiB in %s in quiet hours: faster than their 1 MiB/s allows", took.Round(time.Millisecond))
	}

	transmissionRemote(t, n, "--no-alt-speed")
	if on, why := quietHours(t, n); on || why != "by hand" {
		t.Errorf("after --no-alt-speed: on %v (%q), want off by hand", on, why)
	}
	out, fast := aria2From(t, n, v.InfoHash, file, 2*time.Minute)
	checkFiles(t, "aria2c with the quiet hours off", out, sums)
	if fast >= 9*time.Second {
		t.Errorf("with the quiet hours off by hand aria2c took %s, as long as their limit asks", fast.Round(time.Millisecond))
	}
	t.Logf("12 MiB in quiet hours (1 MiB/s): %s; with them off: %s", took.Round(time.Millisecond), fast.Round(time.Millisecond))

	if msg := vecinoCLI(t, n, true, "torrent", "quiet", "auto"); !strings.Contains(msg, "quiet hours on (schedule)") || !strings.Contains(msg, hours) {
		t.Errorf("torrent quiet auto printed %q", msg)
	}

	// The page, in Chromium, says so and switches them off.
	wd := startWebDriver(t)
	wd.open(n.API + "/api/v1/plugins/torrent/")
	wd.typeInto("#secret", n.Token)
	wd.waitText("#quiet-text", "Quiet hours on (schedule): up 1024 KiB/s, down unlimited; scheduled "+hours, 15*time.Second)
	wd.click("#quiet-toggle")
	wd.waitText("#result", "Quiet hours off by hand", 10*time.Second)
	if on, why := quietHours(t, n); on || why != "by hand" {
		t.Errorf("after the page's switch: on %v (%q), want off by hand", on, why)
	}
}

// TestQuietHoursSlowDownloads: quiet hours that hold now limit downloads
// to 1 MiB/s: 12 MiB from Transmission take as long as that asks, and
// arrive whole.
func TestQuietHoursSlowDownloads(t *testing.T) {
	testnet.NeedTools(t, "opentracker", "transmission-daemon", "transmission-create")
	tracker := startTracker(t)
	tr := startTransmission(t)
	sums, file := tr.seed(t, tracker, "night", map[string]int{"night/big.bin": 12 << 20})
	now := time.Now()
	hours := fmt.Sprintf("%s-%s", now.Add(-2*time.Minute).Format("15:04"), now.Add(30*time.Minute).Format("15:04"))
	n := torrentNode(t, "alt_download_kib_per_s = 1024", fmt.Sprintf("alt_hours = %q", hours))
	start := time.Now()
	v := addFromTransmission(t, n, tracker, tr, file)
	waitVecino(t, n, v.InfoHash, "seeding", 2*time.Minute)
	took := time.Since(start)
	checkFiles(t, "vecino, in quiet hours", filepath.Join(n.State, "plugins", "torrent", "data"), sums)
	if took < 9*time.Second {
		t.Errorf("12 MiB came in %s in quiet hours: faster than their 1 MiB/s allows", took.Round(time.Millisecond))
	}
	t.Logf("12 MiB downloaded in quiet hours (1 MiB/s) in %s", took.Round(time.Millisecond))
}
