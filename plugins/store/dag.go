package store

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"

	chunker "github.com/ipfs/boxo/chunker"
	"github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/boxo/ipld/unixfs/importer/balanced"
	"github.com/ipfs/boxo/ipld/unixfs/importer/helpers"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"
)

// The layout `ipfs add --cid-version=1` makes: CIDv1, sha2-256, raw
// leaves of 256 KiB, balanced trees of up to 174 links, dag-pb nodes.
const chunkSize = 256 << 10

var cidBuilder = cid.V1Builder{Codec: cid.DagProtobuf, MhType: mh.SHA2_256}

// dagServ is the store as the IPFS libraries see it. With a session, a
// block missing here (or found corrupt) is fetched from the network.
type dagServ struct {
	s    *store
	sess *session
}

var _ ipld.DAGService = dagServ{}

func decodeNode(b blocks.Block) (ipld.Node, error) {
	switch b.Cid().Type() {
	case cid.DagProtobuf:
		return merkledag.DecodeProtobufBlock(b)
	case cid.Raw:
		return merkledag.DecodeRawBlock(b)
	default:
		return nil, fmt.Errorf("block %s: codec %#x is not dag-pb or raw", b.Cid(), b.Cid().Type())
	}
}

func (d dagServ) Get(ctx context.Context, c cid.Cid) (ipld.Node, error) {
	b, err := d.s.block(ctx, c, d.sess)
	if err != nil {
		return nil, err
	}
	return decodeNode(b)
}

// readers is how many blocks GetMany reads (and hashes) at once; writers
// how many an import writes at once.
const (
	readers = 4
	writers = 4
)

// GetMany reads blocks in parallel and hands them over as they come; a
// reader walking a file asks for the next few this way.
func (d dagServ) GetMany(ctx context.Context, cs []cid.Cid) <-chan *ipld.NodeOption {
	out := make(chan *ipld.NodeOption, len(cs))
	next := make(chan cid.Cid, len(cs))
	for _, c := range cs {
		next <- c
	}
	close(next)
	var wg sync.WaitGroup
	for range min(readers, len(cs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range next {
				n, err := d.Get(ctx, c)
				out <- &ipld.NodeOption{Node: n, Err: err}
			}
		}()
	}
	go func() { wg.Wait(); close(out) }()
	return out
}

func (d dagServ) Add(_ context.Context, n ipld.Node) error { return d.s.bs.Put(n) }

