package torrent

// Transmission's RPC protocol (rpc-version 16, as Transmission 3.00
// speaks it), so that the clients people already drive a seedbox with
// (transmission-remote, Transmission Remote GUI, Transdroid, Sonarr...)
// drive this one: POST /transmission/rpc under the plugin's API, with the
// API secret as the basic-auth password. The router checks the secret;
// this file keeps Transmission's session-id handshake, which stops a web
// page in another tab from posting here with the browser's saved
// credentials. What the node does not do (per-torrent rate limits,
// settings changed at run time: they come from the TOML file) is
// refused with a result that says so, never taken and ignored.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vecino/vecino/sdk"
)

const (
	rpcVersion    = 16 // Transmission 3.00's
	rpcSessionHdr = "X-Transmission-Session-Id"
	// maxRPCBody bounds a request: a torrent-add carries a whole .torrent
	// in base64.
	maxRPCBody = maxTorrentFile*4/3 + 64<<10
	// rpcRecent is how long "recently-active" looks back, and how long a
	// removed torrent's id is reported as removed.
	rpcRecent = time.Minute
)

// rpcRequest is one call: {"method": ..., "arguments": {...}, "tag": N}.
type rpcRequest struct {
	Method string
	Args   map[string]json.RawMessage
	Tag    json.RawMessage
}

