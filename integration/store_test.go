package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bsmsg "github.com/ipfs/boxo/bitswap/message"
	bitswappb "github.com/ipfs/boxo/bitswap/message/pb"
	blocks "github.com/ipfs/go-block-format"
	gocid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	mh "github.com/multiformats/go-multihash"

	"github.com/vecino/vecino/internal/testnet"
)

// kubo is an IPFS kubo daemon (v0.40.1, built by .ci/run) with its repo in
// a temporary folder: loopback only, no bootstrap peers, no routing, no
// autoconf, no telemetry, no mDNS.
type kubo struct {
	t    testing.TB
	env  []string
	repo string
	cmd  *exec.Cmd
	ID   string
	Addr string // a loopback multiaddr with /p2p/
}

func startKubo(t testing.TB) *kubo { return startKuboWith(t) }

// startKuboWith runs kubo with extra `ipfs config --json KEY VALUE` pairs.
func startKuboWith(t testing.TB, config ...string) *kubo {
	t.Helper()
	testnet.NeedTools(t, "ipfs")
	k := &kubo{t: t, repo: t.TempDir()}
	k.env = append(os.Environ(), "IPFS_PATH="+k.repo, "IPFS_TELEMETRY=off")
	k.run("init", "--profile=test", "--empty-repo")
	k.run("config", "Routing.Type", "none")
	for i := 0; i+1 < len(config); i += 2 {
		k.run("config", "--json", config[i], config[i+1])
	}
	k.run("config", "--json", "Swarm.RelayClient.Enabled", "false")
	k.run("config", "--json", "Swarm.Transports.Network.QUIC", "false")
	k.run("config", "--json", "Swarm.Transports.Network.WebTransport", "false")
	k.run("config", "--json", "Swarm.Transports.Network.Websocket", "false")
	k.run("config", "--json", "Swarm.Transports.Network.WebRTCDirect", "false")
	k.run("config", "Plugins.Plugins.telemetry.Config.Mode", "off")
	k.cmd = startProcessEnv(t, k.env, "ipfs", "daemon")
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(k.repo, "api")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("kubo did not start in 60 s")
		}
	}
	var id struct {
		ID        string
		Addresses []string
	}
	json.Unmarshal([]byte(k.run("id")), &id)
	k.ID = id.ID
	for _, a := range id.Addresses {
		if strings.HasPrefix(a, "/ip4/127.0.0.1/tcp/") {
			k.Addr = a
		}
	}
	if k.Addr == "" {
		t.Fatalf("kubo has no loopback TCP address: %v", id.Addresses)
	}
	return k
}

// run runs an ipfs command against the daemon and returns its output.
func (k *kubo) run(args ...string) string {
	k.t.Helper()
	out, err := k.try(args...)
	if err != nil {
		k.t.Fatalf("ipfs %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (k *kubo) try(args ...string) (string, error) {
	cmd := exec.Command("ipfs", args...)
	cmd.Env = k.env
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// vecinoCLI runs the vecino command against n; it fails the test when the
// command's success is not wantOK.
func vecinoCLI(t testing.TB, n *testnet.Node, wantOK bool, args ...string) string {
	t.Helper()
	return runCLI(t, vecinoCmd(t, n, args...), wantOK)
}

// vecinoCmd is the vecino command against n, not started.
func vecinoCmd(t testing.TB, n *testnet.Node, args ...string) *exec.Cmd {
	bin := filepath.Join(testnet.Binaries(t), "vecino")
	cmd := exec.Command(bin, append([]string{"-api", n.API}, args...)...)
	cmd.Env = append(os.Environ(), "VECINO_TOKEN="+n.Token)
	return cmd
}

// runCLI runs cmd, a vecino command, and returns what it printed; it fails
// the test when the command's success is not wantOK.
func runCLI(t testing.TB, cmd *exec.Cmd, wantOK bool) string {
	t.Helper()
	out, err := cmd.Output()
	if (err == nil) != wantOK {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("%s: %v\n%s%s", strings.Join(cmd.Args, " "), err, out, stderr)
	}
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out) + string(ee.Stderr)
		}
	}
	return string(out)
}

// storeAdd adds path on n with the CLI and returns the CID it printed.
func storeAdd(t testing.TB, n *testnet.Node, path string, args ...string) string {
	t.Helper()
	out := vecinoCLI(t, n, true, append(append([]string{"store", "add"}, args...), path)...)
	f := strings.Fields(out)
	if len(f) < 2 || f[0] != "added" {
		t.Fatalf("store add printed %q", out)
	}
	return f[1]
}

func randomFile(t testing.TB, path string, size int) []byte {
	t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return data
}

func sum(b []byte) string { h := sha256.Sum256(b); return fmt.Sprintf("%x", h[:8]) }

// storeConf is a store table for tests: quick announcements and a short
// grace period so that repair happens within a test's patience.
const storeConf = `announce_interval = "300ms"
grace = "3s"
fetch_timeout = "3s"
replication = 3`

