package torrent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"

	"github.com/vecino/vecino/internal/atomicfile"
	"github.com/vecino/vecino/sdk"
)

// errExists is returned when a torrent is added twice.
var errExists = errors.New("torrent already added")

// addMetainfo adds a .torrent, its data to go to dir, a folder in the
// data folder ("" for the data folder itself).
func (s *seedbox) addMetainfo(data []byte, dir string) (View, error) {
	mi, info, err := parseMetainfo(data)
	if err != nil {
		return View{}, err
	}
	if dir, err = cleanDir(dir); err != nil {
		return View{}, err
	}
	rec := &record{InfoHash: mi.HashInfoBytes().HexString(), Name: info.BestName(), AddedAt: time.Now(), Dir: dir}
	if _, err := os.Lstat(filepath.Join(s.cfg.DataDir, dir, info.BestName())); errors.Is(err, fs.ErrNotExist) {
		// Nothing of it here: it downloads into the incomplete folder,
		// if there is one. Data that is here is seeded where it is.
		rec.Incomplete = s.cfg.IncompleteDir
	}
	return s.add(rec, data, &info, func() (*torrent.Torrent, error) { return s.cl.AddTorrent(mi) })
}

// clashLocked refuses a torrent whose data would go where the different
// files of a torrent added before it are: two torrents named alike would
// write over each other's data. One with the same files (cross-seeding
// the same data from another tracker) is welcome.
func (s *seedbox) clashLocked(rec *record, info *metainfo.Info) error {
	other := s.clashingLocked(rec, info, func(it *item) bool { return it.rec.Error == "" && it.rec.AddedAt.Before(rec.AddedAt) })
	if other == "" {
		return nil
	}
	return fmt.Errorf("its data would go to %s, where torrent %s keeps other files under the same name: adding it would overwrite them", filepath.Join(s.cfg.DataDir, rec.Dir, info.BestName()), other)
}

// clashingLocked is a torrent, of those which, that keeps files other than
// info's under the name info's data would have in rec.Dir; "" if none.
func (s *seedbox) clashingLocked(rec *record, info *metainfo.Info, which func(*item) bool) string {
	for other, it := range s.torrents {
		if other != rec.InfoHash && it.rec.Dir == rec.Dir && which(it) && it.hasInfo() &&
			it.t.Info().BestName() == info.BestName() && !sameFiles(it.t.Info(), info) {
			return other
		}
	}
	return ""
}

// sameFiles reports whether two torrents hold the same files: paths and
// lengths.
func sameFiles(a, b *metainfo.Info) bool {
	fa, fb := a.UpvertedFiles(), b.UpvertedFiles()
	if len(fa) != len(fb) {
		return false
	}
	for i := range fa {
		if fa[i].Length != fb[i].Length || strings.Join(fa[i].BestPath(), "/") != strings.Join(fb[i].BestPath(), "/") {
			return false
		}
	}
	return true
}

// addMagnet adds a magnet link, its data to go to dir as for
// addMetainfo; the metadata comes from peers.
func (s *seedbox) addMagnet(uri, dir string) (View, error) {
	m, err := parseMagnet(uri)
	if err != nil {
		return View{}, err
	}
	if dir, err = cleanDir(dir); err != nil {
		return View{}, err
	}
	rec := &record{InfoHash: m.InfoHash.HexString(), Name: m.DisplayName, Magnet: strings.TrimSpace(uri), AddedAt: time.Now(), Dir: dir,
		Incomplete: s.cfg.IncompleteDir}
	return s.add(rec, nil, nil, func() (*torrent.Torrent, error) { return s.cl.AddMagnet(rec.Magnet) })
}

// add starts a new torrent, unless it is there already (errExists, with
// its view) or its files, when info gives them, would clash with another
// torrent's. torrentFile, the .torrent when there is one, is kept under
// the state folder first, so the torrent comes back after a restart.
func (s *seedbox) add(rec *record, torrentFile []byte, info *metainfo.Info, start func() (*torrent.Torrent, error)) (View, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if it, ok := s.torrents[rec.InfoHash]; ok {
		return it.view(), errExists
	}
	if info != nil {
		if err := s.clashLocked(rec, info); err != nil {
			return View{}, err
		}
	}
	if torrentFile != nil {
		if err := atomicfile.Write(filepath.Join(s.state, rec.InfoHash+".torrent"), torrentFile, 0o644); err != nil {
			return View{}, err
		}
	}
	it, err := s.startLocked(rec, start)
	if err != nil {
		return View{}, err
	}
	s.list.Totals.Added++
	s.schedule()
	s.saveListLocked()
	return it.view(), nil
}

