package torrent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"

	"github.com/vecino/vecino/internal/atomicfile"
	"github.com/vecino/vecino/internal/damaged"
	"github.com/vecino/vecino/sdk"
)

// record is what is kept of a torrent across restarts, in list.json beside
// the .torrent files.
type record struct {
	InfoHash string    `json:"info_hash"`
	Name     string    `json:"name"`
	Magnet   string    `json:"magnet,omitempty"` // until the metadata arrives
	AddedAt  time.Time `json:"added_at"`
	// Uploaded and Downloaded count data bytes of earlier runs, for the ratio.
	Uploaded   int64 `json:"uploaded"`
	Downloaded int64 `json:"downloaded"`
	// Finished is set when the ratio or idle limit stopped seeding;
	// FinishedWhy says which.
	Finished    bool   `json:"finished,omitempty"`
	FinishedWhy string `json:"finished_why,omitempty"`
	// LimitFrom is the upload count when the user last had a finished
	// torrent seed again: the ratio limit counts from there.
	LimitFrom int64 `json:"limit_from,omitempty"`
	// Paused is set while the user has the torrent stopped.
	Paused bool `json:"paused,omitempty"`
	// Skip lists the files (paths as in the torrent) left out of the
	// download.
	Skip []string `json:"skip,omitempty"`
	// High lists the files fetched before the others.
	High []string `json:"high,omitempty"`
	// Error holds a torrent that must not run (its files would clash
	// with another's), saying why.
	Error string `json:"error,omitempty"`
	// RatioMode and IdleMode say whether the torrent seeds to the node's
	// limits (""), to its own ("own": RatioLimit, IdleSeconds), or to
	// none ("none"); limits.go.
	RatioMode   string  `json:"ratio_mode,omitempty"`
	RatioLimit  float64 `json:"ratio_limit,omitempty"`
	IdleMode    string  `json:"idle_mode,omitempty"`
	IdleSeconds int64   `json:"idle_seconds,omitempty"`
	// Trackers are announce URLs its owner added (trackers.go).
	Trackers []string `json:"trackers,omitempty"`
	// Dir is the folder in the data folder its data goes to ("" for the
	// data folder itself), as a Transmission client's download-dir asks.
	Dir string `json:"dir,omitempty"`
	// Incomplete is the incomplete folder ([plugins.torrent]
	// incomplete_dir when it was added) its data is in while it
	// downloads, under it Dir; "" once the data is in Dir.
	Incomplete string `json:"incomplete,omitempty"`
	// MovingTo is set, to the folder its data goes to, while the data is
	// renamed or copied there (move.go): a plugin killed meanwhile finds
	// out at start where the data is (settleMove).
	MovingTo *string `json:"moving_to,omitempty"`
	// Queue is the torrent's place in the queue once the owner moved it
	// or another (queue.go); 0 until then.
	Queue int64 `json:"queue,omitempty"`
	// Had is the most bytes of the wanted data seen here (until the user
	// has the torrent downloaded anew). Data that was here and is gone
	// whole (a disk not mounted) holds the torrent instead of downloading
	// it all again.
	Had int64 `json:"had,omitempty"`
}

type torrentList struct {
	path    string
	Records map[string]*record `json:"torrents"`
	Totals  listTotals         `json:"totals"`
}

// listTotals are the seedbox's counts over its life, for Transmission's
// clients' statistics (session-stats' cumulative-stats): the bytes of the
// torrents it held and no longer holds (those held count in their records),
// the torrents added, its runs and the time it ran.
type listTotals struct {
	RemovedUp   int64 `json:"removed_uploaded"`
	RemovedDown int64 `json:"removed_downloaded"`
	Added       int64 `json:"added"`
	Runs        int64 `json:"runs"`
	Seconds     int64 `json:"seconds_running"` // before this run
}