func storeNode(t testing.TB, name string, conf string, boot ...string) *testnet.Node {
	n := testnet.Start(t, testnet.Options{Name: name, Plugins: map[string]string{"store": conf}, Bootstrap: boot})
	n.WaitPlugin("store", 30*time.Second, testnet.Running)
	return n
}

// TestStoreCIDsMatchKubo: the same files and folders added to Vecino and
// to kubo (`ipfs add --cid-version=1`) get the same CIDs: single-block
// files, files on block boundaries, a file deep enough for a two-level
// tree (more than 174 leaves), an empty file, and a folder with
// subfolders, an empty folder, a symlink and a hidden file both leave out.
func TestStoreCIDsMatchKubo(t *testing.T) {
	k := startKubo(t)
	n := storeNode(t, "cids", storeConf)
	dir := t.TempDir()
	files := map[string]int{"empty": 0, "tiny": 11, "chunk": 256 << 10, "chunk-plus-one": 256<<10 + 1, "medium": 3<<20 + 12345, "deep": 175*(256<<10) + 7}
	for name, size := range files {
		randomFile(t, filepath.Join(dir, name), size)
	}
	tree := filepath.Join(dir, "tree")
	randomFile(t, filepath.Join(tree, "a.txt"), 1000)
	randomFile(t, filepath.Join(tree, "sub", "b.bin"), 600<<10)
	randomFile(t, filepath.Join(tree, "sub", "deeper", "c"), 5)
	randomFile(t, filepath.Join(tree, ".hidden"), 50)
	os.MkdirAll(filepath.Join(tree, "empty-dir"), 0o755)
	os.Symlink("a.txt", filepath.Join(tree, "link"))
	for name := range files {
		path := filepath.Join(dir, name)
		want := k.run("add", "-Q", "--cid-version=1", path)
		if got := storeAdd(t, n, path); got != want {
			t.Errorf("%s (%d bytes): vecino %s, kubo %s", name, files[name], got, want)
		}
	}
	want := k.run("add", "-Q", "-r", "--cid-version=1", tree)
	if got := storeAdd(t, n, tree); got != want {
		t.Errorf("folder: vecino %s, kubo %s", got, want)
	}
	// And what comes back out is what went in.
	out := filepath.Join(t.TempDir(), "out")
	vecinoCLI(t, n, true, "store", "get", "-o", out, want)
	filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(tree, p)
		if d.Type().IsRegular() && !strings.HasPrefix(d.Name(), ".") {
			a, _ := os.ReadFile(p)
			b, err := os.ReadFile(filepath.Join(out, rel))
			if err != nil || !bytes.Equal(a, b) {
				t.Errorf("get: %s differs (%v)", rel, err)
			}
		}
		return nil
	})
	if target, err := os.Readlink(filepath.Join(out, "link")); err != nil || target != "a.txt" {
		t.Errorf("get: link -> %q, %v", target, err)
	}
}

// TestKuboAndVecinoFetchFromEachOther: kubo connected to a Vecino node
// fetches over bitswap what only Vecino holds, and Vecino fetches what
// only kubo holds.
func TestKuboAndVecinoFetchFromEachOther(t *testing.T) {
	k := startKubo(t)
	n := storeNode(t, "interop", storeConf)
	k.run("swarm", "connect", n.TCPAddr())

	dir := t.TempDir()
	mine := randomFile(t, filepath.Join(dir, "vecino-only"), 5<<20+3)
	c := storeAdd(t, n, filepath.Join(dir, "vecino-only"))
	got := filepath.Join(dir, "from-vecino")
	k.run("get", "--timeout=60s", "-o", got, c)
	if b, _ := os.ReadFile(got); !bytes.Equal(b, mine) {
		t.Errorf("kubo got %d bytes (sha %s) of %s, want %d (sha %s)", len(b), sum(b), c, len(mine), sum(mine))
	}

	theirs := randomFile(t, filepath.Join(dir, "kubo-only"), 4<<20+5)
	kc := k.run("add", "-Q", "--cid-version=1", filepath.Join(dir, "kubo-only"))
	out := filepath.Join(dir, "from-kubo")
	vecinoCLI(t, n, true, "store", "get", "-o", out, kc)
	if b, _ := os.ReadFile(out); !bytes.Equal(b, theirs) {
		t.Errorf("vecino got %d bytes (sha %s) of %s, want %d (sha %s)", len(b), sum(b), kc, len(theirs), sum(theirs))
	}
	st := storeStatus(t, n)
	if st["fetched_blocks"] < 17 || st["served_blocks"] < 21 {
		t.Errorf("status counts %v fetched and %v served blocks; want at least 17 and 21", st["fetched_blocks"], st["served_blocks"])
	}
}

