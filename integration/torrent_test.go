package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/anacrolix/torrent/metainfo"

	"github.com/vecino/vecino/internal/testnet"
	"golang.org/x/sys/unix"
)

// startProcess runs a program for the length of the test, its output in a
// file shown when the test fails.
func startProcess(t testing.TB, name string, args ...string) *exec.Cmd {
	t.Helper()
	return startProcessEnv(t, nil, name, args...)
}

// startProcessEnv is startProcess with the environment env (nil: ours).
func startProcessEnv(t testing.TB, env []string, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = env
	return startCmd(t, name, cmd)
}

// startCmd is startProcess for a command made already; name names its
// output.
func startCmd(t testing.TB, name string, cmd *exec.Cmd) *exec.Cmd {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), filepath.Base(name)+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("%s output:\n%s", name, b)
		}
	})
	return cmd
}

// tracker is Debian's opentracker on loopback: a real tracker, and the only
// way the clients learn of each other. Debian builds it with a whitelist of
// info hashes, reloaded on SIGHUP.
type tracker struct {
	URL       string
	whitelist string
	cmd       *exec.Cmd
}

func startTracker(t testing.TB) *tracker {
	port := testnet.FreePort(t)
	dir := t.TempDir()
	tr := &tracker{URL: fmt.Sprintf("http://127.0.0.1:%d/announce", port), whitelist: filepath.Join(dir, "whitelist")}
	os.WriteFile(tr.whitelist, nil, 0o644)
	tr.cmd = startProcess(t, "opentracker", "-i", "127.0.0.1", "-p", fmt.Sprint(port), "-P", fmt.Sprint(port), "-d", dir, "-w", "/whitelist") // opentracker chroots to dir first
	waitTCP(t, fmt.Sprintf("127.0.0.1:%d", port))
	return tr
}

// allow adds an info hash to the whitelist and has the tracker reload it.
func (tr *tracker) allow(t testing.TB, ih string) {
	f, err := os.OpenFile(tr.whitelist, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, ih)
	f.Close()
	tr.cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(300 * time.Millisecond)
}

func waitTCP(t testing.TB, addr string) {
	t.Helper()
	waitTCPIn(t, "", addr)
}

// waitTCPIn is waitTCP inside network namespace ns.
func waitTCPIn(t testing.TB, ns, addr string) {
	t.Helper()
	dial := testnet.Dialer(ns)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := dial(context.Background(), "tcp", addr); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s", addr)
		}
	}
}

// torrentNode starts a node whose torrent plugin listens on loopback with
// DHT, PEX, uTP and port mapping off; trackers stay on for the loopback one.
func torrentNode(t testing.TB, extra ...string) *testnet.Node {
	n := testnet.Start(t, testnet.Options{Plugins: map[string]string{"torrent": fmt.Sprintf(`listen_host = "127.0.0.1"
listen_port = %d
dht = false
pex = false
utp = false
port_mapping = false
trackers = true
%s`, testnet.FreePort(t), strings.Join(extra, "\n"))}, Group: true})
	n.WaitPlugin("torrent", 30*time.Second, testnet.Running)
	return n
}

type torrentView struct {
	InfoHash string  `json:"info_hash"`
	Name     string  `json:"name"`
	State    string  `json:"state"`
	Progress float64 `json:"progress"`
	Size     int64   `json:"size"`
	Done     int64   `json:"done"`
	Error    string  `json:"error"`
	Magnet   string  `json:"magnet"`
	Uploaded int64   `json:"uploaded"`
	Download int64   `json:"downloaded"`
	Ratio    float64 `json:"ratio"`
	Note     string  `json:"note"`
	Skipped  int     `json:"skipped"`
	Dir      string  `json:"dir"`
	Queue    int     `json:"queue"`
	Peers    int     `json:"peers"`
}

func (tv torrentView) String() string {
	return fmt.Sprintf("%s %s %.1f%% %s", tv.Name, tv.State, tv.Progress*100, tv.Error)
}

func vecinoTorrent(t testing.TB, n *testnet.Node, ih string) torrentView {
	t.Helper()
	code, body, err := n.Do("GET", "/api/v1/plugins/torrent/torrents/"+ih, nil, false)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET torrent %s: %d %v %s", ih, code, err, body)
	}
	var v torrentView
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// vecinoTorrents is every torrent the node's plugin carries.
func vecinoTorrents(t testing.TB, n *testnet.Node) []torrentView {
	t.Helper()
	var list struct{ Torrents []torrentView }
	code, body, err := n.Do("GET", "/api/v1/plugins/torrent/torrents", nil, false)
	if err != nil || code != http.StatusOK || json.Unmarshal(body, &list) != nil {
		t.Fatalf("GET torrents: %d %v %s", code, err, body)
	}
	return list.Torrents
}

func waitVecino(t testing.TB, n *testnet.Node, ih, state string, timeout time.Duration) torrentView {
	t.Helper()
	var v torrentView
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if v = vecinoTorrent(t, n, ih); v.State == state {
			return v
		}
	}
	t.Fatalf("torrent %s not %s within %s: %s\n%s", ih, state, timeout, v, n.Log())
	return v
}

// makeFiles writes a multi-file folder of random data and returns the
// sha256 of each file by relative path.
func makeFiles(t testing.TB, root string, sizes map[string]int) map[string]string {
	sums := map[string]string{}
	for rel, size := range sizes {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, size)
		rand.Read(b)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(b)
		sums[rel] = hex.EncodeToString(h[:])
	}
	return sums
}

func checkFiles(t testing.TB, who, root string, sums map[string]string) {
	t.Helper()
	for rel, want := range sums {
		b, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Errorf("%s: %v", who, err)
			continue
		}
		h := sha256.Sum256(b)
		if got := hex.EncodeToString(h[:]); got != want {
			t.Errorf("%s: %s has sha256 %s, want %s", who, rel, got, want)
		}
	}
}

var album = map[string]int{
	"album/01 intro.flac":       3<<20 + 123,
	"album/02 song.flac":        5 << 20,
	"album/cover/front.jpg":     700<<10 + 1,
	"album/notes/liner.txt":     4321,
	"album/notes/credits.txt":   17,
	"album/bonus/demo take.ogg": 2<<20 + 77,
}

// seedFromVecino makes a torrent of a multi-file folder in the node's data
// folder and waits until the node seeds it.
func seedFromVecino(t *testing.T, n *testnet.Node, tr *tracker) (torrentView, []byte, map[string]string) {
	t.Helper()
	return seedFromVecinoIn(t, n, tr, filepath.Join(n.State, "plugins", "torrent", "data"))
}