func loadList(dir string) (*torrentList, error) {
	l := &torrentList{path: filepath.Join(dir, "list.json"), Records: map[string]*record{}}
	data, err := os.ReadFile(l.path)
	if errors.Is(err, fs.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return l, fmt.Errorf("read %s: %w", l.path, err)
	}
	if err := json.Unmarshal(data, l); err != nil {
		// The list is written anew at the next save: keep this one whole
		// for whoever wants its ratios, paused and skipped files back.
		err = fmt.Errorf("%s: %w", l.path, err)
		if aside, rerr := damaged.SetAside(l.path); rerr != nil {
			err = errors.Join(err, rerr)
		} else {
			err = fmt.Errorf("%w (kept as %s)", err, filepath.Base(aside))
		}
		return &torrentList{path: l.path, Records: map[string]*record{}}, err
	}
	if l.Records == nil {
		l.Records = map[string]*record{}
	}
	return l, nil
}

// item is one torrent in this run.
type item struct {
	rec *record
	t   *torrent.Torrent
	cfg *settings // the plugin's, for the seeding limits

	queued     bool
	queuePos   int  // its place in the queue, from 0, at the last schedule
	fetching   bool // the engine is told to fetch the wanted files (setFetching)
	at         time.Time
	up, down   int64 // this run's data bytes at the last sample
	upRate     float64
	downRate   float64
	lastUpload time.Time
	// lastDown is when data last arrived, or the stall watch last acted.
	lastDown time.Time
	// diskProblem is set while downloading is paused because the data
	// folder cannot be written (full or read-only); it is the torrent's
	// error until it can. diskSince is when it was set.
	diskProblem string
	diskSince   time.Time
	// gone is set while the data that was here cannot be found; it is
	// the torrent's error until the data is back or the user starts it.
	// gonePath is the file or folder whose return is waited for.
	gone, gonePath string
	// fileCursor is where missingFile looks next among the files.
	fileCursor int
	// lpdNext is when the torrent is next announced on the local network.
	lpdNext time.Time
	// verifying is set while a verify asked for runs; verified counts the
	// pieces it has hashed.
	verifying bool
	verified  int
	// named is the peers a user named, tried again while not connected
	// (named.go).
	named map[netip.AddrPort]*namedPeer
	// peers is the connected peers at the last sample, with their
	// rates; peerSeen the same by connection, for the next.
	peers    []peerSample
	peerSeen map[*torrent.PeerConn]*peerSample
	// move is the copy of its data to another disk under way (move.go);
	// moveErr says why the last one failed.
	move    *moveJob
	moveErr string
}

func (it *item) runBytes() (up, down int64) {
	st := it.t.Stats()
	return st.BytesWrittenData.Int64(), st.BytesReadUsefulData.Int64()
}

func (it *item) sample(now time.Time) {
	up, down := it.runBytes()
	var secs float64
	if !it.at.IsZero() {
		secs = now.Sub(it.at).Seconds()
		it.upRate = float64(up-it.up) / secs
		it.downRate = float64(down-it.down) / secs
	}
	it.samplePeers(secs)
	if up > it.up || it.lastUpload.IsZero() {
		it.lastUpload = now
	}
	if down > it.down || it.lastDown.IsZero() {
		it.lastDown = now
	}
	it.at, it.up, it.down = now, up, down
}

func (it *item) hasInfo() bool { return it.t.Info() != nil }

// dataDir is the folder the torrent's data is in.
func (it *item) dataDir() string { return filepath.Join(it.cfg.DataDir, it.rec.where()) }

// where is the folder in the data folder the torrent's data is in now.
func (r *record) where() string { return filepath.Join(r.Incomplete, r.Dir) }

// cleanDir checks a folder asked for a torrent's data: relative to the
// data folder and within it. It returns it cleaned, "" for the data
// folder itself.
func cleanDir(dir string) (string, error) {
	if dir == "" {
		return "", nil
	}
	if filepath.IsAbs(dir) {
		return "", fmt.Errorf("folder %q: give it relative to the data folder", dir)
	}
	clean := filepath.Clean(dir)
	if clean == "." {
		return "", nil
	}
	for _, part := range strings.Split(clean, "/") {
		if part == "" || part == "." || part == ".." || strings.ContainsAny(part, "\\\x00") || strings.HasPrefix(part, ".") {
			return "", fmt.Errorf("folder %q: %q may not be a part of it (it must stay in the data folder)", dir, part)
		}
	}
	return clean, nil
}

