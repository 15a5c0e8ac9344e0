package torrent

import (
	"errors"
	"fmt"
	"slices"

	"github.com/anacrolix/torrent"
)

// FileView is one file of a torrent as the API shows it.
type FileView struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	Done   int64  `json:"done"`
	Wanted bool   `json:"wanted"`
}

// errNoFile says a path names no file of the torrent.
var errNoFile = errors.New("no such file in the torrent")

func (it *item) skipped(path string) bool { return slices.Contains(it.rec.Skip, path) }

// setFetching has the engine fetch the files the user wants (a piece
// shared with a wanted file comes whole), or, with on false, nothing.
// Holding a download back is done with priorities, not with the engine's
// DisallowDataDownload: anacrolix v1.61 then keeps pieces pending that it
// drops from its request order, and an internal check panics the process
// when pieces change meanwhile (a file skipped, a piece verified). v1.62
// fixes it, but needs modules the proxy here does not serve.
func (it *item) setFetching(on bool) {
	it.fetching = on
	if !it.hasInfo() {
		return // applied when the metadata comes
	}
	for _, f := range it.t.Files() {
		prio := torrent.PiecePriorityNone
		if on && !it.skipped(f.DisplayPath()) {
			prio = torrent.PiecePriorityNormal
		}
		f.SetPriority(prio)
	}
}

// wanted returns the size of the files the user wants and how much of them
// is here: the whole torrent unless some files are skipped.
func (it *item) wanted() (size, done int64) {
	if len(it.rec.Skip) == 0 {
		return it.t.Length(), it.t.BytesCompleted()
	}
	for _, f := range it.t.Files() {
		if !it.skipped(f.DisplayPath()) {
			size += f.Length()
			done += f.BytesCompleted()
		}
	}
	return size, done
}

// missing is how much of what the user wants is still to come.
func (it *item) missing() int64 {
	if len(it.rec.Skip) == 0 {
		return it.t.BytesMissing()
	}
	size, done := it.wanted()
	return size - done
}

func (it *item) fileViews() []FileView {
	var out []FileView
	for _, f := range it.t.Files() {
		out = append(out, FileView{Path: f.DisplayPath(), Size: f.Length(), Done: f.BytesCompleted(), Wanted: !it.skipped(f.DisplayPath())})
	}
	return out
}

// files lists torrent ih's files.
func (s *seedbox) files(ih string) ([]FileView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, err := s.withInfoLocked(ih, "no file list")
	if err != nil {
		return nil, err
	}
	return it.fileViews(), nil
}

// setFiles leaves the files skip names out of torrent ih's download and
// takes those want names back in; what was downloaded stays on disk. An
// unknown path changes nothing.
func (s *seedbox) setFiles(ih string, skip, want []string) ([]FileView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, err := s.withInfoLocked(ih, "no files to choose from")
	if err != nil {
		return nil, err
	}
	known := map[string]bool{}
	for _, f := range it.t.Files() {
		known[f.DisplayPath()] = true
	}
	for _, p := range append(slices.Clone(skip), want...) {
		if !known[p] {
			return nil, fmt.Errorf("%q: %w %s", p, errNoFile, ih)
		}
	}
	next := slices.DeleteFunc(slices.Clone(it.rec.Skip), func(p string) bool { return slices.Contains(want, p) })
	for _, p := range skip {
		if !slices.Contains(next, p) {
			next = append(next, p)
		}
	}
	slices.Sort(next)
	it.rec.Skip = next
	it.setFetching(it.fetching)
	s.saveListLocked()
	s.log.Info("files chosen", "torrent", it.rec.Name, "skipped", len(next))
	return it.fileViews(), nil
}
