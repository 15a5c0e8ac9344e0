package torrent

// What Transmission's RPC reads: the session, its counters, and the
// torrents' fields. A field the node has no true value for is left out
// of the answer, as Transmission leaves out fields it does not know.

import (
	"errors"
	"net/netip"
	"path/filepath"
	"slices"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"

	"github.com/vecino/vecino/sdk"
)

// Transmission's torrent status numbers.
const (
	trStopped      = 0
	trCheck        = 2
	trDownloadWait = 3
	trDownload     = 4
	trSeed         = 6
)

// trLocalError is Transmission's "error" for a torrent whose trouble is
// on this node (its data, its disk), not its tracker.
const trLocalError = 3

func (s *seedbox) rpcSessionGet(req rpcRequest) (map[string]any, error) {
	if err := req.only("fields"); err != nil {
		return nil, err
	}
	var fields []string
	if _, err := req.arg("fields", &fields); err != nil {
		return nil, err
	}
	kB := func(kib int64) int64 { return kib * 1024 / 1000 } // Transmission's speeds are in kB/s
	enc := map[string]string{"prefer": "preferred", "require": "required", "off": "tolerated"}[s.cfg.Encryption]
	idleMin := int64(s.cfg.idle / time.Minute)
	perTorrent := torrent.NewDefaultClientConfig().EstablishedConnsPerTorrent
	alt, sched := s.altView(), s.cfg.altSched
	all := map[string]any{
		"version":                      "3.00 (Vecino torrent plugin " + s.Info().Version + ")",
		"rpc-version":                  rpcVersion,
		"rpc-version-minimum":          1,
		"session-id":                   s.rpc.session,
		"download-dir":                 s.cfg.DataDir,
		"incomplete-dir":               filepath.Join(s.cfg.DataDir, s.cfg.IncompleteDir),
		"incomplete-dir-enabled":       s.cfg.IncompleteDir != "",
		"config-dir":                   s.state,
		"peer-port":                    s.port(),
		"peer-port-random-on-start":    false,
		"port-forwarding-enabled":      s.cfg.PortMapping,
		"dht-enabled":                  s.cfg.DHT,
		"pex-enabled":                  s.cfg.PEX,
		"utp-enabled":                  s.cfg.UTP,
		"lpd-enabled":                  s.cfg.LocalPeerDiscover,
		"encryption":                   enc,
		"speed-limit-down":             kB(s.cfg.DownloadKiBps),
		"speed-limit-down-enabled":     s.cfg.DownloadKiBps > 0,
		"speed-limit-up":               kB(s.cfg.UploadKiBps),
		"speed-limit-up-enabled":       s.cfg.UploadKiBps > 0,
		"alt-speed-enabled":            alt.On,
		"alt-speed-time-enabled":       sched.set,
		"alt-speed-time-begin":         sched.from,
		"alt-speed-time-end":           sched.to,
		"alt-speed-time-day":           sched.trDays(),
		"alt-speed-down":               kB(s.cfg.AltDownloadKiBps),
		"alt-speed-up":                 kB(s.cfg.AltUploadKiBps),
		"seedRatioLimit":               s.cfg.RatioLimit,
		"seedRatioLimited":             s.cfg.RatioLimit > 0,
		"idle-seeding-limit":           idleMin,
		"idle-seeding-limit-enabled":   s.cfg.idle > 0,
		"download-queue-enabled":       true,
		"download-queue-size":          s.cfg.MaxActive,
		"seed-queue-enabled":           true,
		"seed-queue-size":              s.cfg.MaxActive,
		"queue-stalled-enabled":        false,
		"peer-limit-per-torrent":       perTorrent,
		"peer-limit-global":            perTorrent * s.cfg.MaxActive,
		"start-added-torrents":         true,
		"rename-partial-files":         false,
		"blocklist-enabled":            s.blocks.NumRanges() > 0,
		"blocklist-size":               s.blocks.NumRanges(),
		"blocklist-url":                s.cfg.BlocklistURL,
		"trash-original-torrent-files": false,
		"script-torrent-done-enabled":  false,
		"units": map[string]any{
			"speed-units": []string{"kB/s", "MB/s", "GB/s", "TB/s"}, "speed-bytes": 1000,
			"size-units": []string{"kB", "MB", "GB", "TB"}, "size-bytes": 1000,
			"memory-units": []string{"KiB", "MiB", "GiB", "TiB"}, "memory-bytes": 1024,
		},
	}
	if free, _, err := sdk.DiskSpace(s.cfg.DataDir); err == nil {
		all["download-dir-free-space"] = free
	}
	if len(fields) == 0 {
		return all, nil
	}
	out := map[string]any{}
	for _, f := range fields {
		if v, ok := all[f]; ok {
			out[f] = v
		}
	}
	return out, nil
}

