package integration

import (
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vecino/vecino/internal/testnet"
)

// transmissionWeb is where Debian's transmission-common (a dependency of
// transmission-daemon, which .ci/run installs) puts Transmission's web
// client.
const transmissionWeb = "/usr/share/transmission/web"

// TestTransmissionWebClientDrivesTheSeedbox: Transmission's own web client,
// served by the node from web_home and run in Chromium, lists the node's
// torrents with their state, and its pause and start buttons pause and
// start them. It is a program written for transmission-daemon: nothing in
// it knows of Vecino.
func TestTransmissionWebClientDrivesTheSeedbox(t *testing.T) {
	testnet.NeedTools(t, "transmission-daemon")
	if _, err := os.Stat(filepath.Join(transmissionWeb, "index.html")); err != nil {
		t.Fatalf("Transmission's web client (Debian's transmission-common): %v", err)
	}
	wd := startWebDriver(t)
	n := torrentNode(t, `web_home = "`+transmissionWeb+`"`)
	data := filepath.Join(n.State, "plugins", "torrent", "data")
	makeFiles(t, data, map[string]int{"album/one.flac": 3 << 20, "album/two.flac": 2 << 20})
	alb := createTorrent(t, n, "album")
	waitVecino(t, n, alb.InfoHash, "seeding", time.Minute)

	// The password, as a person types it into the browser's prompt.
	wd.call("POST", "/session/"+wd.session+"/goog/cdp/execute", map[string]any{"cmd": "Network.enable", "params": map[string]any{}}, nil)
	wd.call("POST", "/session/"+wd.session+"/goog/cdp/execute", map[string]any{"cmd": "Network.setExtraHTTPHeaders", "params": map[string]any{
		"headers": map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("vecino:"+n.Token))},
	}}, nil)
	wd.open(n.API + "/transmission/web")
	wd.waitText("#torrent_list", "album", 30*time.Second)
	wd.waitText("#torrent_list", "Seeding", 10*time.Second)

	wd.click("#torrent_list .torrent_name")
	wd.click("#toolbar-pause")
	waitVecino(t, n, alb.InfoHash, "paused", 20*time.Second)
	wd.waitText("#torrent_list", "Paused", 10*time.Second)
	wd.click("#toolbar-start")
	waitVecino(t, n, alb.InfoHash, "seeding", 20*time.Second)
	wd.waitText("#torrent_list", "Seeding", 10*time.Second)

	// The inspector: the torrent's hash, where its data is, its files.
	wd.click("#toolbar-inspector")
	wd.waitText("#inspector-info-hash", alb.InfoHash, 10*time.Second)
	wd.waitText("#inspector-info-location", data, 10*time.Second)
	wd.click("#inspector-tab-files")
	wd.waitText("#inspector_file_list", "one.flac", 10*time.Second)
	wd.waitText("#inspector_file_list", "two.flac", 10*time.Second)

	// Its statistics (what the clients show as totals) count the
	// seedbox's runs, across a restart of the plugin.
	if out := transmissionRemote(t, n, "-st"); !strings.Contains(out, "Started 1 times") {
		t.Errorf("session stats:\n%s", out)
	}
	if code, body, err := n.Do("POST", "/api/v1/restart/torrent", nil, true); err != nil || code >= 300 {
		t.Fatalf("restart the plugin: %d %v %s", code, err, body)
	}
	n.WaitPlugin("torrent", 30*time.Second, func(p testnet.PluginStatus) bool { return p.State == "running" && p.Restarts >= 1 })
	waitVecino(t, n, alb.InfoHash, "seeding", time.Minute)
	if out := transmissionRemote(t, n, "-st"); !strings.Contains(out, "Started 2 times") {
		t.Errorf("session stats after a restart:\n%s", out)
	}

	// Its remove button removes the torrent (the data stays), and its open
	// dialog adds a .torrent from the browser's disk: the node finds the
	// data in place and seeds it.
	tfile := filepath.Join(t.TempDir(), "album.torrent")
	if err := os.WriteFile(tfile, torrentFileOf(t, n, alb.InfoHash), 0o644); err != nil {
		t.Fatal(err)
	}
	wd.open(n.API + "/transmission/web/")
	wd.waitText("#torrent_list", "album", 30*time.Second)
	wd.click("#torrent_list .torrent_name")
	wd.click("#toolbar-remove")
	wd.click("#dialog_confirm_button")
	waitTorrentAnswer(t, n, alb.InfoHash, http.StatusNotFound, "the web client's remove did not remove the torrent")
	if _, err := os.Stat(filepath.Join(data, "album", "one.flac")); err != nil {
		t.Fatalf("remove without its data took the data: %v", err)
	}
	wd.click("#toolbar-open")
	wd.typeInto("#torrent_upload_file", tfile)
	wd.click("#upload_confirm_button")
	// The browser reads the file, then posts it: the torrent comes a
	// moment after the click.
	waitTorrentAnswer(t, n, alb.InfoHash, http.StatusOK, "the web client's open dialog did not add the torrent")
	waitVecino(t, n, alb.InfoHash, "seeding", time.Minute)
	wd.waitText("#torrent_list", "album", 20*time.Second)
}

// waitTorrentAnswer waits up to 20 s for the node to answer code for the
// torrent ih (404 once it is removed, 200 once it is added), and fails the
// test with failure if it does not.
func waitTorrentAnswer(t *testing.T, n *testnet.Node, ih string, code int, failure string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if got, _, _ := n.Do("GET", "/api/v1/plugins/torrent/torrents/"+ih, nil, false); got == code {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(failure)
		}
	}
}
