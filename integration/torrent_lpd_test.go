package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
	n, lpd := lpdNode(t, lan)
	tr := startTransmissionOn(t, lan, 1)

	// The node seeds "album" and announces it once, before Transmission
	// has it; its next announce is 5 minutes away.
	data := filepath.Join(n.State, "plugins", "torrent", "data")
	sums := makeFiles(t, data, album)
	v := createTorrent(t, n, "album")
	lpd.wait("announces_sent", 0)
	file := torrentFileOf(t, n, v.InfoHash)
	tr.add(file)
	tr.waitTorrent(v.InfoHash, true, 2*time.Minute)
	checkFiles(t, "transmission", tr.dir, sums)
	if found := lpd.count("peers_found"); found < 1 {
		t.Errorf("the node found no peer, so who dialled? %v", lpd.status())
	}

	// Transmission seeds "far" and announces it, before the node has it;
	// its next announce is 8 minutes away. The node then announces it.
	heard, found := lpd.count("announces_heard"), lpd.count("peers_found")
	farSums, farFile := tr.seed(t, nil, "far", map[string]int{"far/a.bin": 3 << 20, "far/b/c.bin": 1<<20 + 5})
	lpd.wait("announces_heard", heard)
	fv := addTorrent(t, n, farFile)
	waitVecino(t, n, fv.InfoHash, "seeding", 2*time.Minute)
	checkFiles(t, "vecino", data, farSums)
	if got := lpd.count("peers_found"); got != found {
		t.Errorf("the node found %d more peers: Transmission's dial was not what was tested", got-found)
	}
	if ifs, _ := lpd.status()["interfaces"].([]any); len(ifs) != 1 {
		t.Errorf("announcing on %v, want the one veth", ifs)
	}
}

// TestLocalPeerDiscoveryWithAria2: aria2c, on the other machine of the
// LAN with its own BEP 14 on and no tracker, DHT or PEX, downloads what
// the node seeds; the node read aria2's announces (a second
// implementation's, unlike Transmission's in the test above).
func TestLocalPeerDiscoveryWithAria2(t *testing.T) {
	testnet.NeedTools(t, "aria2c")
	lan := testnet.NewLAN(t)
	n, lpd := lpdNode(t, lan)
	data := filepath.Join(n.State, "plugins", "torrent", "data")
	sums := makeFiles(t, data, album)
	v := createTorrent(t, n, "album")
	file := torrentFileOf(t, n, v.InfoHash)
	tfile, out := filepath.Join(t.TempDir(), "album.torrent"), t.TempDir()
	if err := os.WriteFile(tfile, file, 0o644); err != nil {
		t.Fatal(err)
	}
	a := aria2c(tfile, out, 6881, "--bt-enable-lpd=true")
	cmd := lan.Command(1, a.Args[0], a.Args[1:]...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("aria2c: %v\n%s\n%s", err, b, n.Log())
	}
	checkFiles(t, "aria2c", out, sums)
	if found := lpd.count("peers_found"); found < 1 {
		t.Errorf("the node read no announce of aria2's: %v", lpd.status())
	}
}

// TestLocalPeerDiscoveryWithQBittorrent: qBittorrent (libtorrent's BEP 14,
// which adds a cookie to its announces) on the other machine of the LAN,
// with discovery on and no tracker, DHT or PEX, finds the node's torrent
// by the node hearing its announce (qbittorrentFindsAlbum).
func TestLocalPeerDiscoveryWithQBittorrent(t *testing.T) {
	testnet.NeedTools(t, "qbittorrent-nox")
	lan := testnet.NewLAN(t)
	n, lpd := lpdNode(t, lan)
	qbittorrentFindsAlbum(t, lan, n, lpd)
	if found := lpd.count("peers_found"); found < 1 {
		t.Errorf("the node found no peer in qBittorrent's announces: %v", lpd.status())
	}
}