// startLocked hands a torrent to the engine and, once its metadata is
// known, keeps the .torrent and starts downloading what is missing.
func (s *seedbox) startLocked(rec *record, add func() (*torrent.Torrent, error)) (*item, error) {
	s.storeDir(rec) // for the storage's torrentDir
	t, err := add()
	if err != nil {
		s.dirs.Delete(rec.InfoHash)
		return nil, fmt.Errorf("add %s: %w", rec.InfoHash, err)
	}
	it := &item{rec: rec, t: t, cfg: &s.cfg}
	addMissingTrackers(it, rec.Trackers) // the owner's, after a restart
	t.SetOnWriteChunkError(func(err error) { s.onWriteError(it, err) })
	s.torrents[rec.InfoHash] = it
	s.watchData(it) // before the engine may fetch: the data's disk may be missing
	it.applyState()
	go func() {
		select {
		case <-t.GotInfo():
		case <-t.Closed():
			return
		}
		path := filepath.Join(s.state, rec.InfoHash+".torrent")
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			mi := t.Metainfo()
			if data, err := bencode.Marshal(mi); err == nil {
				if err := atomicfile.Write(path, data, 0o644); err != nil {
					s.log.Error("keep metadata", "torrent", t.Name(), "err", err)
				}
			}
		}
		s.mu.Lock()
		if err := s.clashLocked(rec, t.Info()); err != nil { // a magnet's files are known now
			it.rec.Error = err.Error()
			it.applyState()
			s.log.Error("torrent held", "torrent", t.Name(), "err", err)
		}
		it.setFetching(it.fetching)
		s.mu.Unlock()
	}()
	return it, nil
}

// resume adds back every torrent of the last run. Piece completion is in
// bbolt, so completed data is not hashed again.
func (s *seedbox) resume() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	seen := map[string]bool{}
	files, _ := filepath.Glob(filepath.Join(s.state, "*.torrent"))
	for _, f := range files {
		ih := strings.TrimSuffix(filepath.Base(f), ".torrent")
		seen[ih] = true
		rec := s.list.Records[ih]
		if rec == nil {
			rec = &record{InfoHash: ih, AddedAt: time.Now()}
		}
		data, err := os.ReadFile(f)
		var mi *metainfo.MetaInfo
		if err == nil {
			mi, _, err = parseMetainfo(data)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("resume %s: %w", f, err))
			continue
		}
		rec.Magnet = ""
		if rec.MovingTo != nil {
			if did := settleMove(s.cfg.DataDir, rec); did != "" {
				s.log.Warn("torrent moved while the plugin was stopped", "torrent", rec.Name, "what", did)
			}
		}
		if _, err := s.startLocked(rec, func() (*torrent.Torrent, error) { return s.cl.AddTorrent(mi) }); err != nil {
			errs = append(errs, err)
		}
	}
	for ih, rec := range s.list.Records {
		if seen[ih] || rec.Magnet == "" {
			continue
		}
		if _, err := s.startLocked(rec, func() (*torrent.Torrent, error) { return s.cl.AddMagnet(rec.Magnet) }); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// remove drops a torrent, and its data when asked.
func (s *seedbox) remove(ih string, deleteData bool) error {
	s.mu.Lock()
	it, ok := s.torrents[ih]
	if ok {
		delete(s.torrents, ih)
		s.forgetNumberLocked(ih)
	}
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("no torrent %s", ih)
	}
	var name string
	if it.hasInfo() {
		name = it.t.Name()
	}
	it.t.Drop()
	os.Remove(filepath.Join(s.state, ih+".torrent"))
	s.mu.Lock()
	up, down := it.runBytes()
	s.list.Totals.RemovedUp += it.rec.Uploaded + up
	s.list.Totals.RemovedDown += it.rec.Downloaded + down
	s.saveListLocked()
	s.mu.Unlock()
	s.dirs.Delete(ih)
	if deleteData && name != "" && safeName(name) == nil {
		if err := os.RemoveAll(filepath.Join(it.dataDir(), name)); err != nil {
			return fmt.Errorf("delete data of %s: %w", name, err)
		}
	}
	return nil
}

