package torrent

import (
	"bytes"
	"crypto/sha1"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
)

// goodTorrent is a two-file .torrent as a client would make it.
func goodTorrent(t testing.TB) []byte {
	pieces := sha1.Sum([]byte("x"))
	info := metainfo.Info{
		Name:        "album",
		PieceLength: 16384,
		Pieces:      bytes.Repeat(pieces[:], 2),
		Files: []metainfo.FileInfo{
			{Path: []string{"a.flac"}, Length: 20000},
			{Path: []string{"cover", "b.jpg"}, Length: 100},
		},
	}
	ib, err := bencode.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := (&metainfo.MetaInfo{InfoBytes: ib, Announce: "http://127.0.0.1:1/announce"}).Write(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestParseMetainfo(t *testing.T) {
	_, info, err := parseMetainfo(goodTorrent(t))
	if err != nil {
		t.Fatalf("good torrent refused: %v", err)
	}
	if info.TotalLength() != 20100 || len(info.Files) != 2 {
		t.Errorf("got %d bytes in %d files", info.TotalLength(), len(info.Files))
	}
	for _, c := range []struct{ in, want string }{
		{"", "empty"},
		{"d4:infod6:lengthi10e4:name1:x12:piece lengthi0e6:pieces20:aaaaaaaaaaaaaaaaaaaaee", "piece length 0"},
		{"d4:infod6:lengthi99999e4:name1:x12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaee", "need 7 hashes, not 1"},
		{"d4:infod5:filesld6:lengthi1e4:pathl2:..1:xeee4:name1:x12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaee", `unsafe file name ".."`},
		{"d4:infod5:filesld6:lengthi1e4:pathl3:a/b1:xeee4:name1:x12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaee", `unsafe file name "a/b"`},
		{"d4:infod6:lengthi-5e4:name1:x12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaee", "no data"},
	} {
		if _, _, err := parseMetainfo([]byte(c.in)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want an error saying %q", c.in, err, c.want)
		}
	}
}

// FuzzParseMetainfo: whatever arrives, parseMetainfo either refuses it or
// returns a torrent whose files all land inside the data folder and whose
// hashes cover its length; a panic inside the bencode library, which the
// parser turns into an error, counts as a finding too.
func FuzzParseMetainfo(f *testing.F) {
	f.Add(goodTorrent(f))
	f.Add([]byte("d4:infod6:lengthi10e4:name1:x12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaee"))
	f.Add([]byte("d8:announce3:urle"))
	f.Add([]byte("li1ei2ee"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, info, err := parseMetainfo(data)
		if err != nil {
			if strings.Contains(err.Error(), "malformed (") {
				t.Errorf("the bencode library panicked: %v", err)
			}
			return
		}
		n := (info.TotalLength() + info.PieceLength - 1) / info.PieceLength
		if info.TotalLength() <= 0 || int64(len(info.Pieces)/20) != n {
			t.Fatalf("accepted %d bytes with %d hashes of %d-byte pieces", info.TotalLength(), len(info.Pieces)/20, info.PieceLength)
		}
		root := "/data"
		check := func(parts ...string) {
			p := filepath.Join(append([]string{root, info.BestName()}, parts...)...)
			if !strings.HasPrefix(p, root+"/") || p == root+"/" {
				t.Fatalf("accepted a file that lands at %q", p)
			}
		}
		check()
		for _, fi := range info.Files {
			check(fi.BestPath()...)
		}
	})
}

func FuzzParsePeer(f *testing.F) {
	for _, s := range []string{"127.0.0.1:51413", "[::1]:6881", "127.0.0.1:0", "host:1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ap, err := parsePeer(s)
		if err != nil {
			return
		}
		if !ap.IsValid() || ap.Port() == 0 {
			t.Fatalf("%q accepted as %v", s, ap)
		}
	})
}
