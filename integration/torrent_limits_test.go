package integration

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vecino/vecino/internal/testnet"
)

// TestSeedboxLimits: the limits a seedbox's owner sets in [plugins.torrent]
// hold against a real client. With max_active = 1 a second torrent waits,
// queued; with upload_kib_per_s = 1024, aria2c's 12 MiB download takes at
// least the time that rate allows; with ratio_limit = 1, seeding stops once
// a whole copy has gone out, which lets the queued torrent go; and the
// owner can have a finished torrent seed again from the page.
func TestSeedboxLimits(t *testing.T) {
	testnet.NeedTools(t, "opentracker", "aria2c")
	tracker := startTracker(t)
	n := torrentNode(t, "ratio_limit = 1.0", "max_active = 1", "upload_kib_per_s = 1024")
	data := filepath.Join(n.State, "plugins", "torrent", "data")
	sums := makeFiles(t, data, map[string]int{"first/big.bin": 12 << 20})
	makeFiles(t, data, map[string]int{"second/small.bin": 1 << 20})
	first := createTorrent(t, n, "first", tracker.URL)
	tracker.allow(t, first.InfoHash)
	second := postCreate(t, n, "second", tracker.URL)
	waitVecino(t, n, second.InfoHash, "queued", 30*time.Second)

	file := torrentFileOf(t, n, first.InfoHash)
	out, took := aria2From(t, n, first.InfoHash, file, 2*time.Minute)
	checkFiles(t, "aria2", out, sums)
	// 12 MiB at 1 MiB/s, with a burst of 1 MiB allowed: 11 s at the
	// least (3 s without the limit, here).
	if took < 9*time.Second {
		t.Errorf("aria2c had 12 MiB in %s: faster than the 1 MiB/s upload limit allows", took.Round(time.Millisecond))
	}
	t.Logf("12 MiB under a 1 MiB/s upload limit took %s", took.Round(time.Millisecond))

	v := waitVecino(t, n, first.InfoHash, "finished", 30*time.Second)
	if v.Ratio < 1 || !strings.Contains(v.Note, "ratio") {
		t.Errorf("finished at ratio %.2f with note %q; want ratio >= 1 and the reason", v.Ratio, v.Note)
	}
	waitVecino(t, n, second.InfoHash, "seeding", 30*time.Second)
	if out := vecinoCLI(t, n, true, "torrent", "ls"); !strings.Contains(out, "stopped seeding: ratio") {
		t.Errorf("torrent ls does not say why the first stopped:\n%s", out)
	}

	// The owner has it seed again from the page, in a real browser: the
	// oldest torrent takes the one slot back, the ratio limit counts afresh.
	onTorrentPage(t, n, first.InfoHash, "stopped seeding: ratio", "button.start", "Seeding again first")
	waitVecino(t, n, first.InfoHash, "seeding", 30*time.Second)
	waitVecino(t, n, second.InfoHash, "queued", 30*time.Second)
	if msg := vecinoCLI(t, n, false, "torrent", "start", second.InfoHash); !strings.Contains(msg, "neither paused nor finished") {
		t.Errorf("start of a torrent that is not finished said:\n%s", msg)
	}
}

// TestIdleLimitStopsSeeding: a complete torrent nobody has downloaded from
// for idle_limit stops seeding and says so.
func TestIdleLimitStopsSeeding(t *testing.T) {
	n := torrentNode(t, `idle_limit = "2s"`)
	makeFiles(t, filepath.Join(n.State, "plugins", "torrent", "data"), map[string]int{"quiet/file.bin": 300 << 10})
	v := postCreate(t, n, "quiet")
	v = waitVecino(t, n, v.InfoHash, "finished", 30*time.Second)
	if !strings.Contains(v.Note, "idle for 2s") {
		t.Errorf("finished with note %q, want the idle limit named", v.Note)
	}
}

