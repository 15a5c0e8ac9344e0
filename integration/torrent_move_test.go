package integration

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vecino/vecino/internal/testnet"
)

// TestMovingATorrentsData: the owner sorts a seeding torrent into folders
// of the data folder, with the CLI, the page (in Chromium) and
// transmission-remote's --move;
// points it with --find at a copy made by hand; and moves it onto another
// disk (a tmpfs mounted in the data folder), where it is copied. Each
// time its files are whole in the new folder and gone from the old one,
// and it seeds on without its data hashed again; a folder where its name
// is taken is refused with nothing touched. Afterwards aria2c downloads
// it from the node, and after a restart it seeds from the other disk.
func TestMovingATorrentsData(t *testing.T) {
	testnet.NeedTools(t, "transmission-remote", "aria2c")
	n := torrentNode(t)
	data := filepath.Join(n.State, "plugins", "torrent", "data")
	sums := makeFiles(t, data, album)
	v := createTorrent(t, n, "album")
	gone := func(dir string) {
		t.Helper()
		if _, err := os.Stat(filepath.Join(data, dir, "album")); !os.IsNotExist(err) {
			t.Errorf("%s still holds album after the move (%v)", filepath.Join(dir, "album"), err)
		}
	}
	seedsFrom := func(dir string) {
		t.Helper()
		got := vecinoTorrent(t, n, v.InfoHash)
		if got.State != "seeding" || got.Dir != dir {
			t.Errorf("after the move: %s in %q, want seeding in %q", got, got.Dir, dir)
		}
	}

	if out := vecinoCLI(t, n, true, "torrent", "move", v.InfoHash, "music"); !strings.Contains(out, "in music/, seeding") {
		t.Errorf("torrent move printed %q", out)
	}
	checkFiles(t, "moved to music/", filepath.Join(data, "music"), sums)
	gone("")
	seedsFrom("music")

	// A folder where something is called album already.
	makeFiles(t, data, map[string]int{"taken/album/mine.txt": 10})
	if out := vecinoCLI(t, n, false, "torrent", "move", v.InfoHash, "taken"); !strings.Contains(out, "exists already") {
		t.Errorf("a move onto a name taken: %q, want it refused saying so", out)
	}
	if out := vecinoCLI(t, n, false, "torrent", "move", v.InfoHash, "../elsewhere"); !strings.Contains(out, "must stay in the data folder") {
		t.Errorf("a move out of the data folder: %q, want it refused saying so", out)
	}
	checkFiles(t, "after the refusals", filepath.Join(data, "music"), sums)
	if entries, _ := os.ReadDir(filepath.Join(data, "taken", "album")); len(entries) != 1 {
		t.Errorf("taken/album holds %d entries after a refused move, want its one file", len(entries))
	}

	// The page, in Chromium: its Move form.
	wd := onTorrentPage(t, n, v.InfoHash, "in music/", "button.move", "")
	wd.clear("#move-dir")
	wd.typeInto("#move-dir", "films")
	wd.click("#move button")
	wd.waitText("#result", "Moved album to films/", 10*time.Second)
	checkFiles(t, "moved to films/ from the page", filepath.Join(data, "films"), sums)
	gone("music")
	seedsFrom("films")

	// Transmission's clients: set-location with the data moved.
	id := listedID(t, transmissionRemote(t, n, "-l"), "album")
	transmissionRemote(t, n, "-t", id, "--move", filepath.Join(data, "tv"))
	checkFiles(t, "moved to tv/ by transmission-remote", filepath.Join(data, "tv"), sums)
	gone("films")
	seedsFrom("tv")
	if info := transmissionRemote(t, n, "-t", id, "-i"); !strings.Contains(info, "Location: "+filepath.Join(data, "tv")) {
		t.Errorf("transmission-remote -i does not show the new location:\n%s", info)
	}
	transmissionRemoteRefused(t, n, "not in this node's data folder", "-t", id, "--move", "/srv/elsewhere")

	// And with the data put there by hand: --find points the torrent at
	// it and verifies it; the old copy is left alone.
	if out, err := exec.Command("cp", "-a", filepath.Join(data, "tv"), filepath.Join(data, "backup")).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	transmissionRemote(t, n, "-t", id, "--find", filepath.Join(data, "backup"))
	waitVecino(t, n, v.InfoHash, "seeding", time.Minute)
	seedsFrom("backup")
	if verifies(n.Log()) != 1 {
		t.Errorf("--find did not verify the data it was pointed at, once:\n%s", n.Log())
	}
	checkFiles(t, "tv/ after --find", filepath.Join(data, "tv"), sums)

	// Onto another disk: copied, then the old files go.
	if err := os.Mkdir(filepath.Join(data, "usb"), 0o755); err != nil {
		t.Fatal(err)
	}
	mountTmpfs(t, filepath.Join(data, "usb"), "64m")
	if out := vecinoCLI(t, n, true, "torrent", "move", v.InfoHash, "usb"); !strings.Contains(out, "in usb/, seeding") {
		t.Errorf("torrent move onto another disk printed %q", out)
	}
	if !strings.Contains(n.Log(), "moving to another disk") {
		t.Errorf("the move to usb/ was not a copy: the test would not show one:\n%s", n.Log())
	}
	checkFiles(t, "copied to usb/", filepath.Join(data, "usb"), sums)
	gone("backup")
	seedsFrom("usb")

	out, _ := aria2From(t, n, v.InfoHash, torrentFileOf(t, n, v.InfoHash), 2*time.Minute)
	checkFiles(t, "aria2c, from the node after the moves", out, sums)
	if got := verifies(n.Log()); got != 1 {
		t.Errorf("%d verifies: a move hashed the data again:\n%s", got, n.Log())
	}

	n.Stop()
	n.Restart()
	n.WaitPlugin("torrent", 30*time.Second, testnet.Running)
	waitVecino(t, n, v.InfoHash, "seeding", 30*time.Second)
	seedsFrom("usb")
	if got := verifies(n.Log()); got != 0 {
		t.Errorf("the restart hashed the data again:\n%s", n.Log())
	}
}