// TestStoreServeRateCap: with serve_kib_per_s set, kubo fetching from the
// node gets the data whole, no faster than the cap allows.
func TestStoreServeRateCap(t *testing.T) {
	k := startKubo(t)
	n := storeNode(t, "capped", storeConf+"\nserve_kib_per_s = 1024")
	k.run("swarm", "connect", n.TCPAddr())
	path := filepath.Join(t.TempDir(), "capped.bin")
	data := randomFile(t, path, 6<<20)
	c := storeAdd(t, n, path)
	got := filepath.Join(t.TempDir(), "got")
	start := time.Now()
	k.run("get", "--timeout=60s", "-o", got, c)
	took := time.Since(start)
	if b, _ := os.ReadFile(got); !bytes.Equal(b, data) {
		t.Fatalf("kubo got %d bytes (sha %s), want %d (sha %s)", len(b), sum(b), len(data), sum(data))
	}
	// 6 MiB at 1 MiB/s, less one block of burst: 5.7 s at the least.
	if took < 4500*time.Millisecond {
		t.Errorf("kubo had 6 MiB in %s: faster than the 1 MiB/s cap allows", took.Round(time.Millisecond))
	}
	t.Logf("6 MiB under a 1 MiB/s cap took %s", took.Round(time.Millisecond))
}

// TestStoreCollectsGarbageOnItsOwn: what was unpinned stays until the
// store passes gc_watermark of its quota; then it goes on its own, and
// what is pinned stays whole.
func TestStoreCollectsGarbageOnItsOwn(t *testing.T) {
	n := storeNode(t, "auto-gc", storeConf+"\nquota_mib = 8\ngc_watermark = 50\ngc_interval = \"1s\"")
	dir := t.TempDir()
	randomFile(t, filepath.Join(dir, "old"), 3<<20)
	old := storeAdd(t, n, filepath.Join(dir, "old"))
	vecinoCLI(t, n, true, "store", "unpin", old)
	time.Sleep(2500 * time.Millisecond) // two checks: 3 of 8 MiB is under the watermark
	if st := storeStatus(t, n); st["gc_runs"] != 0 || st["used_bytes"] < 3<<20 {
		t.Fatalf("collected below the watermark: %v", st)
	}
	keep := randomFile(t, filepath.Join(dir, "keep"), 2<<20)
	kept := storeAdd(t, n, filepath.Join(dir, "keep"))
	st := waitCounter(t, n, "gc_runs", 30*time.Second, "5 of 8 MiB used, past the 50% watermark, and nothing collected")
	if st["gc_freed_bytes"] < 3<<20 || st["used_bytes"] > 2<<20+4096 {
		t.Errorf("after the automatic gc: freed %v bytes, %v used; want the unpinned 3 MiB gone, 2 MiB left", st["gc_freed_bytes"], st["used_bytes"])
	}
	out := filepath.Join(dir, "got")
	vecinoCLI(t, n, true, "store", "get", "-o", out, kept)
	if b, _ := os.ReadFile(out); !bytes.Equal(b, keep) {
		t.Errorf("the pinned file came back as %d bytes (sha %s), want sha %s", len(b), sum(b), sum(keep))
	}
}

// TestKuboGetsWhatVecinoStoresLater: kubo asks a Vecino node for content
// it does not have yet; the node answers DONT_HAVE and keeps the want, and
// when the content is added there the blocks go to kubo without kubo
// asking again.
func TestKuboGetsWhatVecinoStoresLater(t *testing.T) {
	k := startKubo(t)
	n := storeNode(t, "kept-wants", storeConf)
	k.run("swarm", "connect", n.TCPAddr())
	path := filepath.Join(t.TempDir(), "later.bin")
	data := randomFile(t, path, 600<<10)
	c := k.run("add", "-Q", "--cid-version=1", "--only-hash", path)

	got := filepath.Join(t.TempDir(), "got")
	cat := exec.Command("ipfs", "get", "--timeout=60s", "-o", got, c)
	cat.Env = k.env
	done := make(chan error, 1)
	if err := cat.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cat.Wait() }()
	t.Cleanup(func() { cat.Process.Kill() })
	waitCounter(t, n, "wants_kept", 30*time.Second, "kubo's want was not kept")
	if c2 := storeAdd(t, n, path); c2 != c {
		t.Fatalf("vecino added %s, kubo computed %s", c2, c)
	}
	if err := <-done; err != nil {
		t.Fatalf("ipfs get: %v", err)
	}
	if b, _ := os.ReadFile(got); !bytes.Equal(b, data) {
		t.Errorf("kubo got %d bytes (sha %s), want %d (sha %s)", len(b), sum(b), len(data), sum(data))
	}
	if st := storeStatus(t, n); st["kept_wants_served"] < 1 {
		t.Errorf("no kept want was served: %v", st)
	}
}

func storeStatus(t testing.TB, n *testnet.Node) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for k, v := range n.Status().Plugin("store").Details {
		if f, ok := v.(float64); ok {
			out[k] = f
		}
	}
	return out
}