// TestPauseAndResume: a download from Transmission is paused from the
// CLI: it takes in nothing more, says "paused", and stays paused across a
// restart of the node. Resumed from the page in a real browser, it
// completes, whole.
func TestPauseAndResume(t *testing.T) {
	tr, n, v, sums := slowDownload(t, "serial", map[string]int{"serial/ep1.mkv": 12 << 20, "serial/ep2.mkv": 4<<20 + 9})
	waitProgress(t, n, v.InfoHash, 0.2)
	if out := vecinoCLI(t, n, true, "torrent", "stop", v.InfoHash); !strings.Contains(out, "paused") {
		t.Errorf("torrent stop printed %q", out)
	}
	time.Sleep(time.Second) // what was in flight lands
	before := vecinoTorrent(t, n, v.InfoHash)
	time.Sleep(3 * time.Second) // 6 MiB at Transmission's 2 MiB/s, were it running
	after := vecinoTorrent(t, n, v.InfoHash)
	if after.State != "paused" || after.Done-before.Done > 512<<10 {
		t.Errorf("paused, it went from %d to %d bytes (%s)", before.Done, after.Done, after.State)
	}

	n.Stop()
	n.Restart()
	n.WaitPlugin("torrent", 30*time.Second, testnet.Running)
	if again := vecinoTorrent(t, n, v.InfoHash); again.State != "paused" {
		t.Fatalf("after a restart the torrent is %s, not paused", again)
	}

	onTorrentPage(t, n, v.InfoHash, "paused", "button.start", "Resumed serial")
	addPeer(t, n, v.InfoHash, tr.peerPort)
	waitVecino(t, n, v.InfoHash, "seeding", 2*time.Minute)
	checkFiles(t, "vecino", filepath.Join(n.State, "plugins", "torrent", "data"), sums)
}

// onTorrentPage opens the torrent page in Chromium with the API secret
// given, waits for torrent ih's row to show rowText, clicks its button and
// waits for the page to report result, if one is given.
func onTorrentPage(t *testing.T, n *testnet.Node, ih, rowText, button, result string) *webDriver {
	t.Helper()
	wd := startWebDriver(t)
	wd.open(n.API + "/api/v1/plugins/torrent/")
	wd.typeInto("#secret", n.Token)
	row := `tr[data-infohash="` + ih + `"]`
	wd.waitText(row, rowText, 15*time.Second)
	wd.click(row + " " + button)
	if result != "" {
		wd.waitText("#result", result, 10*time.Second)
	}
	return wd
}

// TestSkippedFilesAreNotDownloaded: the owner pauses a new download of a
// season, leaves one episode out on the page (in Chromium) and resumes:
// the node fetches the rest from Transmission, whole, calls the torrent
// complete without the skipped file, and says which files it holds; a path
// the torrent lacks is refused by name.
func TestSkippedFilesAreNotDownloaded(t *testing.T) {
	tr, n, v, sums := slowDownload(t, "season", map[string]int{"season/ep1.mkv": 4<<20 + 3, "season/ep2.mkv": 10 << 20, "season/notes.txt": 1000})
	vecinoCLI(t, n, true, "torrent", "stop", v.InfoHash)
	var list struct{ Files []struct{ Path string } }
	code, body, err := n.Do("GET", "/api/v1/plugins/torrent/torrents/"+v.InfoHash+"/files", nil, false)
	if err != nil || code != http.StatusOK || json.Unmarshal(body, &list) != nil {
		t.Fatalf("files: %d %v %s", code, err, body)
	}
	skip := ""
	for _, f := range list.Files {
		if strings.HasSuffix(f.Path, "ep2.mkv") {
			skip = f.Path
		}
	}
	wd := onTorrentPage(t, n, v.InfoHash, "paused", "button.files", "")
	box := `#file-list input[data-path="` + skip + `"]`
	wd.waitText("#file-list", "ep1.mkv", 10*time.Second)
	wd.click(box)
	wd.waitText("#result", "Skipping "+skip, 10*time.Second)
	wd.waitText(`tr[data-infohash="`+v.InfoHash+`"]`, "1 of 3 files skipped", 10*time.Second)
	// And one fetched first, from the same list.
	wd.click(`#file-list input.first[data-path="ep1.mkv"]`)
	wd.waitText("#result", "Fetching first ep1.mkv", 10*time.Second)
	if out := vecinoCLI(t, n, true, "torrent", "files", v.InfoHash); !regexp.MustCompile(`(?m)^first\s.*\sep1\.mkv$`).MatchString(out) {
		t.Errorf("after the page's first box, torrent files says:\n%s", out)
	}
	if msg := vecinoCLI(t, n, false, "torrent", "skip", v.InfoHash, "season/ep9.mkv"); !strings.Contains(msg, `"season/ep9.mkv": no such file`) {
		t.Errorf("skipping a file the torrent lacks said:\n%s", msg)
	}
	vecinoCLI(t, n, true, "torrent", "start", v.InfoHash)
	addPeer(t, n, v.InfoHash, tr.peerPort)
	done := waitVecino(t, n, v.InfoHash, "seeding", 2*time.Minute)
	data := filepath.Join(n.State, "plugins", "torrent", "data")
	delete(sums, "season/ep2.mkv")
	checkFiles(t, "vecino", data, sums)
	if want := int64(4<<20 + 3 + 1000); done.Size != want {
		t.Errorf("the torrent counts %d bytes wanted, want %d (ep2 left out)", done.Size, want)
	}
	// Transmission would send ep2's 10 MiB in 5 s; give it 2 more.
	time.Sleep(2 * time.Second)
	var files struct {
		Files []struct {
			Path       string
			Size, Done int64
			Wanted     bool
		}
	}
	_, body, _ = n.Do("GET", "/api/v1/plugins/torrent/torrents/"+v.InfoHash+"/files", nil, false)
	json.Unmarshal(body, &files)
	for _, f := range files.Files {
		if f.Path == skip && (f.Wanted || f.Done > f.Size/2) {
			t.Errorf("ep2, skipped: wanted %v, %d of %d bytes here", f.Wanted, f.Done, f.Size)
		}
	}
	if out := vecinoCLI(t, n, true, "torrent", "files", v.InfoHash); !strings.Contains(out, "skip") || !strings.Contains(out, "ep1.mkv") {
		t.Errorf("torrent files printed:\n%s", out)
	}
	// The choice outlives a restart: complete without ep2, which stays out.
	n.Stop()
	n.Restart()
	n.WaitPlugin("torrent", 30*time.Second, testnet.Running)
	if again := waitVecino(t, n, v.InfoHash, "seeding", time.Minute); again.Skipped != 1 {
		t.Errorf("after a restart %d files are skipped, want 1", again.Skipped)
	}
}

