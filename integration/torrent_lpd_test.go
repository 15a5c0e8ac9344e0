package integration

import (
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/vecino/vecino/internal/testnet"
)

// TestLocalPeerDiscoveryWithTransmission: the node and transmission-daemon
// on a local network of their own (two network namespaces and a veth
// pair), both with local peer discovery on and no tracker, DHT or peer
// exchange: BEP 14 announces are the only way they learn of each other.
// Each way is tested on its own, kept apart by when the announces go:
//   - the node hears Transmission's announce and dials it, and
//     Transmission downloads what the node seeds;
//   - Transmission hears the node's announce and dials it, and the node
//     downloads what Transmission seeds.
func TestLocalPeerDiscoveryWithTransmission(t *testing.T) {
	testnet.NeedTools(t, "transmission-daemon", "transmission-create")
	lan := testnet.NewLAN(t)
	n := testnet.Start(t, testnet.Options{Netns: lan.NS[0], Plugins: map[string]string{"torrent": fmt.Sprintf(`listen_host = %q
listen_port = 51413
dht = false
pex = false
utp = false
trackers = false
port_mapping = false
local_peer_discovery = true`, lan.IP[0])}})
	n.WaitPlugin("torrent", 30*time.Second, testnet.Running)
	tr := startTransmissionOn(t, lan, 1)
	lpd := func() map[string]any {
		m, _ := n.Status().Plugin("torrent").Details["local_peer_discovery"].(map[string]any)
		return m
	}
	count := func(key string) int { f, _ := lpd()[key].(float64); return int(f) }
	waitCount := func(key string, above int) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); count(key) <= above; time.Sleep(200 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s stayed at %d: %v\n%s", key, above, lpd(), n.Log())
			}
		}
	}

	// The node seeds "album" and announces it once, before Transmission
	// has it; its next announce is 5 minutes away.
	data := filepath.Join(n.State, "plugins", "torrent", "data")
	sums := makeFiles(t, data, album)
	v := createTorrent(t, n, "album")
	waitCount("announces_sent", 0)
	code, file, err := n.Do("GET", "/api/v1/plugins/torrent/torrents/"+v.InfoHash+"/torrent", nil, false)
	if err != nil || code != http.StatusOK {
		t.Fatalf("get .torrent: %d %v", code, err)
	}
	tr.add(file)
	tr.waitTorrent(v.InfoHash, true, 2*time.Minute)
	checkFiles(t, "transmission", tr.dir, sums)
	if found := count("peers_found"); found < 1 {
		t.Errorf("the node found no peer, so who dialled? %v", lpd())
	}

	// Transmission seeds "far" and announces it, before the node has it;
	// its next announce is 8 minutes away. The node then announces it.
	heard, found := count("announces_heard"), count("peers_found")
	farSums, farFile := tr.seed(t, nil, "far", map[string]int{"far/a.bin": 3 << 20, "far/b/c.bin": 1<<20 + 5})
	waitCount("announces_heard", heard)
	fv := addTorrent(t, n, farFile)
	waitVecino(t, n, fv.InfoHash, "seeding", 2*time.Minute)
	checkFiles(t, "vecino", data, farSums)
	if got := count("peers_found"); got != found {
		t.Errorf("the node found %d more peers: Transmission's dial was not what was tested", got-found)
	}
	if ifs, _ := lpd()["interfaces"].([]any); len(ifs) != 1 {
		t.Errorf("announcing on %v, want the one veth", ifs)
	}
}
