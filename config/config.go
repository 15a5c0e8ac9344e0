// Package config reads Vecino's one TOML file: it fills in defaults, validates
// every key with errors that name the file, line and key, and hands each
// plugin its own table as TOML text for the plugin to validate.
package config

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Local is the embedded default configuration: loopback only, no public
// bootstrap, state in ./vecino-state. `make run` uses it.
//
//go:embed local.toml
var Local []byte

// Example is the fully commented configuration shipped on the appliance.
//
//go:embed vecino.toml
var Example []byte

// Config is the whole file after defaults and validation.
type Config struct {
	Node    Node    `toml:"node"`
	Network Network `toml:"network"`
	API     API     `toml:"api"`
	// Plugins by name, from the [plugins.NAME] tables.
	Plugins map[string]*Plugin `toml:"-"`

	// File is the name errors use; BaseDir resolves relative paths.
	File    string `toml:"-"`
	BaseDir string `toml:"-"`
}

// Node is the [node] table.
type Node struct {
	Name     string `toml:"name"`
	StateDir string `toml:"state_dir"`
	LogLevel string `toml:"log_level"`
}

// Network is the [network] table: everything about the one libp2p host.
type Network struct {
	Listen          []string `toml:"listen"`
	Bootstrap       []string `toml:"bootstrap"`
	PublicBootstrap bool     `toml:"public_bootstrap"`
	DHT             string   `toml:"dht"`
	// Reachability is "auto" (let AutoNAT decide), "public" or "private".
	// The relay service and DHT server mode run only when public.
	Reachability          string   `toml:"reachability"`
	RelayService          bool     `toml:"relay_service"`
	HolePunching          bool     `toml:"hole_punching"`
	PortMapping           bool     `toml:"port_mapping"`
	MDNS                  bool     `toml:"mdns"`
	PrivateNetworkKeyFile string   `toml:"private_network_key_file"`
	AllowPeers            []string `toml:"allow_peers"`
	ConnLow               int      `toml:"conn_low"`
	ConnHigh              int      `toml:"conn_high"`
	// MaxMemoryMiB caps what libp2p's resource manager lets connections
	// use; 0 scales it to the machine (an eighth of RAM, at least 128 MiB).
	MaxMemoryMiB int         `toml:"max_memory_mib"`
	Relay        RelayLimits `toml:"relay"`
}

// RelayLimits is [network.relay]: what the circuit relay v2 service grants.
type RelayLimits struct {
	MaxReservations      int           `toml:"max_reservations"`
	MaxReservationsPerIP int           `toml:"max_reservations_per_ip"`
	MaxCircuits          int           `toml:"max_circuits"`
	ReservationTTL       time.Duration `toml:"reservation_ttl"`
	CircuitDuration      time.Duration `toml:"circuit_duration"`
	CircuitDataKiB       int64         `toml:"circuit_data_kib"`
}

// API is the [api] table.
type API struct {
	Listen    string `toml:"listen"`
	Password  string `toml:"password"`
	TokenFile string `toml:"token_file"`
}

// Plugin is one [plugins.NAME] table.
type Plugin struct {
	Name    string
	Enabled bool
	// Path of the binary; empty means the plugin built into the router, or
	// else NAME next to the router's binary.
	Path string
	// SHA256, when set, is checked against the binary before every start.
	SHA256 string
	// Settings is the plugin's own part of the table, as TOML text.
	Settings string
}

// pluginKeys are the keys of a plugin table that the router reads itself.
var pluginKeys = []string{"enabled", "path", "sha256"}

// Defaults returns the values used for keys a file leaves out.
func Defaults() Config {
	host, _ := os.Hostname()
	if host == "" {
		host = "vecino"
	}
	return Config{
		Node: Node{Name: host, StateDir: "vecino-state", LogLevel: "info"},
		Network: Network{
			Listen:       []string{"/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"},
			DHT:          "auto",
			Reachability: "auto",
			RelayService: true,
			HolePunching: true,
			ConnLow:      64,
			ConnHigh:     192,
			Relay: RelayLimits{
				MaxReservations:      128,
				MaxReservationsPerIP: 8,
				MaxCircuits:          16,
				ReservationTTL:       time.Hour,
				CircuitDuration:      2 * time.Minute,
				CircuitDataKiB:       128,
			},
		},
		API: API{Listen: "127.0.0.1:8734"},
	}
}

// file is the shape of the file on disk; plugin tables stay undecoded until
// we know their names.
type file struct {
	Node    Node                      `toml:"node"`
	Network Network                   `toml:"network"`
	API     API                       `toml:"api"`
	Plugins map[string]toml.Primitive `toml:"plugins"`
}

// Load reads and validates the file at path. Relative paths inside it are
// taken relative to the file's directory.
func Load(path string) (*Config, error) { return LoadChecked(path, nil) }

