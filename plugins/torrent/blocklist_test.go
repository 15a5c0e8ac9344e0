package torrent

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vecino/vecino/sdk"
)

func TestParseRangeLine(t *testing.T) {
	for _, c := range []struct {
		line, first, last string
		err               string
	}{
		{"Some ISP: spammers:1.2.3.0-1.2.3.255", "1.2.3.0", "1.2.3.255", ""},
		{"001.002.003.000 - 001.002.003.255 , 000 , Bad people", "1.2.3.0", "1.2.3.255", ""},
		{"10.0.0.0/8", "10.0.0.0", "10.255.255.255", ""},
		{"10.1.2.3/8", "10.0.0.0", "10.255.255.255", ""},
		{"2001:db8::/32", "2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", ""},
		{"::ffff:1.2.3.0/120", "1.2.3.0", "1.2.3.255", ""},
		{"  192.0.2.7  ", "192.0.2.7", "192.0.2.7", ""},
		{"192.0.2.7-192.0.2.9", "192.0.2.7", "192.0.2.9", ""},
		{"v6 peers:2001:db8::1-2001:db8::ff", "2001:db8::1", "2001:db8::ff", ""},
		{"# a comment", "", "", ""},
		{"// a comment", "", "", ""},
		{"", "", "", ""},
		{"<html><body>Not found</body></html>", "", "", "not an address"},
		{"x:1.2.3.9-1.2.3.0", "", "", "no range: 1.2.3.9-1.2.3.0 ends before it starts"},
		{"x:1.2.3.4-2001:db8::1", "", "", "mixes IPv4 and IPv6"},
		{"x:2001:db8::1", "", "", "not an address"},
		{"1.2.3.256", "", "", "not an address"},
		{"fe80::1%eth0", "", "", "not an address"},
		{strings.Repeat("a", 2000) + ":1.2.3.4-1.2.3.5", "", "", "over 1024 bytes"},
	} {
		first, last, ok, err := parseRangeLine(c.line)
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%.40q: %v, want an error saying %q", c.line, err, c.err)
			}
		case err != nil:
			t.Errorf("%.40q: %v", c.line, err)
		case c.first == "":
			if ok {
				t.Errorf("%q: read as %s-%s, want nothing", c.line, first, last)
			}
		case !ok || first.String() != c.first || last.String() != c.last:
			t.Errorf("%q: %s-%s (ok %v), want %s-%s", c.line, first, last, ok, c.first, c.last)
		}
	}
}

func TestRangesMergeAndLookUp(t *testing.T) {
	var set rangeSet
	rep, err := readList(strings.NewReader(`# overlapping, touching and out of order
b:10.0.0.20-10.0.0.30
a:10.0.0.10-10.0.0.25
c:10.0.0.31-10.0.0.40
d:255.255.255.255-255.255.255.255
e:0.0.0.0-0.0.0.0
2001:db8::/120
2001:db8::100-2001:db8::1ff
this line is junk
10.9.9.9
`), 1<<20, 1<<20, &set)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Ranges != 8 || rep.Skipped != 1 || !strings.HasPrefix(rep.FirstSkipped, "line 9: ") {
		t.Errorf("report %+v, want 8 ranges, 1 skipped at line 9", rep)
	}
	r := set.ranges()
	if r.Len() != 7 {
		t.Errorf("%d ranges after merging, want 7 (10.0.0.10-30, 10.0.0.31-40, 10.9.9.9, 0.0.0.0, 255.255.255.255, 2001:db8::-ff, 2001:db8::100-1ff): %+v", r.Len(), r)
	}
	for addr, want := range map[string]bool{
		"10.0.0.9": false, "10.0.0.10": true, "10.0.0.31": true, "10.0.0.40": true, "10.0.0.41": false,
		"10.9.9.9": true, "10.9.9.8": false, "0.0.0.0": true, "0.0.0.1": false, "255.255.255.255": true,
		"::ffff:10.0.0.12": true, "2001:db8::ff": true, "2001:db8::1ff": true, "2001:db8::200": false, "::1": false,
	} {
		if got := r.contains(netip.MustParseAddr(addr)); got != want {
			t.Errorf("%s blocked: %v, want %v", addr, got, want)
		}
	}
	var b blocklist
	b.cur.Store(r)
	if _, ok := b.Lookup(net.ParseIP("10.0.0.15")); !ok || b.refused.Load() != 1 {
		t.Errorf("Lookup of a blocked address: %v, %d refused", ok, b.refused.Load())
	}
	if _, ok := b.Lookup(net.ParseIP("127.0.0.1")); ok || b.refused.Load() != 1 {
		t.Errorf("Lookup of a free address: %v, %d refused", ok, b.refused.Load())
	}
}