// verifies counts the verifies a router's log tells of.
func verifies(log string) int { return strings.Count(log, "msg=verified ") }

// TestDownloadsWaitInTheIncompleteFolder: with incomplete_dir set, a
// download a Transmission client adds into tv/ (as Sonarr does) grows in
// incomplete/tv/ while the client is told it is in tv/; once whole it is
// in tv/ and nowhere else, seeding, not hashed again. A torrent made of
// data already in the data folder is seeded where it is.
func TestDownloadsWaitInTheIncompleteFolder(t *testing.T) {
	testnet.NeedTools(t, "opentracker", "transmission-daemon", "transmission-create", "transmission-remote")
	tracker := startTracker(t)
	tr := startTransmission(t)
	sums, file := tr.seed(t, tracker, "show", map[string]int{"show/e01.mkv": 12 << 20, "show/e02.mkv": 4<<20 + 3})
	tr.call("session-set", map[string]any{"speed-limit-up": 2048, "speed-limit-up-enabled": true})
	n := torrentNode(t, `incomplete_dir = "incomplete"`)
	data := filepath.Join(n.State, "plugins", "torrent", "data")

	tfile := filepath.Join(t.TempDir(), "show.torrent")
	if err := os.WriteFile(tfile, file, 0o644); err != nil {
		t.Fatal(err)
	}
	transmissionRemote(t, n, "-a", tfile, "-w", filepath.Join(data, "tv"))
	ih := vecinoTorrents(t, n)[0].InfoHash
	tracker.allow(t, ih)
	addPeer(t, n, ih, tr.peerPort)
	waitProgress(t, n, ih, 0.2)
	if _, err := os.Stat(filepath.Join(data, "incomplete", "tv", "show", "e01.mkv")); err != nil {
		t.Errorf("mid-download, e01.mkv is not in incomplete/tv/show: %v", err)
	}
	if _, err := os.Stat(filepath.Join(data, "tv", "show")); !os.IsNotExist(err) {
		t.Errorf("mid-download, tv/show is there already (%v)", err)
	}
	id := listedID(t, transmissionRemote(t, n, "-l"), "show")
	if info := transmissionRemote(t, n, "-t", id, "-i"); !strings.Contains(info, "Location: "+filepath.Join(data, "tv")+"\n") {
		t.Errorf("transmission-remote -i does not give tv/ as the location:\n%s", info)
	}

	v := waitVecino(t, n, ih, "seeding", 2*time.Minute)
	checkFiles(t, "whole, in tv/", filepath.Join(data, "tv"), sums)
	if _, err := os.Stat(filepath.Join(data, "incomplete", "tv", "show")); !os.IsNotExist(err) {
		t.Errorf("incomplete/tv/show is still there once whole (%v)", err)
	}
	if v.Dir != "tv" || v.Progress != 1 || verifies(n.Log()) != 0 {
		t.Errorf("once whole: %s in %q, %d verifies; want seeding 100%% in tv, none", v, v.Dir, verifies(n.Log()))
	}

	makeFiles(t, data, map[string]int{"mine/photo.jpg": 300 << 10})
	if mine := createTorrent(t, n, "mine"); mine.Dir != "" {
		t.Errorf("a torrent of data in the data folder went to %q", mine.Dir)
	}
	if _, err := os.Stat(filepath.Join(data, "mine", "photo.jpg")); err != nil {
		t.Errorf("the data a torrent was made of moved: %v", err)
	}
}

