package store

// Part of a file: a gateway's range request (a player's seek, a resumed
// download) reads the leaves the range covers and no others, going down
// the file's DAG by the sizes each node records of its children.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/ipfs/boxo/ipld/merkledag"
	ipld "github.com/ipfs/go-ipld-format"
)

// ranger writes what falls in [from, to) of the bytes put to it, each at
// its offset in the file.
type ranger struct {
	w        io.Writer
	from, to int64
}

// errRangeDone stops a walk once the range is written.
var errRangeDone = errors.New("range written")

func (rg *ranger) put(pos int64, data []byte) error {
	end := pos + int64(len(data))
	if end <= rg.from || pos >= rg.to {
		return nil
	}
	lo, hi := max(pos, rg.from)-pos, min(end, rg.to)-pos
	if _, err := rg.w.Write(data[lo:hi]); err != nil {
		return err
	}
	if end >= rg.to {
		return errRangeDone
	}
	return nil
}

// writeRange writes bytes [from, to) of the UnixFS file n to w.
func (d dagServ) writeRange(ctx context.Context, w io.Writer, n ipld.Node, from, to int64) error {
	if from >= to {
		return nil
	}
	err := d.rangeNode(ctx, &ranger{w: w, from: from, to: to}, n, 0, 0)
	if errors.Is(err, errRangeDone) {
		return nil
	}
	return err
}

func (d dagServ) rangeNode(ctx context.Context, rg *ranger, n ipld.Node, pos int64, depth int) error {
	switch n := n.(type) {
	case *merkledag.RawNode:
		return rg.put(pos, n.RawData())
	case *merkledag.ProtoNode:
		fs, err := fileNodeAt(n, depth)
		if err != nil {
			return err
		}
		if err := rg.put(pos, fs.Data()); err != nil {
			return err
		}
		pos += int64(len(fs.Data()))
		sizes, links := fs.BlockSizes(), n.Links()
		if len(sizes) != len(links) {
			return fmt.Errorf("%s: %d links but %d block sizes", n.Cid(), len(links), len(sizes))
		}
		for i, l := range links {
			end := pos + int64(sizes[i])
			if end <= rg.from { // before the range: not read
				pos = end
				continue
			}
			if pos >= rg.to {
				return errRangeDone
			}
			p := d.readPiece(ctx, l.Cid)
			switch {
			case p.err != nil:
				err = p.err
			case p.node != nil:
				err = d.rangeNode(ctx, rg, p.node, pos, depth+1)
			default:
				err = rg.put(pos, p.data)
			}
			p.release()
			if err != nil {
				return err
			}
			pos = end
		}
		return nil
	}
	return fmt.Errorf("%s: %w", n.Cid(), errNotUnixFS)
}

// parseRange reads a Range header for a file of size bytes: one range
// of bytes, [from, to). ok is false when the header asks for no single
// byte range this answers (none, several, another unit): the whole file
// is then sent, as RFC 9110 allows. unsatisfiable is set for a range
// that starts past the end.
func parseRange(h string, size int64) (from, to int64, ok, unsatisfiable bool) {
	spec, found := strings.CutPrefix(strings.TrimSpace(h), "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false, false
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false, false
	}
	if first == "" { // the last N bytes
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n < 0 {
			return 0, 0, false, false
		}
		if n == 0 || size == 0 {
			return 0, 0, false, true
		}
		return max(size-n, 0), size, true, false
	}
	a, err := strconv.ParseInt(first, 10, 64)
	if err != nil || a < 0 {
		return 0, 0, false, false
	}
	b := size - 1
	if last != "" {
		if b, err = strconv.ParseInt(last, 10, 64); err != nil || b < a {
			return 0, 0, false, false
		}
	}
	if a >= size {
		return 0, 0, false, true
	}
	return a, min(b+1, size), true, false
}