type storeStat struct {
	Complete bool `json:"complete"`
	Pin      *struct {
		Replication int    `json:"replication"`
		Origin      string `json:"origin"`
	} `json:"pin"`
}

// holders lists the nodes (by index) that have c pinned and complete.
func holders(t testing.TB, nodes []*testnet.Node, c string) []int {
	var out []int
	for i, n := range nodes {
		if n == nil {
			continue
		}
		code, body, err := n.Do("GET", "/api/v1/plugins/store/stat/"+c+"?local=1", nil, false)
		var st storeStat
		if err == nil && code == 200 && json.Unmarshal(body, &st) == nil && st.Pin != nil && st.Complete {
			out = append(out, i)
		}
	}
	return out
}

func waitHolders(t testing.TB, nodes []*testnet.Node, c string, want int, within time.Duration) []int {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		hs := holders(t, nodes, c)
		if len(hs) == want {
			// Still so a few announcements later: no over-replication.
			time.Sleep(time.Second)
			if hs2 := holders(t, nodes, c); len(hs2) == want {
				return hs2
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: held by nodes %v after %s, want %d holders", c, hs, within, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestStoreReplicatesAndRepairs: five nodes, replication 3. After a pin,
// three nodes hold every block; when one holder stops, another takes a
// copy once the grace period is over; every remaining node can get it.
// A node refuses, with a clear error, to pin beyond its quota. When the
// origin unpins, every copy goes, including one on a node away just then.
func TestStoreReplicatesAndRepairs(t *testing.T) {
	var nodes []*testnet.Node
	var boot []string
	for i := range 5 {
		n := storeNode(t, fmt.Sprintf("store-%d", i), storeConf, boot...)
		boot = append(boot, n.TCPAddr())
		nodes = append(nodes, n)
	}
	small := storeNode(t, "store-small", storeConf+"\nquota_mib = 1", boot...)
	for _, n := range nodes {
		n.WaitPeers(5, 30*time.Second)
	}
	path := filepath.Join(t.TempDir(), "album.bin")
	data := randomFile(t, path, 3<<20+77)
	c := storeAdd(t, nodes[0], path, "-r", "3")
	all := append(append([]*testnet.Node(nil), nodes...), small)
	hs := waitHolders(t, all, c, 3, 30*time.Second)
	if hs[0] != 0 {
		t.Errorf("holders %v do not include the node it was added on", hs)
	}
	// Stop a holder other than the first.
	gone := hs[1]
	nodes[gone].Stop()
	stopped := time.Now()
	all[gone] = nil
	hs = waitHolders(t, all, c, 3, 40*time.Second)
	if took := time.Since(stopped); took < 3*time.Second {
		t.Errorf("repaired after %s, before the 3 s grace period", took)
	}
	t.Logf("holders after repair: %v (node %d stopped)", hs, gone)
	for i, n := range nodes {
		if i == gone {
			continue
		}
		out := filepath.Join(t.TempDir(), "got")
		vecinoCLI(t, n, true, "store", "get", "-o", out, c)
		if b, _ := os.ReadFile(out); !bytes.Equal(b, data) {
			t.Errorf("node %d: get gave %d bytes, sha %s; want sha %s", i, len(b), sum(b), sum(data))
		}
	}
	if out := vecinoCLI(t, nodes[0], true, "store", "ls"); !strings.Contains(out, c) || !strings.Contains(out, "3/3") {
		t.Errorf("store ls on the origin:\n%s", out)
	}
	// The stopped holder comes back with its copy: four hold it, one too
	// many, and after a grace period one replica goes again.
	nodes[gone].Restart()
	nodes[gone].WaitPlugin("store", 30*time.Second, testnet.Running)
	all[gone] = nodes[gone]
	for deadline := time.Now().Add(15 * time.Second); len(holders(t, all, c)) != 4; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the returning holder's copy is not counted: %v", holders(t, all, c))
		}
	}
	hs = waitHolders(t, all, c, 3, 30*time.Second)
	if hs[0] != 0 {
		t.Errorf("after the trim, holders %v do not include the origin", hs)
	}
	trimmed := 0.0
	for _, n := range nodes {
		trimmed += storeStatus(t, n)["replicas_trimmed"]
	}
	if trimmed != 1 {
		t.Errorf("%v replicas trimmed in all, want 1", trimmed)
	}
	out := vecinoCLI(t, small, false, "store", "pin", c)
	if !strings.Contains(out, "quota") {
		t.Errorf("pin beyond the quota said:\n%s", out)
	}
	if hs := holders(t, []*testnet.Node{small}, c); len(hs) != 0 {
		t.Errorf("the small node holds the pin it had no room for")
	}
	// The origin's user unpins: the copies it asked for go too, and a
	// holder that was away then drops its copy when it is back.
	away := hs[len(hs)-1]
	nodes[away].Stop()
	all[away] = nil
	vecinoCLI(t, nodes[0], true, "store", "unpin", c)
	waitHolders(t, all, c, 0, 15*time.Second)
	// Away for longer than gossipsub keeps a message to gossip about (5
	// heartbeats of 1 s): the unpin itself never reaches it.
	time.Sleep(6 * time.Second)
	nodes[away].Restart()
	nodes[away].WaitPlugin("store", 30*time.Second, testnet.Running)
	all[away] = nodes[away]
	waitHolders(t, all, c, 0, 15*time.Second)
}

// TestStoreFindsHoldersOnDHT: a node gets content from a node it is not
// connected to, found through the DHT. b is the DHT server both know; a is
// a DHT client (so that c's searches never learn of it and dial it), and
// c, started after a's DHT has settled, announces the root of what it adds.
// a, connected to b alone, asks b, hears "don't have", looks up the root's
// holders on the DHT, connects to c and fetches from it.
func TestStoreFindsHoldersOnDHT(t *testing.T) {
	b := storeNode(t, "dht-b", storeConf)
	a := testnet.Start(t, testnet.Options{Name: "dht-a", Plugins: map[string]string{"store": storeConf}, Bootstrap: []string{b.TCPAddr()}, DHT: "client"})
	a.WaitPlugin("store", 30*time.Second, testnet.Running)
	a.WaitPeers(1, 30*time.Second)
	c := storeNode(t, "dht-c", storeConf, b.TCPAddr())
	c.WaitPeers(1, 30*time.Second)

	path := filepath.Join(t.TempDir(), "film.bin")
	data := randomFile(t, path, 1<<20+3)
	root := storeAdd(t, c, path, "-r", "1")
	waitAnnounced(t, c, root)
	if p := a.Status().Peers; p != 1 {
		t.Fatalf("a has %d peers before the get, want only b: the test would not show a DHT lookup", p)
	}
	out := filepath.Join(t.TempDir(), "got")
	vecinoCLI(t, a, true, "store", "get", "-o", out, root)
	if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
		t.Errorf("a got %d bytes (sha %s), want %d (sha %s)", len(got), sum(got), len(data), sum(data))
	}
	if st := storeStatus(t, a); st["dht_holders_found"] < 1 {
		t.Errorf("a fetched without finding a holder on the DHT: %v", st)
	}
	if out := vecinoCLI(t, a, true, "store", "providers", root); !strings.Contains(out, c.Status().Node.ID) {
		t.Errorf("store providers on a does not list c (%s):\n%s", c.Status().Node.ID, out)
	}
	// With the DHT off, a store node says plainly that nobody it can reach
	// has the content.
	lone := testnet.Start(t, testnet.Options{Name: "dht-off", Plugins: map[string]string{"store": storeConf}, Bootstrap: []string{b.TCPAddr()}, DHT: "off"})
	lone.WaitPlugin("store", 30*time.Second, testnet.Running)
	lone.WaitPeers(1, 30*time.Second)
	if msg := vecinoCLI(t, lone, false, "store", "get", "-o", out+"2", root); !strings.Contains(msg, "no reachable peer has it") {
		t.Errorf("get of content no reachable peer has, without DHT, said:\n%s", msg)
	}
	if msg := vecinoCLI(t, lone, false, "store", "providers", root); !strings.Contains(msg, "runs no DHT") {
		t.Errorf("providers without a DHT said:\n%s", msg)
	}
}