// TestMoveCutShortByAKill: the torrent plugin is killed (SIGKILL) just as
// it starts copying 384 MiB onto another disk. Restarted, it finds where
// the data is: still in the old folder with the partial copy removed (or,
// if the copy had ended, in the new one with the old gone), never split;
// the torrent seeds it whole, not hashed again.
func TestMoveCutShortByAKill(t *testing.T) {
	n := torrentNode(t)
	data := filepath.Join(n.State, "plugins", "torrent", "data")
	writeRandom(t, filepath.Join(data, "big", "film.mkv"), 384<<20)
	v := createTorrent(t, n, "big")
	if err := os.Mkdir(filepath.Join(data, "usb"), 0o755); err != nil {
		t.Fatal(err)
	}
	mountTmpfs(t, filepath.Join(data, "usb"), "512m")

	pid := n.Status().Plugin("torrent").PID
	code, body, err := n.Do("POST", "/api/v1/plugins/torrent/torrents/"+v.InfoHash+"/move", []byte(`{"dir": "usb"}`), true)
	if err != nil || code != http.StatusAccepted || !strings.Contains(string(body), `"moving"`) {
		t.Fatalf("move: %d %v %s; want it copying", code, err, body)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	n.WaitPlugin("torrent", 30*time.Second, func(p testnet.PluginStatus) bool { return p.State == "running" && p.PID != pid })

	got := waitVecino(t, n, v.InfoHash, "seeding", 30*time.Second)
	_, oldErr := os.Stat(filepath.Join(data, "big"))
	_, newErr := os.Stat(filepath.Join(data, "usb", "big"))
	switch got.Dir {
	case "":
		t.Log("killed mid-copy: the data stays where it was")
		if !os.IsNotExist(newErr) {
			t.Errorf("the partial copy in usb/ is still there (%v)", newErr)
		}
	case "usb":
		t.Log("the copy had ended before the kill: the data is in usb/")
		if !os.IsNotExist(oldErr) {
			t.Errorf("the old copy is still there (%v)", oldErr)
		}
	default:
		t.Fatalf("after the kill the torrent is in %q", got.Dir)
	}
	if got.Progress != 1 || verifies(n.Log()) != 0 {
		t.Errorf("after the kill: %s, %d verifies; want it whole, not hashed again", got, verifies(n.Log()))
	}
}
