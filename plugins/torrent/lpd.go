package torrent

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/anacrolix/torrent"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
	"golang.org/x/time/rate"
)

// Local peer discovery, BEP 14: each torrent is announced now and then to
// a multicast group on every local network the node is on, and peers on
// those networks that announce a torrent the node carries are dialled.
// It is what lets a laptop on the same Wi-Fi find the neighbourhood box
// with no tracker and no DHT. Both groups of BEP 14 are used, IPv4's and
// IPv6's (as libtorrent does; Transmission and aria2 have IPv4's alone), so
// that a network with IPv6 link-local addresses only works too.
const (
	lpdGroup  = "239.192.152.143"
	lpdGroup6 = "ff15::efc0:988f"
	lpdPort   = 6771
	// lpdEvery is how often each torrent is announced again; BEP 14 asks
	// for no more than once a minute.
	lpdEvery = 5 * time.Minute
	// lpdPerTick bounds the announces sent a second: Transmission drops
	// what comes over 10 a second.
	lpdPerTick = 5
	// lpdMaxMessage is the longest announce read; a message names a
	// handful of info hashes at most.
	lpdMaxMessage = 1400
)

var (
	lpdAddr  = &net.UDPAddr{IP: net.ParseIP(lpdGroup), Port: lpdPort}
	lpdAddr6 = &net.UDPAddr{IP: net.ParseIP(lpdGroup6), Port: lpdPort}
)

// lpdMessage is one BEP 14 announce.
type lpdMessage struct {
	Port   int
	Hashes []string // hex, lower case
	Cookie string
}

// parseLPD reads a BEP 14 announce:
//
//	BT-SEARCH * HTTP/1.1\r\n
//	Host: 239.192.152.143:6771\r\n
//	Port: 51413\r\n
//	Infohash: <40 hex>\r\n   (once or more)
//	cookie: <anything>\r\n   (optional)
//	\r\n\r\n
//
// Header names are case-insensitive; unknown headers are skipped.
func parseLPD(b []byte) (lpdMessage, error) {
	var m lpdMessage
	if len(b) > lpdMaxMessage {
		return m, fmt.Errorf("announce of %d bytes, over %d", len(b), lpdMaxMessage)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	if !sc.Scan() || strings.TrimSpace(sc.Text()) != "BT-SEARCH * HTTP/1.1" {
		return m, errors.New(`not a BEP 14 announce: first line is not "BT-SEARCH * HTTP/1.1"`)
	}
	for line := 2; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		name, value, ok := strings.Cut(text, ":")
		if !ok {
			return m, fmt.Errorf("line %d: %q is not NAME: VALUE", line, text)
		}
		value = strings.TrimSpace(value)
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "port":
			p, err := strconv.Atoi(value)
			if err != nil || p < 1 || p > 65535 {
				return m, fmt.Errorf("line %d: port %q is not from 1 to 65535", line, value)
			}
			m.Port = p
		case "infohash":
			h := strings.ToLower(value)
			if _, err := hex.DecodeString(h); err != nil || len(h) != 40 {
				return m, fmt.Errorf("line %d: info hash %q is not 40 hex digits", line, value)
			}
			m.Hashes = append(m.Hashes, h)
		case "cookie":
			m.Cookie = value
		}
	}
	switch {
	case m.Port == 0:
		return m, errors.New("announce has no Port")
	case len(m.Hashes) == 0:
		return m, errors.New("announce has no Infohash")
	}
	return m, nil
}

// lpdAnnounce is the announce of one torrent to group; Transmission reads
// only the first Infohash of a message, so each goes alone.
func lpdAnnounce(group *net.UDPAddr, port int, hash, cookie string) []byte {
	return fmt.Appendf(nil, "BT-SEARCH * HTTP/1.1\r\nHost: %s\r\nPort: %d\r\nInfohash: %s\r\ncookie: %s\r\n\r\n\r\n",
		group, port, strings.ToUpper(hash), cookie)
}

