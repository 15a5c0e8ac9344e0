package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestShippedFilesAreValid(t *testing.T) {
	for name, data := range map[string][]byte{"local.toml": Local, "vecino.toml": Example} {
		cfg, err := Parse(name, "/base", data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := len(cfg.EnabledPlugins()); got != 3 {
			t.Errorf("%s: %d enabled plugins, want torrent, chat and store", name, got)
		}
	}
}

func TestLocalConfigTalksOnlyToLoopback(t *testing.T) {
	cfg, err := Parse("local.toml", "/base", Local)
	if err != nil {
		t.Fatal(err)
	}
	n := cfg.Network
	if n.PublicBootstrap || n.PortMapping || n.MDNS || len(n.Bootstrap) > 0 {
		t.Errorf("local config reaches beyond loopback: %+v", n)
	}
	for _, l := range n.Listen {
		if !strings.HasPrefix(l, "/ip4/127.0.0.1/") {
			t.Errorf("listen %q is not loopback", l)
		}
	}
	if !strings.HasPrefix(cfg.API.Listen, "127.0.0.1:") {
		t.Errorf("api listens on %q", cfg.API.Listen)
	}
}

func TestDefaultsFillMissingKeys(t *testing.T) {
	cfg, err := Parse("min.toml", "/base", []byte("[plugins.chat]\nrooms=['a']\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Network.DHT != "auto" || cfg.Network.Relay.CircuitDuration != 2*time.Minute {
		t.Errorf("defaults not filled: %+v", cfg.Network)
	}
	if cfg.Node.StateDir != "/base/vecino-state" {
		t.Errorf("state dir %q, want it resolved against the file's folder", cfg.Node.StateDir)
	}
	chat := cfg.Plugins["chat"]
	if !chat.Enabled || strings.TrimSpace(chat.Settings) != `rooms = ["a"]` {
		t.Errorf("chat plugin = %+v", chat)
	}
}

func TestPluginTableKeepsOwnKeysOnly(t *testing.T) {
	cfg, err := Parse("p.toml", "/base", []byte(`
[plugins.torrent]
enabled = false
path = "bin/torrent"
sha256 = "`+strings.Repeat("ab", 32)+`"
listen_port = 6881
[plugins.torrent.limits]
upload_kib = 100
`))
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Plugins["torrent"]
	if p.Enabled || p.Path != "/base/bin/torrent" {
		t.Errorf("plugin = %+v", p)
	}
	for _, k := range pluginKeys {
		if strings.Contains(p.Settings, k) {
			t.Errorf("settings hand the router's key %q to the plugin:\n%s", k, p.Settings)
		}
	}
	if !strings.Contains(p.Settings, "listen_port = 6881") || !strings.Contains(p.Settings, "upload_kib = 100") {
		t.Errorf("settings lost the plugin's keys:\n%s", p.Settings)
	}
}

func TestBadFilesNameLineAndKey(t *testing.T) {
	for _, tc := range []struct {
		name, toml string
		want       []string // all must appear in the error
	}{
		{"syntax", "[node]\nname = \"x\nstate_dir = 1\n", []string{"bad.toml:2", "node.name"}},
		{"unknown key", "[node]\nname = \"x\"\nstat_dir = \"/s\"\n", []string{"bad.toml:3", "key node.stat_dir", "unknown key", "did you mean node.state_dir"}},
		{"unknown table", "[netwrk]\nlisten = []\n", []string{"bad.toml:2", "key netwrk.listen", "unknown key"}},
		{"wrong type", "[network]\nlisten = \"/ip4/127.0.0.1/tcp/1\"\n", []string{"bad.toml:2", "network.listen", "incompatible types"}},
		{"wrong type bool", "[network]\nmdns = \"yes\"\n", []string{"bad.toml:2", "network.mdns"}},
		{"bad multiaddr", "[network]\nlisten = [\"/ip4/127.0.0.1/tcp/1\", \"/ip4/1.2.3/tcp/1\"]\n", []string{"bad.toml:2", "key network.listen", "entry 2"}},
		{"bad port", "[network]\nlisten = [\"/ip4/127.0.0.1/tcp/70000\"]\n", []string{"bad.toml:2", "network.listen", "entry 1"}},
		{"unsupported transport", "[network]\nlisten = [\"/ip4/127.0.0.1/udp/1\"]\n", []string{"bad.toml:2", "only tcp and udp/quic-v1"}},
		{"bootstrap without peer id", "[network]\nbootstrap = [\"/ip4/127.0.0.1/tcp/4001\"]\n", []string{"bad.toml:2", "network.bootstrap", "/p2p/PEER_ID"}},
		{"bad dht mode", "\n[network]\ndht = \"sometimes\"\n", []string{"bad.toml:3", "network.dht", "auto, server, client, off"}},
		{"psk with quic", "[network]\nlisten = [\"/ip4/127.0.0.1/udp/1/quic-v1\"]\nprivate_network_key_file = \"psk\"\n", []string{"bad.toml:3", "cannot use QUIC"}},
		{"bad allow peer", "[network]\nallow_peers = [\"nobody\"]\n", []string{"bad.toml:2", "network.allow_peers", "not a peer ID"}},
		{"conn limits", "[network]\nconn_low = 10\nconn_high = 5\n", []string{"bad.toml:3", "network.conn_high"}},
		{"relay limit", "[network.relay]\nmax_circuits = 0\n", []string{"bad.toml:2", "network.relay.max_circuits", "positive"}},
		{"bad duration", "[network.relay]\ncircuit_duration = \"forever\"\n", []string{"bad.toml:2", "network.relay.circuit_duration"}},
		{"api port", "[api]\nlisten = \"127.0.0.1:99999\"\n", []string{"bad.toml:2", "api.listen", "0 to 65535"}},
		{"api host", "[api]\nlisten = \"nowhere\"\n", []string{"bad.toml:2", "api.listen"}},
		{"log level", "[node]\nlog_level = \"loud\"\n", []string{"bad.toml:2", "node.log_level"}},
		{"plugin sha", "[plugins.chat]\nsha256 = \"abc\"\n", []string{"bad.toml:2", "plugins.chat.sha256", "64 hex digits"}},
		{"plugin enabled type", "[plugins.chat]\nenabled = \"yes\"\n", []string{"bad.toml:2", "plugins.chat.enabled"}},
		{"plugin name", "[plugins.Chat]\n", []string{"bad.toml:1", "plugins.Chat", "lower-case"}},
		{"plugin not a table", "plugins = 3\n", []string{"bad.toml:1", "plugins"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("bad.toml", "/base", []byte(tc.toml))
			if err == nil {
				t.Fatalf("no error for:\n%s", tc.toml)
			}
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("error %T is not a *config.Error: %v", err, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestEveryProblemIsReported(t *testing.T) {
	_, err := Parse("bad.toml", "/", []byte("[node]\nlog_level = \"x\"\n[network]\ndht = \"y\"\nfoo = 1\n"))
	var cerr *Error
	if !errors.As(err, &cerr) || len(cerr.Problems) != 3 {
		t.Fatalf("want 3 problems, got %v", err)
	}
}
