package store

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"

	"github.com/vecino/vecino/internal/httpjson"
	"github.com/vecino/vecino/sdk"
)

// The store's HTTP API, under /api/v1/plugins/store/ (docs/store.md):
//
//	POST   /add?name=N&replication=R   body: the file, or a tar of a directory
//	                                   (Content-Type: application/x-tar)
//	GET    /cat/CID                    a file's bytes
//	GET    /get/CID                    a file or directory as a tar stream
//	POST   /pin/CID?replication=R      fetch and pin; NDJSON progress lines
//	DELETE /pin/CID                    unpin
//	GET    /pins                       every pin, with its live holders
//	GET    /stat/CID                   type, size, blocks here, pin, holders
//	POST   /gc                         delete blocks no pin needs
//	POST   /verify                     read back and check every block; NDJSON progress
//	GET    /providers/CID              the nodes announcing CID on the DHT
//	GET    /                           a page for all of the above
func (s *store) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	sdk.ServePage(mux, page)
	mux.HandleFunc("POST /add", s.apiAdd)
	mux.HandleFunc("GET /cat/{cid}", s.apiCat)
	mux.HandleFunc("GET /ipfs/{cid}", s.apiGateway)
	mux.HandleFunc("GET /ipfs/{cid}/{path...}", s.apiGateway)
	mux.HandleFunc("GET /get/{cid}", s.apiGet)
	mux.HandleFunc("POST /pin/{cid}", s.apiPin)
	mux.HandleFunc("DELETE /pin/{cid}", s.apiUnpin)
	mux.HandleFunc("GET /pins", s.apiPins)
	mux.HandleFunc("GET /stat/{cid}", s.apiStat)
	mux.HandleFunc("POST /gc", s.apiGC)
	mux.HandleFunc("POST /verify", s.apiVerify)
	mux.HandleFunc("GET /providers/{cid}", s.apiProviders)
	return mux
}

// errBadRequest marks errors in what the client sent.
var errBadRequest = errors.New("bad request")

func pathCID(r *http.Request) (cid.Cid, error) {
	raw := r.PathValue("cid")
	c, err := cid.Decode(raw)
	if err != nil {
		return cid.Undef, fmt.Errorf("%w: CID %q: %v", errBadRequest, raw, err)
	}
	return c, nil
}

func factorParam(r *http.Request) (int, error) {
	v := r.URL.Query().Get("replication")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxFactor {
		return 0, fmt.Errorf("%w: replication %q: want 1 to %d", errBadRequest, v, maxFactor)
	}
	return n, nil
}

// fail answers err with the status that fits it.
func fail(w http.ResponseWriter, err error) {
	var qe *quotaError
	var ce *corruptError
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, errBadRequest):
		code = http.StatusBadRequest
	case errors.As(err, &qe), errors.Is(err, syscall.ENOSPC):
		code = http.StatusInsufficientStorage
	case errors.Is(err, errNotFound), errors.Is(err, errNoProvider):
		code = http.StatusNotFound
	case errors.As(err, &ce), errors.Is(err, errNotUnixFS):
		code = http.StatusUnprocessableEntity
	case errors.Is(err, context.DeadlineExceeded):
		code = http.StatusGatewayTimeout
	case errors.Is(err, errGCHeld):
		code = http.StatusConflict
	}
	httpjson.Error(w, code, err)
}

func (s *store) apiAdd(w http.ResponseWriter, r *http.Request) {
	factor, err := factorParam(r)
	if err != nil {
		fail(w, err)
		return
	}
	dir := r.Header.Get("Content-Type") == "application/x-tar"
	p, err := s.add(r.Context(), r.Body, dir, pin{Name: r.URL.Query().Get("name"), Factor: factor})
	if err != nil {
		fail(w, fmt.Errorf("add: %w", err))
		return
	}
	httpjson.Write(w, http.StatusOK, p)
}