// private reports whether the torrent is private (BEP 27): its peers come
// from its tracker alone.
func (it *item) private() bool {
	info := it.t.Info()
	return info != nil && info.Private != nil && *info.Private
}

// held reports whether the torrent may transfer nothing now: it is
// queued or paused, its data is missing, or it is in error (its files
// would clash with another's).
func (it *item) held() bool {
	return it.queued || it.rec.Paused || it.gone != "" || it.rec.Error != ""
}

// trouble is what keeps the torrent from working, for its view: its
// error, its missing data, or a data folder it cannot write.
func (it *item) trouble() string {
	switch {
	case it.rec.Error != "":
		return it.rec.Error
	case it.gone != "":
		return it.gone
	}
	return it.diskProblem
}

// downloading reports whether the torrent is meant to be fetching data now:
// its metadata is in, data of the files wanted is missing, and it is
// neither held nor finished.
func (it *item) downloading() bool {
	return !it.held() && !it.rec.Finished && it.hasInfo() && it.missing() > 0
}

// applyState tells the engine what the torrent may do now: download
// unless it is held, unable to write its data or being copied to another
// disk; upload unless it is held or finished by a ratio or idle limit.
func (it *item) applyState() {
	held := it.held()
	if fetch := !held && it.diskProblem == "" && it.move == nil; fetch != it.fetching {
		it.setFetching(fetch)
	}
	if held || it.rec.Finished {
		it.t.DisallowDataUpload()
	} else {
		it.t.AllowDataUpload()
	}
}

// ratio is the data uploaded over the torrent's size, since from (bytes
// uploaded in all).
func (it *item) ratio(from int64) float64 {
	if !it.hasInfo() || it.t.Length() == 0 {
		return 0
	}
	up, _ := it.runBytes()
	return float64(it.rec.Uploaded+up-from) / float64(it.t.Length())
}

// View is a torrent as the API shows it.
type View struct {
	InfoHash   string  `json:"info_hash"`
	Name       string  `json:"name"`
	State      string  `json:"state"` // metadata, paused, queued, checking, verifying, moving, downloading, seeding, finished, error
	Size       int64   `json:"size"`
	Done       int64   `json:"done"`
	Progress   float64 `json:"progress"` // 0..1
	UpRate     float64 `json:"up_rate"`  // bytes/s
	DownRate   float64 `json:"down_rate"`
	Uploaded   int64   `json:"uploaded"`
	Downloaded int64   `json:"downloaded"`
	Ratio      float64 `json:"ratio"`
	Peers      int     `json:"peers"`
	Seeders    int     `json:"seeders"`
	Files      int     `json:"files"`
	// Skipped counts the files left out; Size and Done are then of the
	// files wanted.
	Skipped int    `json:"skipped,omitempty"`
	Magnet  string `json:"magnet"`
	// Verified is how far a verify asked for has got, 0..1, while it runs.
	Verified float64 `json:"verified,omitempty"`
	Error    string  `json:"error,omitempty"`
	// DataMissing is set while the torrent is held because its data is
	// gone (Error says where); start downloads it anew.
	DataMissing bool `json:"data_missing,omitempty"`
	// Note says why a finished torrent stopped seeding.
	Note    string `json:"note,omitempty"`
	AddedAt string `json:"added_at"`
	// Limits is the seeding limits in effect.
	Limits LimitsView `json:"limits"`
	// Dir is the folder in the data folder its data is in, if not the
	// data folder itself.
	Dir string `json:"dir,omitempty"`
	// Incomplete is set while its data is in the incomplete folder
	// (incomplete_dir), to be moved to Dir once whole.
	Incomplete bool `json:"incomplete,omitempty"`
	// Queue is its place in the queue, from 0: the first max_active
	// torrents that may transfer do.
	Queue int `json:"queue"`
	// Moving is the copy of its data to another disk under way;
	// MoveError says why the last move failed.
	Moving    *MoveView `json:"moving,omitempty"`
	MoveError string    `json:"move_error,omitempty"`
}