// errBusy refuses what cannot be done to a torrent now: a verify while one
// runs, anything that needs metadata before it came, a pause of a paused one.
var errBusy = errors.New("busy")

// start resumes a paused torrent, or has one that a ratio or idle limit
// finished seed again, the limits counting afresh from now.
func (s *seedbox) start(ih string) (View, error) {
	return s.change(ih, func(it *item) error {
		switch {
		case it.gone != "":
			// The engine still counts the pieces it had: a verify finds
			// them gone, and they are downloaded.
			s.log.Info("data missing: downloading it anew, as asked", "torrent", it.rec.Name)
			it.gone, it.gonePath, it.rec.Had = "", "", 0
			if _, err := s.verifyLocked(it.rec.InfoHash); err != nil {
				return err
			}
		case it.rec.Paused:
			it.rec.Paused = false
			s.log.Info("resumed", "torrent", it.rec.Name)
		case it.rec.Finished:
			up, _ := it.runBytes()
			it.rec.Finished, it.rec.FinishedWhy, it.rec.LimitFrom = false, "", it.rec.Uploaded+up
			s.log.Info("seeding again", "torrent", it.rec.Name)
		default:
			return fmt.Errorf("%s is neither paused nor finished: it runs already: %w", ih, errBusy)
		}
		it.lastUpload = time.Now()
		return nil
	})
}

// pause stops a torrent's downloading and seeding until it is started
// again, across restarts; what it has stays.
func (s *seedbox) pause(ih string) (View, error) {
	return s.change(ih, func(it *item) error {
		if it.rec.Paused {
			return fmt.Errorf("%s is paused already: %w", ih, errBusy)
		}
		it.rec.Paused = true
		s.log.Info("paused", "torrent", it.rec.Name)
		return nil
	})
}

// change applies fn to torrent ih under the lock; then the engine and the
// queue follow, and the list is saved.
func (s *seedbox) change(ih string, fn func(*item) error) (View, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, err := s.itemLocked(ih)
	if err != nil {
		return View{}, err
	}
	if err := fn(it); err != nil {
		return it.view(), err
	}
	it.applyState()
	s.schedule()
	s.saveListLocked()
	return it.view(), nil
}

// itemLocked finds torrent ih.
func (s *seedbox) itemLocked(ih string) (*item, error) {
	it, ok := s.torrents[ih]
	if !ok {
		return nil, fmt.Errorf("%w %s", errNoTorrent, ih)
	}
	return it, nil
}

// withInfoLocked finds torrent ih, which must have its metadata for what
// is asked (why not, in the error).
func (s *seedbox) withInfoLocked(ih, why string) (*item, error) {
	it, err := s.itemLocked(ih)
	if err == nil && !it.hasInfo() {
		err = fmt.Errorf("%s has no metadata yet, so %s: %w", ih, why, errBusy)
	}
	return it, err
}

// recheckAll verifies every torrent with metadata, one after another, in
// the background: after the engine's record of verified pieces was lost,
// so that data on disk is seeded, not downloaded again.
func (s *seedbox) recheckAll() {
	s.mu.Lock()
	var all []string
	for ih, it := range s.torrents {
		if it.hasInfo() {
			all = append(all, ih)
		}
	}
	s.mu.Unlock()
	sort.Strings(all)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for _, ih := range all {
			s.mu.Lock()
			it, _, err := s.startVerifyLocked(ih)
			s.mu.Unlock()
			if err != nil {
				s.log.Warn("not verified", "torrent", ih, "err", err)
				continue
			}
			s.verifyPieces(ih, it)
		}
	}()
}

// verify hashes every piece of ih's data again, in the background, one piece
// after another: for a user who doubts the disk. Pieces that fail are
// marked missing and fetched again from peers; the view shows how far it
// has got.
func (s *seedbox) verify(ih string) (View, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.verifyLocked(ih)
}

func (s *seedbox) verifyLocked(ih string) (View, error) {
	it, v, err := s.startVerifyLocked(ih)
	if err != nil {
		return v, err
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.verifyPieces(ih, it)
	}()
	return v, nil
}

