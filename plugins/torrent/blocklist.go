package torrent

// Blocklists: ranges of addresses the node neither accepts BitTorrent
// connections from nor dials, as Transmission's blocklists. Every file in
// the plugin's blocklists folder is read (PeerGuardian's P2P text format,
// eMule's DAT format, CIDR blocks or single addresses, a line each; plain,
// gzip or zip), and with blocklist_url set, the list downloaded from there,
// kept in the same folder as from-url and fetched again every
// blocklist_update. A download that holds no range is refused and the copy
// kept; a line that is not a range is skipped and counted, and the first
// such line is named in the status.

import (
	"archive/zip"
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anacrolix/torrent/iplist"

	"github.com/vecino/vecino/internal/atomicfile"
)

const (
	// maxBlocklistBytes bounds a list, as downloaded and as unpacked: the
	// largest public lists are some 10 MiB of text.
	maxBlocklistBytes = 64 << 20
	// maxBlocklistLine bounds a line; a longer one is no range.
	maxBlocklistLine = 1024
	// blocklistFromURL is the name of the copy of blocklist_url's list.
	blocklistFromURL = "from-url"
	// blocklistRetry is how soon a failed download is tried again.
	blocklistRetry = time.Hour
)

// ipRanges is a blocklist in memory: sorted ranges that do not overlap,
// IPv4 in 8 bytes each (a public list of 300,000 ranges takes 2.4 MB),
// IPv6 apart.
type ipRanges struct {
	v4 []range4
	v6 []range6
}

type range4 struct{ first, last uint32 }
type range6 struct{ first, last [16]byte }

// Len is the number of ranges.
func (r *ipRanges) Len() int {
	if r == nil {
		return 0
	}
	return len(r.v4) + len(r.v6)
}

// contains reports whether a is in a range.
func (r *ipRanges) contains(a netip.Addr) bool {
	if r == nil || !a.IsValid() {
		return false
	}
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		ip := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		i := sort.Search(len(r.v4), func(i int) bool { return r.v4[i].last >= ip })
		return i < len(r.v4) && r.v4[i].first <= ip
	}
	ip := a.As16()
	i := sort.Search(len(r.v6), func(i int) bool { return bytes.Compare(r.v6[i].last[:], ip[:]) >= 0 })
	return i < len(r.v6) && bytes.Compare(r.v6[i].first[:], ip[:]) <= 0
}

// rangeSet gathers ranges, in any order, overlapping or not.
type rangeSet struct {
	v4 []range4
	v6 []range6
}

func (s *rangeSet) add(first, last netip.Addr) {
	if first.Is4() {
		a, b := first.As4(), last.As4()
		s.v4 = append(s.v4, range4{
			uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]),
			uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]),
		})
		return
	}
	s.v6 = append(s.v6, range6{first.As16(), last.As16()})
}

// ranges sorts the set and merges ranges that overlap. Ranges that only
// touch are kept apart, as Transmission keeps them: the size a client is
// shown counts them as the list's lines do.
func (s *rangeSet) ranges() *ipRanges {
	slices.SortFunc(s.v4, func(a, b range4) int { return cmp.Compare(a.first, b.first) })
	var v4 []range4
	for _, r := range s.v4 {
		if n := len(v4); n > 0 && r.first <= v4[n-1].last {
			v4[n-1].last = max(v4[n-1].last, r.last)
			continue
		}
		v4 = append(v4, r)
	}
	slices.SortFunc(s.v6, func(a, b range6) int { return bytes.Compare(a.first[:], b.first[:]) })
	var v6 []range6
	for _, r := range s.v6 {
		if n := len(v6); n > 0 {
			prev := &v6[n-1]
			if bytes.Compare(r.first[:], prev.last[:]) <= 0 {
				if bytes.Compare(r.last[:], prev.last[:]) > 0 {
					prev.last = r.last
				}
				continue
			}
		}
		v6 = append(v6, r)
	}
	return &ipRanges{v4: slices.Clip(v4), v6: slices.Clip(v6)}
}

// listReport is what reading one list found.
type listReport struct {
	Ranges  int `json:"ranges"`            // lines read as ranges
	Skipped int `json:"skipped,omitempty"` // lines that are no range
	// FirstSkipped names the first line skipped and why.
	FirstSkipped string `json:"first_skipped,omitempty"`
}