// TestLongLines: a line longer than the reader's buffer is one line
// skipped, not the end of the list: the range after it is read.
func TestLongLines(t *testing.T) {
	for name, list := range map[string]string{
		"in the middle": "a:10.0.0.1-10.0.0.2\n" + strings.Repeat("z", 10000) + "\nb:10.0.0.5-10.0.0.6\njunk\n",
		"at the end":    "a:10.0.0.1-10.0.0.2\nb:10.0.0.5-10.0.0.6\njunk\n" + strings.Repeat("z", 10000),
	} {
		var set rangeSet
		rep, err := readList(strings.NewReader(list), int64(len(list)), 1<<20, &set)
		wantFirst := "line 2: over 1024 bytes"
		if name == "at the end" {
			wantFirst = "line 3: not an address"
		}
		if err != nil || rep.Ranges != 2 || rep.Skipped != 2 || !strings.HasPrefix(rep.FirstSkipped, wantFirst) {
			t.Errorf("%s: %+v, %v; want 2 ranges, 2 lines skipped, the first %q", name, rep, err, wantFirst)
		}
	}
}

// TestPackedLists: a list comes gzipped or zipped, as lists are served.
func TestPackedLists(t *testing.T) {
	const text = "club:192.0.2.0-192.0.2.255\n"
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(text))
	zw.Close()
	var zipped bytes.Buffer
	w := zip.NewWriter(&zipped)
	f, _ := w.Create("level1.txt")
	f.Write([]byte(text))
	w.Close()
	for name, data := range map[string][]byte{"gzip": gz.Bytes(), "zip": zipped.Bytes()} {
		var set rangeSet
		rep, err := readList(bytes.NewReader(data), int64(len(data)), 1<<20, &set)
		if err != nil || rep.Ranges != 1 || !set.ranges().contains(netip.MustParseAddr("192.0.2.9")) {
			t.Errorf("%s: %+v, %v; want the one range", name, rep, err)
		}
	}
	var set rangeSet
	bad := gz.Bytes()[:10]
	if _, err := readList(bytes.NewReader(bad), int64(len(bad)), 1<<20, &set); err == nil {
		t.Error("a cut gzip file read without error")
	}
}

// TestBlocklistUpdate: a download that holds no range (an error page) is
// refused and the list in force kept; a good one replaces it; the files
// of the folder are read beside it, and a peer in it is not dialled.
func TestBlocklistUpdate(t *testing.T) {
	list := "spammer:127.0.0.5-127.0.0.5\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(list)) }))
	defer srv.Close()
	s := New().(*seedbox)
	env := sdk.Env{DataDir: t.TempDir()}
	if err := s.Configure(context.Background(), []byte(`blocklist_url = "`+srv.URL+`"`), env); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(s.blocklistDir(), 0o755)
	os.WriteFile(filepath.Join(s.blocklistDir(), "mine.txt"), []byte("192.0.2.0/24\nnonsense\n"), 0o644)
	v, err := s.updateBlocklist(context.Background())
	if err != nil || v.Ranges != 2 || v.Files["mine.txt"].Skipped != 1 || v.Files[blocklistFromURL].Ranges != 1 {
		t.Fatalf("first update: %+v, %v", v, err)
	}
	list = "<html>502 Bad Gateway</html>\n"
	v, err = s.updateBlocklist(context.Background())
	if err == nil || !strings.Contains(err.Error(), "holds no address range (line 1:") || v.Ranges != 2 || v.UpdateError == "" {
		t.Errorf("update from an error page: %+v, %v; want it refused, the 2 ranges kept", v, err)
	}
	if !s.blocks.blocks(netip.MustParseAddr("127.0.0.5")) {
		t.Error("127.0.0.5 no longer blocked after a refused update")
	}
	list = "127.0.0.6\n127.0.0.7\n"
	if v, err = s.updateBlocklist(context.Background()); err != nil || v.Ranges != 3 || v.UpdateError != "" {
		t.Errorf("update: %+v, %v; want 127.0.0.6, 127.0.0.7 and 192.0.2.0/24", v, err)
	}
	if s.blocks.blocks(netip.MustParseAddr("127.0.0.5")) || !s.blocks.blocks(netip.MustParseAddr("127.0.0.7")) {
		t.Error("the new list is not the one in force")
	}

	// Without the URL the copy from it is no longer read.
	s2 := New().(*seedbox)
	s2.Configure(context.Background(), nil, env)
	if v, err := s2.updateBlocklist(context.Background()); err == nil || v.Ranges != 1 {
		t.Errorf("with no blocklist_url: %+v, %v; want an error and mine.txt's range alone", v, err)
	}
}

func TestBlocklistSettings(t *testing.T) {
	for _, c := range []string{`blocklist_url = "file:///etc/hosts"`, `blocklist_update = "1s"`, `blocklist_update = "weekly"`} {
		err := New().Configure(context.Background(), []byte(c), sdk.Env{DataDir: t.TempDir()})
		key, _, _ := strings.Cut(c, " ")
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: %v, want an error naming %s", c, err, key)
		}
	}
}

