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
	// Priority is "high" for a file fetched before the others, else
	// "normal".
	Priority string `json:"priority"`
}

// fileChoice is a change to which of a torrent's files are fetched, and
// first: paths as FileView gives them.
type fileChoice struct {
	Skip   []string `json:"skip"`   // left out of the download
	Want   []string `json:"want"`   // taken back
	High   []string `json:"high"`   // fetched before the rest
	Normal []string `json:"normal"` // fetched as the rest
}

// errNoFile says a path names no file of the torrent.
var errNoFile = errors.New("no such file in the torrent")

func (it *item) skipped(path string) bool { return slices.Contains(it.rec.Skip, path) }

func (it *item) high(path string) bool { return slices.Contains(it.rec.High, path) }

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
		switch {
		case !on || it.skipped(f.DisplayPath()):
		case it.high(f.DisplayPath()):
			prio = torrent.PiecePriorityHigh
		default:
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
		prio := "normal"
		if it.high(f.DisplayPath()) {
			prio = "high"
		}
		out = append(out, FileView{Path: f.DisplayPath(), Size: f.Length(), Done: f.BytesCompleted(), Wanted: !it.skipped(f.DisplayPath()), Priority: prio})
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

// setFiles leaves the files c.Skip names out of torrent ih's download and
// takes those c.Want names back in (what was downloaded stays on disk);
// it has those c.High names fetched before the others, and those
// c.Normal names as the others. An unknown path changes nothing.
func (s *seedbox) setFiles(ih string, c fileChoice) ([]FileView, error) {
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
	for _, p := range slices.Concat(c.Skip, c.Want, c.High, c.Normal) {
		if !known[p] {
			return nil, fmt.Errorf("%q: %w %s", p, errNoFile, ih)
		}
	}
	it.rec.Skip = choose(it.rec.Skip, c.Skip, c.Want)
	it.rec.High = choose(it.rec.High, c.High, c.Normal)
	it.setFetching(it.fetching)
	s.saveListLocked()
	s.log.Info("files chosen", "torrent", it.rec.Name, "skipped", len(it.rec.Skip), "high", len(it.rec.High))
	return it.fileViews(), nil
}

// choose is set with in added and out taken away, sorted; nil if empty.
func choose(set, in, out []string) []string {
	next := slices.DeleteFunc(slices.Clone(set), func(p string) bool { return slices.Contains(out, p) })
	for _, p := range in {
		if !slices.Contains(next, p) {
			next = append(next, p)
		}
	}
	slices.Sort(next)
	if len(next) == 0 {
		return nil
	}
	return next
}