// readList reads a list from r, plain, gzip or zip (its first file), of
// at most limit bytes unpacked, into set, skipping and counting lines
// that are no range.
func readList(r io.ReaderAt, size, limit int64, set *rangeSet) (listReport, error) {
	var rep listReport
	var head [4]byte
	n, _ := r.ReadAt(head[:], 0)
	var text io.Reader = io.NewSectionReader(r, 0, size)
	switch {
	case n >= 2 && head[0] == 0x1f && head[1] == 0x8b:
		zr, err := gzip.NewReader(text)
		if err != nil {
			return rep, fmt.Errorf("gzip: %w", err)
		}
		text = zr
	case n == 4 && string(head[:]) == "PK\x03\x04":
		zr, err := zip.NewReader(r, size)
		if err != nil {
			return rep, fmt.Errorf("zip: %w", err)
		}
		if len(zr.File) == 0 {
			return rep, errors.New("zip: holds no file")
		}
		f, err := zr.File[0].Open()
		if err != nil {
			return rep, fmt.Errorf("zip: %s: %w", zr.File[0].Name, err)
		}
		defer f.Close()
		text = f
	}
	lr := &io.LimitedReader{R: text, N: limit + 1}
	sc := bufio.NewScanner(lr)
	sc.Buffer(make([]byte, 0, 4096), maxBlocklistLine+1)
	sc.Split(linesBounded())
	for line := 1; sc.Scan(); line++ {
		first, last, ok, err := parseRangeLine(sc.Text())
		switch {
		case err != nil:
			if rep.Skipped == 0 {
				rep.FirstSkipped = fmt.Sprintf("line %d: %v", line, err)
			}
			rep.Skipped++
		case ok:
			set.add(first, last)
			rep.Ranges++
		}
	}
	if err := sc.Err(); err != nil {
		return rep, err
	}
	if lr.N <= 0 {
		return rep, fmt.Errorf("over %d MiB unpacked", limit>>20)
	}
	return rep, nil
}

// linesBounded is bufio.ScanLines that does not stop at a line too long
// for the scanner's buffer: such a line is passed over to its end and
// comes as one token of overLong, which parseRangeLine refuses, so it is
// skipped and counted as one line, and the lines after it keep their
// numbers.
func linesBounded() bufio.SplitFunc {
	long := false
	return func(data []byte, atEOF bool) (int, []byte, error) {
		advance, token, err := bufio.ScanLines(data, atEOF)
		switch {
		case advance == 0 && token == nil && err == nil && len(data) > maxBlocklistLine:
			long = true
			return len(data), nil, nil // more of the long line: dropped
		case long && advance > 0:
			long = false
			return advance, overLong, nil
		case long && atEOF && len(data) == 0:
			long = false
			return 0, overLong, bufio.ErrFinalToken
		}
		return advance, token, err
	}
}

// overLong stands for a line longer than any range.
var overLong = bytes.Repeat([]byte{'x'}, maxBlocklistLine+1)

// parseRangeLine reads one line of a list: ok is false with no error for
// a blank line or a comment.
//
//	Some description:1.2.3.0-1.2.3.255               P2P (PeerGuardian)
//	001.002.003.000 - 001.002.003.255 , 000 , desc   DAT (eMule)
//	1.2.3.0/24 or 2001:db8::/32                      CIDR
//	1.2.3.4, 1.2.3.4-1.2.3.9                         an address, a range
func parseRangeLine(line string) (first, last netip.Addr, ok bool, err error) {
	line = strings.TrimSpace(line)
	if line == "" || line[0] == '#' || strings.HasPrefix(line, "//") {
		return first, last, false, nil
	}
	if len(line) > maxBlocklistLine {
		return first, last, false, fmt.Errorf("over %d bytes", maxBlocklistLine)
	}
	// A range whose ends read but do not make one is named as such;
	// anything else is no range at all.
	var badRange error
	try := func(s string) bool {
		var err error
		first, last, err = parseDashRange(s)
		if errors.Is(err, errBadRange) {
			badRange = err
		}
		return err == nil
	}
	if head, _, found := strings.Cut(line, ","); found && try(head) {
		return first, last, true, nil // DAT
	}
	if strings.IndexByte(line, '/') >= 0 {
		if p, perr := netip.ParsePrefix(line); perr == nil {
			p = p.Masked()
			return p.Addr().Unmap(), lastOf(p), true, nil
		}
	}
	if try(line) {
		return first, last, true, nil
	}
	// P2P: the range follows the colon that ends the description. An
	// IPv6 address has colons of its own (seven at most), so the colon is
	// one of the last eight before the dash: the first of them after
	// which a range reads wins. Eight tries keep a line of colons linear.
	if dash := strings.LastIndexByte(line, '-'); dash > 0 {
		var colons []int
		for i := dash - 1; i >= 0 && len(colons) < 8; i-- {
			if line[i] == ':' {
				colons = append(colons, i)
			}
		}
		for k := len(colons) - 1; k >= 0; k-- {
			if try(line[colons[k]+1:]) {
				return first, last, true, nil
			}
		}
	}
	if badRange != nil {
		return netip.Addr{}, netip.Addr{}, false, badRange
	}
	return netip.Addr{}, netip.Addr{}, false, errNotRange
}