func (it *item) view() View {
	v := View{InfoHash: it.rec.InfoHash, Name: it.rec.Name, AddedAt: it.rec.AddedAt.UTC().Format(time.RFC3339)}
	up, down := it.runBytes()
	v.Uploaded, v.Downloaded = it.rec.Uploaded+up, it.rec.Downloaded+down
	v.UpRate, v.DownRate = it.upRate, it.downRate
	st := it.t.Stats()
	v.Peers, v.Seeders = st.ActivePeers, st.ConnectedSeeders
	v.Magnet = it.rec.Magnet
	v.Limits, v.Dir, v.MoveError, v.Queue = it.limitsView(), it.rec.Dir, it.moveErr, it.queuePos
	v.Incomplete = it.rec.Incomplete != ""
	switch {
	case it.trouble() != "":
		v.State, v.Error = "error", it.trouble()
		v.DataMissing = it.gone != "" && it.rec.Error == ""
	case !it.hasInfo():
		v.State = "metadata"
	}
	if it.hasInfo() {
		info := it.t.Info()
		v.Name = it.t.Name()
		v.Size, v.Done = it.wanted()
		v.Files, v.Skipped = max(1, len(info.Files)), len(it.rec.Skip)
		if v.Size > 0 {
			v.Progress = float64(v.Done) / float64(v.Size)
		}
		v.Ratio = it.ratio(0)
		mi := it.t.Metainfo()
		h := it.t.InfoHash()
		v.Magnet = mi.Magnet(&h, info).String()
		if it.move != nil && v.State == "" {
			v.State = "moving"
			v.Moving = &MoveView{To: it.move.to, Progress: float64(it.move.done.Load()) / float64(max(1, it.move.total.Load()))}
		}
		if it.verifying && v.State == "" {
			v.State = "verifying"
			v.Verified = float64(it.verified) / float64(max(1, it.t.NumPieces()))
		}
		if v.State == "" {
			switch {
			case it.rec.Paused:
				v.State = "paused"
			case it.queued:
				v.State = "queued"
			case it.rec.Finished:
				v.State = "finished"
				v.Note = "stopped seeding: " + it.rec.FinishedWhy
			case v.Done == v.Size && it.rec.Incomplete != "" && it.moveErr == "" && !it.checking():
				// Whole: moved out of the incomplete folder at the next
				// tick, before it counts as seeding from its folder.
				v.State, v.Moving = "moving", &MoveView{To: it.rec.Dir}
			case v.Done == v.Size && !it.checking():
				// The engine counts data written but not yet hashed as
				// done: a torrent seeds once its last pieces verified.
				v.State = "seeding"
			case it.checking():
				v.State = "checking"
			default:
				v.State = "downloading"
			}
		}
	}
	return v
}

// checking reports whether pieces are waiting to be hashed or being hashed:
// data found on disk at add or after a restart, not yet verified.
func (it *item) checking() bool {
	for _, r := range it.t.PieceStateRuns() {
		if r.Hashing || r.QueuedForHash || !r.Ok {
			return true
		}
	}
	return false
}

func (s *seedbox) views() []View {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]View, 0, len(s.torrents))
	for _, it := range s.torrents {
		out = append(out, it.view())
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].AddedAt < out[j].AddedAt || out[i].AddedAt == out[j].AddedAt && out[i].InfoHash < out[j].InfoHash
	})
	return out
}

// applyLimits stops seeding a complete torrent at the ratio or idle limit.
func (s *seedbox) applyLimits(it *item, now time.Time) {
	if it.rec.Finished || it.rec.Paused || !it.hasInfo() || it.missing() > 0 {
		return
	}
	var why string
	ratio, idle := it.limits()
	switch {
	case ratio > 0 && it.ratio(it.rec.LimitFrom) >= ratio:
		why = fmt.Sprintf("ratio %.2f reached the limit %.2f", it.ratio(it.rec.LimitFrom), ratio)
	case idle > 0 && now.Sub(it.lastUpload) >= idle:
		why = fmt.Sprintf("idle for %s", idle)
	default:
		return
	}
	it.rec.Finished, it.rec.FinishedWhy = true, why
	it.applyState()
	s.log.Info("stopped seeding", "torrent", it.rec.Name, "why", why)
}

