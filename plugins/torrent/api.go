package torrent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/vecino/vecino/internal/httpjson"
	"github.com/vecino/vecino/sdk"
)

// maxTorrentFile bounds an uploaded .torrent.
const maxTorrentFile = 16 << 20

// HTTPHandler is the plugin's API, under /api/v1/plugins/torrent/ on the
// router.
//
//	GET    /torrents                 every torrent (View), the quiet hours' state (AltView) and the
//	                                 blocklist's (BlocklistView)
//	POST   /torrents[?dir=FOLDER]    body: a .torrent file or a magnet link (400 if its files would
//	                                 overwrite another torrent's); its data goes to FOLDER in the data folder
//	GET    /torrents/{ih}            one torrent
//	DELETE /torrents/{ih}[?delete_data=true]
//	POST   /torrents/{ih}/verify     hash its data again (state "verifying", progress in "verified")
//	POST   /torrents/{ih}/stop       pause it
//	POST   /torrents/{ih}/start      resume it; seed again one a limit finished; download anew one whose data is missing
//	GET    /torrents/{ih}/files      its files; POST with {"skip":[...]}, {"want":[...]} (left out, taken back),
//	                                 {"high":[...]}, {"normal":[...]} (fetched before the others, or as them)
//	POST   /torrents/{ih}/limits     body: {"ratio": 2 | "node" | "none", "idle": "90m" | "node" | "none"}: its own
//	                                 seeding limits, the node's ([plugins.torrent]) again, or none; either may be left out
//	POST   /quiet-hours              body: {"on": true | false | null}: the quiet hours' limits (alt_*) on or off
//	                                 by hand until the schedule next changes, or back to the schedule (null)
//	POST   /torrents/{ih}/queue     body: {"to": "top" | "up" | "down" | "bottom" | N}: its place in the queue
//	                                 (max_active torrents transfer at once, the first in it; "queue" in View)
//	POST   /torrents/{ih}/move      body: {"dir": "FOLDER", "find": false}: move its data to FOLDER in the data
//	                                 folder (onto another disk: copied in the background, state "moving",
//	                                 progress in "moving"); with find, the data is there already: verify it
//	GET    /torrents/{ih}/data/{path}  a file's content (path as /files lists it; the secret needed), with
//	                                 ranges; one still downloading is streamed as its pieces come (data.go)
//	GET    /torrents/{ih}/torrent    its .torrent file
//	POST   /torrents/{ih}/peers      body: {"addr":"IP:PORT"}, a peer to connect to, tried again
//	                                 while not connected, every 20 s for an hour
//	POST   /torrents/{ih}/trackers   body: {"add": ["URL", ...]}: announce to these trackers too, from now
//	                                 on and after restarts ("added": those it did not have); trackers.go
//	GET    /blocklist                the blocklists in force (BlocklistView): ranges, what each file held,
//	                                 addresses refused; blocklist.go
//	POST   /blocklist/update         download blocklist_url's list again and read the folder again (502 with
//	                                 the error and the list still in force if the download is refused; 409
//	                                 with no blocklist_url, the folder read again)
//	POST   /create                   body: {"path":"NAME","trackers":[...]}: make a torrent of NAME, a file or
//	                                 folder in the data folder, and seed it: 202 and the making (MakingView),
//	                                 whose data is hashed in the background, one making at a time
//	GET    /creates                  the makings under way and the last ones that ended
//	GET    /creates/{id}             one making: state queued, hashing, done (info_hash, magnet), failed (error)
//	                                 or cancelled
//	DELETE /creates/{id}             call off a making not yet ended: 202 (409 if it has ended)
//	POST   /transmission/rpc         Transmission's RPC (rpc.go), for the clients made for it
//	GET    /transmission/web/        the web client in web_home, if set, which uses that RPC (webhome.go)
//	GET    /engine                   the engine's own status of every peer and piece, as text
//	GET    /                         a page with every torrent and its progress
func (s *seedbox) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	sdk.ServePage(mux, page)
	// transmission-remote asks for .../rpc/, other clients for .../rpc.
	mux.HandleFunc("/transmission/rpc", s.rpcHandler)
	mux.HandleFunc("/transmission/rpc/", s.rpcHandler)
	mux.HandleFunc("GET /transmission/web/", s.webHome)
	mux.Handle("GET /transmission/web", http.RedirectHandler("web/", http.StatusMovedPermanently))
	mux.HandleFunc("GET /torrents", func(w http.ResponseWriter, r *http.Request) {
		httpjson.Write(w, http.StatusOK, map[string]any{"listen_port": s.port(), "torrents": s.views(), "quiet_hours": s.altView(), "blocklist": s.blocklistView()})
	})
	// Body: {"on": true | false | null}: the quiet hours' limits on or off
	// by hand (until the schedule next changes), or null for the schedule.
	mux.HandleFunc("POST /quiet-hours", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			On *bool `json:"on"`
		}
		if !httpjson.Read(w, r, 4096, &req, `{"on": true, false or null (the schedule)}`, nil) {
			return
		}
		httpjson.Write(w, http.StatusOK, s.setAlt(req.On))
	})
	mux.HandleFunc("POST /torrents", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxTorrentFile))
		if err != nil {
			httpjson.Error(w, http.StatusRequestEntityTooLarge, fmt.Errorf("body over %d bytes", maxTorrentFile))
			return
		}
		var v View
		trimmed := bytes.TrimSpace(body)
		switch {
		case bytes.HasPrefix(trimmed, []byte("magnet:")):
			v, err = s.addMagnet(string(trimmed), r.URL.Query().Get("dir"))
		case bytes.HasPrefix(body, []byte("d")):
			v, err = s.addMetainfo(body, r.URL.Query().Get("dir"))
		default:
			err = errors.New("body is neither a .torrent file (bencoded, starts with 'd') nor a magnet link")
		}
		writeAdded(w, v, err)
	})
	mux.HandleFunc("GET /torrents/{ih}", func(w http.ResponseWriter, r *http.Request) {
		for _, v := range s.views() {
			if v.InfoHash == strings.ToLower(r.PathValue("ih")) {
				httpjson.Write(w, http.StatusOK, v)
				return
			}
		}
		httpjson.Error(w, http.StatusNotFound, fmt.Errorf("no torrent %s", r.PathValue("ih")))
	})
	mux.HandleFunc("DELETE /torrents/{ih}", func(w http.ResponseWriter, r *http.Request) {
		if err := s.remove(strings.ToLower(r.PathValue("ih")), r.URL.Query().Get("delete_data") == "true"); err != nil {
			httpjson.Error(w, http.StatusNotFound, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /torrents/{ih}/verify", s.action(s.verify))
	mux.HandleFunc("POST /torrents/{ih}/start", s.action(s.start))
	mux.HandleFunc("POST /torrents/{ih}/stop", s.action(s.pause))
	mux.HandleFunc("GET /torrents/{ih}/files", func(w http.ResponseWriter, r *http.Request) {
		fs, err := s.files(strings.ToLower(r.PathValue("ih")))
		writeFiles(w, fs, err)
	})
	// Body: {"skip": [paths], "want": [paths], "high": [paths], "normal": [paths]}.
	mux.HandleFunc("POST /torrents/{ih}/files", func(w http.ResponseWriter, r *http.Request) {
		var req fileChoice
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
			httpjson.Error(w, http.StatusBadRequest, fmt.Errorf("body: want {\"skip\", \"want\", \"high\" or \"normal\": [paths]}: %w", err))
			return
		}
		fs, err := s.setFiles(strings.ToLower(r.PathValue("ih")), req)
		writeFiles(w, fs, err)
	})
	mux.HandleFunc("POST /torrents/{ih}/limits", func(w http.ResponseWriter, r *http.Request) {
		var req map[string]json.RawMessage
		if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil {
			httpjson.Error(w, http.StatusBadRequest, fmt.Errorf("body: want {\"ratio\": ..., \"idle\": ...}: %w", err))
			return
		}
		var set [2]*limitSetting
		for i, what := range []string{"ratio", "idle"} {
			raw, ok := req[what]
			if !ok {
				continue
			}
			delete(req, what)
			l, err := parseLimit(what, raw)
			if err != nil {
				httpjson.Error(w, http.StatusBadRequest, fmt.Errorf("body: %w", err))
				return
			}
			set[i] = &l
		}
		for k := range req {
			httpjson.Error(w, http.StatusBadRequest, fmt.Errorf("body: %q is not a limit (ratio, idle)", k))
			return
		}
		v, err := s.setLimits(strings.ToLower(r.PathValue("ih")), set[0], set[1])
		if err != nil {
			httpjson.Error(w, errStatus(err), err)
			return
		}
		httpjson.Write(w, http.StatusOK, v)
	})
	// Body: {"to": "top" | "up" | "down" | "bottom" | position from 0}.
	mux.HandleFunc("POST /torrents/{ih}/queue", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			To json.RawMessage `json:"to"`
		}
		if !httpjson.Read(w, r, 4096, &req, `{"to": "top", "up", "down", "bottom" or a position from 0}`, func() error {
			return missingKey(len(req.To) == 0, "to")
		}) {
			return
		}
		to := strings.Trim(string(req.To), `"`)
		v, err := s.requeue(strings.ToLower(r.PathValue("ih")), to)
		if err != nil {
			httpjson.Error(w, moveStatus(err), err)
			return
		}
		httpjson.Write(w, http.StatusOK, v)
	})
	// Body: {"dir": "folder in the data folder", "find": false}.
	mux.HandleFunc("POST /torrents/{ih}/move", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Dir  *string `json:"dir"`
			Find bool    `json:"find"`
		}
		if !httpjson.Read(w, r, 4096, &req, `{"dir": "folder in the data folder", "find": false}`, func() error {
			return missingKey(req.Dir == nil, "dir")
		}) {
			return
		}
		v, err := s.move(strings.ToLower(r.PathValue("ih")), *req.Dir, !req.Find)
		if err != nil {
			httpjson.Error(w, moveStatus(err), err)
			return
		}
		httpjson.Write(w, http.StatusAccepted, v)
	})
	mux.HandleFunc("GET /torrents/{ih}/data/{path...}", s.serveData)
	mux.HandleFunc("GET /torrents/{ih}/torrent", func(w http.ResponseWriter, r *http.Request) {
		data, err := s.torrentFile(strings.ToLower(r.PathValue("ih")))
		if err != nil {
			httpjson.Error(w, http.StatusNotFound, err)
			return
		}
		w.Header().Set("Content-Type", "application/x-bittorrent")
		w.Write(data)
	})
	// The engine's own account of every torrent, peer and piece: for
	// finding out why a download is not moving.
	mux.HandleFunc("GET /engine", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if s.cl == nil {
			httpjson.Error(w, http.StatusServiceUnavailable, errors.New("engine not started"))
			return
		}
		s.cl.WriteStatus(w)
	})
	mux.HandleFunc("POST /torrents/{ih}/peers", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Addr string }
		if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil {
			httpjson.Error(w, http.StatusBadRequest, fmt.Errorf("body: %w", err))
			return
		}
		p, err := parsePeer(req.Addr)
		if err != nil {
			httpjson.Error(w, http.StatusBadRequest, err)
			return
		}
		if s.blocks.blocks(p.Addr()) {
			httpjson.Error(w, http.StatusForbidden, fmt.Errorf("%s is in this node's blocklist (GET /api/v1/plugins/torrent/blocklist): not dialled", p.Addr()))
			return
		}
		switch err := s.namePeer(strings.ToLower(r.PathValue("ih")), p); {
		case errors.Is(err, errNoTorrent):
			httpjson.Error(w, http.StatusNotFound, err)
		case err != nil:
			httpjson.Error(w, http.StatusTooManyRequests, err)
		default:
			httpjson.Write(w, http.StatusAccepted, map[string]string{"peer": p.String()})
		}
	})
	mux.HandleFunc("POST /torrents/{ih}/trackers", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Add []string `json:"add"`
		}
		if !httpjson.Read(w, r, 64<<10, &req, `{"add": ["http://tracker.example/announce", ...]}`, nil) {
			return
		}
		added, err := s.addTrackers(strings.ToLower(r.PathValue("ih")), req.Add)
		switch {
		case errors.Is(err, errNoTorrent):
			httpjson.Error(w, http.StatusNotFound, err)
		case err != nil:
			httpjson.Error(w, http.StatusBadRequest, err)
		default:
			httpjson.Write(w, http.StatusOK, map[string]any{"added": added})
		}
	})
	mux.HandleFunc("GET /blocklist", func(w http.ResponseWriter, r *http.Request) {
		httpjson.Write(w, http.StatusOK, s.blocklistView())
	})
	mux.HandleFunc("POST /blocklist/update", func(w http.ResponseWriter, r *http.Request) {
		v, err := s.updateBlocklist(r.Context())
		switch {
		case errors.Is(err, errNoBlocklistURL):
			httpjson.Write(w, http.StatusConflict, map[string]any{"error": err.Error(), "blocklist": v})
		case err != nil:
			httpjson.Write(w, http.StatusBadGateway, map[string]any{"error": err.Error(), "blocklist": v})
		default:
			httpjson.Write(w, http.StatusOK, v)
		}
	})
	mux.HandleFunc("POST /create", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Path     string
			Trackers []string
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
			httpjson.Error(w, http.StatusBadRequest, fmt.Errorf("body: %w", err))
			return
		}
		m, err := s.create(req.Path, req.Trackers)
		switch {
		case errors.Is(err, errBusy):
			httpjson.Error(w, http.StatusConflict, err)
			return
		case err != nil:
			httpjson.Error(w, http.StatusBadRequest, err)
			return
		}
		w.Header().Set("Location", "creates/"+m.ID)
		httpjson.Write(w, http.StatusAccepted, m)
	})
	mux.HandleFunc("GET /creates", func(w http.ResponseWriter, r *http.Request) {
		httpjson.Write(w, http.StatusOK, map[string]any{"creates": s.makings()})
	})
	mux.HandleFunc("DELETE /creates/{id}", func(w http.ResponseWriter, r *http.Request) {
		m, err := s.cancelMaking(r.PathValue("id"))
		if err != nil {
			httpjson.Error(w, errStatus(err), err)
			return
		}
		httpjson.Write(w, http.StatusAccepted, m)
	})
	mux.HandleFunc("GET /creates/{id}", func(w http.ResponseWriter, r *http.Request) {
		m, ok := s.makingView(r.PathValue("id"))
		if !ok {
			httpjson.Error(w, http.StatusNotFound, fmt.Errorf("no making %q", r.PathValue("id")))
			return
		}
		httpjson.Write(w, http.StatusOK, m)
	})
	return mux
}

