package config

import (
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// knownKeys lists every router key, for "did you mean" hints.
var knownKeys = []string{
	"node.name", "node.state_dir", "node.log_level",
	"network.listen", "network.bootstrap", "network.public_bootstrap", "network.dht", "network.reachability",
	"network.relay_service", "network.hole_punching", "network.port_mapping", "network.mdns",
	"network.private_network_key_file", "network.allow_peers", "network.conn_low",
	"network.conn_high", "network.max_memory_mib",
	"network.relay.max_reservations", "network.relay.max_reservations_per_ip",
	"network.relay.max_circuits", "network.relay.reservation_ttl",
	"network.relay.circuit_duration", "network.relay.circuit_data_kib",
	"api.listen", "api.password", "api.token_file",
}

func (c *Config) validate(errs *Error, lines keyIndex) {
	bad := func(key, format string, args ...any) {
		errs.add(Problem{Line: lines.of(key), Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if strings.TrimSpace(c.Node.Name) == "" {
		bad("node.name", "must not be empty")
	}
	if strings.TrimSpace(c.Node.StateDir) == "" {
		bad("node.state_dir", "must not be empty")
	}
	switch c.Node.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("node.log_level", "%q is not one of debug, info, warn, error", c.Node.LogLevel)
	}

	n := &c.Network
	if len(n.Listen) == 0 {
		bad("network.listen", "needs at least one address")
	}
	quic := false
	for i, s := range n.Listen {
		addr, err := ma.NewMultiaddr(s)
		if err != nil {
			bad("network.listen", "entry %d %q is not a multiaddr: %v", i+1, s, err)
			continue
		}
		switch {
		case hasProto(addr, ma.P_QUIC_V1):
			quic = true
		case hasProto(addr, ma.P_TCP):
		default:
			bad("network.listen", "entry %d %q: only tcp and udp/quic-v1 addresses are supported", i+1, s)
		}
	}
	for i, s := range n.Bootstrap {
		if _, err := peer.AddrInfoFromString(s); err != nil {
			bad("network.bootstrap", "entry %d %q must be a multiaddr ending in /p2p/PEER_ID: %v", i+1, s, err)
		}
	}
	switch n.DHT {
	case "auto", "server", "client", "off":
	default:
		bad("network.dht", "%q is not one of auto, server, client, off", n.DHT)
	}
	switch n.Reachability {
	case "auto", "public", "private":
	default:
		bad("network.reachability", "%q is not one of auto, public, private", n.Reachability)
	}
	if n.PrivateNetworkKeyFile != "" && quic {
		bad("network.private_network_key_file", "a private network cannot use QUIC: remove the quic-v1 addresses from network.listen")
	}
	for i, s := range n.AllowPeers {
		if _, err := peer.Decode(s); err != nil {
			bad("network.allow_peers", "entry %d %q is not a peer ID: %v", i+1, s, err)
		}
	}
	if n.ConnLow < 1 {
		bad("network.conn_low", "must be at least 1, not %d", n.ConnLow)
	}
	if n.ConnHigh <= n.ConnLow {
		bad("network.conn_high", "must be above conn_low (%d), not %d", n.ConnLow, n.ConnHigh)
	}
	if n.MaxMemoryMiB != 0 && n.MaxMemoryMiB < 64 {
		bad("network.max_memory_mib", "must be 0 (scale to the machine) or at least 64, not %d", n.MaxMemoryMiB)
	}
	r := &n.Relay
	for key, v := range map[string]int64{
		"network.relay.max_reservations":        int64(r.MaxReservations),
		"network.relay.max_reservations_per_ip": int64(r.MaxReservationsPerIP),
		"network.relay.max_circuits":            int64(r.MaxCircuits),
		"network.relay.reservation_ttl":         int64(r.ReservationTTL),
		"network.relay.circuit_duration":        int64(r.CircuitDuration),
		"network.relay.circuit_data_kib":        r.CircuitDataKiB,
	} {
		if v <= 0 {
			bad(key, "must be positive")
		}
	}

	if err := checkHostPort(c.API.Listen); err != nil {
		bad("api.listen", "%v", err)
	}
	if c.API.Password != "" && c.API.TokenFile != "" {
		bad("api.password", "set password or token_file, not both")
	}

	for _, name := range sortedKeys(c.Plugins) {
		p := c.Plugins[name]
		if p.SHA256 != "" {
			if b, err := hex.DecodeString(p.SHA256); err != nil || len(b) != 32 {
				bad("plugins."+name+".sha256", "must be 64 hex digits (the output of sha256sum)")
			}
		}
	}
}

func hasProto(a ma.Multiaddr, code int) bool {
	_, err := a.ValueForProtocol(code)
	return err == nil
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %v", s, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port must be a number from 0 to 65535", s)
	}
	if host != "" && net.ParseIP(host) == nil && host != "localhost" {
		return fmt.Errorf("%q: host must be an IP address or localhost", s)
	}
	return nil
}

// suggest offers the known key closest to an unknown one.
func suggest(key string) string {
	best, bestD := "", 3
	for _, k := range knownKeys {
		if d := editDistance(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// keyIndex maps dotted keys to the line that defines them. BurntSushi/toml
// keeps key positions private, so this reads the file once more, simply: it
// knows [table] headers and key = value lines, which is where keys live in
// the files people write.
type keyIndex map[string]int

func keyLines(data []byte) keyIndex {
	idx := keyIndex{}
	table := ""
	for i, line := range strings.Split(string(data), "\n") {
		s := strings.TrimSpace(line)
		switch {
		case s == "" || s[0] == '#':
		case strings.HasPrefix(s, "[["):
			if end := strings.Index(s, "]]"); end > 2 {
				table = normKey(s[2:end])
				idx.set(table, i+1)
			}
		case s[0] == '[':
			if end := strings.IndexByte(s, ']'); end > 1 {
				table = normKey(s[1:end])
				idx.set(table, i+1)
			}
		default:
			if eq := strings.IndexByte(s, '='); eq > 0 {
				key := normKey(s[:eq])
				if table != "" {
					key = table + "." + key
				}
				idx.set(key, i+1)
			}
		}
	}
	return idx
}

func (idx keyIndex) set(key string, line int) {
	if _, ok := idx[key]; !ok {
		idx[key] = line
	}
}

// of finds the line of key, or of its nearest parent table.
func (idx keyIndex) of(key string) int {
	for key != "" {
		if l, ok := idx[key]; ok {
			return l
		}
		dot := strings.LastIndexByte(key, '.')
		if dot < 0 {
			break
		}
		key = key[:dot]
	}
	return 0
}

func normKey(s string) string {
	parts := strings.Split(s, ".")
	for i, p := range parts {
		parts[i] = strings.Trim(strings.TrimSpace(p), `"'`)
	}
	return strings.Join(parts, ".")
}
