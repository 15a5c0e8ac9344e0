package store

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"testing"

	bsmsg "github.com/ipfs/boxo/bitswap/message"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-msgio"
	mh "github.com/multiformats/go-multihash"

	"github.com/vecino/vecino/sdk"
)

// FuzzParseTar: whatever a client sends as a folder, the import ends with
// a directory or an error, never a panic or a path outside the folder.
func FuzzParseTar(f *testing.F) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "a/b.txt", Typeflag: tar.TypeReg, Size: 3, Mode: 0o644})
	tw.Write([]byte("abc"))
	tw.WriteHeader(&tar.Header{Name: "../up", Typeflag: tar.TypeReg, Mode: 0o644})
	tw.Close()
	f.Add(buf.Bytes())
	f.Add([]byte("not a tar"))
	bs, err := openBlockstore(f.TempDir(), 1<<30)
	if err != nil {
		f.Fatal(err)
	}
	s := &store{bs: bs}
	f.Fuzz(func(t *testing.T, data []byte) {
		ds := newAsyncAdder(s)
		n, err := importTar(context.Background(), ds, bytes.NewReader(data))
		if cerr := ds.Close(); err == nil && cerr != nil {
			t.Fatal(cerr)
		}
		if err == nil && n == nil {
			t.Fatal("no directory and no error")
		}
	})
}

// FuzzParseBitswap: any bytes a peer sends on a bitswap stream parse to a
// message or an error, and taking the message in does not panic.
func FuzzParseBitswap(f *testing.F) {
	m := bsmsg.New(true)
	b := blocks.NewBlock([]byte("hello"))
	m.AddBlock(b)
	m.AddHave(b.Cid())
	var buf bytes.Buffer
	m.ToNetV1(&buf)
	f.Add(buf.Bytes())
	f.Add([]byte{0x05, 1, 2, 3, 4, 5})
	bs, err := openBlockstore(f.TempDir(), 1<<30)
	if err != nil {
		f.Fatal(err)
	}
	bit := newBitswap(nil, bs, func(string) bool { return false })
	f.Fuzz(func(t *testing.T, data []byte) {
		r := msgio.NewVarintReaderSize(bufio.NewReader(bytes.NewReader(data)), bitswapMaxMsg)
		for range 8 {
			m, _, err := bsmsg.FromMsgReader(r)
			if err != nil {
				return
			}
			bit.receive("fuzzer", m)
		}
	})
}

// FuzzReadRecord: whatever a pack's tail holds after a crash, reading a
// record gives a block that matches its CID, or an error; never a panic
// or a read past the end.
func FuzzReadRecord(f *testing.F) {
	data := []byte("a block")
	c, _ := cid.NewPrefixV1(cid.Raw, mh.SHA2_256).Sum(data)
	good := append(recordHead(c, int64(len(data))), data...)
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add([]byte("VB\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, block, next, err := readRecord(bytes.NewReader(raw), 0)
		if err != nil {
			return
		}
		if next > int64(len(raw)) || !hashMatches(got, block) {
			t.Fatalf("record %s of %d bytes ends at %d of %d", got, len(block), next, len(raw))
		}
	})
}

// FuzzHeardAnnouncements: whatever a peer announces, in parts or whole,
// the replicator keeps a set of its holdings and never panics; a whole
// announcement replaces the set, one of added pins adds to it.
func FuzzHeardAnnouncements(f *testing.F) {
	f.Add([]byte(`[{"free":1,"pins":[{"cid":"a"}]},{"round":7,"part":0,"parts":2,"pins":[{"cid":"b"}]},{"round":7,"part":1,"parts":2}]`))
	f.Add([]byte(`[{"round":-1,"part":-3,"parts":2},{"unpin":"a","unpinned":["bafkqaaa"]}]`))
	f.Add([]byte(`[{"round":1,"part":1,"parts":1000000000}]`))
	f.Add([]byte(`[{"round":7,"part":0,"parts":3,"pins":[{"cid":"a"}]},{"added":true,"round":8,"parts":2,"pins":[{"cid":"b"}]},{"round":7,"part":1,"parts":3}]`))
	pins, err := openPins(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	defer pins.Close()
	f.Fuzz(func(t *testing.T, raw []byte) {
		var as []announcement
		if json.Unmarshal(raw, &as) != nil {
			return
		}
		r := newReplicator(&store{env: sdk.Env{NodeID: "self"}, pins: pins})
		for _, a := range as {
			r.heard(context.Background(), "peer", a)
			ps := r.peers["peer"]
			if ps.roots == nil {
				t.Fatalf("no holdings after %+v", a)
			}
			if a.Added && a.Unpin == "" {
				for _, h := range a.Pins {
					if !ps.roots[h.Root] {
						t.Fatalf("an announcement of added pins named %q; not among the holdings after it", h.Root)
					}
				}
			}
			if a.Unpin != "" || a.Parts > 1 || a.Added {
				continue
			}
			for _, h := range a.Pins {
				if !ps.roots[h.Root] {
					t.Fatalf("a whole announcement named %q; not among the holdings after it", h.Root)
				}
			}
			if len(ps.roots) > len(a.Pins) {
				t.Fatalf("a whole announcement of %d pins left %d holdings", len(a.Pins), len(ps.roots))
			}
		}
	})
}