// errNotRange is a line that is nothing a list holds.
var errNotRange = errors.New("not an address, a range (A-B), a CIDR block or a P2P or DAT line")

// errBadRange is two addresses that make no range.
var errBadRange = errors.New("no range")

// parseDashRange reads "A-B" or "A - B", or a single address.
func parseDashRange(s string) (first, last netip.Addr, err error) {
	a, b, dash := strings.Cut(s, "-")
	if first, err = parseLooseAddr(a); err != nil {
		return first, last, err
	}
	if !dash {
		return first, first, nil
	}
	if last, err = parseLooseAddr(b); err != nil {
		return first, last, err
	}
	switch {
	case first.Is4() != last.Is4():
		return first, last, fmt.Errorf("%w: %s-%s mixes IPv4 and IPv6", errBadRange, first, last)
	case last.Less(first):
		return first, last, fmt.Errorf("%w: %s-%s ends before it starts", errBadRange, first, last)
	}
	return first, last, nil
}

// errNotAddr is a string that is no address. It is one value: a list of
// junk is read at the speed of a good one.
var errNotAddr = errors.New("not an address")

// parseLooseAddr reads an address, taking IPv4 with zero-padded parts
// (DAT lists write 001.002.003.004) as decimal.
func parseLooseAddr(s string) (netip.Addr, error) {
	s = strings.TrimSpace(s)
	if strings.IndexByte(s, ':') < 0 {
		return parseLooseIPv4(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, errNotAddr
	}
	return a.Unmap(), nil
}

// parseLooseIPv4 reads four decimal parts of up to three digits each.
func parseLooseIPv4(s string) (netip.Addr, error) {
	var b [4]byte
	part, digits, v := 0, 0, 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if digits == 0 || part > 3 {
				return netip.Addr{}, errNotAddr
			}
			b[part] = byte(v)
			part, digits, v = part+1, 0, 0
			continue
		}
		c := s[i]
		if c < '0' || c > '9' || digits == 3 {
			return netip.Addr{}, errNotAddr
		}
		v = v*10 + int(c-'0')
		digits++
		if v > 255 {
			return netip.Addr{}, errNotAddr
		}
	}
	if part != 4 {
		return netip.Addr{}, errNotAddr
	}
	return netip.AddrFrom4(b), nil
}

// lastOf is the last address of a masked prefix.
func lastOf(p netip.Prefix) netip.Addr {
	a := p.Addr().Unmap()
	bits := p.Bits()
	if a.Is4() {
		if p.Addr().Is4In6() {
			bits -= 96
		}
		b := a.As4()
		for i := bits; i < 32; i++ {
			b[i/8] |= 1 << (7 - i%8)
		}
		return netip.AddrFrom4(b)
	}
	b := a.As16()
	for i := bits; i < 128; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	return netip.AddrFrom16(b)
}

// errNoBlocklistURL is an update asked for with nowhere to fetch from.
var errNoBlocklistURL = errors.New("no blocklist_url in [plugins.torrent] to update from")

// blocklist is the engine's iplist.Ranger, whose ranges change in place.
type blocklist struct {
	cur     atomic.Pointer[ipRanges]
	refused atomic.Int64 // addresses looked up and found in it
}

// Lookup is for the engine: for every connection accepted and every peer
// before it is dialled.
func (b *blocklist) Lookup(ip net.IP) (iplist.Range, bool) {
	a, ok := netip.AddrFromSlice(ip)
	if !ok || !b.cur.Load().contains(a) {
		return iplist.Range{}, false
	}
	b.refused.Add(1)
	return iplist.Range{First: ip, Last: ip, Description: "blocklist"}, true
}