// seedFromVecinoIn is seedFromVecino for a node whose data_dir is data.
func seedFromVecinoIn(t *testing.T, n *testnet.Node, tr *tracker, data string) (torrentView, []byte, map[string]string) {
	t.Helper()
	sums := makeFiles(t, data, album)
	v := createTorrent(t, n, "album", tr.URL)
	tr.allow(t, v.InfoHash)
	return v, torrentFileOf(t, n, v.InfoHash), sums
}

// torrentFileOf is the .torrent of torrent ih, as the node serves it.
func torrentFileOf(t testing.TB, n *testnet.Node, ih string) []byte {
	t.Helper()
	code, file, err := n.Do("GET", "/api/v1/plugins/torrent/torrents/"+ih+"/torrent", nil, false)
	if err != nil || code != http.StatusOK {
		t.Fatalf("get .torrent of %s: %d %v", ih, code, err)
	}
	return file
}

// createTorrent has the node make a torrent of name, a file or folder in
// its data folder, announced to trackers, and waits until it seeds it.
func createTorrent(t testing.TB, n *testnet.Node, name string, trackers ...string) torrentView {
	t.Helper()
	v := postCreate(t, n, name, trackers...)
	return waitVecino(t, n, v.InfoHash, "seeding", time.Minute)
}

// postCreate asks the node to make a torrent, waits while it hashes the
// data, and returns the torrent as made.
func postCreate(t testing.TB, n *testnet.Node, name string, trackers ...string) torrentView {
	t.Helper()
	m := waitMaking(t, n, startMaking(t, n, name, trackers...).ID, time.Minute)
	if m.State != "done" {
		t.Fatalf("making %s: %+v", name, m)
	}
	v := vecinoTorrent(t, n, m.InfoHash)
	if !strings.HasPrefix(m.Magnet, "magnet:?xt=urn:btih:"+v.InfoHash) || m.Magnet != v.Magnet {
		t.Errorf("create gave magnet %q, the torrent has %q", m.Magnet, v.Magnet)
	}
	// The create hashed the data: it seeds at once, with no second pass,
	// or waits its turn where max_active says so.
	if (v.State != "seeding" && v.State != "queued") || v.Progress != 1 {
		t.Errorf("just made: %s, want seeding (or queued) 100%%", v)
	}
	return v
}

// making is a torrent being made, as GET /creates/{id} shows it (what the
// tests look at).
type making struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	State    string `json:"state"`
	Error    string `json:"error"`
	InfoHash string `json:"info_hash"`
	Magnet   string `json:"magnet"`
}

// startMaking asks the node to make a torrent of name and returns the
// making it started.
func startMaking(t testing.TB, n *testnet.Node, name string, trackers ...string) making {
	t.Helper()
	req, _ := json.Marshal(map[string]any{"path": name, "trackers": trackers})
	code, body, err := n.Do("POST", "/api/v1/plugins/torrent/create", req, true)
	if err != nil || code != http.StatusAccepted {
		t.Fatalf("create: %d %v %s", code, err, body)
	}
	var m making
	json.Unmarshal(body, &m)
	return m
}

// waitMaking polls a making until it has ended: done, failed or cancelled.
func waitMaking(t testing.TB, n *testnet.Node, id string, limit time.Duration) making {
	t.Helper()
	var m making
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		code, body, err := n.Do("GET", "/api/v1/plugins/torrent/creates/"+id, nil, false)
		if err != nil || code != http.StatusOK {
			t.Fatalf("making %s: %d %v %s", id, code, err, body)
		}
		json.Unmarshal(body, &m)
		if m.State == "done" || m.State == "failed" || m.State == "cancelled" {
			return m
		}
	}
	t.Fatalf("making %s not done after %s: %+v", id, limit, m)
	return m
}

// addPeer tells the node's torrent plugin of a peer on loopback.
func addPeer(t testing.TB, n *testnet.Node, ih string, port int) {
	t.Helper()
	addPeerAt(t, n, ih, fmt.Sprintf("127.0.0.1:%d", port))
}

// addPeerAt tells the node of a peer of torrent ih at addr (host:port).
func addPeerAt(t testing.TB, n *testnet.Node, ih, addr string) {
	t.Helper()
	body := fmt.Sprintf(`{"addr":%q}`, addr)
	if code, b, err := n.Do("POST", "/api/v1/plugins/torrent/torrents/"+ih+"/peers", []byte(body), true); err != nil || code != http.StatusAccepted {
		t.Fatalf("add peer: %d %v %s", code, err, b)
	}
}

// transmission is a transmission-daemon on loopback, driven over its RPC.
type transmission struct {
	t        testing.TB
	client   *http.Client
	rpc      string
	session  string
	dir      string
	peerPort int
	pid      int
	token    string // the password, for a Vecino node's RPC (nodeRPC)
}

// nodeRPC is a client of n's Transmission RPC, as transmission-daemon's.
func nodeRPC(t testing.TB, n *testnet.Node) *transmission {
	return &transmission{t: t, client: http.DefaultClient, rpc: n.API + "/transmission/rpc", token: n.Token}
}

func startTransmission(t testing.TB) *transmission {
	return startTransmissionOn(t, nil, 0)
}