// FuzzReadBlocklist: a list from anywhere is read or refused; whatever is
// read, each range holds its own ends and nothing it did not read.
func FuzzReadBlocklist(f *testing.F) {
	f.Add([]byte("a:1.2.3.4-1.2.3.9\n001.002.003.010 - 001.002.003.020 , 000 , b\n10.0.0.0/8\n2001:db8::/64\n"))
	f.Add([]byte("x:2001:db8::1-2001:db8::2\n1.2.3.4\n# c\n"))
	f.Add([]byte("1.2.3.0/24\n1.2.3.4-1.2.3.300\n1.2.3.5-1.2.4.0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var set rangeSet
		// 1 MiB unpacked at most: a gzip bomb reaches the bound at once,
		// not after the 64 MiB a list may have.
		rep, err := readList(bytes.NewReader(data), int64(len(data)), 1<<20, &set)
		if err != nil {
			return
		}
		if rep.Ranges != len(set.v4)+len(set.v6) {
			t.Fatalf("report says %d ranges, set has %d", rep.Ranges, len(set.v4)+len(set.v6))
		}
		in := append([]range4(nil), set.v4...)
		r := set.ranges()
		for _, x := range in {
			for _, ip := range []uint32{x.first, x.last} {
				a := netip.AddrFrom4([4]byte{byte(ip >> 24), byte(ip >> 16), byte(ip >> 8), byte(ip)})
				if !r.contains(a) {
					t.Fatalf("%s read but not blocked", a)
				}
			}
		}
		for i := 1; i < len(r.v4); i++ {
			if r.v4[i].first <= r.v4[i-1].last {
				t.Fatalf("ranges %d and %d overlap", i-1, i)
			}
		}
	})
}

// BenchmarkReadBlocklist reads a list the size of the public level1 list
// (250,000 P2P ranges, gzipped, as it is served) into the ranges in
// force; it reports the time per list and what the ranges take in memory.
func BenchmarkReadBlocklist(b *testing.B) {
	var text bytes.Buffer
	for i := range 250_000 {
		a := uint32(i) * 16_000
		fmt.Fprintf(&text, "Some Org %d:%d.%d.%d.%d-%d.%d.%d.%d\n", i%500, a>>24, a>>16&255, a>>8&255, 0, a>>24, a>>16&255, a>>8&255, 255)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(text.Bytes())
	zw.Close()
	b.SetBytes(int64(text.Len()))
	b.ReportAllocs()
	var r *ipRanges
	for b.Loop() {
		var set rangeSet
		if _, err := readList(bytes.NewReader(gz.Bytes()), int64(gz.Len()), maxBlocklistBytes, &set); err != nil {
			b.Fatal(err)
		}
		r = set.ranges()
	}
	b.ReportMetric(float64(r.Len()), "ranges")
	b.ReportMetric(float64(cap(r.v4)*8+cap(r.v6)*32)/(1<<20), "MiB-kept")
	b.ReportMetric(float64(text.Len())/(1<<20), "MiB-text")
}

// TestBlocklistDue: the list is fetched at once when there is no copy, an
// hour after a download that failed, blocklist_update after the copy was
// fetched, and, with blocklist_update = "0", only by hand once there is a
// copy.
func TestBlocklistDue(t *testing.T) {
	ok := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !ok {
			http.Error(w, "gone", http.StatusNotFound)
			return
		}
		w.Write([]byte("127.0.0.5\n"))
	}))
	defer srv.Close()
	for _, every := range []string{"24h", "0"} {
		s := New().(*seedbox)
		if err := s.Configure(context.Background(), []byte(`blocklist_url = "`+srv.URL+`"`+"\nblocklist_update = \""+every+`"`), sdk.Env{DataDir: t.TempDir()}); err != nil {
			t.Fatal(err)
		}
		if due, yes := s.blocklistDue(); !yes || time.Until(due) > time.Second {
			t.Errorf("%s, no copy: due %s (%v), want now", every, time.Until(due), yes)
		}
		ok = false
		s.updateBlocklist(context.Background())
		if due, yes := s.blocklistDue(); !yes || time.Until(due) < 59*time.Minute || time.Until(due) > time.Hour {
			t.Errorf("%s, after a failed download: due in %s (%v), want an hour", every, time.Until(due), yes)
		}
		ok = true
		s.updateBlocklist(context.Background())
		due, yes := s.blocklistDue()
		switch {
		case every == "0" && yes:
			t.Errorf("blocklist_update = 0 with a copy: due in %s, want by hand only", time.Until(due))
		case every == "24h" && (!yes || time.Until(due) < 23*time.Hour):
			t.Errorf("24h after a download: due in %s (%v)", time.Until(due), yes)
		}
	}
}