// TestLocalPeerDiscoveryOverIPv6WithQBittorrent: the same on a network
// with IPv6 link-local addresses alone, where only BEP 14's IPv6 group
// (ff15::efc0:988f) can carry the announces: the node hears qBittorrent's,
// dials its link-local address, and qBittorrent downloads every file.
func TestLocalPeerDiscoveryOverIPv6WithQBittorrent(t *testing.T) {
	testnet.NeedTools(t, "qbittorrent-nox")
	lan := testnet.NewLAN(t)
	lan.DropIPv4(t)
	n := lanTorrentNode(t, lan, `listen_host = ""`, "local_peer_discovery = true")
	qbittorrentFindsAlbum(t, lan, n, lpdStatus{t, n})
	if !strings.Contains(n.Log(), "local peer found") || !strings.Contains(n.Log(), "peer=[fe80::") {
		t.Errorf("the node did not find qBittorrent at an IPv6 link-local address:\n%s", n.Log())
	}
}

// qbittorrentFindsAlbum: the node seeds "album" and announces it once,
// before qBittorrent (discovery on, machine 1 of lan) has it; qBittorrent,
// given the .torrent, announces it; the node hears that and dials it, and
// qBittorrent downloads every file whole.
func qbittorrentFindsAlbum(t *testing.T, lan *testnet.LAN, n *testnet.Node, lpd lpdStatus) {
	t.Helper()
	qb := startQBittorrent(t, lan, 1, qbTCPWithLPD)
	sums := makeFiles(t, filepath.Join(n.State, "plugins", "torrent", "data"), album)
	v := createTorrent(t, n, "album")
	lpd.wait("announces_sent", 0)
	heard := lpd.count("announces_heard")
	qb.add(torrentFileOf(t, n, v.InfoHash))
	lpd.wait("announces_heard", heard)
	qb.wait(v.InfoHash, "downloaded", 2*time.Minute)
	checkFiles(t, "qbittorrent", qb.dir, sums)
}

// lpdNode starts a node on machine 0 of lan with local peer discovery on,
// and every other way to find peers off.
func lpdNode(t *testing.T, lan *testnet.LAN) (*testnet.Node, lpdStatus) {
	t.Helper()
	n := lanTorrentNode(t, lan, "local_peer_discovery = true")
	return n, lpdStatus{t, n}
}

// lanTorrentNode starts a node on machine 0 of lan, its torrent plugin on
// lan's address, port 51413, with DHT, PEX, uTP, trackers and port mapping
// off; the "key = value" lines of extra add to those or replace them.
func lanTorrentNode(t *testing.T, lan *testnet.LAN, extra ...string) *testnet.Node {
	t.Helper()
	table := slices.Clone(extra)
	for _, line := range []string{fmt.Sprintf("listen_host = %q", lan.IP[0]), "listen_port = 51413",
		"dht = false", "pex = false", "utp = false", "trackers = false", "port_mapping = false"} {
		key, _, _ := strings.Cut(line, " =")
		if !slices.ContainsFunc(extra, func(e string) bool { return strings.HasPrefix(e, key+" =") }) {
			table = append(table, line)
		}
	}
	n := testnet.Start(t, testnet.Options{Netns: lan.NS[0], Plugins: map[string]string{"torrent": strings.Join(table, "\n")}})
	n.WaitPlugin("torrent", 30*time.Second, testnet.Running)
	return n
}

// lpdStatus reads a node's local peer discovery counters.
type lpdStatus struct {
	t *testing.T
	n *testnet.Node
}

func (l lpdStatus) status() map[string]any {
	m, _ := l.n.Status().Plugin("torrent").Details["local_peer_discovery"].(map[string]any)
	return m
}

func (l lpdStatus) count(key string) int {
	f, _ := l.status()[key].(float64)
	return int(f)
}

// wait polls until counter key is above above.
func (l lpdStatus) wait(key string, above int) {
	l.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); l.count(key) <= above; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			l.t.Fatalf("%s stayed at %d: %v\n%s", key, above, l.status(), l.n.Log())
		}
	}
}