func (b *blocklist) NumRanges() int { return b.cur.Load().Len() }

// blocks reports whether a is in the list, without counting it.
func (b *blocklist) blocks(a netip.Addr) bool { return b.cur.Load().contains(a) }

// BlocklistView is the blocklists as the API and the status show them.
type BlocklistView struct {
	Ranges  int   `json:"ranges"`  // in force, merged
	Refused int64 `json:"refused"` // addresses refused since the plugin started
	// Files is what each file of the folder held, by name.
	Files  map[string]fileReport `json:"files,omitempty"`
	Folder string                `json:"folder"`
	URL    string                `json:"url,omitempty"`
	// Fetched is when from-url was last downloaded; UpdateError why the
	// last try failed, if it did.
	Fetched     *time.Time `json:"fetched,omitempty"`
	UpdateError string     `json:"update_error,omitempty"`
	Dropped     int        `json:"dropped,omitempty"` // connections closed when the list last changed
}

// fileReport is one file's listReport, or why it could not be read.
type fileReport struct {
	listReport
	Error string `json:"error,omitempty"`
}

// blockState is what the seedbox keeps of its blocklists.
type blockState struct {
	mu      sync.Mutex
	update  sync.Mutex // one download at a time
	files   map[string]fileReport
	err     string    // why the last download failed
	tried   time.Time // when the last download was tried
	dropped int
}

// blocklistDir is the folder of lists.
func (s *seedbox) blocklistDir() string { return filepath.Join(s.env.DataDir, "blocklists") }

// loadBlocklists reads every list in the folder (from-url only while
// blocklist_url is set), puts them in force, and closes the connections
// to peers they now block.
func (s *seedbox) loadBlocklists() error {
	dir := s.blocklistDir()
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read blocklists %s: %w", dir, err)
	}
	var set rangeSet
	files := map[string]fileReport{}
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !e.Type().IsRegular() || (name == blocklistFromURL && s.cfg.BlocklistURL == "") {
			continue
		}
		rep, err := readListFile(filepath.Join(dir, name), &set)
		fr := fileReport{listReport: rep}
		if err != nil {
			fr.Error = err.Error()
			s.log.Error("blocklist unreadable", "file", filepath.Join(dir, name), "err", err)
		} else if rep.Skipped > 0 {
			s.log.Warn("blocklist lines skipped", "file", filepath.Join(dir, name), "skipped", rep.Skipped, "first", rep.FirstSkipped)
		}
		files[name] = fr
	}
	ranges := set.ranges()
	s.blocks.cur.Store(ranges)
	dropped := s.dropBlocked()
	s.blockState.mu.Lock()
	s.blockState.files, s.blockState.dropped = files, dropped
	s.blockState.mu.Unlock()
	if ranges.Len() > 0 || len(files) > 0 {
		s.log.Info("blocklists in force", "ranges", ranges.Len(), "files", len(files), "connections_closed", dropped)
	}
	return nil
}

