package sdk

import (
	"context"
	_ "embed"
	"fmt"
	"net/http"
	"time"

	"golang.org/x/sys/unix"
)

// Every calls fn with the time, every d, until ctx is done: the loop a
// plugin runs for its periodic work (sweeps, samples, checks). It returns
// when ctx is done.
func Every(ctx context.Context, d time.Duration, fn func(now time.Time)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			fn(now)
		}
	}
}

// DiskSpace tells how much room the file system of dir has for the
// plugin (what a non-root user may still write), and whether it is
// read-only (ext4 remounts itself so after disk errors): what a plugin
// that writes looks at before it takes in more.
func DiskSpace(dir string) (free int64, readOnly bool, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, false, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), st.Flags&unix.ST_RDONLY != 0, nil
}

// pageJS holds the helpers every plugin page shares (formatting sizes, the
// API secret field, error messages); pages load it as "page.js".
//
//go:embed page.js
var pageJS []byte

// ServePage serves html, a plugin's page for people (see Info.Page), at
// the plugin's root, and the shared page.js beside it.
func ServePage(mux *http.ServeMux, html []byte) {
	mux.HandleFunc("GET /{$}", serve("text/html; charset=utf-8", html))
	mux.HandleFunc("GET /page.js", serve("text/javascript; charset=utf-8", pageJS))
}

func serve(contentType string, body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.Write(body)
	}
}
