package integration

import (
	"fmt"
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

// TestChangesNeedTheToken checks that state-changing requests are refused
// without the API token and accepted with it.
func TestChangesNeedTheToken(t *testing.T) {
	n := testnet.Start(t, testnet.Options{Plugins: map[string]string{"chat": ""}})
	n.WaitPlugin("chat", 20*time.Second, testnet.Running)
	for _, path := range []string{"/api/v1/restart/chat", "/api/v1/plugins/chat/rooms/lobby/../../x"} {
		code, body, err := n.Do("POST", path, []byte("x"), false)
		if err != nil || code != http.StatusUnauthorized {
			t.Errorf("POST %s without token: %d %v %s", path, code, err, body)
		}
	}
	// A path the chat plugin declared public reaches it without the token;
	// the plugin then refuses an unsigned message itself.
	code, body, err := n.Do("POST", "/api/v1/plugins/chat/rooms/lobby/messages", []byte(`{"body":"x"}`), false)
	if err != nil || code != http.StatusBadRequest || !strings.Contains(string(body), "unsigned") {
		t.Errorf("unsigned chat message without token: %d %v %s", code, err, body)
	}
	code, body, err = n.Do("POST", "/api/v1/restart/chat", nil, true)
	if err != nil || code != http.StatusAccepted {
		t.Fatalf("restart with token: %d %v %s", code, err, body)
	}
	n.WaitPlugin("chat", 20*time.Second, func(p testnet.PluginStatus) bool { return p.State == "running" && p.Restarts == 1 })
}

// TestProfilesNeedTheSecret reads the router's heap profile and a
// plugin's as an operator would, with go tool pprof: only with the secret,
// and the plugin's from the plugin's own process.
func TestProfilesNeedTheSecret(t *testing.T) {
	n := testnet.Start(t, testnet.Options{Plugins: map[string]string{"chat": ""}})
	n.WaitPlugin("chat", 20*time.Second, testnet.Running)
	for _, path := range []string{"/debug/pprof/heap", "/api/v1/plugins/chat/debug/pprof/heap"} {
		code, body, err := n.Do("GET", path, nil, false)
		if err != nil || code != http.StatusUnauthorized || !strings.Contains(string(body), "API password") {
			t.Errorf("GET %s without the secret: %d %v %s", path, code, err, body)
		}
		code, body, err = n.Do("GET", path, nil, true)
		if err != nil || code != http.StatusOK {
			t.Fatalf("GET %s with the secret: %d %v %.200s", path, code, err, body)
		}
		file := filepath.Join(t.TempDir(), "heap.pprof")
		if err := os.WriteFile(file, body, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("go", "tool", "pprof", "-top", file).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Type: inuse_space") {
			t.Errorf("go tool pprof -top on %s: %v\n%s", path, err, out)
		}
	}
	// The chat plugin's goroutines are in its profile, not the router's.
	for path, want := range map[string]bool{"/debug/pprof/goroutine?debug=1": false, "/api/v1/plugins/chat/debug/pprof/goroutine?debug=1": true} {
		code, body, err := n.Do("GET", path, nil, true)
		if err != nil || code != http.StatusOK {
			t.Fatalf("GET %s: %d %v", path, code, err)
		}
		if got := strings.Contains(string(body), "vecino/plugins/chat."); got != want {
			t.Errorf("GET %s: chat plugin's functions in it: %v, want %v", path, got, want)
		}
	}
}

// TestMetricsArePrometheusText reads /metrics as a scraper would.
func TestMetricsArePrometheusText(t *testing.T) {
	n := testnet.Start(t, testnet.Options{Plugins: map[string]string{"chat": ""}})
	n.WaitPlugin("chat", 20*time.Second, testnet.Running)
	code, body, err := n.Do("GET", "/metrics", nil, false)
	if err != nil || code != http.StatusOK {
		t.Fatalf("metrics: %d %v", code, err)
	}
	for _, want := range []string{
		"# TYPE vecino_plugin_up gauge",
		`vecino_plugin_up{plugin="chat"} 1`,
		`vecino_plugin_restarts_total{plugin="chat"} 0`,
		"vecino_peers 0",
		"go_goroutines ",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestBadConfigFallsBackToLastGood breaks the file between two starts: the
// node comes up on the last good copy, with the same identity, and says why.
func TestBadConfigFallsBackToLastGood(t *testing.T) {
	n := testnet.Start(t, testnet.Options{Plugins: map[string]string{"chat": ""}})
	n.WaitPlugin("chat", 20*time.Second, testnet.Running)
	id := n.ID
	n.Stop()

	good, err := os.ReadFile(n.Config)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(good), "[api]\n", "[api]\nlisten_port = 80\n", 1)
	if err := os.WriteFile(n.Config, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(n.Bin, "router"), "-check-config", n.Config).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "key api.listen_port: unknown key") {
		t.Errorf("-check-config: err %v, output %s", err, out)
	}

	n.Restart()
	st := n.Status()
	if !st.Config.UsingLastGood || !strings.Contains(st.Config.Error, "vecino.toml:") || !strings.Contains(st.Config.Error, "api.listen_port") {
		t.Errorf("config state = %+v", st.Config)
	}
	if st.Node.ID != id {
		t.Errorf("identity changed across restart: %s then %s", id, st.Node.ID)
	}
	n.WaitPlugin("chat", 20*time.Second, testnet.Running)
}

// TestBadPluginKeyIsCaughtWithTheFile: a key misspelt in a plugin's table
// is found by -check-config with its line, and at start it sends the node
// to the last good file, as any bad key does, instead of leaving the
// plugin failed.
func TestBadPluginKeyIsCaughtWithTheFile(t *testing.T) {
	n := testnet.Start(t, testnet.Options{Plugins: map[string]string{"chat": ""}})
	n.WaitPlugin("chat", 20*time.Second, testnet.Running)
	n.Stop()
	good, err := os.ReadFile(n.Config)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(good), "[plugins.chat]\n", "[plugins.chat]\nhistroy = 5\n", 1)
	if bad == string(good) {
		t.Fatalf("no [plugins.chat] table in\n%s", good)
	}
	line := strings.Count(bad[:strings.Index(bad, "histroy")], "\n") + 1
	if err := os.WriteFile(n.Config, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("vecino.toml:%d: key plugins.chat.histroy: unknown key", line)
	out, err := exec.Command(filepath.Join(n.Bin, "router"), "-check-config", n.Config).CombinedOutput()
	if err == nil || !strings.Contains(string(out), want) {
		t.Errorf("-check-config: err %v, output %s; want %q", err, out, want)
	}
	n.Restart()
	n.WaitPlugin("chat", 20*time.Second, testnet.Running)
	if st := n.Status(); !st.Config.UsingLastGood || !strings.Contains(st.Config.Error, "plugins.chat.histroy") {
		t.Errorf("config state = %+v", st.Config)
	}
}

// TestBrokenConfigWithoutLastGoodRefusesToStart: nothing to fall back on.
func TestBrokenConfigWithoutLastGoodRefusesToStart(t *testing.T) {
	bin := testnet.Binaries(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "vecino.toml")
	os.WriteFile(path, []byte("[node]\nstate_dir = \"s\"\n[network]\ndht = \"maybe\"\n"), 0o644)
	out, err := exec.Command(filepath.Join(bin, "router"), "-config", path).CombinedOutput()
	if err == nil {
		t.Fatal("router started on a broken file")
	}
	for _, want := range []string{path + ":4: key network.dht", "no last good configuration"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
}

// TestConfigEditedThroughTheAPI is how a user without a shell (the gokrazy
// image) changes settings: a broken file is refused with its line and key and
// nothing is saved, be the key the router's or a plugin's; a good one is
// saved, a plugin's new table applies at once (the plugin restarts with
// it), and the router's at the next start.
func TestConfigEditedThroughTheAPI(t *testing.T) {
	n := testnet.Start(t, testnet.Options{Name: "before", Plugins: map[string]string{"chat": ""}})
	n.WaitPlugin("chat", 20*time.Second, testnet.Running)
	if code, _, _ := n.Do("GET", "/api/v1/config", nil, false); code != http.StatusUnauthorized {
		t.Errorf("GET config without token: %d, want 401 (the file may hold the password)", code)
	}
	code, orig, err := n.Do("GET", "/api/v1/config", nil, true)
	if err != nil || code != http.StatusOK || !strings.Contains(string(orig), `name = "before"`) {
		t.Fatalf("GET config: %d %v\n%s", code, err, orig)
	}
	bad := strings.Replace(string(orig), `name = "before"`, "name = \"after\"\nnmae = 1", 1)
	code, body, _ := n.Do("PUT", "/api/v1/config", []byte(bad), true)
	if code != http.StatusBadRequest || !strings.Contains(string(body), "vecino.toml:3: key node.nmae") {
		t.Errorf("PUT broken config: %d %s, want 400 naming line 3 and key nmae", code, body)
	}
	if now, _ := os.ReadFile(n.Config); string(now) != string(orig) {
		t.Fatalf("a refused file changed the saved one:\n%s", now)
	}
	badPlugin := strings.Replace(string(orig), "[plugins.chat]\n", "[plugins.chat]\nhistory = -1\n", 1)
	if code, body, _ := n.Do("PUT", "/api/v1/config", []byte(badPlugin), true); code != http.StatusBadRequest || !strings.Contains(string(body), "key plugins.chat.history: must be") {
		t.Errorf("PUT a file with a bad chat key: %d %s, want 400 naming it", code, body)
	}
	good := strings.Replace(string(orig), `name = "before"`, `name = "after"`, 1)
	good = strings.Replace(good, "[plugins.chat]\n", "[plugins.chat]\nhistory = 3\n", 1)
	code, body, _ = n.Do("PUT", "/api/v1/config", []byte(good), true)
	if code != http.StatusOK || !strings.Contains(string(body), `"chat"`) {
		t.Fatalf("PUT good config: %d %s, want chat among the plugins applied now", code, body)
	}
	wantHistoryOf3(t, n)
	if name := n.Status().Node.Name; name != "before" {
		t.Errorf("the node's name changed to %q before a restart", name)
	}
	n.Stop()
	n.Restart()
	if name := n.Status().Node.Name; name != "after" {
		t.Errorf("after restart the node is named %q, want the saved %q", name, "after")
	}
}

// TestReloadOnSIGHUP: the file edited by hand, the router told with
// SIGHUP (systemctl reload, kill -HUP) applies the plugins' tables, each
// plugin restarting with its own, and names what waits for a restart. A
// bad edit changes nothing and says, on the status page, what and where.
func TestReloadOnSIGHUP(t *testing.T) {
	wd := startWebDriver(t)
	n := testnet.Start(t, testnet.Options{Name: "before", Plugins: map[string]string{"chat": ""}})
	n.WaitPlugin("chat", 20*time.Second, testnet.Running)
	orig, err := os.ReadFile(n.Config)
	if err != nil {
		t.Fatal(err)
	}
	hup := func(text string) { t.Helper(); reloadWith(t, n, text) }

	// A bad key in the chat table: refused, nothing restarts.
	hup(strings.Replace(string(orig), "[plugins.chat]\n", "[plugins.chat]\nhistroy = 3\n", 1))
	st := n.Status()
	if r := st.Config.Reload; !strings.Contains(r.Error, "vecino.toml:") || !strings.Contains(r.Error, "plugins.chat.histroy") {
		t.Errorf("reload of a bad file: %+v", r)
	}
	if p := st.Plugin("chat"); p.Restarts != 0 || p.State != "running" {
		t.Errorf("a refused reload touched the chat plugin: %+v", p)
	}
	wd.open(n.API + "/")
	wd.waitText("#config-error", "plugins.chat.histroy", 10*time.Second)
	wd.waitText("#config-error", "the node runs on as it was", time.Second)

	// Good: history = 3 for chat (applies now), a new name (at the next
	// start).
	good := strings.Replace(string(orig), `name = "before"`, `name = "after"`, 1)
	good = strings.Replace(good, "[plugins.chat]\n", "[plugins.chat]\nhistory = 3\n", 1)
	hup(good)
	r := n.Status().Config.Reload
	if r.Error != "" || fmt.Sprint(r.Applied) != "[chat]" || fmt.Sprint(r.AtNextStart) != "[[node]]" {
		t.Errorf("reload of a good file: %+v", r)
	}
	wantHistoryOf3(t, n)
	wd.waitText("#config-error", "apply when the router starts again: [node]", 10*time.Second)
	if name := n.Status().Node.Name; name != "before" {
		t.Errorf("the node's name changed to %q before a restart", name)
	}
	// The reloaded file is the last good one now: broken afterwards, the
	// router starts on it.
	n.Stop()
	if err := os.WriteFile(n.Config, []byte(strings.Replace(good, "[api]\n", "[api]\nlisten_port = 80\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	n.Restart()
	if st := n.Status(); st.Node.Name != "after" || !st.Config.UsingLastGood {
		t.Errorf("restarted on a broken file: name %q, config %+v; want the reloaded copy", st.Node.Name, st.Config)
	}
}

// reloadWith writes text as n's configuration file, sends the router
// SIGHUP and waits until the status shows the reload.
func reloadWith(t *testing.T, n *testnet.Node, text string) {
	t.Helper()
	if err := os.WriteFile(n.Config, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	before := 0
	if r := n.Status().Config.Reload; r != nil {
		before = r.Count
	}
	if err := syscall.Kill(n.PID(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if r := n.Status().Config.Reload; r != nil && r.Count > before {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no reload in the status 10 s after SIGHUP")
		}
	}
}

// TestAllowPeersWhileRunning: a closed neighbourhood network admits a new
// member without a restart. Node A lets only B connect (allow_peers) and
// has both B and C as bootstrap peers: C is refused. With C added to the
// file and a SIGHUP, A connects to C; with B taken out through PUT
// /api/v1/config, B is disconnected at once. Neither change is left for
// the next start.
func TestAllowPeersWhileRunning(t *testing.T) {
	// No DHT: through A's, B and C would find each other.
	b := testnet.Start(t, testnet.Options{Name: "b", DHT: "off"})
	c := testnet.Start(t, testnet.Options{Name: "c", DHT: "off"})
	a := testnet.Start(t, testnet.Options{Name: "a", DHT: "off", Bootstrap: []string{b.TCPAddr(), c.TCPAddr()},
		Network: fmt.Sprintf("allow_peers = [%q]", b.ID)})
	b.WaitPeers(1, 20*time.Second)
	orig, err := os.ReadFile(a.Config)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(a.Log(), "bootstrap peer unreachable"); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("A never tried C\n%s", a.Log())
		}
	}
	if c.Status().Peers != 0 || a.Status().Peers != 1 {
		t.Fatalf("with allow_peers = [B]: A has %d peers, C %d; want 1 and 0", a.Status().Peers, c.Status().Peers)
	}

	withC := strings.Replace(string(orig), fmt.Sprintf("allow_peers = [%q]", b.ID), fmt.Sprintf("allow_peers = [%q, %q]", b.ID, c.ID), 1)
	reloadWith(t, a, withC)
	if r := a.Status().Config.Reload; r.Error != "" || fmt.Sprint(r.Applied) != "[[network] allow_peers]" || len(r.AtNextStart) != 0 {
		t.Errorf("reload with C allowed: %+v", r)
	}
	c.WaitPeers(1, 30*time.Second) // A's next bootstrap round, every 15 s

	onlyC := strings.Replace(withC, fmt.Sprintf("allow_peers = [%q, %q]", b.ID, c.ID), fmt.Sprintf("allow_peers = [%q]", c.ID), 1)
	code, body, err := a.Do("PUT", "/api/v1/config", []byte(onlyC), true)
	if err != nil || code != http.StatusOK || !strings.Contains(string(body), "[network] allow_peers") {
		t.Fatalf("PUT config without B: %d %v %s", code, err, body)
	}
	for deadline := time.Now().Add(5 * time.Second); b.Status().Peers != 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("B still connected 5 s after A's allow_peers left it out")
		}
	}
	if c.Status().Peers != 1 {
		t.Errorf("C has %d peers after B was left out, want 1 (A)", c.Status().Peers)
	}
}

// wantHistoryOf3 checks that n's chat plugin restarted with history = 3:
// of five messages, the last three are kept.
func wantHistoryOf3(t *testing.T, n *testnet.Node) {
	t.Helper()
	n.WaitPlugin("chat", 20*time.Second, func(p testnet.PluginStatus) bool { return p.State == "running" && p.Restarts >= 1 })
	alice := newChatter(t, n)
	for i := range 5 {
		alice.say("lobby", fmt.Sprintf("m%d", i))
	}
	if msgs, _ := readRoom(t, n, "lobby", 0, 0); fmt.Sprint(textsFrom(msgs, alice.addr())) != "[m2 m3 m4]" {
		t.Errorf("after the new history = 3 the lobby keeps %q", textsFrom(msgs, alice.addr()))
	}
}