// kuboLanDHT has kubo run its DHTs, WAN and LAN, as a desktop IPFS node
// does, with no bootstrap peers and no delegated routers; loopback
// addresses are kept on the LAN DHT, the one place they are usable here.
var kuboLanDHT = []string{"Routing.Type", `"dht"`, "Routing.LoopbackAddressesOnLanDHT", "true"}

// TestKuboAndVecinoFindEachOtherOnLanDHT: an IPFS node and Vecino nodes
// share the LAN DHT (/ipfs/lan/kad/1.0.0), as kubo nodes on one network
// do. kubo, told of Vecino node a alone, finds the holder of what Vecino
// node c stores through the DHT, and fetches it; c finds kubo as the
// holder of what kubo stores, and fetches it.
func TestKuboAndVecinoFindEachOtherOnLanDHT(t *testing.T) {
	a := storeNode(t, "lan-a", storeConf)
	c := storeNode(t, "lan-c", storeConf, a.TCPAddr())
	c.WaitPeers(1, 30*time.Second)
	k := startKuboWith(t, kuboLanDHT...)
	k.run("swarm", "connect", a.TCPAddr())

	path := filepath.Join(t.TempDir(), "vecino.bin")
	data := randomFile(t, path, 1<<20+7)
	root := storeAdd(t, c, path, "-r", "1")
	waitAnnounced(t, c, root)
	cID := c.Status().Node.ID
	// a's LAN DHT holds c and kubo; its public one none, as loopback
	// peers are not public. The metrics say the same.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		d := a.Status().Node.DHTPeers
		if d["lan"] >= 2 && d["wan"] == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("a's DHT routing tables: %v, want lan >= 2 (c, kubo) and wan 0", d)
			break
		}
	}
	if _, m, _ := a.Do("GET", "/metrics", nil, false); !strings.Contains(string(m), `vecino_dht_routing_table_peers{dht="wan"} 0`) {
		t.Errorf("metrics lack the DHT routing table sizes:\n%s", m)
	}
	if out := vecinoCLI(t, a, true, "status"); !strings.Contains(out, "on the LAN DHT, 0 on the public IPFS DHT") {
		t.Errorf("vecino status does not show the DHTs:\n%s", out)
	}
	if out := k.run("routing", "findprovs", "--num-providers=1", root); !strings.Contains(out, cID) {
		t.Errorf("kubo's findprovs %s does not list c (%s):\n%s", root, cID, out)
	}
	got := k.run("cat", "--timeout=60s", root)
	if got != strings.TrimSpace(string(data)) {
		t.Errorf("kubo got %d bytes (sha %s) of c's file, want %d (sha %s)", len(got), sum([]byte(got)), len(data), sum(data))
	}

	// The other way: kubo adds and announces; c looks up the holders and
	// fetches from kubo.
	kpath := filepath.Join(t.TempDir(), "kubo.bin")
	kdata := randomFile(t, kpath, 1<<20+11)
	kroot := k.run("add", "-Q", "--cid-version=1", kpath)
	k.run("routing", "provide", kroot)
	if out := vecinoCLI(t, c, true, "store", "providers", kroot); !strings.Contains(out, k.ID) {
		t.Errorf("store providers on c does not list kubo (%s):\n%s", k.ID, out)
	}
	out := filepath.Join(t.TempDir(), "from-kubo")
	vecinoCLI(t, c, true, "store", "get", "-o", out, kroot)
	if got, _ := os.ReadFile(out); !bytes.Equal(got, kdata) {
		t.Errorf("c got %d bytes (sha %s) of kubo's file, want %d (sha %s)", len(got), sum(got), len(kdata), sum(kdata))
	}
}