// lpd is the node's end of local peer discovery.
type lpd struct {
	fams   []*lpdFamily
	zones  zones
	cookie string
	port   func() int
	found  func(hash string, peer netip.AddrPort) bool
	log    *slog.Logger
	limit  *rate.Limiter // announces heard and handled

	mu     sync.Mutex
	looked time.Time // when the interfaces were last listed

	sent, heard, refused, peers atomic.Int64
}

// lpdFamily is local peer discovery on one IP version: its socket, its
// group, and the interfaces where it joined the group (lpd.mu).
type lpdFamily struct {
	name   string
	conn   net.PacketConn
	group  *net.UDPAddr
	join   func(*net.Interface, net.Addr) error // joins a group on an interface
	pick   func(*net.Interface) error           // sends to the group on an interface
	joined map[string]bool                      // interface names
}

// listenLPD opens port 6771 on network ("udp4", "udp6"), beside any other
// client on the machine (SO_REUSEPORT).
func listenLPD(network, addr string) (net.PacketConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = errors.Join(unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1),
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1))
		})
		return errors.Join(err, serr)
	}}
	conn, err := lc.ListenPacket(context.Background(), network, addr)
	if err != nil {
		return nil, fmt.Errorf("local peer discovery: listen on %s port %d: %w", network, lpdPort, err)
	}
	return conn, nil
}

// startLPD listens for announces on port 6771 of every interface, IPv4's
// group and, where the machine has IPv6, IPv6's, and sends its own with a
// hop limit of 1. found is told of each peer heard for a torrent, and says
// whether the torrent is carried here.
func startLPD(port func() int, found func(string, netip.AddrPort) bool, log *slog.Logger) (*lpd, error) {
	var c [8]byte
	rand.Read(c[:])
	l := &lpd{cookie: "vecino-" + hex.EncodeToString(c[:]), port: port, found: found, log: log, limit: rate.NewLimiter(50, 100)}
	conn, err := listenLPD("udp4", fmt.Sprintf("0.0.0.0:%d", lpdPort))
	if err != nil {
		return nil, err
	}
	p4 := ipv4.NewPacketConn(conn)
	if err := errors.Join(p4.SetMulticastTTL(1), p4.SetMulticastLoopback(false)); err != nil {
		conn.Close()
		return nil, fmt.Errorf("local peer discovery: set up IPv4 multicast: %w", err)
	}
	l.fams = append(l.fams, &lpdFamily{name: "IPv4", conn: conn, group: lpdAddr, join: p4.JoinGroup, pick: p4.SetMulticastInterface, joined: map[string]bool{}})
	if conn, err := listenLPD("udp6", fmt.Sprintf("[::]:%d", lpdPort)); err != nil {
		log.Info("local peer discovery on IPv4 alone", "err", err) // a machine without IPv6
	} else {
		p6 := ipv6.NewPacketConn(conn)
		if err := errors.Join(p6.SetMulticastHopLimit(1), p6.SetMulticastLoopback(false)); err != nil {
			l.close()
			conn.Close()
			return nil, fmt.Errorf("local peer discovery: set up IPv6 multicast: %w", err)
		}
		l.fams = append(l.fams, &lpdFamily{name: "IPv6", conn: conn, group: lpdAddr6, join: p6.JoinGroup, pick: p6.SetMulticastInterface, joined: map[string]bool{}})
	}
	l.join(time.Now())
	return l, nil
}

// join joins the groups on every interface up, with multicast, that is
// not loopback and not joined yet: a Wi-Fi that comes up later is joined
// then, and a join that failed is tried again. It lists the interfaces
// once a minute at most.
func (l *lpd) join(now time.Time) []net.Interface {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.looked) < time.Minute && !l.looked.IsZero() {
		return l.interfacesLocked()
	}
	l.looked = now
	ifs, err := net.Interfaces()
	if err != nil {
		l.log.Warn("local peer discovery: list network interfaces", "err", err)
		return nil
	}
	for _, ifi := range ifs {
		for _, f := range l.fams {
			if !lpdUsable(ifi) || f.joined[ifi.Name] {
				continue
			}
			if err := f.join(&ifi, f.group); err != nil { // no address of that version yet, say: tried again
				l.log.Debug("local peer discovery: join multicast group", "interface", ifi.Name, "family", f.name, "err", err)
				continue
			}
			f.joined[ifi.Name] = true
			l.log.Info("local peer discovery on", "interface", ifi.Name, "family", f.name)
		}
	}
	return l.joinedOf(ifs)
}