// minStall is how long an incomplete torrent with connected peers may
// receive nothing before its requests are made again.
const minStall = 10 * time.Second

// stallAfter is minStall, or longer under a download limit so low that
// 64 chunks of 16 KiB take longer: requests re-made before their data could
// arrive would never be answered.
func (s *seedbox) stallAfter() time.Duration {
	if s.cfg.DownloadKiBps > 0 {
		return max(minStall, time.Duration(64*16*int64(time.Second)/s.cfg.DownloadKiBps))
	}
	return minStall
}

// unstall restarts the requests of a download that has peers but has
// received nothing for stallAfter(). The engine stops requesting from a peer
// that rejected its requests until the peer unchokes it again, and
// Transmission, which rejects requests over its queue while it keeps the
// peer unchoked, never does: without this, downloads from Transmission
// halted for good part way.
func (s *seedbox) unstall(it *item, now time.Time) {
	if it.diskProblem != "" || !it.downloading() || now.Sub(it.lastDown) < s.stallAfter() {
		return
	}
	if it.t.Stats().ActivePeers == 0 {
		return
	}
	s.log.Info("download stalled with peers connected; requesting again", "torrent", it.rec.Name, "idle", now.Sub(it.lastDown).Round(time.Second).String())
	it.setFetching(false)
	it.setFetching(true)
	it.lastDown = now
}

// Downloading pauses when the data folder's file system has less than
// diskLow free, and resumes above diskResume. A pause lasts diskRetry at
// least, so that a write that fails for a reason statfs cannot see is
// tried again every diskRetry, not every second.
const (
	diskLow    = 8 << 20
	diskResume = 32 << 20
	diskRetry  = 5 * time.Second
)

// diskState says what keeps the data folder from taking more, or "";
// ok is false when its file system cannot be asked.
func (s *seedbox) diskState() (problem string, readOnly bool, free int64, ok bool) {
	free, readOnly, err := sdk.DiskSpace(s.cfg.DataDir)
	if err != nil {
		return "", false, 0, false
	}
	switch {
	case readOnly:
		problem = fmt.Sprintf("data folder %s is on a read-only file system (a disk error, or mounted so): downloading paused until it can be written", s.cfg.DataDir)
	case free < diskLow:
		problem = fmt.Sprintf("data folder %s is full (%d MiB free): downloading paused until there is space", s.cfg.DataDir, free>>20)
	}
	return problem, readOnly, free, true
}

// pauseDownload holds its download back with problem as its error.
func (s *seedbox) pauseDownload(it *item, problem string, now time.Time) {
	it.diskProblem = problem
	it.diskSince = now
	it.applyState()
	s.log.Error("data folder cannot be written: download paused", "torrent", it.rec.Name, "problem", problem)
}

// watchDisk pauses the downloads, and only those, when the data folder
// cannot take more: its file system is (nearly) full, or read-only (as
// ext4 remounts itself after disk errors). It says so on each of them,
// and resumes them once the folder can be written again. Seeding goes on;
// what was verified stays.
func (s *seedbox) watchDisk(now time.Time) {
	problem, readOnly, free, ok := s.diskState()
	if !ok {
		return
	}
	for _, it := range s.torrents {
		switch {
		case it.diskProblem == "" && it.downloading() && problem != "":
			s.pauseDownload(it, problem, now)
		case it.diskProblem != "" && !readOnly && free >= diskResume && now.Sub(it.diskSince) >= diskRetry:
			it.diskProblem = ""
			it.applyState()
			// The engine's own answer to a failed write, or to a piece
			// completion it could not read, is to stop the download
			// for good; a torrent resumed here must not stay so.
			it.t.AllowDataDownload()
			s.log.Info("data folder writable again: download resumed", "torrent", it.rec.Name, "free_mib", free>>20)
		}
	}
}

