package integration

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vecino/vecino/internal/testnet"
)

// TestTrackerAddedToAStalledMagnet: a magnet link that names no tracker,
// on a node with no DHT, finds nobody. Its owner adds the tracker
// Transmission announces to, with transmission-remote's --tracker-add:
// the node announces there at once, finds Transmission and downloads the
// files whole. The trackers added are still the torrent's after the
// plugin restarts; taking a tracker away is refused, saying why.
func TestTrackerAddedToAStalledMagnet(t *testing.T) {
	testnet.NeedTools(t, "opentracker", "transmission-daemon", "transmission-create", "transmission-remote")
	tracker := startTracker(t)
	tr := startTransmission(t)
	sizes := map[string]int{"radio/show.ogg": 3<<20 + 5, "radio/notes.txt": 900}
	sums := makeFiles(t, tr.dir, sizes)
	file := makeTorrent(t, tracker, filepath.Join(tr.dir, "radio"))
	ih := infoHash(t, file)
	tracker.allow(t, ih) // before Transmission's first announce
	tr.add(file)
	tr.waitTorrent(ih, true, time.Minute)

	n := torrentNode(t)
	transmissionRemote(t, n, "-a", "magnet:?xt=urn:btih:"+ih+"&dn=radio")
	time.Sleep(3 * time.Second)
	if v := vecinoTorrent(t, n, ih); v.Progress != 0 || v.Peers != 0 {
		t.Fatalf("a magnet with no tracker found peers on a node with no DHT: %+v", v)
	}
	if out := transmissionRemote(t, n, "-t", ih, "--tracker-add", tracker.URL); !strings.Contains(out, "success") {
		t.Errorf("--tracker-add answered %q", out)
	}
	waitVecino(t, n, ih, "seeding", time.Minute)
	checkFiles(t, "the node, from Transmission through the added tracker", filepath.Join(n.State, "plugins", "torrent", "data"), sums)

	if out := vecinoCLI(t, n, true, "torrent", "tracker", ih, tracker.URL); !strings.Contains(out, "already") {
		t.Errorf("adding the same tracker again printed %q", out)
	}
	if msg := vecinoCLI(t, n, false, "torrent", "tracker", ih, "ftp://tracker.example/announce"); !strings.Contains(msg, "not ftp://") {
		t.Errorf("an ftp tracker: %q", msg)
	}
	transmissionRemoteRefused(t, n, "goes on announcing", "-t", ih, "--tracker-remove", "0")
	// One more, now that the node keeps the torrent's metadata (with the
	// first tracker in it): only the node's own record brings it back.
	// Nothing listens there; it is never reached off loopback.
	const spare = "udp://127.0.0.1:9/announce"
	if out := vecinoCLI(t, n, true, "torrent", "tracker", ih, spare); !strings.Contains(out, "announcing to "+spare) {
		t.Errorf("torrent tracker printed %q", out)
	}

	code, body, err := n.Do("POST", "/api/v1/restart/torrent", nil, true)
	if err != nil || code >= 300 {
		t.Fatalf("restart torrent: %d %v %s", code, err, body)
	}
	n.WaitPlugin("torrent", 30*time.Second, func(p testnet.PluginStatus) bool { return p.State == "running" && p.Restarts >= 1 })
	waitVecino(t, n, ih, "seeding", 30*time.Second)
	got := nodeRPC(t, n).call("torrent-get", map[string]any{"ids": []string{ih}, "fields": []string{"trackers"}})
	if fmt.Sprint(got["torrents"]) != fmt.Sprintf("[map[trackers:[map[announce:%s id:0 scrape: tier:0] map[announce:%s id:1 scrape: tier:1]]]]", tracker.URL, spare) {
		t.Errorf("after a restart the torrent's trackers are %v", got["torrents"])
	}
}