// startTransmissionOn starts it on machine i of lan, with local peer
// discovery on, or on loopback with lan nil.
func startTransmissionOn(t testing.TB, lan *testnet.LAN, i int) *transmission {
	testnet.NeedTools(t, "transmission-daemon")
	conf, dir := t.TempDir(), t.TempDir()
	rpcPort, peerPort := testnet.FreePort(t), testnet.FreePort(t)
	bind, ns := "127.0.0.1", ""
	if lan != nil {
		bind, ns = lan.IP[i], lan.NS[i]
	}
	settings := map[string]any{
		"bind-address-ipv4": bind, "bind-address-ipv6": "::1",
		"rpc-bind-address": "127.0.0.1", "rpc-port": rpcPort, "rpc-authentication-required": false,
		"rpc-whitelist-enabled": false, "rpc-host-whitelist-enabled": false,
		"peer-port": peerPort, "peer-port-random-on-start": false, "port-forwarding-enabled": false,
		"dht-enabled": false, "lpd-enabled": lan != nil, "pex-enabled": false, "utp-enabled": false,
		"download-dir": dir, "incomplete-dir-enabled": false, "encryption": 1,
		"ratio-limit-enabled": false, "idle-seeding-limit-enabled": false,
		"speed-limit-up-enabled": false, "speed-limit-down-enabled": false, "message-level": 2,
	}
	b, _ := json.Marshal(settings)
	if err := os.WriteFile(filepath.Join(conf, "settings.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("transmission-daemon", "-f", "-g", conf)
	if lan != nil {
		cmd = lan.Command(i, "transmission-daemon", "-f", "-g", conf)
	}
	startCmd(t, "transmission-daemon", cmd)
	waitTCPIn(t, ns, fmt.Sprintf("127.0.0.1:%d", rpcPort))
	return &transmission{t: t, client: testnet.HTTPClient(ns), rpc: fmt.Sprintf("http://127.0.0.1:%d/transmission/rpc", rpcPort), dir: dir, peerPort: peerPort, pid: cmd.Process.Pid}
}

func (tr *transmission) call(method string, args map[string]any) map[string]any {
	tr.t.Helper()
	body, _ := json.Marshal(map[string]any{"method": method, "arguments": args})
	for range 3 {
		req, _ := http.NewRequest("POST", tr.rpc, bytes.NewReader(body))
		req.Header.Set("X-Transmission-Session-Id", tr.session)
		if tr.token != "" {
			req.SetBasicAuth("vecino", tr.token)
		}
		resp, err := tr.client.Do(req)
		if err != nil {
			tr.t.Fatalf("transmission rpc: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusConflict {
			tr.session = resp.Header.Get("X-Transmission-Session-Id")
			continue
		}
		var out struct {
			Result    string
			Arguments map[string]any
		}
		if err := json.Unmarshal(b, &out); err != nil || out.Result != "success" {
			tr.t.Fatalf("transmission %s: %s %v", method, b, err)
		}
		return out.Arguments
	}
	tr.t.Fatal("transmission rpc: no session")
	return nil
}

func (tr *transmission) add(torrentFile []byte) {
	tr.call("torrent-add", map[string]any{"metainfo": base64.StdEncoding.EncodeToString(torrentFile), "download-dir": tr.dir})
}

// waitAnnounced polls until the only torrent's announce to its tracker has
// succeeded, so that a client announcing next is told of Transmission.
func (tr *transmission) waitAnnounced(timeout time.Duration) {
	tr.t.Helper()
	var last any
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		got := tr.call("torrent-get", map[string]any{"fields": []string{"trackerStats"}})
		list, _ := got["torrents"].([]any)
		if len(list) == 1 {
			stats, _ := list[0].(map[string]any)["trackerStats"].([]any)
			last = stats
			for _, s := range stats {
				if m, _ := s.(map[string]any); m["lastAnnounceSucceeded"] == true {
					return
				}
			}
		}
	}
	tr.t.Fatalf("transmission did not announce within %s: %v", timeout, last)
}

// seed makes the files under dir NAME, a .torrent of them with
// transmission-create, and seeds it; it returns the files' sums and the
// .torrent.
func (tr *transmission) seed(t testing.TB, tracker *tracker, name string, sizes map[string]int) (map[string]string, []byte) {
	t.Helper()
	sums := makeFiles(t, tr.dir, sizes)
	file := makeTorrent(t, tracker, filepath.Join(tr.dir, name))
	tr.add(file)
	tr.waitTorrent(infoHash(t, file), true, time.Minute)
	return sums, file
}

// addFromTransmission adds the .torrent to the node, lets the tracker serve
// it and points the node at Transmission.
func addFromTransmission(t testing.TB, n *testnet.Node, tracker *tracker, tr *transmission, file []byte) torrentView {
	t.Helper()
	return addFromPeer(t, n, tracker, tr.peerPort, file)
}

// addFromPeer adds the .torrent to the node, lets the tracker serve it and
// points the node at the client listening on loopback port.
func addFromPeer(t testing.TB, n *testnet.Node, tracker *tracker, port int, file []byte) torrentView {
	t.Helper()
	v := addTorrent(t, n, file)
	tracker.allow(t, v.InfoHash)
	addPeer(t, n, v.InfoHash, port)
	return v
}

// addTorrent adds a .torrent file or a magnet link to the node.
func addTorrent(t testing.TB, n *testnet.Node, file []byte) torrentView {
	t.Helper()
	code, body, err := n.Do("POST", "/api/v1/plugins/torrent/torrents", file, true)
	if err != nil || code != http.StatusCreated {
		t.Fatalf("add: %d %v %s", code, err, body)
	}
	var v torrentView
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("add: %v: %s", err, body)
	}
	return v
}

// makeTorrent runs transmission-create on dir with tracker's URL (none if nil), and
// extra arguments: the same files give the same info dictionary, whatever
// the tracker.
func makeTorrent(t testing.TB, tracker *tracker, dir string, extra ...string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(dir)+".torrent")
	args := []string{"-o", out, dir}
	if tracker != nil {
		args = append(args, "-t", tracker.URL)
	}
	if b, err := exec.Command("transmission-create", append(args, extra...)...).CombinedOutput(); err != nil {
		t.Fatalf("transmission-create: %v\n%s", err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// aria2c is an aria2c command downloading tfile into out, listening on
// port, with DHT, local peer discovery, PEX and IPv6 off; it stops when the
// download is complete.
func aria2c(tfile, out string, port int, extra ...string) *exec.Cmd {
	return aria2cCmd(tfile, out, port, append([]string{"--seed-time=0", "--bt-stop-timeout=120"}, extra...)...)
}

// aria2cSeed is an aria2c command that checks the files of tfile under dir
// and seeds them until it is killed, with the same discovery kept off.
func aria2cSeed(tfile, dir string, port int) *exec.Cmd {
	return aria2cCmd(tfile, dir, port, "--check-integrity=true", "--seed-ratio=0.0")
}

func aria2cCmd(tfile, dir string, port int, extra ...string) *exec.Cmd {
	args := []string{"--dir=" + dir, "--enable-dht=false", "--enable-dht6=false",
		"--bt-enable-lpd=false", "--enable-peer-exchange=false", "--disable-ipv6=true",
		fmt.Sprintf("--listen-port=%d", port), "--summary-interval=0", "--console-log-level=warn"}
	return exec.Command("aria2c", append(append(args, extra...), tfile)...)
}

// started reports whether the only torrent has data.
func (tr *transmission) started() bool {
	tr.t.Helper()
	got := tr.call("torrent-get", map[string]any{"fields": []string{"percentDone"}})
	list, _ := got["torrents"].([]any)
	return len(list) == 1 && list[0].(map[string]any)["percentDone"] != 0.0
}

// waitMetadata polls until the only torrent, added as a magnet link, has
// its metadata.
func (tr *transmission) waitMetadata(timeout time.Duration) {
	tr.t.Helper()
	var last any
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		got := tr.call("torrent-get", map[string]any{"fields": []string{"metadataPercentComplete", "status"}})
		if list, _ := got["torrents"].([]any); len(list) == 1 {
			m := list[0].(map[string]any)
			last = m
			if m["metadataPercentComplete"] == 1.0 {
				return
			}
		}
	}
	tr.t.Fatalf("transmission has no metadata within %s: %v", timeout, last)
}

// wait polls until the only torrent is complete (percentDone 1 and, with
// seeding, status 6).
func (tr *transmission) wait(seeding bool, timeout time.Duration) {
	tr.t.Helper()
	tr.waitTorrent("", seeding, timeout)
}

// waitTorrent is wait for the torrent of info hash ih ("": the only one).
func (tr *transmission) waitTorrent(ih string, seeding bool, timeout time.Duration) {
	tr.t.Helper()
	args := map[string]any{"fields": []string{"name", "percentDone", "status", "error", "errorString", "peersConnected"}}
	if ih != "" {
		args["ids"] = []string{ih}
	}
	var last any
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		got := tr.call("torrent-get", args)
		list, _ := got["torrents"].([]any)
		if len(list) == 1 {
			m := list[0].(map[string]any)
			last = m
			if m["percentDone"] == 1.0 && (!seeding || m["status"] == 6.0) {
				return
			}
		}
	}
	tr.t.Fatalf("transmission not done within %s: %v", timeout, last)
}

// TestTransmissionDownloadsFromVecino: Vecino seeds a multi-file torrent it
// made; transmission-daemon, told only the .torrent, finds it through the
// tracker and downloads every file whole.
func TestTransmissionDownloadsFromVecino(t *testing.T) {
	testnet.NeedTools(t, "opentracker", "transmission-daemon")
	tracker := startTracker(t)
	n := torrentNode(t)
	v, file, sums := seedFromVecino(t, n, tracker)
	tr := startTransmission(t)
	tr.add(file)
	// The tracker alone would do, at its announce interval; telling Vecino
	// the peer directly saves the wait.
	addPeer(t, n, v.InfoHash, tr.peerPort)
	tr.wait(false, 2*time.Minute)
	checkFiles(t, "transmission", tr.dir, sums)
	if up := vecinoTorrent(t, n, v.InfoHash); up.Uploaded < v.Size {
		t.Errorf("vecino reports %d bytes uploaded, want at least %d", up.Uploaded, v.Size)
	}
}

// TestVecinoDownloadsFromTransmission: transmission-daemon seeds a torrent
// made by transmission-create; Vecino downloads it.
func TestVecinoDownloadsFromTransmission(t *testing.T) {
	testnet.NeedTools(t, "opentracker", "transmission-daemon", "transmission-create")
	tracker := startTracker(t)
	tr := startTransmission(t)
	sums, file := tr.seed(t, tracker, "album", album)
	n := torrentNode(t)
	v := addFromTransmission(t, n, tracker, tr, file)
	waitVecino(t, n, v.InfoHash, "seeding", 2*time.Minute)
	checkFiles(t, "vecino", filepath.Join(n.State, "plugins", "torrent", "data"), sums)
}

// TestMagnetLinksBothWays: a magnet link is all either side is given.
// Vecino fetches the metadata (BEP 9) from transmission-daemon and then
// the files; transmission-daemon fetches both from Vecino.
func TestMagnetLinksBothWays(t *testing.T) {
	testnet.NeedTools(t, "opentracker", "transmission-daemon", "transmission-create")
	magnet := func(ih, name string, tracker *tracker) string {
		return fmt.Sprintf("magnet:?xt=urn:btih:%s&dn=%s&tr=%s", ih, name, url.QueryEscape(tracker.URL))
	}
	t.Run("from transmission", func(t *testing.T) {
		tracker := startTracker(t)
		tr := startTransmission(t)
		sums, file := tr.seed(t, tracker, "album", album)
		n := torrentNode(t)
		v := addFromPeer(t, n, tracker, tr.peerPort, []byte(magnet(infoHash(t, file), "album", tracker)))
		waitVecino(t, n, v.InfoHash, "seeding", 2*time.Minute)
		checkFiles(t, "vecino", filepath.Join(n.State, "plugins", "torrent", "data"), sums)
		if got := vecinoTorrent(t, n, v.InfoHash); got.Name != "album" || got.Size != int64(sumSizes(album)) {
			t.Errorf("after the metadata came: %s, size %d", got, got.Size)
		}
	})
	t.Run("to transmission", func(t *testing.T) {
		tracker := startTracker(t)
		n := torrentNode(t)
		data := filepath.Join(n.State, "plugins", "torrent", "data")
		sums := makeFiles(t, data, album)
		file := makeTorrent(t, tracker, filepath.Join(data, "album"))
		ih := infoHash(t, file)
		tracker.allow(t, ih)
		addTorrent(t, n, file)
		waitVecino(t, n, ih, "seeding", time.Minute)
		// Transmission is given the magnet link alone. It takes no peer
		// on 127/8 from a tracker (a "martian" address to it), only
		// connections that come in, so the node dials it. Once it has the
		// metadata it restarts the torrent, dropping every connection and
		// refusing new ones until it runs again, so the node dials it
		// until data flows (off loopback, Transmission would dial the node
		// itself).
		tr := startTransmission(t)
		tr.call("torrent-add", map[string]any{"filename": magnet(ih, "album", tracker), "download-dir": tr.dir})
		addPeer(t, n, ih, tr.peerPort)
		tr.waitMetadata(time.Minute)
		for deadline := time.Now().Add(time.Minute); !tr.started(); time.Sleep(3 * time.Second) {
			if time.Now().After(deadline) {
				t.Fatal("transmission got no data from the node in a minute")
			}
			addPeer(t, n, ih, tr.peerPort)
		}
		tr.wait(false, 2*time.Minute)
		checkFiles(t, "transmission", tr.dir, sums)
	})
}

func infoHash(t testing.TB, torrentFile []byte) string {
	t.Helper()
	mi, err := metainfo.Load(bytes.NewReader(torrentFile))
	if err != nil {
		t.Fatal(err)
	}
	return mi.HashInfoBytes().HexString()
}

func sumSizes(sizes map[string]int) (n int) {
	for _, s := range sizes {
		n += s
	}
	return n
}

// TestEncryptionSetting: [plugins.torrent] encryption reaches the wire.
// With "require" the node's connection to transmission-daemon (which
// prefers encryption) is encrypted, with "off" it is plain, as
// Transmission reports it; the download ends whole either way.
func TestEncryptionSetting(t *testing.T) {
	testnet.NeedTools(t, "opentracker", "transmission-daemon", "transmission-create")
	for _, c := range []struct {
		setting   string
		encrypted bool
	}{{"require", true}, {"off", false}} {
		t.Run(c.setting, func(t *testing.T) {
			tracker := startTracker(t)
			tr := startTransmission(t)
			sums, file := tr.seed(t, tracker, "album", album)
			// Slow enough that the connection is still up when looked at.
			tr.call("session-set", map[string]any{"speed-limit-up": 4096, "speed-limit-up-enabled": true})
			n := torrentNode(t, fmt.Sprintf("encryption = %q", c.setting))
			v := addFromTransmission(t, n, tracker, tr, file)
			var peers []any
			for deadline := time.Now().Add(30 * time.Second); len(peers) == 0; time.Sleep(100 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the node never connected to transmission")
				}
				got := tr.call("torrent-get", map[string]any{"fields": []string{"peers"}})
				list, _ := got["torrents"].([]any)
				peers, _ = list[0].(map[string]any)["peers"].([]any)
			}
			if enc := peers[0].(map[string]any)["isEncrypted"]; enc != c.encrypted {
				t.Errorf("transmission says the connection is encrypted: %v, want %v", enc, c.encrypted)
			}
			waitVecino(t, n, v.InfoHash, "seeding", time.Minute)
			checkFiles(t, "vecino", filepath.Join(n.State, "plugins", "torrent", "data"), sums)
		})
	}
}