// writeAdded answers an add: 201 with the torrent, 200 if it
// was there already, 400 with the reason.
func writeAdded(w http.ResponseWriter, v View, err error) {
	switch {
	case errors.Is(err, errExists):
		httpjson.Write(w, http.StatusOK, v)
	case err != nil:
		httpjson.Error(w, http.StatusBadRequest, err)
	default:
		httpjson.Write(w, http.StatusCreated, v)
	}
}

// action serves a POST that does something to one torrent: 202 and its
// view, 409 if it cannot be done now, 404 if there is no such torrent.
func (s *seedbox) action(do func(ih string) (View, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := do(strings.ToLower(r.PathValue("ih")))
		if err != nil {
			httpjson.Error(w, errStatus(err), err)
			return
		}
		httpjson.Write(w, http.StatusAccepted, v)
	}
}

// errStatus is the HTTP status for what a change to one torrent failed
// with: 409 if it cannot be done now, 400 for a file the torrent lacks,
// else 404 (no such torrent).
func errStatus(err error) int {
	switch {
	case errors.Is(err, errBusy):
		return http.StatusConflict
	case errors.Is(err, errNoFile):
		return http.StatusBadRequest
	}
	return http.StatusNotFound
}

// missingKey is the error for a body without key, if missing.
func missingKey(missing bool, key string) error {
	if missing {
		return fmt.Errorf("%q is missing", key)
	}
	return nil
}

// moveStatus is the HTTP status for a move that failed: 404 for no such
// torrent, 409 if busy, else 400 (a folder refused, a name taken).
func moveStatus(err error) int {
	if errors.Is(err, errNoTorrent) || errors.Is(err, errBusy) {
		return errStatus(err)
	}
	return http.StatusBadRequest
}

func writeFiles(w http.ResponseWriter, fs []FileView, err error) {
	if err != nil {
		httpjson.Error(w, errStatus(err), err)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"files": fs})
}
