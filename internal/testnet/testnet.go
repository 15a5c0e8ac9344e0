// Package testnet runs real Vecino nodes for tests: it builds the router and
// plugin binaries once, writes a loopback-only configuration, starts the
// router as a child process, and talks to it over its HTTP API.
package testnet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// Binaries builds the router, the plugins and the test plugins once per
// test process, with CGO_ENABLED=0 as the image does, and returns their
// folder.
func Binaries(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		buildDir, err = os.MkdirTemp("", "vecino-bin-")
		if err != nil {
			buildErr = err
			return
		}
		cmd := exec.Command("go", "build", "-o", buildDir+"/", "./router", "./cmd/vecino", "./plugins/...", "./internal/testplugins/...")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildDir
}

// Main runs a package's tests, then removes what Binaries built (187 MB
// a run, which piled up in the temp folder). Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}

// Options shape one node.
type Options struct {
	Name string
	// Plugins maps a plugin name to the body of its table.
	Plugins map[string]string
	// Bootstrap lists multiaddrs (with /p2p/) to connect to.
	Bootstrap []string
	// Network is extra [network] lines.
	Network string
	// DHT is the [network] dht mode; "server" if empty.
	DHT string
	// Group runs the router as the leader of its own process group, with
	// its plugins in it, so that StopGroup can signal them all at once.
	Group bool
	// Netns runs the router inside that network namespace (see LAN); the
	// test reaches its API there.
	Netns string
	// Listen replaces the libp2p listen addresses, TCP and QUIC on
	// 127.0.0.1 (a LAN's machine listens on its address on the link).
	Listen []string
}

// Node is one running router.
type Node struct {
	t       testing.TB
	Dir     string
	Config  string
	State   string
	Bin     string
	API     string // base URL
	Token   string
	ID      string
	Addrs   []string
	LogPath string
	group   bool
	netns   string
	client  *http.Client
	cmd     *exec.Cmd
	done    chan struct{}
}

// Start writes a loopback-only configuration and starts a router on it.
func Start(t testing.TB, o Options) *Node {
	t.Helper()
	bin := Binaries(t)
	dir := t.TempDir()
	n := &Node{t: t, Dir: dir, Config: filepath.Join(dir, "vecino.toml"), State: filepath.Join(dir, "state"), Bin: bin, group: o.Group, netns: o.Netns, client: HTTPClient(o.Netns)}
	if err := os.WriteFile(n.Config, []byte(configText(o)), 0o644); err != nil {
		t.Fatal(err)
	}
	n.Restart()
	t.Cleanup(n.Stop)
	return n
}

// configText is a configuration that reaches nothing but loopback.
func configText(o Options) string {
	name := o.Name
	if name == "" {
		name = "test-node"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[node]\nname = %q\nstate_dir = \"state\"\nlog_level = \"debug\"\n\n", name)
	boot, _ := json.Marshal(o.Bootstrap)
	if o.Bootstrap == nil {
		boot = []byte("[]")
	}
	dht := o.DHT
	if dht == "" {
		dht = "server"
	}
	listen, _ := json.Marshal(o.Listen)
	if o.Listen == nil {
		listen = []byte(`["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"]`)
	}
	fmt.Fprintf(&b, `[network]
listen = %s
bootstrap = %s
public_bootstrap = false
dht = %q
reachability = "public"
port_mapping = false
mdns = false
hole_punching = false
%s
[api]
listen = "127.0.0.1:0"
`, listen, boot, dht, o.Network)
	for name, body := range o.Plugins {
		fmt.Fprintf(&b, "\n[plugins.%s]\n%s\n", name, body)
		for _, kv := range loopbackKeys[name] {
			if key, _, _ := strings.Cut(kv, " ="); !setsKey(body, key) {
				fmt.Fprintln(&b, kv)
			}
		}
	}
	return b.String()
}

// loopbackKeys keep on loopback the plugins that have ways out of their
// own (the torrent engine's DHT, peer exchange, UPnP and a fixed port),
// for every key a test's table leaves unset.
var loopbackKeys = map[string][]string{
	"torrent": {`listen_host = "127.0.0.1"`, "listen_port = 0", "dht = false", "pex = false", "port_mapping = false"},
}

// setsKey reports whether a TOML table body sets key.
func setsKey(body, key string) bool {
	for _, line := range strings.Split(body, "\n") {
		if k, _, ok := strings.Cut(line, "="); ok && strings.TrimSpace(k) == key {
			return true
		}
	}
	return false
}