// TestAria2DownloadsFromVecino: aria2c downloads what Vecino seeds.
func TestAria2DownloadsFromVecino(t *testing.T) {
	testnet.NeedTools(t, "opentracker", "aria2c")
	tracker := startTracker(t)
	n := torrentNode(t)
	v, file, sums := seedFromVecino(t, n, tracker)
	out, _ := aria2From(t, n, v.InfoHash, file, 3*time.Minute)
	checkFiles(t, "aria2", out, sums)
}

// TestVecinoDownloadsFromAria2: aria2c seeds a multi-file torrent made by
// transmission-create; Vecino, given the .torrent, downloads every file
// whole from aria2c alone.
func TestVecinoDownloadsFromAria2(t *testing.T) {
	n, _, sums, _ := albumFromAria2(t)
	checkFiles(t, "vecino", filepath.Join(n.State, "plugins", "torrent", "data"), sums)
}

// albumFromAria2 has a new node download album from aria2c alone and
// returns the node, the torrent, the files' sums and aria2c's port.
func albumFromAria2(t *testing.T) (*testnet.Node, torrentView, map[string]string, int) {
	t.Helper()
	testnet.NeedTools(t, "opentracker", "aria2c", "transmission-create")
	tracker := startTracker(t)
	sums, file, port := seedWithAria2(t, tracker, "album", album)
	n := torrentNode(t)
	v := addFromPeer(t, n, tracker, port, file)
	waitVecino(t, n, v.InfoHash, "seeding", 2*time.Minute)
	return n, v, sums, port
}

