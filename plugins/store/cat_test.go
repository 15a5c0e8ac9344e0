package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// importTest adds size bytes of random data to a new store and returns
// the store, the file's root and the data's sha256.
func importTest(t *testing.T, size int64) (*store, ipld.Node, [32]byte) {
	t.Helper()
	bs, err := openBlockstore(t.TempDir(), 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bs.Close() })
	s := &store{bs: bs}
	h := sha256.New()
	r := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{7}), size), h)
	ds := newAsyncAdder(s)
	root, err := importFile(ds, r)
	if err == nil {
		err = ds.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	return s, root, [32]byte(h.Sum(nil))
}

// A file of two levels of links (more leaves than a node holds) comes
// out whole, as boxo's DagReader reads it, and with its size.
func TestWriteFileTwoLevels(t *testing.T) {
	const size = 175*chunkSize + 1000
	s, root, want := importTest(t, size)
	d := dagServ{s: s}
	h := sha256.New()
	if err := d.writeFile(context.Background(), h, root); err != nil {
		t.Fatal(err)
	}
	if [32]byte(h.Sum(nil)) != want {
		t.Fatal("the file came out different")
	}
	if n, err := fileSize(root); n != size || err != nil {
		t.Errorf("fileSize = %d, %v; want %d", n, err, size)
	}
	rd, err := uio.NewDagReader(context.Background(), root, d)
	if err != nil {
		t.Fatal(err)
	}
	h.Reset()
	io.Copy(h, rd)
	if [32]byte(h.Sum(nil)) != want {
		t.Fatal("boxo reads the file differently")
	}
}

// failAfter is a writer that fails once it has taken n bytes.
type failAfter struct{ n int }

var errFull = errors.New("client gone")

func (w *failAfter) Write(p []byte) (int, error) {
	if w.n -= len(p); w.n < 0 {
		return 0, errFull
	}
	return len(p), nil
}

// A client that goes away mid-file ends the write with its error; a leaf
// missing here (and no neighbour asked) ends it with not found.
func TestWriteFileStops(t *testing.T) {
	s, root, _ := importTest(t, 40*chunkSize)
	d := dagServ{s: s}
	if err := d.writeFile(context.Background(), &failAfter{n: 10 * chunkSize}, root); !errors.Is(err, errFull) {
		t.Errorf("write to a writer that fails: %v", err)
	}
	leaf := root.Links()[20].Cid
	s.bs.drop([]cid.Cid{leaf}, nil)
	var out bytes.Buffer
	err := d.writeFile(context.Background(), &out, root)
	if !errors.Is(err, errNotFound) || out.Len() != 20*chunkSize {
		t.Errorf("a missing leaf: %v after %d bytes", err, out.Len())
	}
}