// readListFile reads one file of the folder into set.
func readListFile(path string, set *rangeSet) (listReport, error) {
	f, err := os.Open(path)
	if err != nil {
		return listReport{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return listReport{}, err
	}
	if fi.Size() > maxBlocklistBytes {
		return listReport{}, fmt.Errorf("%d bytes, over the %d MiB a list may have", fi.Size(), maxBlocklistBytes>>20)
	}
	return readList(f, fi.Size(), maxBlocklistBytes, set)
}

// dropBlocked closes the connections to peers the list blocks now, as
// Transmission does when its list changes, and forgets the peers a user
// named that it blocks, which would otherwise be handed to the engine
// (and refused) every namedRetry.
func (s *seedbox) dropBlocked() int {
	if s.cl == nil {
		return 0
	}
	s.mu.Lock()
	for _, it := range s.torrents {
		for p := range it.named {
			if s.blocks.blocks(p.Addr()) {
				delete(it.named, p)
			}
		}
	}
	s.mu.Unlock()
	n := 0
	for _, t := range s.cl.Torrents() {
		for _, c := range t.PeerConns() {
			if ap, err := netip.ParseAddrPort(c.RemoteAddr.String()); err == nil && s.blocks.blocks(ap.Addr()) {
				c.Close()
				n++
			}
		}
	}
	return n
}

// updateBlocklist downloads blocklist_url's list and, if it holds a range,
// keeps it as from-url and reads the folder again; without a URL it reads
// the folder again only, and says so.
func (s *seedbox) updateBlocklist(ctx context.Context) (BlocklistView, error) {
	s.blockState.update.Lock()
	defer s.blockState.update.Unlock()
	if s.cfg.BlocklistURL == "" {
		err := s.loadBlocklists()
		if err == nil {
			err = fmt.Errorf("%w; the files in %s were read again", errNoBlocklistURL, s.blocklistDir())
		}
		return s.blocklistView(), err
	}
	err := s.fetchBlocklist(ctx)
	s.blockState.mu.Lock()
	s.blockState.tried = time.Now()
	if err != nil {
		s.blockState.err = err.Error()
	} else {
		s.blockState.err = ""
	}
	s.blockState.mu.Unlock()
	if err != nil {
		s.log.Error("blocklist update failed; the list in force is kept", "url", s.cfg.BlocklistURL, "err", err)
		return s.blocklistView(), err
	}
	if err := s.loadBlocklists(); err != nil {
		return s.blocklistView(), err
	}
	return s.blocklistView(), nil
}

// fetchBlocklist downloads the list and keeps it if it holds a range.
func (s *seedbox) fetchBlocklist(ctx context.Context) error {
	url := s.cfg.BlocklistURL
	data, err := getBounded(ctx, url, "", maxBlocklistBytes)
	switch {
	case errors.Is(err, errOverLimit):
		return fmt.Errorf("blocklist %s: over %d MiB", url, maxBlocklistBytes>>20)
	case err != nil:
		return fmt.Errorf("blocklist %s: %w", url, err)
	}
	var set rangeSet
	rep, err := readList(bytes.NewReader(data), int64(len(data)), maxBlocklistBytes, &set)
	if err == nil && rep.Ranges == 0 {
		err = errors.New("holds no address range")
		if rep.FirstSkipped != "" {
			err = fmt.Errorf("holds no address range (%s)", rep.FirstSkipped)
		}
	}
	if err != nil {
		return fmt.Errorf("blocklist %s: %w; the copy already here is kept", url, err)
	}
	dir := s.blocklistDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("blocklists %s: %w", dir, err)
	}
	return atomicfile.Write(filepath.Join(dir, blocklistFromURL), data, 0o644)
}

// keepBlocklistFresh downloads blocklist_url's list when it is due
// (blocklistDue), until the plugin stops.
func (s *seedbox) keepBlocklistFresh(ctx context.Context) {
	for {
		due, ok := s.blocklistDue()
		if !ok {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(due)):
		}
		// An update by hand meanwhile may have put it off.
		if due, ok := s.blocklistDue(); ok && !due.After(time.Now()) {
			s.updateBlocklist(ctx)
		}
	}
}

// blocklistDue is when blocklist_url's list is to be downloaded next: now
// if there is no copy, blocklist_update after the copy was fetched, or
// blocklistRetry after a download that failed; ok is false when only an
// update by hand fetches it (blocklist_update = "0", and a copy is here).
func (s *seedbox) blocklistDue() (due time.Time, ok bool) {
	due = time.Now()
	if fi, err := os.Stat(filepath.Join(s.blocklistDir(), blocklistFromURL)); err == nil {
		if s.cfg.blocklistEvery == 0 {
			return due, false
		}
		due = fi.ModTime().Add(s.cfg.blocklistEvery)
	}
	s.blockState.mu.Lock()
	defer s.blockState.mu.Unlock()
	if s.blockState.err != "" {
		due = s.blockState.tried.Add(blocklistRetry)
	}
	return due, true
}

// blocklistView is the blocklists' state.
func (s *seedbox) blocklistView() BlocklistView {
	s.blockState.mu.Lock()
	defer s.blockState.mu.Unlock()
	v := BlocklistView{
		Ranges: s.blocks.NumRanges(), Refused: s.blocks.refused.Load(), Files: s.blockState.files,
		Folder: s.blocklistDir(), URL: s.cfg.BlocklistURL, UpdateError: s.blockState.err, Dropped: s.blockState.dropped,
	}
	if fi, err := os.Stat(filepath.Join(s.blocklistDir(), blocklistFromURL)); err == nil && s.cfg.BlocklistURL != "" {
		t := fi.ModTime()
		v.Fetched = &t
	}
	return v
}
