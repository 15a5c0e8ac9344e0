package store

// An IPFS path gateway (GET /ipfs/{cid}/{path}), as kubo serves one: a
// folder added to the neighbourhood's storage is a website any node
// serves, and a file is a link a browser opens, plays and seeks in. What
// the node lacks it fetches from its neighbours, as for a get.
//
// What it serves is anyone's, and runs in the browser at the node's own
// address: every answer carries a sandbox policy, so a page from the
// gateway runs with an origin of its own and cannot read what the node's
// pages keep (the API secret) nor call the node's API with it.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	ipld "github.com/ipfs/go-ipld-format"
)

// gatewayPolicy sandboxes what the gateway serves: scripts run, in an
// opaque origin (no allow-same-origin).
const gatewayPolicy = "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads allow-top-navigation-by-user-activation"

// errNoSuchPath is a path that names nothing in the folder it goes into.
var errNoSuchPath = errors.New("no such file or folder")

func (s *store) apiGateway(w http.ResponseWriter, r *http.Request) {
	defer survivePanic(w, r)
	ctx, cancel, ds, n, ok := s.openNode(w, r)
	if !ok {
		return
	}
	defer cancel()
	c, _ := pathCID(r) // as asked for (openNode checked it): a CIDv0 stays one in what is answered
	var segs []string
	for _, seg := range strings.Split(r.PathValue("path"), "/") {
		if seg != "" {
			segs = append(segs, seg)
		}
	}
	name := c.String()
	for i, seg := range segs {
		var err error
		if n, err = child(ctx, ds, n, seg); err != nil {
			gatewayFail(w, fmt.Errorf("/ipfs/%s/%s: %w", c, strings.Join(segs[:i+1], "/"), err))
			return
		}
		name = seg
	}
	w.Header().Set("Content-Security-Policy", gatewayPolicy)
	w.Header().Set("X-Ipfs-Path", "/ipfs/"+c.String()+"/"+strings.Join(segs, "/"))
	if !isDir(n) {
		s.serveUnixFSFile(ctx, w, r, ds, n, name)
		return
	}
	// A folder: its address ends in a slash, so that the relative links
	// of the pages in it resolve inside it.
	if !strings.HasSuffix(r.URL.Path, "/") {
		// Relative: the node serves this under two paths (its plugin API
		// and /ipfs/), and the browser resolves it against whichever.
		w.Header().Set("Location", url.PathEscape(name)+"/")
		w.WriteHeader(http.StatusMovedPermanently)
		return
	}
	if index, err := child(ctx, ds, n, "index.html"); err == nil && !isDir(index) {
		s.serveUnixFSFile(ctx, w, r, ds, index, "index.html")
		return
	} else if err != nil && !errors.Is(err, errNoSuchPath) {
		gatewayFail(w, err)
		return
	}
	listFolder(ctx, w, r, ds, n, "/ipfs/"+c.String()+"/"+strings.Join(segs, "/"))
}