// Restart starts the router again on the same configuration and state.
func (n *Node) Restart() {
	t := n.t
	t.Helper()
	os.Remove(filepath.Join(n.State, "api-addr"))
	n.LogPath = filepath.Join(n.Dir, fmt.Sprintf("router-%d.log", time.Now().UnixNano()))
	logf, err := os.Create(n.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	n.cmd = exec.Command(filepath.Join(n.Bin, "router"), "-config", n.Config, "-plugin-dir", n.Bin)
	if n.netns != "" { // ip execs the router: the PID stays the router's
		n.cmd = exec.Command("ip", append([]string{"netns", "exec", n.netns}, n.cmd.Args...)...)
	}
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: n.group}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.done = make(chan struct{})
	go func() {
		n.cmd.Wait()
		logf.Close()
		close(n.done)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		addr, err := os.ReadFile(filepath.Join(n.State, "api-addr"))
		if err == nil && len(addr) > 0 {
			n.API = "http://" + strings.TrimSpace(string(addr))
			break
		}
		select {
		case <-n.done:
			t.Fatalf("router exited at start-up:\n%s", n.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("router did not start its API in 30s:\n%s", n.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	tok, err := os.ReadFile(filepath.Join(n.State, "api-token"))
	if err != nil {
		t.Fatal(err)
	}
	n.Token = strings.TrimSpace(string(tok))
	st := n.Status()
	n.ID = st.Node.ID
	n.Addrs = st.Node.Addrs
}

// Stop sends SIGTERM and waits for the router to exit (killing it after
// 15 s). It is safe to call twice.
func (n *Node) Stop() { n.stop(false) }

// StopGroup sends SIGTERM to the router and its plugins at once, as
// systemd and timeout(1) do (the node must have been started with Group),
// and waits for the router to exit.
func (n *Node) StopGroup() { n.stop(true) }

func (n *Node) stop(group bool) {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	pid := n.cmd.Process.Pid
	if group {
		pid = -pid
	}
	select {
	case <-n.done:
		return
	default:
	}
	syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(15 * time.Second):
		n.t.Errorf("router did not stop within 15s of SIGTERM:\n%s", n.Log())
		n.cmd.Process.Kill()
		<-n.done
	}
}

// PowerCut kills the router and its plugins at once with SIGKILL, as a
// power cut stops them (the node must have been started with Group), and
// waits for the router to exit. Restart starts it again.
func (n *Node) PowerCut() {
	n.t.Helper()
	if !n.group {
		n.t.Fatal("PowerCut needs a node started with Group")
	}
	syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
	<-n.done
}

// PID is the router process's id.
func (n *Node) PID() int { return n.cmd.Process.Pid }

// Exited reports whether the router process has ended.
func (n *Node) Exited() bool {
	select {
	case <-n.done:
		return true
	default:
		return false
	}
}

// Log returns what the router has logged so far.
func (n *Node) Log() string {
	b, _ := os.ReadFile(n.LogPath)
	return string(b)
}

// TCPAddr is the node's loopback TCP multiaddr with /p2p/.
func (n *Node) TCPAddr() string {
	for _, a := range n.Addrs {
		if strings.Contains(a, "/tcp/") {
			return a
		}
	}
	n.t.Fatalf("node has no tcp address: %v", n.Addrs)
	return ""
}

// Status is the part of GET /api/v1/status that tests read.
type Status struct {
	Node struct {
		ID    string   `json:"id"`
		Name  string   `json:"name"`
		Addrs []string `json:"addrs"`
		// DHTPeers: routing table sizes, "wan" and "lan".
		DHTPeers map[string]int `json:"dht_peers"`
	} `json:"node"`
	Peers  int `json:"peers"`
	Config struct {
		File          string `json:"file"`
		UsingLastGood bool   `json:"using_last_good"`
		Error         string `json:"error"`
		// Reload is the last SIGHUP's outcome.
		Reload *struct {
			Count       int      `json:"count"`
			At          int64    `json:"at"`
			Error       string   `json:"error"`
			Applied     []string `json:"applied"`
			AtNextStart []string `json:"at_next_start"`
		} `json:"reload"`
	} `json:"config"`
	Plugins []PluginStatus `json:"plugins"`
}

// PluginStatus is one plugin's entry in Status.
type PluginStatus struct {
	Name      string         `json:"name"`
	State     string         `json:"state"`
	Restarts  int            `json:"restarts"`
	PID       int            `json:"pid"`
	UptimeS   int64          `json:"uptime_s"`
	LastError string         `json:"last_error"`
	Summary   string         `json:"summary"`
	Details   map[string]any `json:"details"`
}

// Status fetches the node's status, failing the test if it cannot.
func (n *Node) Status() Status {
	n.t.Helper()
	st, err := n.TryStatus()
	if err != nil {
		n.t.Fatalf("status: %v\n%s", err, n.Log())
	}
	return st
}

// TryStatus fetches the node's status.
func (n *Node) TryStatus() (Status, error) {
	var st Status
	code, body, err := n.Do("GET", "/api/v1/status", nil, false)
	if err != nil {
		return st, err
	}
	if code != http.StatusOK {
		return st, fmt.Errorf("status answered %d: %s", code, body)
	}
	return st, json.Unmarshal(body, &st)
}

// Plugin returns one plugin's status.
func (s Status) Plugin(name string) PluginStatus {
	for _, p := range s.Plugins {
		if p.Name == name {
			return p
		}
	}
	return PluginStatus{}
}

// WaitPlugin polls until cond holds for the plugin, for at most timeout.
func (n *Node) WaitPlugin(name string, timeout time.Duration, cond func(PluginStatus) bool) PluginStatus {
	n.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		p := n.Status().Plugin(name)
		if cond(p) {
			return p
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("plugin %s: condition not met within %s; last %+v\n%s", name, timeout, p, n.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Running is a WaitPlugin condition.
func Running(p PluginStatus) bool { return p.State == "running" }

// Do makes an API request; auth adds the node's token.
func (n *Node) Do(method, path string, body []byte, auth bool) (int, []byte, error) {
	req, err := http.NewRequest(method, n.API+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if auth {
		req.Header.Set("Authorization", "Bearer "+n.Token)
	}
	resp, err := n.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// WaitPeers polls until the node has at least n peers.
func (n *Node) WaitPeers(want int, timeout time.Duration) {
	n.t.Helper()
	deadline := time.Now().Add(timeout)
	for n.Status().Peers < want {
		if time.Now().After(deadline) {
			n.t.Fatalf("node has %d peers, want %d, after %s\n%s", n.Status().Peers, want, timeout, n.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