// TestDHTRecordsSurviveARestart: a Vecino node serving the LAN DHT keeps
// the provider records neighbours put on it across a restart, so an IPFS
// node that asks it afterwards still learns who holds the content. kubo
// k1 announces a file through node a alone; a restarts and k1 goes away;
// a new kubo, told of a alone, finds k1 as the holder.
func TestDHTRecordsSurviveARestart(t *testing.T) {
	a := storeNode(t, "records-a", storeConf)
	k1 := startKuboWith(t, kuboLanDHT...)
	k1.run("swarm", "connect", a.TCPAddr())
	path := filepath.Join(t.TempDir(), "kubo.bin")
	randomFile(t, path, 64<<10+5)
	root := k1.run("add", "-Q", "--cid-version=1", path)
	// kubo adds a to its routing table a moment after connecting; until
	// then it has nowhere to put the record.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		out, err := k1.try("routing", "provide", root)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kubo could not announce %s through a: %s", root, out)
		}
	}
	if out := vecinoCLI(t, a, true, "store", "providers", root); !strings.Contains(out, k1.ID) {
		t.Fatalf("before the restart, a does not hold kubo's record for %s:\n%s", root, out)
	}
	k1.cmd.Process.Kill()
	a.Stop()
	a.Restart()
	a.WaitPlugin("store", 30*time.Second, testnet.Running)

	k2 := startKuboWith(t, kuboLanDHT...)
	k2.run("swarm", "connect", a.TCPAddr())
	var out string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		out, _ = k2.try("routing", "findprovs", "--num-providers=1", root)
		if strings.Contains(out, k1.ID) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a's restart, kubo's findprovs %s through a does not list the first kubo (%s):\n%s\n%s", root, k1.ID, out, a.Log())
		}
	}
}

// waitAnnounced waits until n has announced a root (root) on the DHT.
func waitAnnounced(t testing.TB, n *testnet.Node, root string) {
	t.Helper()
	waitCounter(t, n, "dht_provided", 60*time.Second, fmt.Sprintf("%s never announced %s on the DHT", n.Status().Node.ID, root))
}