func (s *seedbox) rpcSessionStats() map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var up, down float64
	var paused, active int
	var sentNow, gotNow int64
	var tot listTotals
	if s.list != nil {
		tot = s.list.Totals
	}
	sentEver, gotEver := tot.RemovedUp, tot.RemovedDown
	for _, it := range s.torrents {
		up += it.upRate
		down += it.downRate
		if it.rec.Paused || it.rec.Finished {
			paused++
		} else {
			active++
		}
		u, d := it.runBytes()
		sentNow += u
		gotNow += d
		sentEver += it.rec.Uploaded + u
		gotEver += it.rec.Downloaded + d
	}
	running := int64(time.Since(s.started) / time.Second)
	return map[string]any{
		"activeTorrentCount": active, "pausedTorrentCount": paused, "torrentCount": len(s.torrents),
		"uploadSpeed": int64(up), "downloadSpeed": int64(down),
		// This run's counts, of the torrents still held.
		"current-stats": map[string]any{
			"uploadedBytes": sentNow, "downloadedBytes": gotNow,
			"secondsActive": running, "sessionCount": 1,
		},
		// Since the seedbox first ran (list.json's totals).
		"cumulative-stats": map[string]any{
			"uploadedBytes": sentEver, "downloadedBytes": gotEver, "filesAdded": tot.Added,
			"secondsActive": tot.Seconds + running, "sessionCount": tot.Runs,
		},
	}
}

func (s *seedbox) rpcTorrentGet(req rpcRequest) (map[string]any, error) {
	if err := req.only("ids", "fields", "format"); err != nil {
		return nil, err
	}
	var fields []string
	var format string
	if _, err := req.arg("fields", &fields); err != nil {
		return nil, err
	}
	if _, err := req.arg("format", &format); err != nil {
		return nil, err
	}
	if format != "" && format != "objects" {
		return nil, errTableFormat
	}
	if len(fields) == 0 {
		return nil, errNoFields
	}
	sel, err := req.ids()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	items, _ := s.selectLocked(sel, false, now)
	list := make([]map[string]any, 0, len(items))
	for _, it := range items {
		list = append(list, s.rpcFieldsLocked(it, fields))
	}
	out := map[string]any{"torrents": list}
	if sel.recent {
		removed := []int{}
		for id, at := range s.rpc.removed {
			if now.Sub(at) < rpcRecent {
				removed = append(removed, id)
			} else {
				delete(s.rpc.removed, id)
			}
		}
		out["removed"] = removed
	}
	return out, nil
}

var (
	errNoFields    = errors.New(`torrent-get: no "fields" asked for`)
	errTableFormat = errors.New(`torrent-get: "format" must be "objects"`)
)

// rpcFieldsLocked answers the fields asked for of one torrent.
func (s *seedbox) rpcFieldsLocked(it *item, fields []string) map[string]any {
	v := it.view()
	out := make(map[string]any, len(fields))
	info := it.t.Info()
	// The kept .torrent, read once however many of its fields are asked.
	var kept *metainfo.MetaInfo
	read := false
	keptFile := func() *metainfo.MetaInfo {
		if !read {
			read = true
			if mi, err := metainfo.LoadFromFile(filepath.Join(s.state, it.rec.InfoHash+".torrent")); err == nil {
				kept = mi
			}
		}
		return kept
	}
	for _, f := range fields {
		if val, ok := s.rpcField(it, v, info != nil, keptFile, f); ok {
			out[f] = val
		}
	}
	return out
}

