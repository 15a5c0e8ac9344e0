package integration

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vecino/vecino/internal/testnet"
)

// TestQBittorrentBothWays: qBittorrent (qbittorrent-nox, on libtorrent
// rasterbar, the engine of most desktop clients people use) on the other
// machine of a LAN of the test's own, with DHT, PEX, local peer discovery
// and port mapping off. It downloads a multi-file torrent the node made and
// seeds, having dialled the node itself; then the node, dialling it,
// downloads a torrent qBittorrent seeds, made by transmission-create. Every
// file's sha256 matches on the other side.
func TestQBittorrentBothWays(t *testing.T) {
	testnet.NeedTools(t, "qbittorrent-nox", "transmission-create")
	lan := testnet.NewLAN(t)
	n := lanTorrentNode(t, lan)
	qb := startQBittorrent(t, lan, 1, qbTCP)

	// qBittorrent downloads from the node.
	v, sums := qb.fetchAlbum(n, lan.IP[0]+":51413", false)
	qb.wait(v.InfoHash, "downloaded", 2*time.Minute)
	checkFiles(t, "qbittorrent", qb.dir, sums)
	if up := vecinoTorrent(t, n, v.InfoHash); up.Uploaded < v.Size {
		t.Errorf("the node reports %d bytes uploaded, want at least %d", up.Uploaded, v.Size)
	}

	// The node downloads from qBittorrent.
	file, sums := qb.seedMixtape()
	ih := infoHash(t, file)
	addTorrent(t, n, file)
	addPeerAt(t, n, ih, fmt.Sprintf("%s:%d", lan.IP[1], qbPeerPort))
	waitVecino(t, n, ih, "seeding", 2*time.Minute)
	checkFiles(t, "vecino", filepath.Join(n.State, "plugins", "torrent", "data"), sums)
}

// TestQBittorrentMagnetLinksBothWays: a magnet link is all either side is
// given. qBittorrent fetches the metadata (BEP 9) and then the files from
// the node; the node fetches both from qBittorrent.
func TestQBittorrentMagnetLinksBothWays(t *testing.T) {
	testnet.NeedTools(t, "qbittorrent-nox", "transmission-create")
	lan := testnet.NewLAN(t)
	n := lanTorrentNode(t, lan)
	qb := startQBittorrent(t, lan, 1, qbTCP)

	v, sums := qb.fetchAlbum(n, lan.IP[0]+":51413", true)
	qb.wait(v.InfoHash, "downloaded", 2*time.Minute)
	checkFiles(t, "qbittorrent", qb.dir, sums)

	file, sums := qb.seedMixtape()
	ih := infoHash(t, file)
	got := addTorrent(t, n, []byte("magnet:?xt=urn:btih:"+ih+"&dn=mixtape"))
	if got.InfoHash != ih {
		t.Fatalf("the node added %s for the magnet link of %s", got.InfoHash, ih)
	}
	addPeerAt(t, n, ih, fmt.Sprintf("%s:%d", lan.IP[1], qbPeerPort))
	waitVecino(t, n, ih, "seeding", 2*time.Minute)
	checkFiles(t, "vecino", filepath.Join(n.State, "plugins", "torrent", "data"), sums)
}

// mixtape is a second multi-file torrent's files, for qBittorrent to seed.
var mixtape = map[string]int{"mixtape/side a.flac": 3<<20 + 11, "mixtape/side b.flac": 2<<20 + 5, "mixtape/notes.txt": 900}

// TestNodeKeepsTryingANamedPeer: a user tells the node, with the CLI, of a
// peer that is not up yet (a friend's box, switched off). With no tracker,
// DHT or discovery to name it again, the node tries it again until it
// answers: qBittorrent, started some seconds later with the files, seeds
// them to it.
func TestNodeKeepsTryingANamedPeer(t *testing.T) {
	testnet.NeedTools(t, "qbittorrent-nox", "transmission-create")
	lan := testnet.NewLAN(t)
	n := lanTorrentNode(t, lan)
	src := t.TempDir()
	sums := makeFiles(t, src, mixtape)
	file := makeTorrent(t, nil, filepath.Join(src, "mixtape"))
	ih := addTorrent(t, n, file).InfoHash
	qbAddr := fmt.Sprintf("%s:%d", lan.IP[1], qbPeerPort)
	cli := vecinoCmd(t, n, "torrent", "peer", ih, qbAddr)
	cmd := lan.Command(0, cli.Args[0], cli.Args[1:]...) // where the node's API is
	cmd.Env = cli.Env
	if out := runCLI(t, cmd, true); !strings.Contains(out, "connecting to "+qbAddr) {
		t.Errorf("vecino torrent peer said %q", out)
	}
	time.Sleep(2 * time.Second) // the node's first dial finds nothing there

	qb := startQBittorrent(t, lan, 1, qbTCP)
	if err := os.Rename(filepath.Join(src, "mixtape"), filepath.Join(qb.dir, "mixtape")); err != nil {
		t.Fatal(err)
	}
	qb.add(file)
	qb.wait(ih, "seeding", time.Minute)
	waitVecino(t, n, ih, "seeding", time.Minute)
	checkFiles(t, "vecino", filepath.Join(n.State, "plugins", "torrent", "data"), sums)
}