// prefetch fetches the DAG under c into the store, a window at a time,
// while a reader walks it in order; the reader's own fetches join these.
func (s *store) prefetch(ctx context.Context, c cid.Cid, sess *session) {
	go s.fetchDAG(ctx, c, sess, nil)
}

// openRoot loads the node a request names, from here or a neighbour, and
// starts fetching the rest of its DAG; ok is false when it has answered
// with an error. The caller cancels ctx when done.
func (s *store) openRoot(w http.ResponseWriter, r *http.Request) (ctx context.Context, cancel context.CancelFunc, ds dagServ, n ipld.Node, ok bool) {
	ctx, cancel, ds, n, ok = s.openNode(w, r)
	if ok {
		s.prefetch(ctx, n.Cid(), ds.sess)
	}
	return ctx, cancel, ds, n, ok
}

// openNode is openRoot without the fetch of the rest: for the gateway,
// which fetches only what a path leads to.
func (s *store) openNode(w http.ResponseWriter, r *http.Request) (ctx context.Context, cancel context.CancelFunc, ds dagServ, n ipld.Node, ok bool) {
	c, err := pathCID(r)
	if err != nil {
		fail(w, err)
		return nil, nil, ds, nil, false
	}
	ctx, cancel = context.WithCancel(r.Context())
	ds = dagServ{s: s, sess: s.bit.newSession(s.cfg.FetchTimeout)}
	if n, err = ds.Get(ctx, c); err != nil {
		cancel()
		fail(w, err)
		return nil, nil, ds, nil, false
	}
	return ctx, cancel, ds, n, true
}

func (s *store) apiCat(w http.ResponseWriter, r *http.Request) {
	ctx, cancel, ds, n, ok := s.openRoot(w, r)
	if !ok {
		return
	}
	defer cancel()
	size, err := fileSize(n)
	if err != nil {
		fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatUint(size, 10))
	w.WriteHeader(http.StatusOK)
	ds.writeFile(ctx, w, n) // an error now can only cut the body short, as it does
}

func (s *store) apiGet(w http.ResponseWriter, r *http.Request) {
	defer survivePanic(w, r)
	ctx, cancel, ds, n, ok := s.openRoot(w, r)
	if !ok {
		return
	}
	defer cancel()
	w.Header().Set("Content-Type", "application/x-tar")
	tw := tar.NewWriter(w)
	if err := writeTar(ctx, ds, n, n.Cid().String(), tw); err != nil {
		return // the client sees a tar without its end marker
	}
	tw.Close()
}

// apiPin fetches what is missing and pins, writing one JSON line of
// progress every 64 blocks and the pin (or the error) last.
func (s *store) apiPin(w http.ResponseWriter, r *http.Request) {
	c, err := pathCID(r)
	var factor int
	if err == nil {
		factor, err = factorParam(r)
	}
	if err != nil {
		fail(w, err)
		return
	}
	enc, report := progressLines(w)
	p, err := s.pin(r.Context(), c, s.bit.newSession(s.cfg.FetchTimeout), report, pin{Name: r.URL.Query().Get("name"), Factor: factor})
	if err != nil {
		enc.Encode(map[string]string{"error": err.Error()})
		return
	}
	enc.Encode(map[string]any{"pin": p})
}

// progressLines starts an NDJSON answer: report writes a progress line
// {"blocks", "bytes"} and flushes it; enc writes the last line.
func progressLines(w http.ResponseWriter) (*json.Encoder, progress) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	rc := http.NewResponseController(w)
	return enc, func(n int, size int64) {
		enc.Encode(map[string]any{"blocks": n, "bytes": size})
		rc.Flush()
	}
}

// apiVerify reads every block back and checks it, writing a progress line
// every 256 blocks and then {"verified": {"blocks", "bytes", "corrupt"}}
// (or the error). Corrupt blocks are fetched again from neighbours, as on
// any read; repaired_blocks on the status counts them.
func (s *store) apiVerify(w http.ResponseWriter, r *http.Request) {
	enc, report := progressLines(w)
	res, err := s.verify(r.Context(), nil, report)
	if err != nil {
		enc.Encode(map[string]string{"error": err.Error()})
		return
	}
	enc.Encode(map[string]any{"verified": res})
}