func lpdUsable(ifi net.Interface) bool {
	return ifi.Flags&net.FlagUp != 0 && ifi.Flags&net.FlagMulticast != 0 && ifi.Flags&net.FlagLoopback == 0
}

// interfacesLocked lists the joined interfaces that are still there and up.
func (l *lpd) interfacesLocked() []net.Interface {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil
	}
	return l.joinedOf(ifs)
}

// joinedOf keeps those of ifs that are joined, for either version, and
// still up: one listing of the interfaces, not one per interface joined.
func (l *lpd) joinedOf(ifs []net.Interface) []net.Interface {
	var out []net.Interface
	for _, ifi := range ifs {
		if lpdUsable(ifi) && slices.ContainsFunc(l.fams, func(f *lpdFamily) bool { return f.joined[ifi.Name] }) {
			out = append(out, ifi)
		}
	}
	return out
}

// announce sends one announce per torrent to each group joined on each
// joined interface.
func (l *lpd) announce(hashes []string, now time.Time) {
	if len(hashes) == 0 {
		return
	}
	port := l.port()
	for _, ifi := range l.join(now) {
		for _, f := range l.fams {
			l.mu.Lock()
			joined := f.joined[ifi.Name]
			l.mu.Unlock()
			if !joined {
				continue
			}
			if err := f.pick(&ifi); err != nil {
				l.log.Warn("local peer discovery: pick interface", "interface", ifi.Name, "family", f.name, "err", err)
				continue
			}
			for _, h := range hashes {
				if _, err := f.conn.WriteTo(lpdAnnounce(f.group, port, h, l.cookie), f.group); err != nil {
					l.log.Warn("local peer discovery: announce", "interface", ifi.Name, "family", f.name, "err", err)
					break
				}
				l.sent.Add(1)
			}
		}
	}
}

// serve reads announces, on every socket, until they are closed.
func (l *lpd) serve() {
	var wg sync.WaitGroup
	for _, f := range l.fams {
		wg.Go(func() { l.read(f.conn) })
	}
	wg.Wait()
}

func (l *lpd) read(conn net.PacketConn) {
	buf := make([]byte, lpdMaxMessage+1)
	for {
		n, src, err := conn.ReadFrom(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				l.log.Warn("local peer discovery: read", "err", err)
			}
			return
		}
		l.heard.Add(1)
		if !l.limit.Allow() {
			l.refused.Add(1)
			continue
		}
		l.handle(buf[:n], src)
	}
}

func (l *lpd) handle(b []byte, src net.Addr) {
	udp, ok := src.(*net.UDPAddr)
	if !ok {
		return
	}
	m, err := parseLPD(b)
	if err != nil {
		l.refused.Add(1)
		l.log.Debug("local peer discovery: announce refused", "from", udp.String(), "err", err)
		return
	}
	if m.Cookie == l.cookie {
		return // our own, back through another interface
	}
	ip, ok := netip.AddrFromSlice(udp.IP)
	if !ok {
		return
	}
	ip = ip.Unmap()
	if udp.Zone != "" && ip.Is6() {
		ip = ip.WithZone(udp.Zone) // a link-local address: on that interface
	}
	peer := netip.AddrPortFrom(ip, uint16(m.Port))
	for _, h := range m.Hashes {
		if l.found(h, peer) {
			l.peers.Add(1)
			l.log.Info("local peer found", "torrent", h, "peer", peer.String())
		}
	}
}