// seedWithAria2 makes the files under a folder NAME, a .torrent of them
// with transmission-create, and has aria2c check and seed them for the
// length of the test; it returns the files' sums, the .torrent and
// aria2c's port.
func seedWithAria2(t testing.TB, tracker *tracker, name string, sizes map[string]int) (map[string]string, []byte, int) {
	t.Helper()
	dir := t.TempDir()
	sums := makeFiles(t, dir, sizes)
	file := makeTorrent(t, tracker, filepath.Join(dir, name))
	tfile := filepath.Join(t.TempDir(), name+".torrent")
	if err := os.WriteFile(tfile, file, 0o644); err != nil {
		t.Fatal(err)
	}
	port := testnet.FreePort(t)
	cmd := aria2cSeed(tfile, dir, port)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("aria2c output:\n%s", log.String())
		}
	})
	waitTCP(t, fmt.Sprintf("127.0.0.1:%d", port)) // aria2c listens once its check is done
	return sums, file, port
}

// aria2From has aria2c download a torrent (its .torrent file) from n alone,
// told of n's torrent plugin as a peer, and returns the folder it wrote
// and how long it took from that moment.
func aria2From(t *testing.T, n *testnet.Node, ih string, torrentFile []byte, timeout time.Duration) (string, time.Duration) {
	t.Helper()
	dir := t.TempDir()
	port := testnet.FreePort(t)
	tfile := filepath.Join(dir, ih+".torrent")
	os.WriteFile(tfile, torrentFile, 0o644)
	out := filepath.Join(dir, "out")
	cmd := aria2c(tfile, out, port)
	done := make(chan error, 1)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	waitTCP(t, fmt.Sprintf("127.0.0.1:%d", port))
	start := time.Now()
	addPeer(t, n, ih, port)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("aria2c: %v\n%s", err, log.String())
		}
	case <-time.After(timeout):
		cmd.Process.Kill()
		t.Fatalf("aria2c not done in %s\n%s", timeout, log.String())
	}
	return out, time.Since(start)
}

// slowDownload has Transmission seed a multi-file torrent of sizes under
// name at 2 MiB/s, and a new node download it.
func slowDownload(t *testing.T, name string, sizes map[string]int) (*transmission, *testnet.Node, torrentView, map[string]string) {
	t.Helper()
	testnet.NeedTools(t, "opentracker", "transmission-daemon", "transmission-create")
	tracker := startTracker(t)
	tr := startTransmission(t)
	sums, file := tr.seed(t, tracker, name, sizes)
	tr.call("session-set", map[string]any{"speed-limit-up": 2048, "speed-limit-up-enabled": true})
	n := torrentNode(t)
	return tr, n, addFromTransmission(t, n, tracker, tr, file), sums
}

// waitProgress waits, a minute at most, until torrent ih is at least p done.
func waitProgress(t *testing.T, n *testnet.Node, ih string, p float64) torrentView {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		v := vecinoTorrent(t, n, ih)
		if v.Progress >= p {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("download did not reach %.0f%%: %s", p*100, v)
		}
	}
}