func (s *seedbox) rpcField(it *item, v View, hasInfo bool, keptFile func() *metainfo.MetaInfo, f string) (any, bool) {
	switch f {
	case "id":
		return s.rpc.ids[it.rec.InfoHash], true
	case "hashString":
		return v.InfoHash, true
	case "name":
		return v.Name, true
	case "status":
		return trStatus(v.State), true
	case "error":
		if v.Error != "" {
			return trLocalError, true
		}
		return 0, true
	case "errorString":
		if v.Error != "" {
			return v.Error, true
		}
		return v.Note, true
	case "isFinished":
		return it.rec.Finished, true
	case "isStalled":
		// Transmission says a torrent is stalled only when its session's
		// queue-stalled-enabled is on; session-get says it is off here,
		// as a stalled torrent keeps its place in the queue.
		return false, true
	case "percentDone":
		return v.Progress, true
	case "metadataPercentComplete":
		if hasInfo {
			return 1, true
		}
		return 0, true
	case "recheckProgress":
		return v.Verified, true
	case "totalSize":
		if hasInfo {
			return it.t.Length(), true
		}
		return 0, true
	case "sizeWhenDone":
		return v.Size, true
	case "leftUntilDone":
		return v.Size - v.Done, true
	case "haveValid":
		return v.Done, true
	case "haveUnchecked":
		return 0, true
	case "rateDownload":
		return int64(it.downRate), true
	case "rateUpload":
		return int64(it.upRate), true
	case "downloadedEver":
		return v.Downloaded, true
	case "uploadedEver":
		return v.Uploaded, true
	case "uploadRatio":
		if !hasInfo {
			return -1, true // Transmission's "not available"
		}
		return v.Ratio, true
	case "eta":
		if left := v.Size - v.Done; left > 0 && it.downRate > 0 && v.State == "downloading" {
			return int64(float64(left) / it.downRate), true
		}
		return -1, true
	case "peersConnected":
		return v.Peers, true
	case "peersSendingToUs", "peersGettingFromUs":
		var n int
		for _, p := range it.peers {
			if f == "peersSendingToUs" && p.downRate > 0 || f == "peersGettingFromUs" && p.upRate > 0 {
				n++
			}
		}
		return n, true
	case "webseedsSendingToUs":
		return 0, true
	case "addedDate":
		return it.rec.AddedAt.Unix(), true
	case "activityDate":
		last := it.lastUpload
		if it.lastDown.After(last) {
			last = it.lastDown
		}
		return last.Unix(), !last.IsZero()
	case "downloadDir":
		// Where the data ends, as Transmission says while it downloads
		// into its incomplete folder.
		return filepath.Join(s.cfg.DataDir, it.rec.Dir), true
	case "magnetLink":
		return v.Magnet, true
	case "isPrivate":
		return it.private(), true
	case "queuePosition":
		return it.queuePos, true
	case "bandwidthPriority":
		return 0, true // normal: the node has no priorities
	case "seedRatioMode":
		return trLimitMode(it.rec.RatioMode), true
	case "seedIdleMode":
		return trLimitMode(it.rec.IdleMode), true
	case "seedRatioLimit":
		if it.rec.RatioMode == limitOwn {
			return it.rec.RatioLimit, true
		}
		return s.cfg.RatioLimit, true
	case "seedIdleLimit":
		if it.rec.IdleMode == limitOwn {
			return it.rec.IdleSeconds / 60, true
		}
		return int64(s.cfg.idle / time.Minute), true
	case "honorsSessionLimits":
		return true, true
	case "labels":
		return []string{}, true
	case "pieceCount":
		if !hasInfo {
			return nil, false // the engine's count panics before the metadata
		}
		return it.t.NumPieces(), true
	case "pieceSize":
		if !hasInfo {
			return nil, false
		}
		return it.t.Info().PieceLength, true
	case "comment", "creator", "dateCreated":
		// From the kept .torrent: the engine's Metainfo makes these up.
		mi := keptFile()
		if mi == nil {
			return nil, false
		}
		switch f {
		case "comment":
			return mi.Comment, true
		case "creator":
			return mi.CreatedBy, true
		}
		return mi.CreationDate, true
	case "fileCount":
		if !hasInfo {
			return nil, false
		}
		return len(it.t.Files()), true
	case "files", "fileStats", "wanted", "priorities":
		if !hasInfo {
			return []any{}, true // the engine's file list panics before the metadata
		}
		return rpcFiles(it, f), true
	case "trackers":
		var out []map[string]any
		mi := it.t.Metainfo()
		for tier, urls := range mi.UpvertedAnnounceList() {
			for _, u := range urls {
				out = append(out, map[string]any{"announce": u, "id": len(out), "scrape": "", "tier": tier})
			}
		}
		if out == nil {
			out = []map[string]any{}
		}
		return out, true
	case "peers":
		peers := it.peers
		if it.peerSeen == nil { // idle: not sampled
			_, peers = it.peersNow(nil, 0)
		}
		out := []map[string]any{}
		for _, p := range peers {
			out = append(out, p.rpc())
		}
		return out, true
	}
	return nil, false
}