// onWriteError is the engine's report that a piece's data could not be
// written. The download is paused with the reason, as watchDisk does:
// the engine's default would stop it for good, and a disk that went
// read-only between two of watchDisk's looks left downloads stuck after
// it was writable again.
func (s *seedbox) onWriteError(it *item, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.torrents[it.rec.InfoHash] != it || it.diskProblem != "" {
		return
	}
	problem, _, _, _ := s.diskState()
	if problem == "" {
		problem = fmt.Sprintf("writing to data folder %s failed: %v: downloading paused, tried again every %s", s.cfg.DataDir, err, diskRetry)
	}
	s.pauseDownload(it, problem, time.Now())
}

// watchData holds a torrent whose data was here and is now gone: its file
// or folder is missing from the data folder, as when the disk that holds
// it is not mounted, or one of its files that held verified data is. The
// engine would otherwise take every piece as lost and download it all
// again, into whatever the data folder now is; or, for one file, keep
// counting its pieces as here. When the data is back it is verified, and
// the torrent goes on.
func (s *seedbox) watchData(it *item) {
	if !it.hasInfo() {
		return
	}
	if it.gone != "" {
		if _, err := os.Stat(it.gonePath); !errors.Is(err, fs.ErrNotExist) {
			it.gone, it.gonePath = "", ""
			it.applyState()
			s.log.Info("data back: verifying it", "torrent", it.rec.Name)
			if _, err := s.verifyLocked(it.rec.InfoHash); err != nil {
				s.log.Warn("verify after the data came back", "torrent", it.rec.Name, "err", err)
			}
		}
		return
	}
	// What the engine counts as here may be all that shows the data was:
	// a download can end, and its data go, between two looks. But not
	// while a verify runs: the engine counts pieces as here until they are
	// hashed, so after a start that downloads gone data anew (Had 0) its
	// stale count would hold the torrent again.
	if !it.verifying {
		_, done := it.wanted()
		it.rec.Had = max(it.rec.Had, done)
	}
	if it.rec.Had == 0 {
		return
	}
	root := filepath.Join(it.dataDir(), it.t.Info().BestName())
	if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) {
		s.hold(it, root, fmt.Sprintf("no data found at %s, where %d MiB of it was: is its disk mounted?", root, it.rec.Had>>20))
	} else if path, had := s.missingFile(it); path != "" {
		s.hold(it, path, fmt.Sprintf("file %s is missing, where %d MiB of verified data was: moved or deleted?", path, had>>20))
	}
}

// hold keeps a torrent whose data went from downloading it again until
// path is back, saying why.
func (s *seedbox) hold(it *item, path, why string) {
	it.gone, it.gonePath = why+" Nothing is downloaded again until it is back (it is then verified), or until you start the torrent to download it anew", path
	it.applyState()
	s.log.Error("data missing: torrent held", "torrent", it.rec.Name, "path", path)
}

// filesPerTick bounds the files missingFile looks at a second, over all
// torrents: a box seeding 500 torrents of 20 files each looks at each
// file every 40 s, not 10,000 a second.
const filesPerTick = 256

// missingFile finds a file of a multi-file torrent that had verified data
// and is gone from the data folder, the rest of the folder still there:
// the engine would count its pieces as here, seed what it no longer has,
// and write the rest of a download around the hole. Each torrent's files
// are looked at in turn, as many as are left of s.fileLooks.
func (s *seedbox) missingFile(it *item) (path string, had int64) {
	files := it.t.Files()
	info := it.t.Info()
	if !info.IsDir() {
		return "", 0 // the root is the file
	}
	for range min(len(files), s.fileLooks) {
		s.fileLooks--
		f := files[it.fileCursor%len(files)]
		it.fileCursor++
		if f.Length() == 0 || it.skipped(f.DisplayPath()) {
			continue
		}
		fi := f.FileInfo()
		p := filepath.Join(append([]string{it.dataDir(), info.BestName()}, fi.BestPath()...)...)
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if done := f.BytesCompleted(); done > 0 {
			return p, done
		}
	}
	return "", 0
}