// TestKilledMidDownloadResumes kills the torrent plugin with SIGKILL halfway
// through a download from Transmission: the router restarts it, it picks
// the torrent up where it was (no full recheck, nothing lost), and the
// result is whole.
func TestKilledMidDownloadResumes(t *testing.T) {
	// 16 s for the whole at 2 MiB/s: time enough to kill the plugin halfway.
	tr, n, v, sums := slowDownload(t, "big", map[string]int{"big/one.bin": 24 << 20, "big/two.bin": 8<<20 + 5})
	before := waitProgress(t, n, v.InfoHash, 0.3)
	pid := n.Status().Plugin("torrent").PID
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	n.WaitPlugin("torrent", 30*time.Second, func(p testnet.PluginStatus) bool { return p.State == "running" && p.PID != pid })
	after := vecinoTorrent(t, n, v.InfoHash)
	resumed := after
	if after.State == "metadata" {
		t.Fatalf("after restart the torrent has no metadata: %s", after)
	}
	// What was verified before the kill counts at once (allowing for the
	// pieces in flight), without hashing everything again.
	if after.Progress < before.Progress-0.1 {
		t.Errorf("progress went from %.0f%% to %.0f%% across the restart", before.Progress*100, after.Progress*100)
	}
	// The tracker's interval is 30 min: tell the new process of the peer,
	// as a re-announce would.
	addPeer(t, n, v.InfoHash, tr.peerPort)
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(5 * time.Second) {
		if after = vecinoTorrent(t, n, v.InfoHash); after.State == "seeding" {
			break
		}
		if time.Now().After(deadline) {
			_, raw, _ := n.Do("GET", "/api/v1/plugins/torrent/torrents/"+v.InfoHash, nil, false)
			peers := tr.call("torrent-get", map[string]any{"fields": []string{"peers"}})
			_, engine, _ := n.Do("GET", "/api/v1/plugins/torrent/engine", nil, false)
			t.Fatalf("not seeding 2 min after the restart: %s\n%s\ntransmission's peers: %v\nengine: %s\n%s", after, raw, peers, engine, n.Log())
		}
	}
	checkFiles(t, "vecino", filepath.Join(n.State, "plugins", "torrent", "data"), sums)
	t.Logf("killed at %.0f%%, resumed at %.0f%%; stalls unstuck: %d", before.Progress*100, resumed.Progress*100, strings.Count(n.Log(), "download stalled"))
}

// TestBadTorrentInputIsRefused: a hostile .torrent or a bad magnet link is
// refused with the reason, and a torrent already there keeps seeding.
func TestBadTorrentInputIsRefused(t *testing.T) {
	testnet.NeedTools(t, "opentracker")
	tracker := startTracker(t)
	n := torrentNode(t)
	v, good, _ := seedFromVecino(t, n, tracker)
	for _, c := range []struct {
		name, body, want string
	}{
		{"not bencode", "hello", "neither a .torrent file"},
		{"truncated", string(good[:len(good)/2]), "parse .torrent"},
		{"no info", "d8:announce3:urle", "no info dictionary"},
		{"escaping path", "d4:infod6:lengthi10e4:name2:..12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaee", "unsafe file name"},
		{"bad pieces", "d4:infod6:lengthi10e4:name1:x12:piece lengthi16384e6:pieces3:abcee", "not a list of SHA-1 hashes"},
		{"bad magnet", "magnet:?xt=urn:btih:nothex", "bad magnet link"},
	} {
		code, body, err := n.Do("POST", "/api/v1/plugins/torrent/torrents", []byte(c.body), true)
		if err != nil || code != http.StatusBadRequest || !strings.Contains(string(body), c.want) {
			t.Errorf("%s: %d %v %s, want 400 saying %q", c.name, code, err, body, c.want)
		}
	}
	if got := vecinoTorrent(t, n, v.InfoHash); got.State != "seeding" {
		t.Errorf("the good torrent is %s after the bad input", got)
	}
	if p := n.Status().Plugin("torrent"); p.Restarts != 0 {
		t.Errorf("plugin restarted %d times on bad input", p.Restarts)
	}
}

// TestSameNameOtherFilesIsRefused: a torrent named like one the node
// seeds, but holding other files, is refused (or, added as a magnet, held
// once its metadata comes), since its data would go where the first one's
// is and overwrite it; the seeded data stays whole.
// A torrent of the very same files (cross-seeding) is taken and seeds
// from that data without a download.
func TestSameNameOtherFilesIsRefused(t *testing.T) {
	testnet.NeedTools(t, "opentracker", "transmission-create", "aria2c")
	tracker := startTracker(t)
	n := torrentNode(t)
	v, _, sums := seedFromVecino(t, n, tracker)
	data := filepath.Join(n.State, "plugins", "torrent", "data")

	// Another album, which aria2c seeds: as a .torrent it is refused; as
	// a magnet it is held once its metadata shows the clash, with its
	// seeder at hand.
	_, other, port := seedWithAria2(t, tracker, "album", map[string]int{"album/01 intro.flac": 1000, "album/bootleg.ogg": 5000})
	code, body, err := n.Do("POST", "/api/v1/plugins/torrent/torrents", other, true)
	if err != nil || code != http.StatusBadRequest || !strings.Contains(string(body), "overwrite") || !strings.Contains(string(body), v.InfoHash) {
		t.Errorf("another album: %d %v %s, want 400 naming %s", code, err, body, v.InfoHash)
	}
	m := addTorrent(t, n, []byte("magnet:?xt=urn:btih:"+infoHash(t, other)+"&dn=album"))
	addPeer(t, n, m.InfoHash, port)
	if got := waitVecino(t, n, m.InfoHash, "error", 30*time.Second); !strings.Contains(got.Error, "overwrite") {
		t.Errorf("the other album by magnet: %s", got)
	}
	time.Sleep(12 * time.Second) // past the stall watch (10 s), which restarts requests

	cross := addTorrent(t, n, makeTorrent(t, tracker, filepath.Join(data, "album"), "-s", "64"))
	if cross.InfoHash == v.InfoHash {
		t.Fatal("the cross-seed torrent has the same info hash")
	}
	waitVecino(t, n, cross.InfoHash, "seeding", time.Minute)
	if got := vecinoTorrent(t, n, cross.InfoHash); got.Download != 0 {
		t.Errorf("cross-seeding downloaded %d bytes", got.Download)
	}
	if got := vecinoTorrent(t, n, v.InfoHash); got.State != "seeding" {
		t.Errorf("the first album: %s", got)
	}
	checkFiles(t, "vecino", data, sums)
}