// waitCounter waits until n's store counts at least one of key, and
// returns its figures then; after within, it fails the test with failure
// and the figures.
func waitCounter(t testing.TB, n *testnet.Node, key string, within time.Duration, failure string) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st := storeStatus(t, n)
		if st[key] >= 1 {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", failure, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// findInPacks says which of n's pack files holds want, and where.
func findInPacks(t *testing.T, n *testnet.Node, want []byte) (string, int64) {
	t.Helper()
	packs, _ := filepath.Glob(filepath.Join(n.State, "plugins", "store", "packs", "*.pack"))
	for _, p := range packs {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(raw, want); i >= 0 {
			return p, int64(i)
		}
	}
	return "", 0
}

// flipInPack flips a byte in the middle of the block with data leaf in
// n's packs, as rot would.
func flipInPack(t *testing.T, n *testnet.Node, leaf []byte) {
	t.Helper()
	pack, at := findInPacks(t, n, leaf)
	if pack == "" {
		t.Fatal("the leaf is not in the node's packs")
	}
	f, err := os.OpenFile(pack, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte{leaf[len(leaf)/2] ^ 0xff}, at+int64(len(leaf)/2)); err != nil {
		t.Fatal(err)
	}
}

// TestStoreRepairsCorruptBlock: a block damaged on disk is caught on
// read, kept aside, and fetched again from a neighbour; the reader gets
// the right bytes. One nobody reads is caught by vecino store verify.
func TestStoreRepairsCorruptBlock(t *testing.T) {
	a := storeNode(t, "corrupt-a", storeConf)
	b := storeNode(t, "corrupt-b", storeConf, a.TCPAddr())
	a.WaitPeers(1, 30*time.Second)
	path := filepath.Join(t.TempDir(), "doc.bin")
	data := randomFile(t, path, 2<<20)
	c := storeAdd(t, a, path, "-r", "2")
	waitHolders(t, []*testnet.Node{a, b}, c, 2, 30*time.Second)

	// Flip a byte in the middle of the first 256 KiB leaf, in a's pack.
	leaf := data[:256<<10]
	flipInPack(t, a, leaf)

	_, got, err := a.Do("GET", "/api/v1/plugins/store/cat/"+c, nil, false)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("cat after corruption: %d bytes, sha %s, err %v; want sha %s", len(got), sum(got), err, sum(data))
	}
	st := storeStatus(t, a)
	if st["corrupt_blocks"] != 1 {
		t.Errorf("corrupt_blocks = %v, want 1", st["corrupt_blocks"])
	}
	if p, _ := findInPacks(t, a, leaf); p == "" {
		t.Error("no good copy of the leaf was stored again")
	}
	leafCID, _ := gocid.NewPrefixV1(gocid.Raw, mh.SHA2_256).Sum(leaf)
	bad, err := os.ReadFile(filepath.Join(a.State, "plugins", "store", "corrupt", leafCID.String()))
	if err != nil || len(bad) != len(leaf) || bytes.Equal(bad, leaf) {
		t.Errorf("the bad copy was not kept aside (err %v, %d bytes)", err, len(bad))
	}

	// Rot in a block nobody reads is found by verify, and repaired too.
	leaf = data[256<<10 : 512<<10]
	flipInPack(t, a, leaf)
	out := vecinoCLI(t, a, true, "store", "verify")
	if !strings.Contains(out, "verified 9 blocks") || !strings.Contains(out, ": 1 corrupt") {
		t.Errorf("vecino store verify said: %s", out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for p, _ := findInPacks(t, a, leaf); p == ""; p, _ = findInPacks(t, a, leaf) {
		if time.Now().After(deadline) {
			t.Fatalf("the block verify found corrupt was not fetched again: %v", storeStatus(t, a))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st := storeStatus(t, a); st["corrupt_blocks"] != 2 || st["verify_runs"] != 1 {
		t.Errorf("after verify: corrupt_blocks %v (want 2), verify_runs %v (want 1)", st["corrupt_blocks"], st["verify_runs"])
	}
	if out := vecinoCLI(t, a, true, "store", "verify"); !strings.Contains(out, ": 0 corrupt") {
		t.Errorf("a second verify said: %s", out)
	}

	// A bad CID gets a clear error, and the plugin keeps serving.
	code, body, _ := a.Do("GET", "/api/v1/plugins/store/cat/not-a-cid", nil, false)
	if code != 400 || !strings.Contains(string(body), `CID \"not-a-cid\"`) {
		t.Errorf("bad CID: %d %s", code, body)
	}
	if a.Status().Plugin("store").Restarts != 0 {
		t.Error("the store plugin restarted")
	}
}

// TestStoreSurvivesHostilePeers: a peer sends the store garbage, a
// wantlist far over the limit, blocks nobody asked for and a replication
// request for a CID that does not parse. Each is refused and counted; the
// plugin keeps serving.
func TestStoreSurvivesHostilePeers(t *testing.T) {
	n := storeNode(t, "hostile", storeConf)
	path := filepath.Join(t.TempDir(), "keep.bin")
	data := randomFile(t, path, 600<<10)
	c := storeAdd(t, n, path)

	h := natted(t)
	info, err := peer.AddrInfoFromString(n.TCPAddr())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Connect(ctx, *info); err != nil {
		t.Fatal(err)
	}
	send := func(proto string, payload []byte) {
		t.Helper()
		s, err := h.NewStream(ctx, info.ID, protocol.ID(proto))
		if err != nil {
			t.Fatal(err)
		}
		s.Write(payload)
		s.CloseWrite()
		io.Copy(io.Discard, s)
		s.Close()
	}
	// Not a bitswap message: a length prefix promising more than 4 MiB.
	send("/ipfs/bitswap/1.2.0", []byte{0xff, 0xff, 0xff, 0x7f, 'x'})
	// A wantlist of 10,000 random CIDs, and a block nobody wants.
	m := bsmsg.New(true)
	for range 10000 {
		h, _ := mh.Sum([]byte(fmt.Sprint(mrand.Int())), mh.SHA2_256, -1)
		m.AddEntry(gocid.NewCidV1(gocid.Raw, h), 1, bitswappb.Message_Wantlist_Block, false)
	}
	blk := blocks.NewBlock([]byte("nobody asked for this"))
	m.AddBlock(blk)
	var buf bytes.Buffer
	m.ToNetV1(&buf)
	send("/ipfs/bitswap/1.2.0", buf.Bytes())
	// A replication request for a CID that does not parse.
	s, err := h.NewStream(ctx, info.ID, "/vecino/store/replicate/1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	s.Write([]byte(`{"cid":"bafy-not-a-cid","replication":3,"size":1}` + "\n"))
	s.CloseWrite()
	answer, _ := io.ReadAll(s)
	if !strings.Contains(string(answer), "bad replication request") {
		t.Errorf("replication request with a bad CID answered %q", answer)
	}

	deadline := time.Now().Add(10 * time.Second)
	for {
		st := storeStatus(t, n)
		if st["bad_messages"] >= 3 && st["unwanted_blocks"] >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bad_messages %v (want >= 3), unwanted_blocks %v (want >= 1)", st["bad_messages"], st["unwanted_blocks"])
		}
		time.Sleep(100 * time.Millisecond)
	}
	if p := n.Status().Plugin("store"); p.Restarts != 0 || p.State != "running" {
		t.Errorf("store plugin %s after %d restarts", p.State, p.Restarts)
	}
	if _, got, err := n.Do("GET", "/api/v1/plugins/store/cat/"+c, nil, false); err != nil || !bytes.Equal(got, data) {
		t.Errorf("cat after the attacks: %d bytes, %v", len(got), err)
	}
	if _, err := os.Stat(filepath.Join(n.State, "plugins", "store", "packs")); err != nil {
		t.Error(err)
	}
}

// TestStoreFullDisk: the folder of packs is a 6 MiB tmpfs. An add that does
// not fit fails with a clear error (507, "no space left on device") and is
// counted; what was stored before is still there and readable, and after
// gc the node takes a file that fits.
func TestStoreFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	n := storeNode(t, "full", storeConf)
	n.Stop()
	mountTmpfs(t, filepath.Join(n.State, "plugins", "store", "packs"), "6m")
	n.Restart()
	n.WaitPlugin("store", 30*time.Second, testnet.Running)

	dir := t.TempDir()
	first := randomFile(t, filepath.Join(dir, "first"), 2<<20)
	c := storeAdd(t, n, filepath.Join(dir, "first"))
	randomFile(t, filepath.Join(dir, "too-big"), 8<<20)
	out := vecinoCLI(t, n, false, "store", "add", filepath.Join(dir, "too-big"))
	if !strings.Contains(out, "507") || !strings.Contains(out, "no space left on device") {
		t.Errorf("add onto a full disk said:\n%s", out)
	}
	if st := storeStatus(t, n); st["add_errors"] != 1 {
		t.Errorf("add_errors = %v, want 1", st["add_errors"])
	}
	if _, got, err := n.Do("GET", "/api/v1/plugins/store/cat/"+c, nil, false); err != nil || !bytes.Equal(got, first) {
		t.Errorf("the file stored before the disk filled: %d bytes, %v", len(got), err)
	}
	vecinoCLI(t, n, true, "store", "gc")
	randomFile(t, filepath.Join(dir, "fits"), 1<<20)
	storeAdd(t, n, filepath.Join(dir, "fits"))
	if p := n.Status().Plugin("store"); p.Restarts != 0 {
		t.Errorf("the plugin restarted %d times", p.Restarts)
	}
}

// TestStoreCutUploadIsNotStored: a client that promises 4 MiB and hangs up
// after 1 MiB leaves no pin behind: a cut body is an error, not a short
// file.
func TestStoreCutUploadIsNotStored(t *testing.T) {
	n := storeNode(t, "cut", storeConf)
	addr := strings.TrimPrefix(n.API, "http://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "POST /api/v1/plugins/store/add?name=cut HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n", addr, n.Token, 4<<20)
	chunk := make([]byte, 1<<20)
	rand.Read(chunk)
	c.Write(chunk)
	time.Sleep(500 * time.Millisecond)
	c.Close()

	deadline := time.Now().Add(10 * time.Second)
	for storeStatus(t, n)["add_errors"] != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("add_errors = %v after the cut upload, want 1", storeStatus(t, n)["add_errors"])
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out := vecinoCLI(t, n, true, "store", "ls"); strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("a pin was left by the cut upload:\n%s", out)
	}
}