func (d dagServ) AddMany(ctx context.Context, ns []ipld.Node) error {
	for _, n := range ns {
		if err := d.Add(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// Blocks go only through garbage collection.
func (d dagServ) Remove(context.Context, cid.Cid) error       { return nil }
func (d dagServ) RemoveMany(context.Context, []cid.Cid) error { return nil }

// asyncAdder writes the blocks an import makes on a few goroutines, so
// that chunking and hashing go on while files are written. Close waits
// for the writes and returns the first error.
type asyncAdder struct {
	dagServ
	work    chan blocks.Block
	workers sync.WaitGroup
	pending sync.WaitGroup
	mu      sync.Mutex
	err     error
}

func newAsyncAdder(s *store) *asyncAdder {
	a := &asyncAdder{dagServ: dagServ{s: s}, work: make(chan blocks.Block, writers)}
	for range writers {
		a.workers.Add(1)
		go func() {
			defer a.workers.Done()
			for b := range a.work {
				if err := s.bs.Put(b); err != nil {
					a.mu.Lock()
					if a.err == nil {
						a.err = err
					}
					a.mu.Unlock()
				}
				a.pending.Done()
			}
		}()
	}
	return a
}

func (a *asyncAdder) firstErr() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

func (a *asyncAdder) Add(_ context.Context, n ipld.Node) error {
	if err := a.firstErr(); err != nil {
		return err
	}
	a.pending.Add(1)
	a.work <- n
	return nil
}

func (a *asyncAdder) AddMany(ctx context.Context, ns []ipld.Node) error {
	for _, n := range ns {
		if err := a.Add(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// Get waits for the writes under way: a directory being built may read
// back a node it has just added.
func (a *asyncAdder) Get(ctx context.Context, c cid.Cid) (ipld.Node, error) {
	a.pending.Wait()
	return a.dagServ.Get(ctx, c)
}

func (a *asyncAdder) GetMany(ctx context.Context, cs []cid.Cid) <-chan *ipld.NodeOption {
	a.pending.Wait()
	return a.dagServ.GetMany(ctx, cs)
}

func (a *asyncAdder) Close() error {
	close(a.work)
	a.workers.Wait()
	return a.firstErr()
}

// importFile chunks r into the store and returns the file's root node.
func importFile(ds ipld.DAGService, r io.Reader) (ipld.Node, error) {
	params := helpers.DagBuilderParams{
		Dagserv:    ds,
		RawLeaves:  true,
		Maxlinks:   helpers.DefaultLinksPerBlock,
		CidBuilder: cidBuilder,
	}
	db, err := params.New(chunker.NewSizeSplitter(r, chunkSize))
	if err != nil {
		return nil, err
	}
	return balanced.Layout(db)
}

// importTar stores a directory sent as a tar stream (paths relative to
// the directory) and returns the directory's node.
func importTar(ctx context.Context, ds ipld.DAGService, r io.Reader) (ipld.Node, error) {
	dirs := map[string]uio.Directory{}
	var mkdir func(p string) (uio.Directory, error)
	mkdir = func(p string) (uio.Directory, error) {
		if d, ok := dirs[p]; ok {
			return d, nil
		}
		d, err := uio.NewDirectory(ds, uio.WithCidBuilder(cidBuilder))
		if err != nil {
			return nil, err
		}
		dirs[p] = d
		if p != "." {
			if _, err := mkdir(path.Dir(p)); err != nil {
				return nil, err
			}
		}
		return d, nil
	}
	if _, err := mkdir("."); err != nil {
		return nil, err
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read tar: %w", err)
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "/"))
		if name == "." {
			continue
		}
		if name == ".." || strings.HasPrefix(name, "../") {
			return nil, fmt.Errorf("tar entry %q: path leaves the directory", h.Name)
		}
		var node ipld.Node
		switch h.Typeflag {
		case tar.TypeDir:
			if _, err := mkdir(name); err != nil {
				return nil, err
			}
			continue
		case tar.TypeReg:
			node, err = importFile(ds, tr)
		case tar.TypeSymlink:
			node, err = symlinkNode(ds, h.Linkname)
		default:
			return nil, fmt.Errorf("tar entry %q: type %q is not a file, directory or symlink", h.Name, h.Typeflag)
		}
		if err != nil {
			return nil, fmt.Errorf("add %s: %w", name, err)
		}
		parent, err := mkdir(path.Dir(name))
		if err != nil {
			return nil, err
		}
		if err := parent.AddChild(ctx, path.Base(name), node); err != nil {
			return nil, fmt.Errorf("add %s: %w", name, err)
		}
	}
	return closeDir(ctx, ds, dirs, ".")
}

// closeDir stores directory p after its subdirectories, children first.
func closeDir(ctx context.Context, ds ipld.DAGService, dirs map[string]uio.Directory, p string) (ipld.Node, error) {
	d := dirs[p]
	for sub := range dirs {
		if sub != "." && path.Dir(sub) == p {
			n, err := closeDir(ctx, ds, dirs, sub)
			if err != nil {
				return nil, err
			}
			if err := d.AddChild(ctx, path.Base(sub), n); err != nil {
				return nil, fmt.Errorf("add %s: %w", sub, err)
			}
		}
	}
	n, err := d.GetNode()
	if err != nil {
		return nil, fmt.Errorf("directory %s: %w", p, err)
	}
	return n, ds.Add(ctx, n)
}

func symlinkNode(ds ipld.DAGService, target string) (ipld.Node, error) {
	data, err := ft.SymlinkData(target)
	if err != nil {
		return nil, err
	}
	n := merkledag.NodeWithData(data)
	if err := n.SetCidBuilder(cidBuilder); err != nil {
		return nil, err
	}
	return n, ds.Add(context.Background(), n)
}

// links lists the CIDs a block points to.
func links(b blocks.Block) ([]cid.Cid, error) {
	if b.Cid().Type() == cid.Raw {
		return nil, nil
	}
	n, err := decodeNode(b)
	if err != nil {
		return nil, err
	}
	out := make([]cid.Cid, 0, len(n.Links()))
	for _, l := range n.Links() {
		out = append(out, l.Cid)
	}
	return out, nil
}

// walkDAG calls visit for every block under root, up to window at once;
// visit returns the block's links. The first error ends the walk.
func walkDAG(ctx context.Context, root cid.Cid, window int, visit func(context.Context, cid.Cid) ([]cid.Cid, error)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		links []cid.Cid
		err   error
	}
	results := make(chan result, window)
	queue := []cid.Cid{root}
	seen := map[cid.Cid]bool{root: true}
	inflight := 0
	var firstErr error
	for len(queue) > 0 || inflight > 0 {
		for len(queue) > 0 && inflight < window && firstErr == nil {
			c := queue[0]
			queue = queue[1:]
			inflight++
			go func() {
				ls, err := visit(ctx, c)
				results <- result{ls, err}
			}()
		}
		if inflight == 0 {
			break
		}
		r := <-results
		inflight--
		if r.err != nil {
			if firstErr == nil {
				firstErr = r.err
				cancel()
			}
			continue
		}
		for _, l := range r.links {
			if !seen[l] {
				seen[l] = true
				queue = append(queue, l)
			}
		}
	}
	return firstErr
}

// errNotUnixFS is returned for roots that are neither file nor directory.
var errNotUnixFS = errors.New("not a UnixFS file or directory")

// writeTar writes the file or directory at n as a tar stream rooted at name.
func writeTar(ctx context.Context, ds dagServ, n ipld.Node, name string, tw *tar.Writer) error {
	if _, ok := n.(*merkledag.RawNode); ok {
		return tarFile(ctx, ds, n, name, tw)
	}
	pn, ok := n.(*merkledag.ProtoNode)
	if !ok {
		return fmt.Errorf("%s: %w", name, errNotUnixFS)
	}
	fs, err := ft.FSNodeFromBytes(pn.Data())
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	switch fs.Type() {
	case ft.TFile, ft.TRaw:
		return tarFile(ctx, ds, n, name, tw)
	case ft.TSymlink:
		return tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: string(fs.Data()), Mode: 0o777})
	case ft.TDirectory, ft.THAMTShard:
		if err := tw.WriteHeader(&tar.Header{Name: name + "/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
			return err
		}
		dir, err := uio.NewDirectoryFromNode(ds, n)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return dir.ForEachLink(ctx, func(l *ipld.Link) error {
			if strings.Contains(l.Name, "/") || l.Name == ".." || l.Name == "." || l.Name == "" {
				return fmt.Errorf("%s: bad entry name %q", name, l.Name)
			}
			child, err := ds.Get(ctx, l.Cid)
			if err != nil {
				return err
			}
			return writeTar(ctx, ds, child, name+"/"+l.Name, tw)
		})
	default:
		return fmt.Errorf("%s: UnixFS type %s: %w", name, fs.Type(), errNotUnixFS)
	}
}

func tarFile(ctx context.Context, ds dagServ, n ipld.Node, name string, tw *tar.Writer) error {
	size, err := fileSize(n)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(size)}); err != nil {
		return err
	}
	return ds.writeFile(ctx, tw, n)
}