// schedule lets the first max_active torrents in the queue that are
// neither finished, paused, broken nor missing their data transfer, and
// queues the rest; each torrent's place in the queue is noted.
func (s *seedbox) schedule() {
	var active []*item
	for pos, it := range s.queueLocked() {
		it.queuePos = pos
		if it.rec.Finished || it.rec.Paused || it.rec.Error != "" || it.gone != "" {
			if it.queued { // out of the queue's reckoning
				it.queued = false
				it.applyState()
			}
			continue
		}
		active = append(active, it)
	}
	for i, it := range active {
		if queue := i >= s.cfg.MaxActive; queue != it.queued {
			it.queued = queue
			it.applyState()
		}
	}
}

// saveListLocked writes list.json with the byte counts so far.
func (s *seedbox) saveListLocked() {
	if s.list == nil {
		return
	}
	out := torrentList{Records: map[string]*record{}, Totals: s.list.Totals}
	out.Totals.Seconds += int64(time.Since(s.started) / time.Second)
	for ih, it := range s.torrents {
		r := *it.rec
		up, down := it.runBytes()
		r.Uploaded += up
		r.Downloaded += down
		if it.hasInfo() {
			r.Name = it.t.Name()
		}
		out.Records[ih] = &r
	}
	data, err := json.MarshalIndent(out, "", "  ")
	if err == nil {
		err = atomicfile.Write(s.list.path, data, 0o644)
	}
	if err != nil {
		s.log.Error("save torrent list", "err", err)
	}
}

// parseMetainfo reads a .torrent and checks what the engine relies on, so a
// hostile file is refused with a reason instead of reaching it.
func parseMetainfo(data []byte) (mi *metainfo.MetaInfo, info metainfo.Info, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("parse .torrent: malformed (%v)", r)
		}
	}()
	if len(data) == 0 {
		return nil, info, errors.New("parse .torrent: empty")
	}
	mi, err = metainfo.Load(bytes.NewReader(data))
	if err != nil {
		return nil, info, fmt.Errorf("parse .torrent: %w", err)
	}
	if len(mi.InfoBytes) == 0 {
		return nil, info, errors.New("parse .torrent: no info dictionary")
	}
	if err := bencode.Unmarshal(mi.InfoBytes, &info); err != nil {
		return nil, info, fmt.Errorf("parse .torrent info: %w", err)
	}
	switch {
	case info.PieceLength <= 0:
		return nil, info, fmt.Errorf("parse .torrent info: piece length %d", info.PieceLength)
	case len(info.Pieces) == 0 || len(info.Pieces)%20 != 0:
		return nil, info, fmt.Errorf("parse .torrent info: pieces field of %d bytes is not a list of SHA-1 hashes", len(info.Pieces))
	case info.TotalLength() <= 0:
		return nil, info, errors.New("parse .torrent info: no data")
	case (info.TotalLength()+info.PieceLength-1)/info.PieceLength != int64(len(info.Pieces)/20):
		return nil, info, fmt.Errorf("parse .torrent info: %d bytes in pieces of %d need %d hashes, not %d",
			info.TotalLength(), info.PieceLength, (info.TotalLength()+info.PieceLength-1)/info.PieceLength, len(info.Pieces)/20)
	}
	if err := safeName(info.BestName()); err != nil {
		return nil, info, err
	}
	for _, f := range info.Files {
		for _, part := range f.BestPath() {
			if err := safeName(part); err != nil {
				return nil, info, err
			}
		}
	}
	return mi, info, nil
}

// safeName refuses path parts that would leave the data folder.
func safeName(part string) error {
	if part == "" || part == "." || part == ".." || strings.ContainsAny(part, "/\\\x00") {
		return fmt.Errorf("parse .torrent info: unsafe file name %q", part)
	}
	return nil
}

// parseMagnet checks a magnet link.
func parseMagnet(uri string) (metainfo.Magnet, error) {
	m, err := metainfo.ParseMagnetUri(strings.TrimSpace(uri))
	if err != nil {
		return m, fmt.Errorf("bad magnet link: %w", err)
	}
	return m, nil
}

// parsePeer reads IP:PORT, a peer a user names.
func parsePeer(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(strings.TrimSpace(s))
	if err != nil || ap.Port() == 0 {
		return netip.AddrPort{}, fmt.Errorf("peer %q is not IP:PORT", s)
	}
	return ap, nil
}