// TestQBittorrentOverUTPEncrypted: the node's defaults for a seedbox, uTP
// on and encryption required, against qBittorrent taking nothing but uTP
// with encryption: it downloads what the node seeds, over uTP and
// encrypted, as its own list of peers shows.
func TestQBittorrentOverUTPEncrypted(t *testing.T) {
	testnet.NeedTools(t, "qbittorrent-nox")
	lan := testnet.NewLAN(t)
	n := lanTorrentNode(t, lan, "utp = true", `encryption = "require"`)
	qb := startQBittorrent(t, lan, 1, qbUTPEncrypted)
	v, sums := qb.fetchAlbum(n, lan.IP[0]+":51413", false)
	// How the node is connected, once the handshake is done: μTP, and E
	// (encrypted traffic) among the flags.
	var how string
	for deadline := time.Now().Add(time.Minute); !strings.Contains(how, "E") && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		req, _ := http.NewRequest("GET", qb.api+"sync/torrentPeers?hash="+v.InfoHash, nil)
		var peers struct {
			Peers map[string]struct{ Connection, Flags string }
		}
		json.Unmarshal(qb.do(req), &peers)
		if p, ok := peers.Peers[lan.IP[0]+":51413"]; ok {
			how = p.Connection + " " + p.Flags
		}
	}
	if !strings.HasPrefix(how, "μTP ") || !strings.Contains(how, "E") {
		t.Errorf("qbittorrent is connected to the node by %q, want μTP with E (encrypted) among the flags", how)
	}
	qb.wait(v.InfoHash, "downloaded", 2*time.Minute)
	checkFiles(t, "qbittorrent", qb.dir, sums)
}

// qbPeerPort is the port qBittorrent takes peers on, in its own namespace.
const qbPeerPort = 6881

// qbittorrent is qbittorrent-nox on a machine of a LAN, driven over its
// Web API.
type qbittorrent struct {
	t      testing.TB
	client *http.Client
	dial   func(ctx context.Context, network, addr string) (net.Conn, error)
	api    string
	dir    string // where it saves and seeds from
}

// How qBittorrent finds and talks to peers: over TCP, with encryption if
// the peer wants it; over uTP alone, with the encryption (MSE) it insists
// on; or over TCP with local peer discovery (BEP 14) on.
const (
	qbTCP          = "Session\\BTProtocol=TCP\nSession\\Encryption=0\nSession\\LSDEnabled=false"
	qbUTPEncrypted = "Session\\BTProtocol=UTP\nSession\\Encryption=1\nSession\\LSDEnabled=false"
	qbTCPWithLPD   = "Session\\BTProtocol=TCP\nSession\\Encryption=0\nSession\\LSDEnabled=true"
)