// TestCLIManagesTorrents drives the seedbox with the vecino command, as a
// user at a shell would: make a torrent of a folder and get its magnet,
// list it, add a bad file and a good one, remove one; make a torrent of a
// large file and watch the hashing's progress.
func TestCLIManagesTorrents(t *testing.T) {
	n := torrentNode(t)
	command := func(stdout, stderr io.Writer, args ...string) *exec.Cmd {
		cmd := vecinoCmd(t, n, args...)
		cmd.Stdout, cmd.Stderr = stdout, stderr
		return cmd
	}
	run := func(wantOK bool, args ...string) (stdout, stderr string) {
		t.Helper()
		var o, e strings.Builder
		err := command(&o, &e, args...).Run()
		if (err == nil) != wantOK {
			t.Fatalf("vecino %s: %v\n%s%s", strings.Join(args, " "), err, o.String(), e.String())
		}
		return o.String(), e.String()
	}
	vecino := func(wantOK bool, args ...string) string {
		t.Helper()
		o, e := run(wantOK, args...)
		return o + e
	}
	data := filepath.Join(n.State, "plugins", "torrent", "data")
	makeFiles(t, data, album)
	out, _ := run(true, "torrent", "create", "-tracker", "http://127.0.0.1:1/announce", "album")
	if !strings.Contains(out, "magnet:?xt=urn:btih:") {
		t.Fatalf("create printed no magnet link:\n%s", out)
	}
	ih := strings.Fields(out)[0]
	vecino(true, "torrent", "wait", ih)
	if out := vecino(true, "torrent", "ls"); !strings.Contains(out, ih) || !strings.Contains(out, "seeding") || !strings.Contains(out, "100.0%") {
		t.Errorf("ls does not show album seeding:\n%s", out)
	}
	bad := filepath.Join(t.TempDir(), "bad.torrent")
	os.WriteFile(bad, []byte("d4:infod6:lengthi10e4:name2:..12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaee"), 0o644)
	good := torrentFileOf(t, n, ih)
	goodFile := filepath.Join(t.TempDir(), "album.torrent")
	os.WriteFile(goodFile, good, 0o644)
	out = vecino(false, "torrent", "add", bad, goodFile)
	if !strings.Contains(out, "bad.torrent") || !strings.Contains(out, "unsafe file name") || !strings.Contains(out, "already there "+ih) {
		t.Errorf("add of a bad and a known .torrent said:\n%s", out)
	}
	if out := vecino(true, "status"); !strings.Contains(out, "torrent") || !strings.Contains(out, "1 torrent:") {
		t.Errorf("status:\n%s", out)
	}
	vecino(true, "torrent", "rm", ih)
	if out := vecino(true, "torrent", "ls"); strings.Contains(out, ih) {
		t.Errorf("still listed after rm:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(n.State, "plugins", "torrent", "data", "album")); err != nil {
		t.Errorf("rm without -delete-data removed the data: %v", err)
	}
	if out := vecino(false, "-token", "wrong", "torrent", "rm", ih); !strings.Contains(out, "401") {
		t.Errorf("a wrong token was not refused:\n%s", out)
	}

	// A 3 GiB file (sparse: no disk used) takes seconds to hash: the
	// CLI shows how far the hashing got meanwhile, then the magnet.
	big := filepath.Join(data, "big.img")
	sparseFile(t, big, 3<<30)
	out, progress := run(true, "torrent", "create", "big.img")
	if !strings.Contains(out, "big.img (3.0 GiB)") || !strings.Contains(out, "magnet:?xt=urn:btih:") {
		t.Errorf("create of big.img printed:\n%s", out)
	}
	if !regexp.MustCompile(`big\.img: hashing, +[0-9]{1,2}\.[0-9]% of 3\.0 GiB, [0-9.]+ [KMG]?i?B/s`).MatchString(progress) {
		t.Errorf("no progress shown while big.img was hashed:\n%s", progress)
	}
	if _, e := run(false, "torrent", "create", "nothing-here"); !strings.Contains(e, "nothing-here") || !strings.Contains(e, "no such file") {
		t.Errorf("create of a missing name said: %s", e)
	}

	// The plugin killed while it hashes: the new process takes the
	// making up again under the same id, and the CLI, having waited out
	// the restart, sees it through to the magnet.
	if err := os.Rename(big, filepath.Join(data, "big2.img")); err != nil {
		t.Fatal(err)
	}
	var cliOut strings.Builder
	cli := command(&cliOut, &cliOut, "torrent", "create", "big2.img")
	if err := cli.Start(); err != nil {
		t.Fatal(err)
	}
	waitHashing(t, n, "big2.img")
	pid := n.Status().Plugin("torrent").PID
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := cli.Wait(); err != nil || !strings.Contains(cliOut.String(), "big2.img (3.0 GiB)") {
		t.Errorf("create with the plugin killed mid-way: %v\n%s", err, cliOut.String())
	}
	if p := n.Status().Plugin("torrent"); p.PID == pid || p.Restarts != 1 {
		t.Errorf("the plugin was not restarted: %+v", p)
	}

	// Ctrl-C while a create hashes calls the making off: the hashing
	// stops and no torrent is made.
	sparseFile(t, filepath.Join(data, "big3.img"), 64<<30)
	cliOut.Reset()
	cli = command(&cliOut, &cliOut, "torrent", "create", "big3.img")
	if err := cli.Start(); err != nil {
		t.Fatal(err)
	}
	id := waitHashing(t, n, "big3.img")
	cli.Process.Signal(os.Interrupt)
	if err := cli.Wait(); err == nil || !strings.Contains(cliOut.String(), "the making of big3.img is called off") {
		t.Errorf("Ctrl-C during a create: %v\n%s", err, cliOut.String())
	}
	if m := waitMaking(t, n, id, 10*time.Second); m.State != "cancelled" {
		t.Errorf("after Ctrl-C the making is %+v, want cancelled", m)
	}
	for _, tv := range vecinoTorrents(t, n) {
		if tv.Name == "big3.img" {
			t.Errorf("a torrent of big3.img was made although called off: %s", tv)
		}
	}
}

// sparseFile makes a file of size bytes that takes no disk: it reads as
// zeros, as fast as the page cache gives them.
func sparseFile(t testing.TB, path string, size int64) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

// waitHashing waits until a making of name is hashing, and returns its id.
func waitHashing(t testing.TB, n *testnet.Node, name string) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var list struct{ Creates []making }
		_, body, _ := n.Do("GET", "/api/v1/plugins/torrent/creates", nil, false)
		json.Unmarshal(body, &list)
		for _, m := range list.Creates {
			if m.Name == name && m.State == "hashing" {
				return m.ID
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is not being hashed: %s", name, body)
		}
	}
}

// TestFullDiskPausesThatDownloadAlone: the data folder is a 20 MiB tmpfs
// holding a seeded album (~9 MiB) when a 32 MiB download from Transmission
// starts. That torrent stops with an error that says the disk is full; the
// album keeps seeding, the plugin keeps running; given space, the download
// resumes and ends whole.
func TestFullDiskPausesThatDownloadAlone(t *testing.T) {
	testnet.NeedTools(t, "opentracker", "transmission-daemon", "transmission-create")
	data := mountTmpfs(t, t.TempDir(), "20m")
	tracker := startTracker(t)
	n := torrentNode(t, fmt.Sprintf("data_dir = %q", data))
	albumView, _, _ := seedFromVecinoIn(t, n, tracker, data)

	tr := startTransmission(t)
	sums, file := tr.seed(t, tracker, "big", map[string]int{"big/one.bin": 24 << 20, "big/two.bin": 8 << 20})
	v := addFromTransmission(t, n, tracker, tr, file)
	var got torrentView
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if got = vecinoTorrent(t, n, v.InfoHash); got.State == "error" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no error on a full disk: %s", got)
		}
	}
	if !strings.Contains(got.Error, "full") {
		t.Errorf("the error does not say the disk is full: %q", got.Error)
	}
	if a := vecinoTorrent(t, n, albumView.InfoHash); a.State != "seeding" {
		t.Errorf("the album is %s while the other download is stuck", a)
	}
	if p := n.Status().Plugin("torrent"); p.State != "running" || p.Restarts != 0 {
		t.Errorf("plugin %s, restarted %d times", p.State, p.Restarts)
	}
	paused := got.Done
	if out, err := exec.Command("mount", "-o", "remount,size=64m", data).CombinedOutput(); err != nil {
		t.Fatalf("grow tmpfs: %v %s", err, out)
	}
	got = waitVecino(t, n, v.InfoHash, "seeding", 2*time.Minute)
	t.Logf("paused at %d of %d bytes, then completed", paused, got.Size)
	checkFiles(t, "vecino", data, sums)
}