// TestATorrentsOwnLimits: a torrent given its own idle limit stops
// seeding at it while the node's other torrents, under no limit, seed on;
// one given its own ratio and no idle limit keeps them across a restart.
// A limit that is no limit is refused by name.
func TestATorrentsOwnLimits(t *testing.T) {
	n := torrentNode(t)
	data := filepath.Join(n.State, "plugins", "torrent", "data")
	makeFiles(t, data, map[string]int{"brief/a.bin": 200 << 10, "lasting/b.bin": 300 << 10})
	brief, lasting := createTorrent(t, n, "brief"), createTorrent(t, n, "lasting")

	if out := vecinoCLI(t, n, true, "torrent", "limit", brief.InfoHash, "-idle", "2s"); !strings.Contains(out, "idle limit 2s (its own)") || !strings.Contains(out, "ratio limit none (the node's)") {
		t.Errorf("torrent limit -idle 2s printed %q", out)
	}
	if v := waitVecino(t, n, brief.InfoHash, "finished", 30*time.Second); !strings.Contains(v.Note, "idle for 2s") {
		t.Errorf("brief finished with note %q, want its idle limit named", v.Note)
	}
	if v := vecinoTorrent(t, n, lasting.InfoHash); v.State != "seeding" {
		t.Errorf("lasting, under the node's limits (none), is %s", v)
	}

	vecinoCLI(t, n, true, "torrent", "limit", lasting.InfoHash, "-ratio", "3", "-idle", "none")
	// The page shows the ratio against the limit it stops at.
	wd := startWebDriver(t)
	wd.open(n.API + "/api/v1/plugins/torrent/")
	wd.waitText(`tr[data-infohash="`+lasting.InfoHash+`"]`, "0.00 / 3.00", 15*time.Second)
	if msg := vecinoCLI(t, n, false, "torrent", "limit", lasting.InfoHash, "-ratio", "0"); !strings.Contains(msg, `"ratio"`) {
		t.Errorf("a ratio limit of 0 was refused with %q", msg)
	}
	n.Stop()
	n.Restart()
	n.WaitPlugin("torrent", 30*time.Second, testnet.Running)
	if l := vecinoLimits(t, n, lasting.InfoHash); l.Ratio != 3 || !l.RatioOwn || l.Idle != "" || !l.IdleOwn {
		t.Errorf("after a restart lasting's limits are %+v, want its own ratio 3 and no idle limit", l)
	}
	if again := waitVecino(t, n, brief.InfoHash, "finished", 30*time.Second); !strings.Contains(again.Note, "idle for 2s") {
		t.Errorf("after a restart brief is %s (%s)", again, again.Note)
	}
}
