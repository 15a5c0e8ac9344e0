package torrent

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"

	"github.com/vecino/vecino/internal/atomicfile"
)

// keptMakings is how many finished makings the API and page still list.
const keptMakings = 16

// A making is a torrent being made of a file or folder in the data folder.
// Hashing a large folder takes minutes on a Pi's USB disk, so it runs on
// its own, one at a time, and shows how far it got on the page, in the API
// and in the CLI.
type making struct {
	id       string // random: a client polling it never finds another after a restart
	name     string
	trackers []string
	size     int64
	hashed   atomic.Int64
	started  time.Time
	cancel   context.CancelCauseFunc // stops it, with errCancelled

	// Set once it ends, under seedbox.mu.
	ended     time.Time
	err       string
	cancelled bool
	infoHash  string
	magnet    string
	already   bool
}

// MakingView is a making as the API shows it.
type MakingView struct {
	ID       string  `json:"id"`
	Name     string  `json:"name"`
	State    string  `json:"state"` // queued, hashing, done, failed, cancelled
	Size     int64   `json:"size"`
	Hashed   int64   `json:"hashed"`
	Progress float64 `json:"progress"`
	Rate     float64 `json:"rate"` // bytes hashed a second, on average
	Error    string  `json:"error,omitempty"`
	InfoHash string  `json:"info_hash,omitempty"`
	Magnet   string  `json:"magnet,omitempty"`
	// Already says the torrent was on the node before this making.
	Already bool `json:"already,omitempty"`
}

// viewLocked shows m; s.mu is held.
func (m *making) viewLocked(now time.Time) MakingView {
	v := MakingView{ID: m.id, Name: m.name, Size: m.size, Hashed: m.hashed.Load(),
		Error: m.err, InfoHash: m.infoHash, Magnet: m.magnet, Already: m.already}
	switch {
	case m.cancelled:
		v.State = "cancelled"
	case m.err != "":
		v.State = "failed"
	case !m.ended.IsZero():
		v.State = "done"
	case m.started.IsZero():
		v.State = "queued"
	default:
		v.State = "hashing"
	}
	if v.Size > 0 {
		v.Progress = float64(v.Hashed) / float64(v.Size)
	} else if v.State == "done" {
		v.Progress = 1
	}
	if !m.started.IsZero() {
		end := now
		if !m.ended.IsZero() {
			end = m.ended
		}
		if d := end.Sub(m.started).Seconds(); d > 0 {
			v.Rate = float64(v.Hashed) / d
		}
	}
	return v
}

// makings lists the makings under way and the last ones that ended, in
// the order they were asked for.
func (s *seedbox) makings() []MakingView {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	out := make([]MakingView, 0, len(s.making))
	for _, m := range s.making {
		out = append(out, m.viewLocked(now))
	}
	return out
}

// findLocked is the making with that id, or nil; s.mu is held.
func (s *seedbox) findLocked(id string) *making {
	for _, m := range s.making {
		if m.id == id {
			return m
		}
	}
	return nil
}

// makingView shows one making, or says there is none with that id.
func (s *seedbox) makingView(id string) (MakingView, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.findLocked(id); m != nil {
		return m.viewLocked(time.Now()), true
	}
	return MakingView{}, false
}

// create starts making a torrent of a file or folder at the top of the
// data folder, announced to trackers; once its data is hashed, the torrent
// is added and seeds at once. It refuses at once what cannot be made.
func (s *seedbox) create(name string, trackers []string) (MakingView, error) {
	if err := safeName(name); err != nil {
		return MakingView{}, fmt.Errorf("create: %q must name a file or folder at the top of the data folder", name)
	}
	if _, err := os.Stat(filepath.Join(s.cfg.DataDir, name)); err != nil {
		return MakingView{}, fmt.Errorf("create: %w", err)
	}
	if err := checkTrackers(trackers); err != nil {
		return MakingView{}, fmt.Errorf("create: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.making {
		if m.name == name && m.ended.IsZero() {
			return MakingView{}, fmt.Errorf("create: a torrent of %s is being made already (making %s): %w", name, m.id, errBusy)
		}
	}
	m := &making{id: rand.Text()[:10], name: name, trackers: trackers}
	s.beginLocked(m)
	return m.viewLocked(time.Now()), nil
}

// checkTrackers refuses announce URLs no client could use, before any
// hashing: the torrent would carry them to everyone who adds it.
func checkTrackers(trackers []string) error {
	for i, tr := range trackers {
		if err := checkTrackerURL(tr); err != nil {
			return fmt.Errorf("trackers[%d]: %w", i, err)
		}
	}
	return nil
}

// beginLocked lists m and sets it going; s.mu is held.
func (s *seedbox) beginLocked(m *making) {
	ctx, cancel := context.WithCancelCause(s.bg)
	m.cancel = cancel
	s.making = append(s.making, m)
	s.saveMakingsLocked()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.make(ctx, m)
	}()
}

