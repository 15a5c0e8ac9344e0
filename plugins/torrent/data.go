package torrent

// A torrent's files over HTTP, for taking what the seedbox downloaded
// off it from a browser or with curl: ranges, so a video plays and seeks
// in the browser and an interrupted download resumes. A file still downloading is streamed: the
// engine fetches the pieces being read first, and the answer waits for
// them. The data is the owner's, so it needs the API secret even to read.

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/anacrolix/torrent"

	"github.com/vecino/vecino/internal/httpjson"
	"github.com/vecino/vecino/sdk"
)

// streamReadahead is how far ahead of a streaming read the engine fetches.
const streamReadahead = 4 << 20

// errNotHere refuses a file that is neither here whole nor being fetched.
var errNotHere = errors.New("not here")

// serveData answers GET /torrents/{ih}/data/{path...}.
func (s *seedbox) serveData(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(sdk.AuthenticatedHeader) != "1" {
		// A browser following a link asks its user for the secret.
		w.Header().Set("WWW-Authenticate", `Basic realm="vecino"`)
		httpjson.Error(w, http.StatusUnauthorized, errors.New("a torrent's data is the node owner's: send the API password (basic auth, any user name) or token"))
		return
	}
	ih, path := strings.ToLower(r.PathValue("ih")), r.PathValue("path")
	f, disk, stream, err := s.dataFile(ih, path)
	if err != nil {
		code := http.StatusNotFound
		if errors.Is(err, errNotHere) || errors.Is(err, errBusy) {
			code = http.StatusConflict
		}
		httpjson.Error(w, code, err)
		return
	}
	// Inline, so a video or a picture shows in the browser; a torrent's
	// HTML is anyone's, so it gets an origin of its own and no scripts.
	w.Header().Set("Content-Disposition", fmt.Sprintf("inline; filename*=UTF-8''%s", urlPathEscape(filepath.Base(path))))
	w.Header().Set("Content-Security-Policy", "sandbox")
	if !stream {
		fh, err := os.Open(disk)
		if err != nil {
			httpjson.Error(w, http.StatusConflict, fmt.Errorf("%s: %w", path, err))
			return
		}
		defer fh.Close()
		var mod time.Time
		if fi, err := fh.Stat(); err == nil {
			mod = fi.ModTime()
		}
		http.ServeContent(w, r, filepath.Base(path), mod, io.NewSectionReader(fh, 0, f.Length()))
		return
	}
	rd := f.NewReader()
	defer rd.Close()
	rd.SetContext(r.Context())
	rd.SetReadahead(streamReadahead)
	s.log.Info("streaming a file still downloading", "torrent", ih, "file", path, "range", r.Header.Get("Range"))
	http.ServeContent(w, r, filepath.Base(path), time.Time{}, rd)
}

// dataFile finds file path of torrent ih: on disk whole (disk names it),
// or to be streamed as it downloads. A file that is neither (its torrent
// paused, finished by a limit, held, or the file left out) is refused
// with errNotHere: streaming would fetch it against the owner's word.
func (s *seedbox) dataFile(ih, path string) (f *torrent.File, disk string, stream bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, err := s.withInfoLocked(ih, "no files yet")
	if err != nil {
		return nil, "", false, err
	}
	for _, file := range it.t.Files() {
		if file.DisplayPath() != path {
			continue
		}
		if file.BytesCompleted() == file.Length() {
			return file, filepath.Join(it.dataDir(), filepath.FromSlash(file.Path())), false, nil
		}
		if !it.fetching || it.held() || it.rec.Finished || it.skipped(path) || it.diskProblem != "" {
			return nil, "", false, fmt.Errorf("%s: %d of %d bytes are here and the torrent is not fetching it (%s): %w",
				path, file.BytesCompleted(), file.Length(), whyNotFetching(it, path), errNotHere)
		}
		return file, "", true, nil
	}
	return nil, "", false, fmt.Errorf("%q: %w %s", path, errNoFile, ih)
}

func whyNotFetching(it *item, path string) string {
	switch {
	case it.skipped(path):
		return "the file is left out"
	case it.trouble() != "":
		return it.trouble()
	case it.rec.Paused:
		return "paused"
	case it.queued:
		return "queued"
	case it.rec.Finished:
		return "finished"
	}
	return "held"
}

// urlPathEscape escapes a file name for Content-Disposition's filename*.
func urlPathEscape(name string) string {
	var b strings.Builder
	for _, c := range []byte(name) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
