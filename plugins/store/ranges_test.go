package store

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"
)

// Ranges of a two-level file (more leaves than a node holds) come out as
// the same bytes of the whole: inside a leaf, across leaves and across
// the second level's nodes, at the ends, and a zero-length one.
func TestWriteRangeTwoLevels(t *testing.T) {
	const size = 175*chunkSize + 1000
	s, root, _ := importTest(t, size)
	d := dagServ{s: s}
	var whole bytes.Buffer
	if err := d.writeFile(context.Background(), &whole, root); err != nil {
		t.Fatal(err)
	}
	all := whole.Bytes()
	cases := [][2]int64{{0, 1}, {0, 512}, {100, 200}, {chunkSize - 10, chunkSize + 10}, {174*chunkSize - 5, 175*chunkSize + 5},
		{size - 1000, size}, {size - 1, size}, {0, size}, {5, 5}}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		a := rng.Int64N(size)
		cases = append(cases, [2]int64{a, a + rng.Int64N(size-a) + 1})
	}
	for _, c := range cases {
		var got bytes.Buffer
		if err := d.writeRange(context.Background(), &got, root, c[0], c[1]); err != nil {
			t.Fatalf("[%d, %d): %v", c[0], c[1], err)
		}
		if !bytes.Equal(got.Bytes(), all[c[0]:c[1]]) {
			t.Errorf("[%d, %d): %d bytes, not the file's", c[0], c[1], got.Len())
		}
	}
}

func TestParseRange(t *testing.T) {
	const size = 1000
	for _, c := range []struct {
		h                 string
		from, to          int64
		ok, unsatisfiable bool
	}{
		{"bytes=0-99", 0, 100, true, false},
		{"bytes=900-", 900, 1000, true, false},
		{"bytes=900-5000", 900, 1000, true, false},
		{"bytes=-100", 900, 1000, true, false},
		{"bytes=-5000", 0, 1000, true, false},
		{"bytes=1000-", 0, 0, false, true},
		{"bytes=-0", 0, 0, false, true},
		{"", 0, 0, false, false},
		{"bytes=0-1,5-6", 0, 0, false, false},
		{"items=0-1", 0, 0, false, false},
		{"bytes=5-1", 0, 0, false, false},
		{"bytes=a-b", 0, 0, false, false},
		{"bytes=-", 0, 0, false, false},
	} {
		from, to, ok, uns := parseRange(c.h, size)
		if from != c.from || to != c.to || ok != c.ok || uns != c.unsatisfiable {
			t.Errorf("%q: [%d, %d) ok %v unsatisfiable %v; want [%d, %d) %v %v", c.h, from, to, ok, uns, c.from, c.to, c.ok, c.unsatisfiable)
		}
	}
}

func FuzzParseRange(f *testing.F) {
	f.Add("bytes=0-99", int64(1000))
	f.Add("bytes=-5", int64(3))
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			return
		}
		from, to, ok, _ := parseRange(h, size)
		if ok && (from < 0 || to > size || from >= to) {
			t.Errorf("%q of %d: [%d, %d)", h, size, from, to)
		}
	})
}
