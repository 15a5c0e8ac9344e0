package integration

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vecino/vecino/internal/testnet"
)

// TestBlocklistKeepsPeersOut: a seedbox owner sets blocklist_url, as in
// Transmission, to a list served (gzipped, PeerGuardian's format) on
// loopback. aria2c from 127.0.0.1 downloads the node's torrent through
// the tracker; aria2c from 127.0.0.5, which the list names, gets nothing,
// and the node counts its refusals; the node will not dial it by hand
// either. An update that fetches an error page, from the page's button
// (in Chromium) or transmission-remote's --blocklist-update, is refused,
// the list in force kept and the refusal shown; a new list that also
// names 127.0.0.6 closes the connection of the aria2c downloading from
// there, which then gets no further.
func TestBlocklistKeepsPeersOut(t *testing.T) {
	testnet.NeedTools(t, "opentracker", "aria2c", "transmission-remote", "transmission-create")
	var mu sync.Mutex
	list := gzipped("neighbourhood spammer:127.0.0.5-127.0.0.5\n")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Write(list)
	}))
	defer srv.Close()
	serve := func(b []byte) { mu.Lock(); list = b; mu.Unlock() }

	tracker := startTracker(t)
	n := torrentNode(t, fmt.Sprintf("blocklist_url = %q", srv.URL+"/level1.gz"), "alt_upload_kib_per_s = 128")
	data := filepath.Join(n.State, "plugins", "torrent", "data")
	sums := makeFiles(t, data, map[string]int{"shared/film.mkv": 6 << 20})
	// The tracker knows the torrent before the node first announces it.
	file := makeTorrent(t, tracker, filepath.Join(data, "shared"))
	tracker.allow(t, infoHash(t, file))
	v := addTorrent(t, n, file)
	waitVecino(t, n, v.InfoHash, "seeding", time.Minute)
	dir := t.TempDir()
	tfile := filepath.Join(dir, "shared.torrent")
	os.WriteFile(tfile, file, 0o644)

	// The list is fetched when the plugin starts.
	b := waitBlocklist(t, n, func(b blocklistState) bool { return b.Ranges == 1 })
	if b.Files["from-url"].Ranges != 1 || b.Fetched == nil {
		t.Errorf("blocklist after start: %+v, want from-url's one range", b)
	}

	out := filepath.Join(dir, "from-127.0.0.1")
	if o, err := aria2c(tfile, out, testnet.FreePort(t), "--bt-tracker-interval=1").CombinedOutput(); err != nil {
		t.Fatalf("aria2c from 127.0.0.1: %v\n%s", err, o[max(0, len(o)-2000):])
	}
	checkFiles(t, "aria2c from 127.0.0.1", out, sums)

	// From the blocked address: nothing, however long it waits (bounded
	// by aria2c's own stop timeout).
	sent := vecinoTorrent(t, n, v.InfoHash).Uploaded
	out = filepath.Join(dir, "from-127.0.0.5")
	blocked := aria2cCmd(tfile, out, testnet.FreePort(t), "--interface=127.0.0.5", "--seed-time=0",
		"--bt-stop-timeout=8", "--bt-tracker-interval=1")
	o, err := blocked.CombinedOutput()
	if err == nil {
		t.Errorf("aria2c from 127.0.0.5, which the blocklist names, finished:\n%s", o)
	}
	if got := vecinoTorrent(t, n, v.InfoHash).Uploaded; got != sent {
		t.Errorf("the node sent %d bytes while only aria2c from 127.0.0.5 asked", got-sent)
	}
	if b := blocklistOf(t, n); b.Refused == 0 {
		t.Errorf("no refusal counted: %+v", b)
	}
	if msg := vecinoCLI(t, n, false, "torrent", "peer", v.InfoHash, "127.0.0.5:6881"); !strings.Contains(msg, "blocklist") {
		t.Errorf("torrent peer with a blocked address said:\n%s", msg)
	}

	// An update that fetches an error page changes nothing: asked for on
	// the page, in a real browser, and by transmission-remote.
	serve([]byte("<html><body>502 Bad Gateway</body></html>\n"))
	wd := startWebDriver(t)
	wd.open(n.API + "/api/v1/plugins/torrent/")
	wd.typeInto("#secret", n.Token)
	wd.waitText("#blocklist", "Blocklist: 1 range in force", 15*time.Second)
	wd.click("#blocklist-update")
	wd.waitText("#result", "holds no address range (line 1:", 15*time.Second)
	wd.waitText("#blocklist", "last update refused", 15*time.Second)
	if msg, err := transmissionRemoteAs(n, "vecino:"+n.Token, "--blocklist-update"); err == nil || !strings.Contains(msg, "holds no address range") {
		t.Errorf("blocklist-update from an error page: %v\n%s", err, msg)
	}
	if b := blocklistOf(t, n); b.Ranges != 1 || !strings.Contains(b.UpdateError, "holds no address range") {
		t.Errorf("after a refused update: %+v, want the one range kept and the error shown", b)
	}

	// A peer downloading, slowly (the quiet hours' 128 KiB/s), from an
	// address the next list names: the update closes its connection.
	vecinoCLI(t, n, true, "torrent", "quiet", "on")
	out = filepath.Join(dir, "from-127.0.0.6")
	slow := aria2cCmd(tfile, out, testnet.FreePort(t), "--interface=127.0.0.6", "--seed-time=0",
		"--bt-stop-timeout=8", "--bt-tracker-interval=1")
	var slowLog bytes.Buffer
	slow.Stdout, slow.Stderr = &slowLog, &slowLog
	if err := slow.Start(); err != nil {
		t.Fatal(err)
	}
	slowDone := make(chan error, 1)
	go func() { slowDone <- slow.Wait() }()
	defer slow.Process.Kill()
	sent = vecinoTorrent(t, n, v.InfoHash).Uploaded
	for deadline := time.Now().Add(30 * time.Second); vecinoTorrent(t, n, v.InfoHash).Uploaded < sent+256<<10; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the node has not sent 256 KiB to aria2c from 127.0.0.6 in 30 s\n%s", slowLog.String())
		}
	}
	serve(gzipped("# level 2\nneighbourhood spammer:127.0.0.5-127.0.0.5\nleecher:127.0.0.6-127.0.0.6\n"))
	if msg := transmissionRemote(t, n, "--blocklist-update"); !strings.Contains(msg, "2") {
		t.Errorf("blocklist-update answered %q, want its size, 2", msg)
	}
	b = blocklistOf(t, n)
	if b.Ranges != 2 || b.Dropped != 1 || b.UpdateError != "" {
		t.Errorf("after the update: %+v, want 2 ranges and the one connection closed", b)
	}
	cut := vecinoTorrent(t, n, v.InfoHash).Uploaded - sent
	select {
	case err := <-slowDone:
		if err == nil {
			t.Errorf("aria2c from 127.0.0.6 finished after its address was blocked\n%s", slowLog.String())
		}
	case <-time.After(time.Minute):
		t.Errorf("aria2c from 127.0.0.6 still running a minute after its connection was closed (its stop timeout is 8 s)")
	}
	// What was in flight when the connection closed may still count.
	if got := vecinoTorrent(t, n, v.InfoHash).Uploaded - sent; got > cut+(256<<10) {
		t.Errorf("the node went on sending to 127.0.0.6 after its address was blocked: %d bytes, then %d", cut, got)
	}
	wd.waitText("#blocklist", "Blocklist: 2 ranges in force", 15*time.Second)
	if cli := vecinoCLI(t, n, true, "torrent", "blocklist"); !strings.Contains(cli, "2 ranges in force") || !strings.Contains(cli, "from-url: 2 ranges") {
		t.Errorf("torrent blocklist printed:\n%s", cli)
	}
	t.Logf("aria2c from 127.0.0.6 had %d of %d bytes when it was cut off; %d refusals", cut, 6<<20, b.Refused)
}

// blocklistState is GET /api/v1/plugins/torrent/blocklist.
type blocklistState struct {
	Ranges  int
	Refused int64
	Files   map[string]struct {
		Ranges, Skipped int
	}
	Fetched     *time.Time
	UpdateError string `json:"update_error"`
	Dropped     int
}

func blocklistOf(t testing.TB, n *testnet.Node) blocklistState {
	t.Helper()
	var b blocklistState
	code, body, err := n.Do("GET", "/api/v1/plugins/torrent/blocklist", nil, false)
	if err != nil || code != http.StatusOK || json.Unmarshal(body, &b) != nil {
		t.Fatalf("GET blocklist: %d %v %s", code, err, body)
	}
	return b
}

func waitBlocklist(t testing.TB, n *testnet.Node, ok func(blocklistState) bool) blocklistState {
	t.Helper()
	var b blocklistState
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if b = blocklistOf(t, n); ok(b) {
			return b
		}
	}
	t.Fatalf("blocklist not as wanted within 30 s: %+v\n%s", b, n.Log())
	return b
}

func gzipped(s string) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.Bytes()
}