func (l *lpd) close() error {
	var errs []error
	for _, f := range l.fams {
		errs = append(errs, f.conn.Close())
	}
	return errors.Join(errs...)
}

// LPDStatus is what the status page shows of local peer discovery.
type LPDStatus struct {
	Interfaces []string `json:"interfaces"`
	Sent       int64    `json:"announces_sent"`
	Heard      int64    `json:"announces_heard"`
	Refused    int64    `json:"announces_refused"`
	Peers      int64    `json:"peers_found"`
}

func (l *lpd) status() LPDStatus {
	st := LPDStatus{Sent: l.sent.Load(), Heard: l.heard.Load(), Refused: l.refused.Load(), Peers: l.peers.Load()}
	l.mu.Lock()
	for _, ifi := range l.interfacesLocked() {
		st.Interfaces = append(st.Interfaces, ifi.Name)
	}
	l.mu.Unlock()
	return st
}

// lpdDue lists the torrents to announce now, lpdPerTick at most: each one
// that may transfer is announced when added or resumed, and every lpdEvery
// after. Private torrents are never announced (BEP 27).
func (s *seedbox) lpdDue(now time.Time) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var due []string
	for ih, it := range s.torrents {
		if len(due) == lpdPerTick {
			break
		}
		if it.held() || it.rec.Finished || it.private() || now.Before(it.lpdNext) {
			continue
		}
		it.lpdNext = now.Add(lpdEvery)
		due = append(due, ih)
	}
	return due
}

// localPeer has the engine dial a peer heard announcing torrent hash, and
// says whether the torrent is here and may take it.
func (s *seedbox) localPeer(hash string, peer netip.AddrPort) bool {
	s.mu.Lock()
	it, ok := s.torrents[hash]
	ok = ok && !it.held() && !it.private()
	s.mu.Unlock()
	if !ok {
		return false
	}
	if zone := peer.Addr().Zone(); zone != "" {
		// The engine takes no address with a zone (it is not an IP to
		// it); it gets the bare address, and linkLocalDialer puts the
		// interface back when it dials.
		bare := peer.Addr().WithZone("")
		s.lpd.zones.remember(bare, zone)
		peer = netip.AddrPortFrom(bare, peer.Port())
	}
	it.t.AddPeers([]torrent.PeerInfo{{Addr: peer, Source: peerSourceLPD}})
	return true
}

// zones is the interface each IPv6 link-local address was heard on. Such
// an address means nothing without one (fe80::/10 is on every link).
type zones struct {
	mu sync.Mutex
	m  map[netip.Addr]string
}

// maxZones bounds what announces can make the node remember.
const maxZones = 256

func (z *zones) remember(a netip.Addr, zone string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.m == nil {
		z.m = map[netip.Addr]string{}
	}
	if _, ok := z.m[a]; !ok && len(z.m) >= maxZones {
		for old := range z.m { // one that Go's map order picks at random
			delete(z.m, old)
			break
		}
	}
	z.m[a] = zone
}

func (z *zones) of(a netip.Addr) string {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.m[a]
}

// linkLocalDialer dials the IPv6 link-local peers local peer discovery
// found, on the interface their announce came in on; the engine's own
// dialers cannot (the kernel wants the interface for such an address).
// Any other address it leaves to them.
type linkLocalDialer struct{ zones *zones }

func (d linkLocalDialer) DialerNetwork() string { return "tcp6" }

func (d linkLocalDialer) Dial(ctx context.Context, addr string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Is6() || !ap.Addr().IsLinkLocalUnicast() {
		return nil, fmt.Errorf("%s: not an IPv6 link-local peer", addr)
	}
	zone := d.zones.of(ap.Addr())
	if zone == "" {
		return nil, fmt.Errorf("%s: not heard on any interface", addr)
	}
	var nd net.Dialer
	return nd.DialContext(ctx, "tcp6", netip.AddrPortFrom(ap.Addr().WithZone(zone), ap.Port()).String())
}

// peerSourceLPD marks peers found on the local network.
const peerSourceLPD torrent.PeerSource = "Lpd"
