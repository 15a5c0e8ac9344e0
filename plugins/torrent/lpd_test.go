package torrent

import (
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
)

const lpdHash = "0123456789abcdef0123456789abcdef01234567"

func TestParseLPD(t *testing.T) {
	m, err := parseLPD(lpdAnnounce(lpdAddr, 51413, lpdHash, "c1"))
	if err != nil || m.Port != 51413 || len(m.Hashes) != 1 || m.Hashes[0] != lpdHash || m.Cookie != "c1" {
		t.Fatalf("our own announce read back as %+v, %v", m, err)
	}
	// Transmission's: upper-case hash, no cookie; qBittorrent's may name
	// several torrents.
	m, err = parseLPD([]byte("BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\nInfohash: " +
		strings.ToUpper(lpdHash) + "\r\ninfohash: " + strings.Repeat("ab", 20) + "\r\n\r\n\r\n"))
	if err != nil || m.Port != 6881 || len(m.Hashes) != 2 || m.Hashes[0] != lpdHash {
		t.Fatalf("two hashes read as %+v, %v", m, err)
	}
	for _, c := range []struct{ in, want string }{
		{"", "not a BEP 14 announce"},
		{"GET / HTTP/1.1\r\n\r\n", "not a BEP 14 announce"},
		{"BT-SEARCH * HTTP/1.1\r\nInfohash: " + lpdHash + "\r\n\r\n", "no Port"},
		{"BT-SEARCH * HTTP/1.1\r\nPort: 1\r\n\r\n", "no Infohash"},
		{"BT-SEARCH * HTTP/1.1\r\nPort: 70000\r\n", `line 2: port "70000"`},
		{"BT-SEARCH * HTTP/1.1\r\nPort: 1\r\nInfohash: xyz\r\n", `line 3: info hash "xyz"`},
		{"BT-SEARCH * HTTP/1.1\r\nPort 1\r\n", "line 2: \"Port 1\" is not NAME: VALUE"},
		{"BT-SEARCH * HTTP/1.1\r\n" + strings.Repeat("x", lpdMaxMessage), "over 1400"},
	} {
		if _, err := parseLPD([]byte(c.in)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want an error saying %q", c.in, err, c.want)
		}
	}
}

// The IPv6 group's announce names it as its Host, as libtorrent's does.
func TestLPDAnnounceIPv6(t *testing.T) {
	b := lpdAnnounce(lpdAddr6, 51413, lpdHash, "c1")
	if !strings.Contains(string(b), "\r\nHost: [ff15::efc0:988f]:6771\r\n") {
		t.Errorf("IPv6 announce %q", b)
	}
	if m, err := parseLPD(b); err != nil || m.Port != 51413 {
		t.Errorf("read back as %+v, %v", m, err)
	}
}

// Announces cannot make the node remember more than maxZones link-local
// addresses; the one heard last is kept.
func TestZonesBounded(t *testing.T) {
	var z zones
	addr := func(i int) netip.Addr {
		return netip.AddrFrom16([16]byte{0: 0xfe, 1: 0x80, 14: byte(i >> 8), 15: byte(i)})
	}
	for i := range maxZones + 10 {
		z.remember(addr(i), "eth0")
	}
	last := addr(maxZones + 9)
	if len(z.m) != maxZones || z.of(last) != "eth0" {
		t.Errorf("%d remembered, last one's zone %q", len(z.m), z.of(last))
	}
}

// FuzzParseLPD: an announce from anyone on the network either is refused
// or names a port a peer can listen on and info hashes of 20 bytes.
func FuzzParseLPD(f *testing.F) {
	f.Add(lpdAnnounce(lpdAddr, 51413, lpdHash, "c1"))
	f.Add([]byte("BT-SEARCH * HTTP/1.1\r\nPort: 6881\r\nInfohash: " + lpdHash + "\r\nInfohash: " + lpdHash + "\r\n\r\n"))
	f.Add([]byte("BT-SEARCH * HTTP/1.1\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseLPD(b)
		if err != nil {
			return
		}
		if m.Port < 1 || m.Port > 65535 || len(m.Hashes) == 0 {
			t.Fatalf("accepted %+v", m)
		}
		for _, h := range m.Hashes {
			if raw, err := hex.DecodeString(h); err != nil || len(raw) != 20 || h != strings.ToLower(h) {
				t.Fatalf("accepted info hash %q", h)
			}
		}
	})
}

// Local peer discovery on a node that listens on loopback alone would
// announce a port no one on the network can reach: refused, naming why.
func TestLPDNeedsAReachableListenHost(t *testing.T) {
	for _, c := range []struct {
		host string
		ok   bool
	}{{"127.0.0.1", false}, {"::1", false}, {"", true}, {"0.0.0.0", true}, {"192.168.1.20", true}} {
		s := defaults()
		s.ListenHost, s.LocalPeerDiscover = c.host, true
		errs := s.validate()
		if ok := len(errs) == 0; ok != c.ok {
			t.Errorf("listen_host %q: errors %v, want ok %v", c.host, errs, c.ok)
		}
		if !c.ok && (len(errs) != 1 || errs[0].Key != "local_peer_discovery" || !strings.Contains(errs[0].Message, c.host)) {
			t.Errorf("listen_host %q: got %v", c.host, errs)
		}
	}
}