// errCancelled ends a making that its user called off.
var errCancelled = errors.New("cancelled")

// cancelMaking calls off a making that has not ended: it stops hashing,
// and no torrent is made.
func (s *seedbox) cancelMaking(id string) (MakingView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.findLocked(id)
	switch {
	case m == nil:
		return MakingView{}, fmt.Errorf("no making %q", id)
	case !m.ended.IsZero():
		return m.viewLocked(time.Now()), fmt.Errorf("making %s has ended already: %w", id, errBusy)
	}
	m.cancel(errCancelled)
	return m.viewLocked(time.Now()), nil
}

// savedMaking is a making not yet ended, as makings.json keeps it.
type savedMaking struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	Trackers []string `json:"trackers,omitempty"`
}

func (s *seedbox) makingsPath() string { return filepath.Join(s.state, "makings.json") }

// saveMakingsLocked keeps the makings not yet ended, so that the next
// plugin process (after a crash, a reboot) takes them up again under the
// same ids: a folder dropped into the watch folder is not forgotten, and
// a CLI waiting on a making sees it through. s.mu is held.
func (s *seedbox) saveMakingsLocked() {
	pending := []savedMaking{}
	for _, m := range s.making {
		if m.ended.IsZero() {
			pending = append(pending, savedMaking{ID: m.id, Name: m.name, Trackers: m.trackers})
		}
	}
	data, err := json.Marshal(pending)
	if err == nil {
		err = atomicfile.Write(s.makingsPath(), data, 0o644)
	}
	if err != nil {
		s.log.Error("save the makings under way", "err", err)
	}
}