// Parse validates data, read from a file called name. baseDir resolves
// relative paths. A returned error is an *Error listing every problem found.
func Parse(name, baseDir string, data []byte) (*Config, error) {
	lines := keyLines(data)
	errs := &Error{File: name}
	raw := file{Node: Defaults().Node, Network: Defaults().Network, API: Defaults().API}
	md, err := toml.Decode(string(data), &raw)
	if err != nil {
		errs.add(decodeProblem(err, lines))
		return nil, errs
	}
	if t := md.Type("plugins"); t != "" && t != "Hash" {
		errs.add(Problem{Line: lines.of("plugins"), Key: "plugins", Msg: "must be a table of [plugins.NAME] tables"})
		return nil, errs
	}
	cfg := &Config{
		Node: raw.Node, Network: raw.Network, API: raw.API,
		Plugins: map[string]*Plugin{}, File: name, BaseDir: baseDir,
	}
	for _, name := range sortedKeys(raw.Plugins) {
		p, err := decodePlugin(md, name, raw.Plugins[name])
		if err != nil {
			errs.add(decodeProblem(err, lines))
			continue
		}
		cfg.Plugins[name] = p
	}
	for _, k := range md.Undecoded() {
		key := k.String()
		if len(k) >= 2 && k[0] == "plugins" {
			continue // a plugin's own key: the plugin validates it
		}
		errs.add(Problem{Line: lines.of(key), Key: key, Msg: "unknown key" + suggest(key)})
	}
	cfg.validate(errs, lines)
	if len(errs.Problems) > 0 {
		return nil, errs
	}
	cfg.resolvePaths()
	return cfg, nil
}

var pluginName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)

func decodePlugin(md toml.MetaData, name string, prim toml.Primitive) (*Plugin, error) {
	if !pluginName.MatchString(name) {
		return nil, fmt.Errorf("toml: (last key %q): plugin name must be lower-case letters, digits, - or _, starting with a letter", "plugins."+name)
	}
	var common struct {
		Enabled *bool  `toml:"enabled"`
		Path    string `toml:"path"`
		SHA256  string `toml:"sha256"`
	}
	if err := md.PrimitiveDecode(prim, &common); err != nil {
		return nil, err
	}
	var all map[string]any
	if err := md.PrimitiveDecode(prim, &all); err != nil {
		return nil, err
	}
	for _, k := range pluginKeys {
		delete(all, k)
	}
	var own strings.Builder
	if len(all) > 0 {
		if err := toml.NewEncoder(&own).Encode(all); err != nil {
			return nil, fmt.Errorf("toml: (last key %q): re-encode plugin table: %w", "plugins."+name, err)
		}
	}
	p := &Plugin{Name: name, Enabled: true, Path: common.Path, SHA256: strings.ToLower(common.SHA256), Settings: own.String()}
	if common.Enabled != nil {
		p.Enabled = *common.Enabled
	}
	return p, nil
}

// EnabledPlugins lists the enabled plugins in name order.
func (c *Config) EnabledPlugins() []*Plugin {
	var out []*Plugin
	for _, name := range sortedKeys(c.Plugins) {
		if p := c.Plugins[name]; p.Enabled {
			out = append(out, p)
		}
	}
	return out
}

func (c *Config) resolvePaths() {
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(c.BaseDir, p)
	}
	c.Node.StateDir = abs(c.Node.StateDir)
	c.Network.PrivateNetworkKeyFile = abs(c.Network.PrivateNetworkKeyFile)
	c.API.TokenFile = abs(c.API.TokenFile)
	for _, p := range c.Plugins {
		p.Path = abs(p.Path)
	}
}

// decodeLine pulls line and key out of BurntSushi's messages, which look like
// `toml: line 3 (last key "network.dht"): message`.
var decodeLine = regexp.MustCompile(`^toml: (?:line (\d+) )?(?:\(last key "([^"]*)"\): )?(.*)$`)

func decodeProblem(err error, lines keyIndex) Problem {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return Problem{Line: pe.Position.Line, Key: pe.LastKey, Msg: pe.Message}
	}
	m := decodeLine.FindStringSubmatch(err.Error())
	if m == nil {
		return Problem{Msg: err.Error()}
	}
	line, _ := strconv.Atoi(m[1])
	if line == 0 {
		line = lines.of(m[2])
	}
	return Problem{Line: line, Key: m[2], Msg: m[3]}
}

// Problem is one thing wrong with a file.
type Problem struct {
	Line int
	Key  string
	Msg  string
}

// Error lists every problem found in one file.
type Error struct {
	File     string
	Problems []Problem
}

func (e *Error) add(p Problem) { e.Problems = append(e.Problems, p) }

func (e *Error) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(e.File)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
		}
		if p.Key != "" {
			fmt.Fprintf(&b, ": key %s", p.Key)
		}
		b.WriteString(": ")
		b.WriteString(p.Msg)
	}
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
