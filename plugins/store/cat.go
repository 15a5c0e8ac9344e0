package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// Reading a file out: the leaves are read (and hashed) catWindow ahead
// of the one being written, into buffers that go back to a pool once
// written. boxo's DagReader read up to 15 leaves ahead into fresh memory
// each; the garbage it made set the store's peak memory during a get.
const (
	catWindow = 4
	maxDepth  = 64 // a balanced DAG of 174 links a node needs 6 for 1 PiB
)

var leafPool = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

// fileSize is the length of the UnixFS file n.
func fileSize(n ipld.Node) (uint64, error) {
	switch n := n.(type) {
	case *merkledag.RawNode:
		return uint64(len(n.RawData())), nil
	case *merkledag.ProtoNode:
		fs, err := fileNode(n)
		if err != nil {
			return 0, err
		}
		return fs.FileSize(), nil
	}
	return 0, fmt.Errorf("%s: %w", n.Cid(), errNotUnixFS)
}

func fileNode(n *merkledag.ProtoNode) (*ft.FSNode, error) {
	fs, err := ft.FSNodeFromBytes(n.Data())
	if err != nil {
		return nil, fmt.Errorf("%s: %w (%v)", n.Cid(), errNotUnixFS, err)
	}
	if t := fs.Type(); t != ft.TFile && t != ft.TRaw {
		return nil, fmt.Errorf("%s: UnixFS type %s, not a file: %w", n.Cid(), t, errNotUnixFS)
	}
	return fs, nil
}

// fileNodeAt is fileNode for a node depth levels down a file's DAG,
// refusing a DAG deeper than any file needs.
func fileNodeAt(n *merkledag.ProtoNode, depth int) (*ft.FSNode, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("%s: a file DAG deeper than %d levels", n.Cid(), maxDepth)
	}
	return fileNode(n)
}

// writeFile writes the content of the UnixFS file n to w.
func (d dagServ) writeFile(ctx context.Context, w io.Writer, n ipld.Node) error {
	return d.writeNode(ctx, w, n, 0)
}

func (d dagServ) writeNode(ctx context.Context, w io.Writer, n ipld.Node, depth int) error {
	switch n := n.(type) {
	case *merkledag.RawNode:
		_, err := w.Write(n.RawData())
		return err
	case *merkledag.ProtoNode:
		fs, err := fileNodeAt(n, depth)
		if err != nil {
			return err
		}
		if _, err := w.Write(fs.Data()); err != nil {
			return err
		}
		return d.writeChildren(ctx, w, n.Links(), depth+1)
	}
	return fmt.Errorf("%s: %w", n.Cid(), errNotUnixFS)
}

// piece is a child of a file node as read ahead: a leaf's data (in a
// pooled buffer when pooled is set) or a node to go down into.
type piece struct {
	data   []byte
	pooled *[]byte
	node   ipld.Node
	err    error
}

func (p piece) release() {
	if p.pooled != nil {
		leafPool.Put(p.pooled)
	}
}

// writeChildren writes the children of a file node in order, reading
// catWindow of them ahead.
func (d dagServ) writeChildren(ctx context.Context, w io.Writer, links []*ipld.Link, depth int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ahead := make([]chan piece, len(links))
	started := 0
	start := func() {
		ch, c := make(chan piece, 1), links[started].Cid
		ahead[started] = ch
		started++
		go func() { ch <- d.readPiece(ctx, c) }()
	}
	for started < min(catWindow, len(links)) {
		start()
	}
	var err error
	for i := 0; i < started; i++ {
		p := <-ahead[i]
		if err == nil && started < len(links) {
			start()
		}
		if err == nil {
			switch err = p.err; {
			case err != nil:
				cancel()
			case p.node != nil:
				err = d.writeNode(ctx, w, p.node, depth)
			default:
				_, err = w.Write(p.data)
			}
		}
		p.release()
	}
	return err
}

// readPiece reads a child: a raw leaf stored here into a pooled buffer;
// anything else, or a leaf missing or corrupt here, as a node fetched
// from here or the network.
func (d dagServ) readPiece(ctx context.Context, c cid.Cid) piece {
	if c.Type() == cid.Raw {
		buf := leafPool.Get().(*[]byte)
		data, err := d.s.bs.read(c, *buf)
		if err == nil {
			return piece{data: data, pooled: buf}
		}
		leafPool.Put(buf)
		var ce *corruptError
		if !errors.Is(err, errNotFound) && !errors.As(err, &ce) {
			return piece{err: err}
		}
	}
	n, err := d.Get(ctx, c)
	if err != nil {
		return piece{err: err}
	}
	if raw, ok := n.(*merkledag.RawNode); ok {
		return piece{data: raw.RawData()}
	}
	return piece{node: n}
}