// rpcFiles is the torrent's files in one of Transmission's four views.
func rpcFiles(it *item, f string) any {
	files := it.t.Files()
	out := make([]any, 0, len(files))
	for _, file := range files {
		wanted := !it.skipped(file.DisplayPath())
		prio := 0 // Transmission's normal; high is 1
		if it.high(file.DisplayPath()) {
			prio = 1
		}
		switch f {
		case "files":
			out = append(out, map[string]any{"name": file.Path(), "length": file.Length(), "bytesCompleted": file.BytesCompleted()})
		case "fileStats":
			out = append(out, map[string]any{"bytesCompleted": file.BytesCompleted(), "wanted": wanted, "priority": prio})
		case "wanted":
			w := 0
			if wanted {
				w = 1
			}
			out = append(out, w)
		case "priorities":
			out = append(out, prio)
		}
	}
	return out
}

// trLimitMode is Transmission's number for a limit mode.
func trLimitMode(mode string) int {
	switch mode {
	case limitOwn:
		return 1
	case limitNone:
		return 2
	}
	return 0
}

// trStatus is Transmission's status number for a state.
func trStatus(state string) int {
	switch state {
	case "queued":
		return trDownloadWait
	case "checking", "verifying":
		return trCheck
	case "metadata", "downloading":
		return trDownload
	case "seeding", "moving": // a move is done while it seeds on
		return trSeed
	}
	return trStopped // paused, finished, error
}

// peerSample is one connected peer as of the last second's sample.
type peerSample struct {
	addr             netip.AddrPort
	client           string
	progress         float64
	up, down         int64 // bytes so far on this connection
	upRate, downRate float64
}

func (p peerSample) rpc() map[string]any {
	flags := ""
	if p.downRate > 0 {
		flags += "D"
	}
	if p.upRate > 0 {
		flags += "U"
	}
	return map[string]any{
		"address": p.addr.Addr().Unmap().String(), "port": p.addr.Port(), "clientName": p.client,
		"progress": p.progress, "rateToClient": int64(p.downRate), "rateToPeer": int64(p.upRate),
		"isDownloadingFrom": p.downRate > 0, "isUploadingTo": p.upRate > 0, "flagStr": flags,
	}
}

// samplePeers takes the rates of each connected peer over secs seconds,
// for a torrent that moved data in them. An idle one's peers move none:
// a box seeding hundreds of torrents does not look at each of their
// peers every second; its RPC answer lists them as it is asked.
func (it *item) samplePeers(secs float64) {
	if it.upRate == 0 && it.downRate == 0 {
		it.peerSeen, it.peers = nil, nil
		return
	}
	it.peerSeen, it.peers = it.peersNow(it.peerSeen, secs)
}

// peersNow is the connected peers, with their rates since prev, secs
// seconds ago (none without prev).
func (it *item) peersNow(prev map[*torrent.PeerConn]*peerSample, secs float64) (map[*torrent.PeerConn]*peerSample, []peerSample) {
	conns := it.t.PeerConns()
	next := make(map[*torrent.PeerConn]*peerSample, len(conns))
	n := 0
	if it.hasInfo() { // before, the engine's piece count panics
		n = it.t.NumPieces()
	}
	for _, pc := range conns {
		st := pc.Stats()
		p := &peerSample{up: st.BytesWrittenData.Int64(), down: st.BytesReadUsefulData.Int64()}
		if addr, err := netip.ParseAddrPort(pc.RemoteAddr.String()); err == nil {
			p.addr = addr
		}
		if name, ok := pc.PeerClientName.Load().(string); ok {
			p.client = name
		}
		if n > 0 {
			p.progress = float64(st.RemotePieceCount) / float64(n)
		}
		if last, ok := prev[pc]; ok && secs > 0 {
			p.upRate = float64(p.up-last.up) / secs
			p.downRate = float64(p.down-last.down) / secs
		}
		next[pc] = p
	}
	list := make([]peerSample, 0, len(next))
	for _, p := range next {
		list = append(list, *p)
	}
	slices.SortFunc(list, func(a, b peerSample) int { return a.addr.Compare(b.addr) })
	return next, list
}