// parseRPC reads a request body; its error says what is wrong and where.
func parseRPC(body []byte) (rpcRequest, error) {
	var raw struct {
		Method    *string         `json:"method"`
		Arguments json.RawMessage `json:"arguments"`
		Tag       json.RawMessage `json:"tag"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&raw); err != nil {
		return rpcRequest{}, fmt.Errorf("request is not a JSON object: %w", err)
	}
	if dec.More() {
		return rpcRequest{}, errors.New("request: more than one JSON value")
	}
	if raw.Method == nil {
		return rpcRequest{}, errors.New(`request has no "method"`)
	}
	req := rpcRequest{Method: *raw.Method, Args: map[string]json.RawMessage{}}
	if len(raw.Tag) > 0 {
		var tag json.Number
		if err := json.Unmarshal(raw.Tag, &tag); err != nil {
			return rpcRequest{}, fmt.Errorf(`"tag" must be a number: %w`, err)
		}
		req.Tag = raw.Tag
	}
	if len(raw.Arguments) > 0 && string(raw.Arguments) != "null" {
		if err := json.Unmarshal(raw.Arguments, &req.Args); err != nil {
			return rpcRequest{}, fmt.Errorf(`"arguments" must be an object: %w`, err)
		}
	}
	return req, nil
}

// arg decodes argument name into v, if it is there.
func (r rpcRequest) arg(name string, v any) (bool, error) {
	raw, ok := r.Args[name]
	if !ok || string(raw) == "null" {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("argument %q: %w", name, err)
	}
	return true, nil
}

// only refuses arguments other than those named: they ask for what the
// node does not do, and taking the call would hide that.
func (r rpcRequest) only(names ...string) error {
	var extra []string
	for k := range r.Args {
		if !slices.Contains(names, k) {
			extra = append(extra, k)
		}
	}
	if len(extra) == 0 {
		return nil
	}
	sort.Strings(extra)
	return fmt.Errorf("%s: argument %s not supported by this node (rate limits and where data goes are set for all torrents in [plugins.torrent] of the TOML file)", r.Method, strings.Join(extra, ", "))
}

// rpcIDs is a call's "ids": every torrent, the recently active ones, or
// those named by number or info hash.
type rpcIDs struct {
	all, recent bool
	nums        []int
	hashes      []string
}

func (r rpcRequest) ids() (rpcIDs, error) {
	raw, ok := r.Args["ids"]
	if !ok || string(raw) == "null" {
		return rpcIDs{all: true}, nil
	}
	var sel rpcIDs
	one := func(v any) error {
		switch v := v.(type) {
		case float64:
			if v != float64(int(v)) || v < 1 {
				return fmt.Errorf("%v is not a torrent id (1 or more)", v)
			}
			sel.nums = append(sel.nums, int(v))
		case string:
			h := strings.ToLower(v)
			if len(h) != 40 || strings.Trim(h, "0123456789abcdef") != "" {
				return fmt.Errorf("%q is neither a torrent id nor a 40-digit hex info hash", v)
			}
			sel.hashes = append(sel.hashes, h)
		default:
			return fmt.Errorf("%v is neither a torrent id nor an info hash", v)
		}
		return nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return sel, fmt.Errorf(`argument "ids": %w`, err)
	}
	switch v := v.(type) {
	case string:
		if v == "recently-active" {
			return rpcIDs{recent: true}, nil
		}
		if err := one(v); err != nil {
			return sel, fmt.Errorf(`argument "ids": %w`, err)
		}
	case []any:
		for i, e := range v {
			if err := one(e); err != nil {
				return sel, fmt.Errorf(`argument "ids"[%d]: %w`, i, err)
			}
		}
	default:
		if err := one(v); err != nil {
			return sel, fmt.Errorf(`argument "ids": %w`, err)
		}
	}
	return sel, nil
}

// rpcState is what the RPC keeps for its clients in this run: the
// session id, and a number for each torrent, given in the order they
// were added, as Transmission numbers them.
type rpcState struct {
	session string
	ids     map[string]int
	hashes  map[int]string
	next    int
	removed map[int]time.Time
}

func newRPCState() *rpcState {
	b := make([]byte, 24)
	rand.Read(b)
	return &rpcState{session: hex.EncodeToString(b), ids: map[string]int{}, hashes: map[int]string{}, removed: map[int]time.Time{}}
}

// numberLocked gives every torrent without a number one, oldest first,
// and returns the torrents in number order.
func (s *seedbox) numberLocked() []*item {
	all := make([]*item, 0, len(s.torrents))
	for _, it := range s.torrents {
		all = append(all, it)
	}
	sort.Slice(all, func(i, j int) bool {
		a, b := all[i].rec, all[j].rec
		return a.AddedAt.Before(b.AddedAt) || a.AddedAt.Equal(b.AddedAt) && a.InfoHash < b.InfoHash
	})
	st := s.rpc
	for _, it := range all {
		if _, ok := st.ids[it.rec.InfoHash]; !ok {
			st.next++
			st.ids[it.rec.InfoHash], st.hashes[st.next] = st.next, it.rec.InfoHash
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return st.ids[all[i].rec.InfoHash] < st.ids[all[j].rec.InfoHash] })
	return all
}

// forgetNumberLocked drops a removed torrent's number, reporting it as
// removed to "recently-active" callers for a while; removals older than
// that are forgotten here too, so that they do not pile up unasked.
func (s *seedbox) forgetNumberLocked(ih string) {
	now := time.Now()
	for id, at := range s.rpc.removed {
		if now.Sub(at) >= rpcRecent {
			delete(s.rpc.removed, id)
		}
	}
	if id, ok := s.rpc.ids[ih]; ok {
		delete(s.rpc.ids, ih)
		delete(s.rpc.hashes, id)
		s.rpc.removed[id] = now
	}
}

// selectLocked returns the torrents sel names, in number order. With
// strict, a number or hash that names no torrent is an error (a change
// must not seem to have been made); otherwise it is passed over, as
// Transmission does when asked for torrents.
func (s *seedbox) selectLocked(sel rpcIDs, strict bool, now time.Time) ([]*item, error) {
	all := s.numberLocked()
	if sel.all {
		return all, nil
	}
	if sel.recent {
		var out []*item
		for _, it := range all {
			if now.Sub(it.lastUpload) < rpcRecent || now.Sub(it.lastDown) < rpcRecent || now.Sub(it.rec.AddedAt) < rpcRecent ||
				it.upRate > 0 || it.downRate > 0 || it.verifying {
				out = append(out, it)
			}
		}
		return out, nil
	}
	want := map[string]bool{}
	for _, n := range sel.nums {
		ih, ok := s.rpc.hashes[n]
		if !ok && strict {
			return nil, fmt.Errorf("no torrent with id %d", n)
		}
		want[ih] = ok
	}
	for _, h := range sel.hashes {
		_, ok := s.torrents[h]
		if !ok && strict {
			return nil, fmt.Errorf("no torrent %s", h)
		}
		want[h] = ok
	}
	var out []*item
	for _, it := range all {
		if want[it.rec.InfoHash] {
			out = append(out, it)
		}
	}
	return out, nil
}

// rpcHandler serves POST /transmission/rpc.
func (s *seedbox) rpcHandler(w http.ResponseWriter, r *http.Request) {
	if got := r.Header.Get(rpcSessionHdr); got != s.rpc.session {
		w.Header().Set(rpcSessionHdr, s.rpc.session)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusConflict)
		fmt.Fprintf(w, "409: Conflict\n\nSend the header %s: %s with each request (Transmission's RPC handshake); it changes when the plugin restarts.\n", rpcSessionHdr, s.rpc.session)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "Transmission RPC calls are POSTed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRPCBody))
	if err != nil {
		s.writeRPC(w, http.StatusRequestEntityTooLarge, rpcRequest{}, nil, fmt.Errorf("request over %d bytes", maxRPCBody))
		return
	}
	req, err := parseRPC(body)
	if err != nil {
		s.writeRPC(w, http.StatusBadRequest, req, nil, err)
		return
	}
	args, err := s.call(r, req)
	s.writeRPC(w, http.StatusOK, req, args, err)
}

// writeRPC answers {"result": "success" or the error, "arguments", "tag"}.
func (s *seedbox) writeRPC(w http.ResponseWriter, code int, req rpcRequest, args map[string]any, err error) {
	out := map[string]any{"result": "success", "arguments": args}
	if args == nil {
		out["arguments"] = map[string]any{}
	}
	if err != nil {
		out["result"] = err.Error()
		s.log.Info("transmission rpc refused", "method", req.Method, "err", err)
	}
	if req.Tag != nil {
		out["tag"] = req.Tag
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(out)
}

// call runs one method.
func (s *seedbox) call(r *http.Request, req rpcRequest) (map[string]any, error) {
	switch req.Method {
	case "session-get":
		return s.rpcSessionGet(req)
	case "session-stats":
		return s.rpcSessionStats(), nil
	case "torrent-get":
		return s.rpcTorrentGet(req)
	case "torrent-add":
		return s.rpcTorrentAdd(r, req)
	case "torrent-start", "torrent-start-now":
		return nil, s.rpcEach(req, viewless(s.start))
	case "torrent-stop":
		return nil, s.rpcEach(req, viewless(s.pause))
	case "torrent-verify":
		return nil, s.rpcEach(req, viewless(s.verify))
	case "torrent-remove":
		return nil, s.rpcRemove(req)
	case "torrent-set":
		return nil, s.rpcTorrentSet(req)
	case "torrent-set-location":
		return nil, s.rpcSetLocation(req)
	case "free-space":
		return s.rpcFreeSpace(req)
	case "session-set":
		return nil, s.rpcSessionSet(req)
	case "session-close":
		return nil, errors.New("session-close: a torrent client does not shut this node down; restart the plugin with POST /api/v1/restart/torrent")
	case "port-test":
		return nil, errors.New("port-test: not done: it would ask a service on the Internet to connect back to this node")
	case "blocklist-update":
		if err := req.only(); err != nil {
			return nil, err
		}
		v, err := s.updateBlocklist(r.Context())
		if err != nil {
			return nil, fmt.Errorf("blocklist-update: %w", err)
		}
		return map[string]any{"blocklist-size": v.Ranges}, nil
	case "queue-move-top", "queue-move-up", "queue-move-down", "queue-move-bottom":
		return nil, s.rpcQueueMove(req, strings.TrimPrefix(req.Method, "queue-move-"))
	case "torrent-reannounce", "torrent-rename-path":
		return nil, fmt.Errorf("%s: not supported by this node", req.Method)
	}
	return nil, errors.New("method name not recognized")
}

// rpcSessionSet takes the one setting a client may change at run time:
// the quiet hours' limits on or off (the turtle), as by hand until the
// schedule next changes. The rest come from the TOML file.
func (s *seedbox) rpcSessionSet(req rpcRequest) error {
	var on bool
	ok, err := req.arg("alt-speed-enabled", &on)
	if err != nil {
		return err
	}
	if err := req.only("alt-speed-enabled"); err != nil || !ok {
		return errors.New("session-set: this node's settings come from [plugins.torrent] in its TOML file (PUT /api/v1/config; a plugin's table applies at once), not from a torrent client; only alt-speed-enabled (the quiet hours' limits by hand) is taken here")
	}
	s.setAlt(&on)
	return nil
}

// rpcEach applies do to each torrent named; the call may carry the
// arguments named besides "ids". One that is already as asked (started
// twice, a verify under way) is no error, as in Transmission.
func (s *seedbox) rpcEach(req rpcRequest, do func(ih string) error, args ...string) error {
	if err := req.only(append([]string{"ids"}, args...)...); err != nil {
		return err
	}
	hashes, err := s.rpcHashes(req)
	if err != nil {
		return err
	}
	var errs []error
	for _, ih := range hashes {
		if err := do(ih); err != nil && !errors.Is(err, errBusy) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// viewless is a change to one torrent that answers with its error alone.
func viewless(do func(ih string) (View, error)) func(string) error {
	return func(ih string) error {
		_, err := do(ih)
		return err
	}
}

// rpcHashes resolves a change's ids, refusing ones that name nothing.
func (s *seedbox) rpcHashes(req rpcRequest) ([]string, error) {
	sel, err := req.ids()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	items, err := s.selectLocked(sel, true, time.Now())
	if err != nil {
		return nil, err
	}
	var out []string
	for _, it := range items {
		out = append(out, it.rec.InfoHash)
	}
	return out, nil
}

func (s *seedbox) rpcRemove(req rpcRequest) error {
	var del bool
	if _, err := req.arg("delete-local-data", &del); err != nil {
		return err
	}
	return s.rpcEach(req, func(ih string) error { return s.remove(ih, del) }, "delete-local-data")
}

// rpcSetLocation moves torrents' data to a folder of the data folder
// ("move": true), or points them at data already there, verifying it.
func (s *seedbox) rpcSetLocation(req rpcRequest) error {
	var location string
	var moveData bool
	if ok, err := req.arg("location", &location); err != nil {
		return err
	} else if !ok {
		return errors.New("torrent-set-location: location is required")
	}
	if _, err := req.arg("move", &moveData); err != nil {
		return err
	}
	dir, err := s.rpcDir(location)
	if err != nil {
		return err
	}
	return s.rpcEach(req, func(ih string) error {
		if _, err := s.move(ih, dir, moveData); err != nil {
			// Not moved, even if busy: the client must not think it was.
			return errors.New(err.Error())
		}
		return nil
	}, "location", "move")
}

// rpcTorrentSet takes the files wanted and unwanted and their priority,
// by index, the torrent's own seeding limits, its place in the queue and
// trackers to add; other per-torrent settings (rates, peers) are the
// node's alone, and trackers are not taken away (trackers.go).
func (s *seedbox) rpcTorrentSet(req rpcRequest) error {
	for _, k := range []string{"trackerRemove", "trackerReplace"} {
		if _, ok := req.Args[k]; ok {
			return fmt.Errorf("torrent-set: %s: not supported by this node: its BitTorrent engine goes on announcing to a tracker once it has started to; trackerAdd is taken", k)
		}
	}
	if err := req.only("ids", "files-wanted", "files-unwanted", "priority-high", "priority-normal", "priority-low",
		"seedRatioMode", "seedRatioLimit", "seedIdleMode", "seedIdleLimit", "queuePosition", "trackerAdd"); err != nil {
		return err
	}
	var trackers []string
	if _, err := req.arg("trackerAdd", &trackers); err != nil {
		return err
	}
	for _, u := range trackers {
		if err := checkTrackerURL(u); err != nil {
			return fmt.Errorf("trackerAdd: %w", err)
		}
	}
	var position int
	hasPosition, err := req.arg("queuePosition", &position)
	if err != nil {
		return err
	}
	if hasPosition && position < 0 {
		return fmt.Errorf("queuePosition %d: positions count from 0", position)
	}
	idx, err := req.fileIdx()
	if err != nil {
		return err
	}
	ratio, err := req.limit("seedRatioMode", "seedRatioLimit", func(v float64) limitSetting { return limitSetting{mode: limitOwn, ratio: v} })
	if err != nil {
		return err
	}
	idle, err := req.limit("seedIdleMode", "seedIdleLimit", func(v float64) limitSetting {
		return limitSetting{mode: limitOwn, idle: time.Duration(v) * time.Minute}
	})
	if err != nil {
		return err
	}
	hashes, err := s.rpcHashes(req)
	if err != nil {
		return err
	}
	for _, ih := range hashes {
		if err := s.setFileIndices(ih, idx); err != nil {
			return err
		}
		if ratio != nil || idle != nil {
			if _, err := s.setLimits(ih, ratio, idle); err != nil {
				return err
			}
		}
		if hasPosition {
			if _, err := s.requeue(ih, strconv.Itoa(position)); err != nil {
				return err
			}
		}
		if len(trackers) > 0 {
			if _, err := s.addTrackers(ih, trackers); err != nil {
				return fmt.Errorf("trackerAdd: %w", err)
			}
		}
	}
	return nil
}

// rpcQueueMove moves torrents in the queue: "top", "up", "down" or
// "bottom". Several keep their order among themselves.
func (s *seedbox) rpcQueueMove(req rpcRequest, where string) error {
	if err := req.only("ids"); err != nil {
		return err
	}
	hashes, err := s.rpcHashes(req)
	if err != nil {
		return err
	}
	s.mu.Lock()
	q := s.queueLocked()
	s.mu.Unlock()
	slices.SortFunc(hashes, func(a, b string) int {
		return slices.IndexFunc(q, func(it *item) bool { return it.rec.InfoHash == a }) -
			slices.IndexFunc(q, func(it *item) bool { return it.rec.InfoHash == b })
	})
	if where == "top" || where == "down" {
		slices.Reverse(hashes) // the last first, so that the first ends first
	}
	for _, ih := range hashes {
		if _, err := s.requeue(ih, where); err != nil {
			return err
		}
	}
	return nil
}

// limit reads one of Transmission's seeding limits: a mode (0 the
// session's, 1 the torrent's own, 2 none) and the own limit's value. A
// value alone sets the own limit; nil if neither is given.
func (r rpcRequest) limit(modeArg, valueArg string, own func(float64) limitSetting) (*limitSetting, error) {
	var mode int
	var value float64
	hasMode, err := r.arg(modeArg, &mode)
	if err != nil {
		return nil, err
	}
	hasValue, err := r.arg(valueArg, &value)
	if err != nil {
		return nil, err
	}
	if hasValue && (value < 0 || value > 1e6) {
		return nil, fmt.Errorf("argument %q: %g is out of range", valueArg, value)
	}
	switch {
	case !hasMode && !hasValue:
		return nil, nil
	case !hasMode || mode == 1:
		if !hasValue {
			return nil, fmt.Errorf("argument %q: the torrent's own limit needs %q", modeArg, valueArg)
		}
		l := own(value)
		return &l, nil
	case mode == 0:
		return &limitSetting{mode: limitNode}, nil
	case mode == 2:
		return &limitSetting{mode: limitNone}, nil
	}
	return nil, fmt.Errorf("argument %q: %d is not 0 (the session's), 1 (its own) or 2 (none)", modeArg, mode)
}

// setFileIndices is setFiles with files named by their index in the
// torrent, as Transmission names them.
func (s *seedbox) setFileIndices(ih string, idx rpcFileIdx) error {
	if len(idx.want)+len(idx.skip)+len(idx.high)+len(idx.normal) == 0 {
		return nil
	}
	s.mu.Lock()
	it, err := s.withInfoLocked(ih, "no files to choose from")
	var files []string
	if err == nil {
		for _, f := range it.t.Files() {
			files = append(files, f.DisplayPath())
		}
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	paths := func(key string, idx []int) ([]string, error) {
		var out []string
		for _, i := range idx {
			if i < 0 || i >= len(files) {
				return nil, fmt.Errorf("argument %q: torrent %s has files 0 to %d, not %d", key, ih, len(files)-1, i)
			}
			out = append(out, files[i])
		}
		return out, nil
	}
	var c fileChoice
	for _, p := range []struct {
		key string
		idx []int
		to  *[]string
	}{{"files-wanted", idx.want, &c.Want}, {"files-unwanted", idx.skip, &c.Skip}, {"priority-high", idx.high, &c.High}, {"priority-normal", idx.normal, &c.Normal}} {
		if *p.to, err = paths(p.key, p.idx); err != nil {
			return err
		}
	}
	_, err = s.setFiles(ih, c)
	return err
}

// rpcFileIdx is the files a torrent-set or torrent-add names by index.
type rpcFileIdx struct{ want, skip, high, normal []int }

// fileIdx reads the files-* and priority-* arguments. The engine has two
// priorities: priority-low is refused rather than taken as normal.
func (r rpcRequest) fileIdx() (rpcFileIdx, error) {
	var idx rpcFileIdx
	var low []int
	for _, a := range []struct {
		key string
		to  *[]int
	}{{"files-wanted", &idx.want}, {"files-unwanted", &idx.skip}, {"priority-high", &idx.high}, {"priority-normal", &idx.normal}, {"priority-low", &low}} {
		if _, err := r.arg(a.key, a.to); err != nil {
			return idx, err
		}
	}
	if len(low) > 0 {
		return idx, errors.New("priority-low: this node fetches files at two priorities, high and normal; say priority-normal")
	}
	return idx, nil
}

// rpcTorrentAdd adds a .torrent (base64 "metainfo"), or a magnet link or
// the URL of a .torrent ("filename").
func (s *seedbox) rpcTorrentAdd(r *http.Request, req rpcRequest) (map[string]any, error) {
	if err := req.only("metainfo", "filename", "paused", "download-dir", "files-wanted", "files-unwanted",
		"priority-high", "priority-normal", "priority-low", "cookies"); err != nil {
		return nil, err
	}
	var meta, name, dir, cookies string
	var paused bool
	for _, a := range []struct {
		name string
		v    any
	}{{"metainfo", &meta}, {"filename", &name}, {"download-dir", &dir}, {"cookies", &cookies}, {"paused", &paused}} {
		if _, err := req.arg(a.name, a.v); err != nil {
			return nil, err
		}
	}
	idx, err := req.fileIdx()
	if err != nil {
		return nil, err
	}
	if dir, err = s.rpcDir(dir); err != nil {
		return nil, fmt.Errorf("torrent-add: argument \"download-dir\": %w", err)
	}
	var v View
	switch {
	case meta != "":
		data, derr := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(meta), ""))
		if derr != nil {
			return nil, fmt.Errorf("torrent-add: argument \"metainfo\" is not base64: %w", derr)
		}
		v, err = s.addMetainfo(data, dir)
	case strings.HasPrefix(strings.TrimSpace(name), "magnet:"):
		v, err = s.addMagnet(strings.TrimSpace(name), dir)
	case name != "":
		data, ferr := fetchTorrent(r.Context(), name, cookies)
		if ferr != nil {
			return nil, fmt.Errorf("torrent-add: %w", ferr)
		}
		v, err = s.addMetainfo(data, dir)
	default:
		return nil, errors.New(`torrent-add: give "metainfo" (a .torrent in base64) or "filename" (a magnet link or the URL of a .torrent)`)
	}
	key := "torrent-added"
	switch {
	case errors.Is(err, errExists):
		key = "torrent-duplicate"
	case err != nil:
		return nil, fmt.Errorf("torrent-add: %w", err)
	default:
		if err := s.setFileIndices(v.InfoHash, idx); err != nil && !errors.Is(err, errBusy) {
			return nil, fmt.Errorf("torrent-add: added, but: %w", err)
		}
		if paused {
			if _, err := s.pause(v.InfoHash); err != nil {
				return nil, fmt.Errorf("torrent-add: added, but not paused: %w", err)
			}
		}
	}
	s.mu.Lock()
	s.numberLocked()
	id := s.rpc.ids[v.InfoHash]
	s.mu.Unlock()
	return map[string]any{key: map[string]any{"id": id, "name": v.Name, "hashString": v.InfoHash}}, nil
}

// rpcDir turns a download-dir into a folder in the data folder: the data
// folder itself, a folder in it (as Sonarr asks for its category), or a
// path relative to it. Data goes nowhere else.
func (s *seedbox) rpcDir(dir string) (string, error) {
	if !filepath.IsAbs(dir) {
		return cleanDir(dir)
	}
	rel, err := filepath.Rel(s.cfg.DataDir, filepath.Clean(dir))
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("%s is not in this node's data folder %s (data_dir in [plugins.torrent])", dir, s.cfg.DataDir)
	}
	return cleanDir(rel)
}

// fetchTorrent downloads a .torrent from an http or https URL, as
// Transmission does for a "filename" that is no magnet link (and a feed's
// item links to).
func fetchTorrent(ctx context.Context, raw, cookies string) ([]byte, error) {
	if !httpURL(raw) {
		return nil, fmt.Errorf("argument \"filename\": %q is neither a magnet link nor an http(s) URL of a .torrent (a file on the client is sent as \"metainfo\")", raw)
	}
	data, err := getBounded(ctx, raw, cookies, maxTorrentFile)
	switch {
	case errors.Is(err, errOverLimit):
		return nil, fmt.Errorf("fetch %s: over %d bytes, no .torrent", raw, maxTorrentFile)
	case err != nil:
		return nil, fmt.Errorf("fetch %s: %w", raw, err)
	}
	return data, nil
}

// httpURL reports whether raw is an http or https URL with a host: what
// getBounded fetches (a .torrent, a feed, a blocklist).
func httpURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// errOverLimit is an answer longer than getBounded takes.
var errOverLimit = errors.New("over the limit")

// getBounded GETs url (with cookies, if any) and returns its body, of at
// most limit bytes, within 30 s: a .torrent a client names, a feed.
func getBounded(ctx context.Context, url, cookies string, limit int) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if cookies != "" {
		req.Header.Set("Cookie", cookies)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, errors.New(resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(data) > limit {
		return nil, errOverLimit
	}
	return data, nil
}

func (s *seedbox) rpcFreeSpace(req rpcRequest) (map[string]any, error) {
	if err := req.only("path"); err != nil {
		return nil, err
	}
	var path string
	if _, err := req.arg("path", &path); err != nil {
		return nil, err
	}
	if path == "" {
		path = s.cfg.DataDir
	}
	free, _, err := sdk.DiskSpace(path)
	if err != nil {
		return nil, fmt.Errorf("free-space: %w", err)
	}
	return map[string]any{"path": path, "size-bytes": free}, nil
}