func (s *store) apiUnpin(w http.ResponseWriter, r *http.Request) {
	c, err := pathCID(r)
	if err != nil {
		fail(w, err)
		return
	}
	p, err := s.unpin(r.Context(), c)
	if err != nil {
		httpjson.Error(w, http.StatusNotFound, err)
		return
	}
	httpjson.Write(w, http.StatusOK, p)
}

type pinView struct {
	pin
	Holders []string `json:"holders"`
}

func (s *store) apiPins(w http.ResponseWriter, r *http.Request) {
	pins, err := s.pins.All()
	if err != nil {
		fail(w, err)
		return
	}
	out := make([]pinView, 0, len(pins))
	for _, p := range pins {
		out = append(out, pinView{pin: p, Holders: s.repl.holders(p.Root, true)})
	}
	httpjson.Write(w, http.StatusOK, out)
}

type statView struct {
	CID      string   `json:"cid"`
	Type     string   `json:"type"`
	Size     uint64   `json:"size"`
	Blocks   int      `json:"blocks_here"`
	Complete bool     `json:"complete"`
	Pin      *pin     `json:"pin,omitempty"`
	Holders  []string `json:"holders"`
}

// apiStat describes c from what is here; it fetches at most the root.
func (s *store) apiStat(w http.ResponseWriter, r *http.Request) {
	c, err := pathCID(r)
	if err != nil {
		fail(w, err)
		return
	}
	ds := dagServ{s: s, sess: s.bit.newSession(s.cfg.FetchTimeout)}
	n, err := ds.Get(r.Context(), c)
	if err != nil {
		fail(w, err)
		return
	}
	st := statView{CID: c.String(), Type: "raw", Size: uint64(len(n.RawData())), Holders: s.repl.holders(c.String(), false)}
	if pn, ok := n.(*merkledag.ProtoNode); ok {
		if fs, err := ft.FSNodeFromBytes(pn.Data()); err == nil {
			st.Type, st.Size = strings.ToLower(fs.Type().String()), fs.FileSize()
		}
	}
	if p, ok := s.pins.Get(c); ok {
		st.Pin = &p
		st.Holders = s.repl.holders(c.String(), true)
	}
	var here, missing atomic.Int64
	walkDAG(r.Context(), c, fetchWindow, func(_ context.Context, c cid.Cid) ([]cid.Cid, error) {
		if c.Type() == cid.Raw {
			if s.bs.Has(c) {
				here.Add(1)
			} else {
				missing.Add(1)
			}
			return nil, nil
		}
		b, err := s.bs.Get(c)
		if err != nil {
			missing.Add(1)
			return nil, nil
		}
		here.Add(1)
		return links(b)
	})
	st.Blocks, st.Complete = int(here.Load()), missing.Load() == 0
	httpjson.Write(w, http.StatusOK, st)
}

func (s *store) apiGC(w http.ResponseWriter, r *http.Request) {
	n, freed, err := s.gc(r.Context())
	if err != nil {
		fail(w, err)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]int64{"blocks": int64(n), "bytes": freed})
}

// apiProviders lists the nodes that announce a CID on the DHT: who holds
// it, beyond this node's neighbours.
func (s *store) apiProviders(w http.ResponseWriter, r *http.Request) {
	c, err := pathCID(r)
	if err != nil {
		fail(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), lookupTimeout)
	defer cancel()
	found, err := s.env.Host.FindProviders(ctx, c.String(), lookupLimit)
	if errors.Is(err, sdk.ErrNoDHT) {
		httpjson.Error(w, http.StatusServiceUnavailable, err)
		return
	}
	if err != nil {
		fail(w, err)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"cid": c.String(), "providers": found})
}