// mountTmpfs mounts a tmpfs of size (as mount's size= takes it) on dir
// for the length of the test, and returns dir. It needs root.
func mountTmpfs(t testing.TB, dir, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "vecino-test", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// TestReadOnlyDiskPausesDownloads: the data folder's file system turns
// read-only mid-download (as ext4 remounts itself after disk errors). The
// download says so and waits, the plugin is not restarted, and once the
// file system can be written again the download resumes and ends whole.
func TestReadOnlyDiskPausesDownloads(t *testing.T) {
	data := mountTmpfs(t, t.TempDir(), "64m")
	remount := func(how string) {
		if out, err := exec.Command("mount", "-o", "remount,"+how, data).CombinedOutput(); err != nil {
			t.Fatalf("remount %s: %v %s", how, err, out)
		}
	}
	downloadThroughTrouble(t, data, "read-only", func() { remount("ro") }, func() { remount("rw") })
}

// A write that fails for a reason the file system's figures do not show
// (a bad sector, a file the node may not write) pauses the download with
// that error, and it is tried again. Left to the engine, the download
// stopped for good at the first failed write, and said nothing.
func TestFailedWritePausesTheDownload(t *testing.T) {
	data := mountTmpfs(t, t.TempDir(), "64m")
	// big/one.bin, written first, is made immutable (chattr +i): not
	// even root may open it for writing, and its data stays.
	one := filepath.Join(data, "big", "one.bin")
	downloadThroughTrouble(t, data, "operation not permitted", func() {
		setImmutable(t, one, true)
	}, func() {
		setImmutable(t, one, false)
	})
}

// fsImmutable is FS_IMMUTABLE_FL of linux/fs.h, which x/sys/unix lacks.
const fsImmutable = 0x10

// setImmutable sets or clears path's immutable flag, as chattr does.
func setImmutable(t *testing.T, path string, on bool) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil {
		t.Fatalf("get flags of %s: %v", path, err)
	}
	if on {
		flags |= fsImmutable
	} else {
		flags &^= fsImmutable
	}
	v := int(flags)
	if err := unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, v); err != nil {
		t.Fatalf("set flags of %s: %v", path, err)
	}
}

// downloadThroughTrouble has the node download a torrent into data from
// Transmission, breaks the data folder a fifth of the way with breakIt,
// checks the torrent is held with an error saying want while the plugin
// keeps running, mends it, and checks the download then ends whole.
func downloadThroughTrouble(t *testing.T, data, want string, breakIt, mendIt func()) {
	testnet.NeedTools(t, "opentracker", "transmission-daemon", "transmission-create")
	tracker := startTracker(t)
	n := torrentNode(t, fmt.Sprintf("data_dir = %q", data))
	tr := startTransmission(t)
	sums, file := tr.seed(t, tracker, "big", map[string]int{"big/one.bin": 24 << 20, "big/two.bin": 8 << 20})
	tr.call("session-set", map[string]any{"speed-limit-up": 2048, "speed-limit-up-enabled": true})
	v := addFromTransmission(t, n, tracker, tr, file)
	waitProgress(t, n, v.InfoHash, 0.2)
	breakIt()
	got := waitVecino(t, n, v.InfoHash, "error", 30*time.Second)
	if !strings.Contains(got.Error, want) {
		t.Errorf("the error does not say %q: %q", want, got.Error)
	}
	if p := n.Status().Plugin("torrent"); p.State != "running" || p.Restarts != 0 {
		t.Errorf("plugin %s, restarted %d times", p.State, p.Restarts)
	}
	mendIt()
	waitVecino(t, n, v.InfoHash, "downloading", 30*time.Second)
	// Its peer may have gone while it could fetch nothing; a tracker's
	// next answer would bring it back, here the test does.
	addPeer(t, n, v.InfoHash, tr.peerPort)
	waitVecino(t, n, v.InfoHash, "seeding", 2*time.Minute)
	checkFiles(t, "vecino", data, sums)
}

// TestUnreadablePieceRecordIsRebuilt: the engine keeps which pieces were
// verified in a bbolt file it writes without syncing, for speed, so a
// power cut can leave its meta pages pointing at pages that were never
// written, which bbolt panics on. The plugin must still start: the file
// is set aside, and the data on disk is hashed again, so a torrent that
// was seeding seeds again without downloading anything.
func TestUnreadablePieceRecordIsRebuilt(t *testing.T) {
	n := torrentNode(t)
	makeFiles(t, filepath.Join(n.State, "plugins", "torrent", "data"), album)
	v := createTorrent(t, n, "album")
	n.PowerCut()
	path := filepath.Join(n.State, "plugins", "torrent", "torrents", ".torrent.bolt.db")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("no piece record where the engine keeps it: %v", err)
	}
	testnet.DamagePages(t, path, 0, 1)
	junk, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n.Restart()
	p := n.WaitPlugin("torrent", 30*time.Second, testnet.Running)
	if p.Restarts != 0 {
		t.Errorf("torrent plugin restarted %d times: %s", p.Restarts, p.LastError)
	}
	got := waitVecino(t, n, v.InfoHash, "seeding", time.Minute)
	if got.Progress != 1 || got.Download != 0 {
		t.Errorf("after the piece record was rebuilt: %s, %d bytes downloaded", got, got.Download)
	}
	kept, _ := filepath.Glob(path + ".unreadable-*")
	if len(kept) != 1 {
		t.Fatalf("set-aside piece records: %v, want one", kept)
	}
	if b, err := os.ReadFile(kept[0]); err != nil || !bytes.Equal(b, junk) {
		t.Errorf("the set-aside file does not hold what was there: %v", err)
	}
	if s := n.Status().Plugin("torrent"); s.Details["piece_record_unreadable"] == nil {
		t.Errorf("the status does not say the piece record was set aside: %v", s.Details)
	}
}