// resumeMakings takes up the makings the last process left unfinished.
func (s *seedbox) resumeMakings() {
	data, err := os.ReadFile(s.makingsPath())
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	var saved []savedMaking
	if err == nil {
		err = json.Unmarshal(data, &saved)
	}
	if err != nil {
		s.log.Error("makings under way not taken up", "file", s.makingsPath(), "err", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sm := range saved {
		if sm.ID == "" || safeName(sm.Name) != nil {
			s.log.Error("making not taken up: bad entry", "file", s.makingsPath(), "id", sm.ID, "name", sm.Name)
			continue
		}
		s.log.Info("taking up a making the last run left", "making", sm.ID, "name", sm.Name)
		s.beginLocked(&making{id: sm.ID, name: sm.Name, trackers: sm.Trackers})
	}
}

// make hashes m's data, when no other making is hashing, and adds the
// torrent.
func (s *seedbox) make(ctx context.Context, m *making) {
	var err error
	select {
	case s.hashing <- struct{}{}:
		s.mu.Lock()
		m.started = time.Now()
		s.mu.Unlock()
		err = s.build(ctx, m)
		<-s.hashing
	case <-ctx.Done():
		err = ctx.Err()
	}
	if s.bg.Err() != nil {
		return // the plugin stops: the next run takes it up again
	}
	if err != nil && context.Cause(ctx) == errCancelled {
		err = errCancelled
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m.ended = time.Now()
	m.cancel(nil) // let its context go
	s.saveMakingsLocked()
	switch {
	case err == errCancelled:
		m.err, m.cancelled = err.Error(), true
		s.log.Info("create cancelled", "name", m.name, "hashed", m.hashed.Load())
	case err != nil:
		m.err = err.Error()
		s.log.Error("create failed", "name", m.name, "err", err)
	default:
		s.log.Info("created", "name", m.name, "info_hash", m.infoHash, "size", m.size, "already", m.already,
			"secs", m.ended.Sub(m.started).Seconds())
	}
	// Forget the oldest finished makings beyond keptMakings.
	ended := 0
	for i := len(s.making) - 1; i >= 0; i-- {
		if !s.making[i].ended.IsZero() {
			if ended++; ended > keptMakings {
				s.making = slices.Delete(s.making, i, i+1)
			}
		}
	}
}

// build hashes m's data and adds the torrent.
func (s *seedbox) build(ctx context.Context, m *making) error {
	root := filepath.Join(s.cfg.DataDir, m.name)
	info, files, err := layout(root)
	if err != nil {
		return fmt.Errorf("create %s: %w", m.name, err)
	}
	s.mu.Lock()
	m.size = info.TotalLength()
	s.mu.Unlock()
	if info.Pieces, err = hashPieces(ctx, &info, files, &m.hashed); err != nil {
		return fmt.Errorf("create %s: %w", m.name, err)
	}
	// A file written to while it was hashed has pieces that may not match:
	// the torrent is not made, rather than made wrong.
	for _, f := range files {
		if st, err := os.Stat(f.path); err != nil || st.Size() != f.size || !st.ModTime().Equal(f.mod) {
			return fmt.Errorf("create %s: %s changed while it was hashed; try again once it is written", m.name, f.path)
		}
	}
	infoBytes, err := bencode.Marshal(info)
	if err != nil {
		return fmt.Errorf("create %s: %w", m.name, err)
	}
	// Every piece was just hashed from the data in place: the engine is
	// told so, and seeds at once instead of hashing it all a second time.
	ih := metainfo.HashBytes(infoBytes)
	for i := range info.NumPieces() {
		if err := s.pc.Set(metainfo.PieceKey{InfoHash: ih, Index: i}, true); err != nil {
			return fmt.Errorf("create %s: note piece %d as verified: %w", m.name, i, err)
		}
	}
	mi := metainfo.MetaInfo{InfoBytes: infoBytes, CreatedBy: "vecino", CreationDate: time.Now().Unix()}
	if len(m.trackers) > 0 {
		mi.Announce = m.trackers[0]
		mi.AnnounceList = metainfo.AnnounceList{m.trackers}
	}
	data, err := bencode.Marshal(mi)
	if err != nil {
		return fmt.Errorf("create %s: %w", m.name, err)
	}
	v, err := s.addMetainfo(data, "")
	if err != nil && !errors.Is(err, errExists) {
		return err
	}
	s.mu.Lock()
	m.infoHash, m.magnet, m.already = v.InfoHash, v.Magnet, errors.Is(err, errExists)
	s.mu.Unlock()
	return nil
}

// dataFile is one file of a torrent being made, as it was when listed.
type dataFile struct {
	path string
	size int64
	mod  time.Time
}

// layout lists the regular files under root (or root itself, a file) in
// the order their data goes into the torrent, and the info they make, with
// no pieces yet. Links and other special files are left out: a link's size
// is not its target's, and a torrent of them would not match its data.
func layout(root string) (metainfo.Info, []dataFile, error) {
	info := metainfo.Info{Name: filepath.Base(root)}
	var files []dataFile
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		st, err := d.Info()
		if err != nil {
			return err
		}
		files = append(files, dataFile{path: path, size: st.Size(), mod: st.ModTime()})
		return nil
	})
	if err != nil {
		return info, nil, err
	}
	if st, err := os.Lstat(root); err == nil && st.Mode().IsRegular() {
		info.Length = st.Size()
	} else {
		if len(files) == 0 {
			return info, nil, fmt.Errorf("%s holds no files to share", root)
		}
		slices.SortFunc(files, func(a, b dataFile) int { return strings.Compare(a.path, b.path) })
		for _, f := range files {
			rel, err := filepath.Rel(root, f.path)
			if err != nil {
				return info, nil, err
			}
			info.Files = append(info.Files, metainfo.FileInfo{Path: strings.Split(rel, string(filepath.Separator)), Length: f.size})
		}
	}
	info.PieceLength = metainfo.ChoosePieceLength(info.TotalLength())
	return info, files, nil
}

// hashPieces hashes the files' data, one piece after another, counting
// into hashed the bytes read so far; it stops when ctx ends.
func hashPieces(ctx context.Context, info *metainfo.Info, files []dataFile, hashed *atomic.Int64) ([]byte, error) {
	pr, pw := io.Pipe()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		pw.CloseWithError(feed(ctx, pw, files, hashed))
	}()
	pieces, err := metainfo.GeneratePieces(pr, info.PieceLength, nil)
	pr.CloseWithError(errors.New("hashing ended"))
	wg.Wait()
	return pieces, err
}

// feed writes the files' data into w, one after another, counting it.
func feed(ctx context.Context, w io.Writer, files []dataFile, count *atomic.Int64) error {
	buf := make([]byte, 1<<20)
	for _, df := range files {
		if err := feedFile(ctx, w, df, buf, count); err != nil {
			return err
		}
	}
	return nil
}

// feedFile writes one file's data into w, as long as it was when listed.
func feedFile(ctx context.Context, w io.Writer, df dataFile, buf []byte, count *atomic.Int64) error {
	f, err := os.Open(df.path)
	if err != nil {
		return err
	}
	defer f.Close()
	for left := df.size; left > 0; {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := f.Read(buf[:min(int64(len(buf)), left)])
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			left -= int64(n)
			count.Add(int64(n))
		}
		if err != nil && left > 0 {
			if err == io.EOF {
				return fmt.Errorf("%s ended %d bytes short of its %d: it changed while it was hashed", df.path, left, df.size)
			}
			return fmt.Errorf("read %s: %w", df.path, err)
		}
	}
	return nil
}