// startQBittorrent starts qbittorrent-nox on machine i of lan, finding
// and talking to peers as transport says. Its profile turns off everything
// else that would reach beyond the LAN (DHT, PEX, UPnP/NAT-PMP, the peer
// country lookup that downloads a database) and lets the Web API on its
// loopback in without a login.
func startQBittorrent(t testing.TB, lan *testnet.LAN, i int, transport string) *qbittorrent {
	t.Helper()
	profile, dir := t.TempDir(), t.TempDir()
	const webPort = 8080
	conf := fmt.Sprintf(`[LegalNotice]
Accepted=true

[BitTorrent]
Session\DHTEnabled=false
Session\PeXEnabled=false
%s
Session\Port=%d
Session\DefaultSavePath=%s
Session\QueueingSystemEnabled=false
Session\AddTrackersEnabled=false

[Network]
PortForwardingEnabled=false

[Preferences]
Connection\ResolvePeerCountries=false
Connection\UPnP=false
WebUI\Address=127.0.0.1
WebUI\Port=%d
WebUI\LocalHostAuth=false
WebUI\CSRFProtection=false
WebUI\HostHeaderValidation=false
General\Locale=en
`, transport, qbPeerPort, dir, webPort)
	confDir := filepath.Join(profile, "qBittorrent", "config")
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(confDir, "qBittorrent.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	startCmd(t, "qbittorrent-nox", lan.Command(i, "qbittorrent-nox", "--profile="+profile))
	waitTCPIn(t, lan.NS[i], fmt.Sprintf("127.0.0.1:%d", webPort))
	return &qbittorrent{t: t, client: testnet.HTTPClient(lan.NS[i]), dial: testnet.Dialer(lan.NS[i]), api: fmt.Sprintf("http://127.0.0.1:%d/api/v2/", webPort), dir: dir}
}

// do sends a request to the Web API and returns the answer's body.
func (qb *qbittorrent) do(req *http.Request) []byte {
	qb.t.Helper()
	resp, err := qb.client.Do(req)
	if err != nil {
		qb.t.Fatalf("qbittorrent %s: %v", req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		qb.t.Fatalf("qbittorrent %s: %s %s", req.URL.Path, resp.Status, b)
	}
	return b
}

// form posts a form to the Web API method path.
func (qb *qbittorrent) form(path string, v url.Values) []byte {
	qb.t.Helper()
	req, _ := http.NewRequest("POST", qb.api+path, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return qb.do(req)
}

// fetchAlbum has the node make a torrent of a multi-file folder and seed
// it, and qBittorrent add it, from its .torrent or with byMagnet from its
// magnet link alone, and dial the node, at nodeAddr, for it. It returns the
// torrent and its files' sums.
func (qb *qbittorrent) fetchAlbum(n *testnet.Node, nodeAddr string, byMagnet bool) (torrentView, map[string]string) {
	qb.t.Helper()
	sums := makeFiles(qb.t, filepath.Join(n.State, "plugins", "torrent", "data"), album)
	v := createTorrent(qb.t, n, "album")
	if byMagnet {
		qb.form("torrents/add", url.Values{"urls": {v.Magnet}, "savepath": {qb.dir}})
	} else {
		qb.add(torrentFileOf(qb.t, n, v.InfoHash))
	}
	qb.wait(v.InfoHash, "added", 30*time.Second)
	qb.form("torrents/addPeers", url.Values{"hashes": {v.InfoHash}, "peers": {nodeAddr}})
	return v, sums
}

// seedMixtape has it seed the mixtape, made by transmission-create, and
// waits until it takes peers for it. It returns the .torrent and the
// files' sums.
func (qb *qbittorrent) seedMixtape() ([]byte, map[string]string) {
	qb.t.Helper()
	sums := makeFiles(qb.t, qb.dir, mixtape)
	file := makeTorrent(qb.t, nil, filepath.Join(qb.dir, "mixtape"))
	qb.add(file)
	ih := infoHash(qb.t, file)
	qb.wait(ih, "seeding", time.Minute)
	qb.waitServing(ih, 30*time.Second)
	return file, sums
}

// add gives it a .torrent to download into, or seed from, its folder.
func (qb *qbittorrent) add(torrentFile []byte) {
	qb.t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	f, _ := w.CreateFormFile("torrents", "added.torrent")
	f.Write(torrentFile)
	w.WriteField("savepath", qb.dir)
	w.Close()
	req, _ := http.NewRequest("POST", qb.api+"torrents/add", &body)
	req.Header.Set("Content-Type", w.FormDataContentType())
	if got := string(qb.do(req)); got != "Ok." {
		qb.t.Fatalf("qbittorrent refused the torrent: %q", got)
	}
}

// wait polls until torrent ih is in its list ("added": it adds in the
// background), has every piece ("downloaded") or has them checked and is
// seeding ("seeding").
func (qb *qbittorrent) wait(ih, want string, timeout time.Duration) {
	qb.t.Helper()
	seeding := map[string]bool{"uploading": true, "stalledUP": true, "forcedUP": true, "queuedUP": true}
	var last string
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		req, _ := http.NewRequest("GET", qb.api+"torrents/info?hashes="+ih, nil)
		b := qb.do(req)
		last = string(b)
		var list []struct {
			Progress float64
			State    string
		}
		if err := json.Unmarshal(b, &list); err != nil || len(list) != 1 {
			continue
		}
		if want == "added" || list[0].Progress == 1 && (want == "downloaded" || seeding[list[0].State]) {
			return
		}
	}
	qb.t.Fatalf("qbittorrent: torrent %s not %s within %s: %s", ih, want, timeout, last)
}

// waitServing polls until it answers a BitTorrent handshake for torrent ih
// with its own. Its Web API calls a torrent seeding once checked, a moment
// before the engine takes peers for it; a peer that dials meanwhile is
// reset, and the node would try a named peer again only 20 s later.
func (qb *qbittorrent) waitServing(ih string, timeout time.Duration) {
	qb.t.Helper()
	hash, _ := hex.DecodeString(ih)
	hello := append(append(append([]byte("\x13BitTorrent protocol"), make([]byte, 8)...), hash...), "-VT0000-handshake123"...)
	var err error
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var c net.Conn
		if c, err = qb.dial(context.Background(), "tcp", fmt.Sprintf("127.0.0.1:%d", qbPeerPort)); err != nil {
			continue
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		answer := make([]byte, 68)
		if _, err = c.Write(hello); err == nil {
			_, err = io.ReadFull(c, answer)
		}
		c.Close()
		if err == nil && bytes.Equal(answer[28:48], hash) {
			return
		}
	}
	qb.t.Fatalf("qbittorrent does not answer a handshake for %s within %s: %v", ih, timeout, err)
}
