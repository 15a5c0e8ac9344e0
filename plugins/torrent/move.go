package torrent

// Moving a torrent's data to another folder of the data folder, as
// Transmission's "set location" does: a seedbox sorts what it finished
// into folders (tv/, films/, a disk mounted in the data folder) and goes
// on seeding it from there. On one filesystem the data is renamed, at
// once. Onto another (a USB disk mounted in the data folder) it is copied
// in the background, with progress, while the torrent seeds on from where
// it was; only when the copy is whole does the torrent switch to it and
// the old files go. Nothing is overwritten: a folder that holds a file of
// the same name is refused.

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/anacrolix/torrent"
)

// moveJob is a copy of a torrent's data to another filesystem under way.
type moveJob struct {
	to          string // the folder in the data folder it goes to
	done, total atomic.Int64
}

// MoveView is a move under way, for the torrent's view.
type MoveView struct {
	To       string  `json:"to"`
	Progress float64 `json:"progress"` // 0..1 of the bytes copied
}

// move puts torrent ih's data in dir, a folder in the data folder ("" the
// data folder itself). With moveData false the data is taken to be there
// already (copied by hand, say): the torrent is pointed at it and
// verified.
func (s *seedbox) move(ih, dir string, moveData bool) (View, error) {
	dir, err := cleanDir(dir)
	if err != nil {
		return View{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	it, err := s.itemLocked(ih)
	if err != nil {
		return View{}, err
	}
	return s.moveLocked(it, dir, moveData)
}

// moveLocked is move, dir cleaned.
func (s *seedbox) moveLocked(it *item, dir string, moveData bool) (View, error) {
	ih := it.rec.InfoHash
	switch {
	case it.move != nil:
		return it.view(), fmt.Errorf("%s is being moved to %q already: %w", ih, it.move.to, errBusy)
	case it.verifying:
		return it.view(), fmt.Errorf("%s is being verified: move it when that is done: %w", ih, errBusy)
	case dir == it.rec.Dir && it.rec.Incomplete == "":
		return it.view(), nil
	case !it.hasInfo():
		// The engine opens a torrent's storage when its metadata comes,
		// in the folder the record says then.
		it.rec.Dir, it.rec.Incomplete = dir, ""
		s.storeDir(it.rec)
		s.saveListLocked()
		s.log.Info("moved", "torrent", ih, "to", dir, "data", "none yet")
		return it.view(), nil
	}
	name := it.t.Info().BestName()
	if err := safeName(name); err != nil {
		return it.view(), err
	}
	to := *it.rec
	to.Dir = dir
	if other := s.clashingLocked(&to, it.t.Info(), func(*item) bool { return true }); other != "" {
		return it.view(), fmt.Errorf("torrent %s keeps its data under the same name in %q: the two would write over each other", other, dir)
	}
	it.moveErr = ""
	src, dst := filepath.Join(it.dataDir(), name), filepath.Join(s.cfg.DataDir, dir, name)
	_, serr := os.Lstat(src)
	if !moveData || errors.Is(serr, fs.ErrNotExist) {
		// Nothing here to move: the data is in dir already, or none came
		// yet. What the engine counts as verified is checked there.
		nit, err := s.relocateLocked(it, dir, nil)
		if err != nil {
			return nit.view(), err
		}
		s.log.Info("moved", "torrent", name, "to", dir, "data", "found there")
		if _, err := s.verifyLocked(ih); err != nil {
			return nit.view(), err
		}
		return s.torrents[ih].view(), nil
	}
	if _, err := os.Lstat(dst); !errors.Is(err, fs.ErrNotExist) {
		return it.view(), fmt.Errorf("%s exists already: moving %s there would mix its files with what is there (move or rename that first)", dst, name)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return it.view(), fmt.Errorf("move %s: %w", name, err)
	}
	var crossed bool
	it.rec.MovingTo = &dir
	s.saveListLocked() // before the data goes: see settleMove
	nit, err := s.relocateLocked(it, dir, func() error {
		err := os.Rename(src, dst)
		crossed = errors.Is(err, syscall.EXDEV)
		return err
	})
	switch {
	case crossed:
		nit.rec.MovingTo = &dir // relocateLocked cleared it: the copy is still to come
		s.saveListLocked()
		return s.startCopyLocked(nit, src, dst, dir), nil
	case err != nil:
		return nit.view(), fmt.Errorf("move %s to %s: %w", name, dst, err)
	}
	s.log.Info("moved", "torrent", name, "to", dir)
	return nit.view(), nil
}

// finishDownloadsLocked moves the data of torrents downloaded into the
// incomplete folder to their own folder once their wanted files are
// whole; a move that fails is not tried again in this run (the torrent
// shows why, and seeds on from where it is).
func (s *seedbox) finishDownloadsLocked() {
	var done []*item
	for _, it := range s.torrents {
		if it.rec.Incomplete == "" || it.moveErr != "" || it.move != nil || it.verifying || !it.hasInfo() || it.trouble() != "" {
			continue
		}
		// checking walks every piece's state: only once the bytes are all
		// here, not at every tick of a download.
		if size, have := it.wanted(); have == size && !it.checking() {
			done = append(done, it)
		}
	}
	for _, it := range done {
		s.log.Info("download complete: moving it out of the incomplete folder", "torrent", it.rec.Name, "to", it.rec.Dir)
		if _, err := s.moveLocked(it, it.rec.Dir, true); err != nil {
			if cur := s.torrents[it.rec.InfoHash]; cur != nil {
				cur.moveErr = err.Error()
			}
			s.log.Error("download complete, but not moved out of the incomplete folder", "torrent", it.rec.Name, "err", err)
		}
	}
}

// settleMove finds out, at start, where the data of a torrent whose move
// a killed plugin left under way is, from what is on disk: renamed to the
// new folder (the record takes it), or still where it was, with a partial
// copy in the new folder, which goes (a move never starts onto anything
// that is there). It reports what it did, for the log.
func settleMove(dataDir string, rec *record) string {
	to, err := cleanDir(*rec.MovingTo) // list.json may have been edited: nothing outside the data folder goes
	rec.MovingTo = nil
	if err != nil || safeName(rec.Name) != nil {
		return ""
	}
	src := filepath.Join(dataDir, rec.where(), rec.Name)
	dst := filepath.Join(dataDir, to, rec.Name)
	_, serr := os.Lstat(src)
	_, derr := os.Lstat(dst)
	switch {
	case serr == nil && derr == nil:
		if err := os.RemoveAll(dst); err != nil {
			return fmt.Sprintf("a move to %q was cut short; its partial copy %s could not be removed: %v", to, dst, err)
		}
		return fmt.Sprintf("a move to %q was cut short: the data stays in %q, the partial copy is removed", to, rec.where())
	case errors.Is(serr, fs.ErrNotExist) && derr == nil:
		rec.Dir, rec.Incomplete = to, ""
		return fmt.Sprintf("a move to %q was cut short after the data went: it is taken from there", to)
	}
	return ""
}

// storeDir tells the engine's storage where rec's data goes.
func (s *seedbox) storeDir(rec *record) {
	if dir := rec.where(); dir != "" {
		s.dirs.Store(rec.InfoHash, dir)
		return
	}
	s.dirs.Delete(rec.InfoHash)
}

// relocateLocked takes a torrent out of the engine, runs between (which
// moves its data, if given), and hands the torrent back to the engine,
// its data in dir if between did not fail, else where it was. The bytes
// this run counted stay in its record; its completed pieces stay
// completed. It returns the torrent's new item.
func (s *seedbox) relocateLocked(it *item, dir string, between func() error) (*item, error) {
	data, err := s.torrentFile(it.rec.InfoHash)
	if err != nil {
		return it, fmt.Errorf("move %s: its kept .torrent: %w", it.rec.Name, err)
	}
	mi, _, err := parseMetainfo(data)
	if err != nil {
		return it, fmt.Errorf("move %s: its kept .torrent: %w", it.rec.Name, err)
	}
	up, down := it.runBytes()
	it.t.Drop()
	it.rec.Uploaded += up
	it.rec.Downloaded += down
	if between != nil {
		err = between()
	}
	if err == nil {
		it.rec.Dir, it.rec.Incomplete = dir, ""
	}
	it.rec.MovingTo = nil
	s.storeDir(it.rec)
	nit, aerr := s.startLocked(it.rec, func() (*torrent.Torrent, error) { return s.cl.AddTorrent(mi) })
	if aerr != nil {
		// The engine took it back at the start: this is not expected.
		it.rec.Error = fmt.Sprintf("taken out of the engine to be moved, not taken back: %v; restart the plugin", aerr)
		s.saveListLocked()
		return it, errors.Join(err, aerr)
	}
	nit.lastUpload, nit.lastDown, nit.named = it.lastUpload, it.lastDown, it.named
	nit.moveErr = it.moveErr
	nit.applyState()
	s.schedule()
	s.saveListLocked()
	return nit, err
}

// startCopyLocked copies a torrent's data to another filesystem in the
// background; the torrent seeds from src meanwhile but downloads nothing.
func (s *seedbox) startCopyLocked(it *item, src, dst, dir string) View {
	job := &moveJob{to: dir}
	job.total.Store(treeSize(src))
	it.move = job
	it.applyState()
	s.log.Info("moving to another disk", "torrent", it.rec.Name, "to", dst, "bytes", job.total.Load())
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.finishCopy(it, job, src, dst)
	}()
	return it.view()
}

// finishCopy copies src to dst, then switches the torrent to it and
// removes src. If the copy fails, or the torrent was removed meanwhile,
// the copy goes and the torrent stays where it was.
func (s *seedbox) finishCopy(it *item, job *moveJob, src, dst string) {
	copied := map[string]fileStamp{}
	err := copyTree(src, dst, copied, &job.done, s.bg.Done())
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.torrents[it.rec.InfoHash] != it {
		os.RemoveAll(dst)
		return
	}
	if err == nil {
		_, err = s.relocateLocked(it, job.to, func() error {
			// Out of the engine now: anything written to src during the
			// copy (a chunk on its way as downloads stopped) is copied
			// again.
			return recopyChanged(src, dst, copied)
		})
		if err == nil {
			it = s.torrents[it.rec.InfoHash]
			it.move = nil
			it.applyState()
			s.log.Info("moved", "torrent", it.rec.Name, "to", job.to)
			if err := os.RemoveAll(src); err != nil {
				s.log.Warn("moved, but the old copy stays", "torrent", it.rec.Name, "path", src, "err", err)
			}
			return
		}
		it = s.torrents[it.rec.InfoHash]
	}
	os.RemoveAll(dst)
	it.move, it.rec.MovingTo = nil, nil
	s.saveListLocked()
	it.moveErr = fmt.Sprintf("moving to %q failed: %v; the data stays in %q", job.to, err, it.rec.where())
	it.applyState()
	s.log.Error("move failed", "torrent", it.rec.Name, "to", job.to, "err", err)
}

// fileStamp is what a copied file was when it was copied.
type fileStamp struct {
	size int64
	mod  time.Time
}

// treeSize is the bytes of the files under path.
func treeSize(path string) int64 {
	var n int64
	filepath.WalkDir(path, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// copyTree copies the folder or file src to dst, which must not exist,
// each file synced to disk, noting each in copied; done counts the bytes.
// It stops when stop closes.
func copyTree(src, dst string, copied map[string]fileStamp, done *atomic.Int64, stop <-chan struct{}) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		select {
		case <-stop:
			return errors.New("the plugin is stopping")
		default:
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.Mkdir(to, 0o755)
		case !d.Type().IsRegular():
			return nil // a torrent's data is files and folders
		}
		st, err := copyFile(path, to, done)
		if err != nil {
			return err
		}
		copied[rel] = st
		return nil
	})
}

// copyFile copies one file, refusing to write over one, and returns what
// the source was when its copy began.
func copyFile(src, dst string, done *atomic.Int64) (fileStamp, error) {
	in, err := os.Open(src)
	if err != nil {
		return fileStamp{}, err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return fileStamp{}, err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
	if err != nil {
		return fileStamp{}, err
	}
	_, err = io.Copy(out, io.TeeReader(in, countWriter{done}))
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fileStamp{}, fmt.Errorf("copy %s: %w", src, err)
	}
	return fileStamp{fi.Size(), fi.ModTime()}, nil
}

// recopyChanged copies again the files of src that changed since copied
// noted them, and those that came since.
func recopyChanged(src, dst string, copied map[string]fileStamp) error {
	var discard atomic.Int64
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := copied[rel]; ok && st.size == fi.Size() && st.mod.Equal(fi.ModTime()) {
			return nil
		}
		to := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return err
		}
		if err := os.Remove(to); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		_, err = copyFile(path, to, &discard)
		return err
	})
}

// countWriter adds what is written through it to a count.
type countWriter struct{ n *atomic.Int64 }

func (c countWriter) Write(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	return len(p), nil
}