// startVerifyLocked marks ih as being verified, unless it cannot be.
func (s *seedbox) startVerifyLocked(ih string) (*item, View, error) {
	it, err := s.withInfoLocked(ih, "no data to verify")
	switch {
	case err != nil:
		return nil, View{}, err
	case it.verifying:
		return nil, it.view(), fmt.Errorf("%s is being verified already: %w", ih, errBusy)
	case it.move != nil:
		return nil, it.view(), fmt.Errorf("%s is being moved to %q: verify it when that is done: %w", ih, it.move.to, errBusy)
	case s.bg.Err() != nil:
		return nil, it.view(), fmt.Errorf("the plugin is stopping: %w", errBusy)
	}
	it.verifying, it.verified = true, 0
	return it, it.view(), nil
}

// verifyPieces hashes it's pieces one after another, counting them, and
// marks it verified when done (or stopped).
func (s *seedbox) verifyPieces(ih string, it *item) {
	start, n := time.Now(), it.t.NumPieces()
	var err error
	for i := range n {
		if err = it.t.Piece(i).VerifyDataContext(s.bg); err != nil {
			break
		}
		s.mu.Lock()
		it.verified = i + 1
		s.mu.Unlock()
	}
	s.mu.Lock()
	it.verifying = false
	verified := it.verified
	s.mu.Unlock()
	if err != nil {
		s.log.Warn("verify stopped", "torrent", ih, "pieces", verified, "of", n, "err", err)
		return
	}
	s.log.Info("verified", "torrent", ih, "pieces", n, "missing_bytes", it.t.BytesMissing(), "took", time.Since(start).Round(time.Millisecond).String())
}

// torrentFile returns the kept .torrent of a torrent.
func (s *seedbox) torrentFile(ih string) ([]byte, error) {
	if len(ih) != 40 || strings.Trim(ih, "0123456789abcdef") != "" {
		return nil, fmt.Errorf("%q is not a hex info hash", ih)
	}
	return os.ReadFile(filepath.Join(s.state, ih+".torrent"))
}

// watchSettle is how long what is dropped into the watch folder must
// stay unchanged before it is taken: a copy still under way is left alone.
const watchSettle = 2 * time.Second

// settled reports whether path, and everything in it if it is a folder,
// has not changed for watchSettle. A folder's own time changes only when
// entries come or go in it, not while a file deep inside is written.
func settled(path string, now time.Time) bool {
	fresh := errors.New("changed lately")
	err := filepath.WalkDir(path, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if now.Sub(fi.ModTime()) < watchSettle {
			return fresh
		}
		return nil
	})
	return err == nil
}

// watch adds what appears in the watch folder: .torrent files, .magnet files
// holding a link, and files or folders to seed (moved into the data folder).
// What was added is renamed NAME.added; what failed, NAME.invalid, with the
// reason in the log, so nothing is lost and nothing is retried in a loop.
func (s *seedbox) watch(ctx context.Context) {
	sdk.Every(ctx, 2*time.Second, func(time.Time) { s.scanWatchDir() })
}

// scanWatchDir takes what is in the watch folder now.
func (s *seedbox) scanWatchDir() {
	entries, err := os.ReadDir(s.cfg.WatchDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".added") || strings.HasSuffix(name, ".invalid") {
			continue
		}
		path := filepath.Join(s.cfg.WatchDir, name)
		if !settled(path, time.Now()) {
			continue // still being written
		}
		var addErr error
		switch {
		case strings.HasSuffix(name, ".torrent") && !e.IsDir():
			data, err := os.ReadFile(path)
			if err == nil {
				_, err = s.addMetainfo(data, "")
			}
			addErr = err
		case strings.HasSuffix(name, ".magnet") && !e.IsDir():
			data, err := os.ReadFile(path)
			if err == nil {
				_, err = s.addMagnet(string(data), "")
			}
			addErr = err
		default:
			dst := filepath.Join(s.cfg.DataDir, name)
			if _, err := os.Stat(dst); err == nil {
				addErr = fmt.Errorf("%s already exists in the data folder", name)
				break
			}
			if err := os.Rename(path, dst); err != nil {
				addErr = err
				break
			}
			if m, err := s.create(name, nil); err != nil {
				s.log.Error("watch folder: seed", "file", name, "err", err)
			} else {
				s.log.Info("watch folder: making a torrent to seed", "file", name, "making", m.ID)
			}
			continue
		}
		suffix := ".added"
		if addErr != nil && !errors.Is(addErr, errExists) {
			suffix = ".invalid"
			s.log.Error("watch folder: not added", "file", name, "err", addErr)
		} else {
			s.log.Info("watch folder: added", "file", name)
		}
		os.Rename(path, path+suffix)
	}
}