// survivePanic answers 500 for a request whose folder or file data made
// boxo's UnixFS code panic: that data comes from any peer, and one
// crafted folder must cost its request, not the plugin and every other
// request with it. Deferred by handlers that walk UnixFS with boxo, which
// holds none of the store's locks while it does.
func survivePanic(w http.ResponseWriter, r *http.Request) {
	if v := recover(); v != nil {
		slog.Error("reading UnixFS data panicked", "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
		http.Error(w, fmt.Sprintf("this node cannot read %s: its data is malformed", r.URL.Path), http.StatusUnprocessableEntity)
	}
}

// gatewayFail answers a path that names nothing with 404, else as fail.
func gatewayFail(w http.ResponseWriter, err error) {
	if errors.Is(err, errNoSuchPath) {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	fail(w, err)
}

func isDir(n ipld.Node) bool {
	pn, ok := n.(*merkledag.ProtoNode)
	if !ok {
		return false
	}
	fs, err := ft.FSNodeFromBytes(pn.Data())
	return err == nil && (fs.Type() == ft.TDirectory || fs.Type() == ft.THAMTShard)
}

// child is the entry called name in the folder n.
func child(ctx context.Context, ds dagServ, n ipld.Node, name string) (ipld.Node, error) {
	if !isDir(n) {
		return nil, fmt.Errorf("%w: %s is not a folder", errNoSuchPath, n.Cid())
	}
	dir, err := uio.NewDirectoryFromNode(ds, n)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.Cid(), err)
	}
	c, err := dir.Find(ctx, name)
	if errors.Is(err, os.ErrNotExist) {
		return nil, errNoSuchPath
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// serveUnixFSFile serves a file with a range, HEAD, and a content type
// from its name or, failing that, its first bytes; its CID is its ETag,
// and it never changes. A whole file is written as a get writes it (leaves
// read ahead); a range reads the leaves it covers.
func (s *store) serveUnixFSFile(ctx context.Context, w http.ResponseWriter, r *http.Request, ds dagServ, n ipld.Node, name string) {
	size64, err := fileSize(n)
	if err != nil {
		fail(w, err) // a symlink, say
		return
	}
	size := int64(size64)
	etag := `"` + n.Cid().String() + `"`
	h := w.Header()
	h.Set("Etag", etag)
	h.Set("Cache-Control", "public, max-age=29030400, immutable")
	h.Set("Accept-Ranges", "bytes")
	if inm := r.Header.Get("If-None-Match"); inm == etag || inm == "*" {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	ctype := mime.TypeByExtension(path.Ext(name))
	if ctype == "" {
		var head bytes.Buffer
		if err := ds.writeRange(ctx, &head, n, 0, min(size, 512)); err != nil {
			fail(w, err)
			return
		}
		ctype = http.DetectContentType(head.Bytes())
	}
	h.Set("Content-Type", ctype)
	from, to, partial, unsatisfiable := parseRange(r.Header.Get("Range"), size)
	if ir := r.Header.Get("If-Range"); ir != "" && ir != etag {
		partial, unsatisfiable = false, false // changed since: the whole (it cannot have)
	}
	switch {
	case unsatisfiable:
		h.Set("Content-Range", fmt.Sprintf("bytes */%d", size))
		http.Error(w, fmt.Sprintf("%s is %d bytes: the range asked for starts past its end", name, size), http.StatusRequestedRangeNotSatisfiable)
		return
	case partial:
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, to-1, size))
		h.Set("Content-Length", strconv.FormatInt(to-from, 10))
		w.WriteHeader(http.StatusPartialContent)
	default:
		h.Set("Content-Length", strconv.FormatInt(size, 10))
		w.WriteHeader(http.StatusOK)
	}
	if r.Method == http.MethodHead {
		return
	}
	// An error now can only cut the body short, as it does.
	if partial {
		ds.writeRange(ctx, w, n, from, to)
		return
	}
	s.prefetch(ctx, n.Cid(), ds.sess)
	ds.writeFile(ctx, w, n)
}

var folderPage = template.Must(template.New("folder").Parse(`<!doctype html>
<meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{{.Path}}</title>
<style>body{font-family:sans-serif;margin:1em}td{padding:.2em .8em}td.size{text-align:right}</style>
<h1>{{.Path}}</h1>
<table>
{{range .Entries}}<tr><td><a href="{{.Href}}">{{.Name}}</a></td><td class="size">{{.Size}}</td></tr>
{{end}}</table>
`))

type folderEntry struct {
	Name, Href, Size string
}

// listFolder answers a folder without an index.html with a page of its
// entries.
func listFolder(ctx context.Context, w http.ResponseWriter, r *http.Request, ds dagServ, n ipld.Node, at string) {
	dir, err := uio.NewDirectoryFromNode(ds, n)
	if err != nil {
		fail(w, err)
		return
	}
	var entries []folderEntry
	err = dir.ForEachLink(ctx, func(l *ipld.Link) error {
		e := folderEntry{Name: l.Name, Href: url.PathEscape(l.Name), Size: fmt.Sprintf("%d bytes", l.Size)}
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if r.Method == http.MethodHead {
		return
	}
	folderPage.Execute(w, map[string]any{"Path": at, "Entries": entries})
}
