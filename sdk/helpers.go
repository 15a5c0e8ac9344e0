package sdk

import (
	"context"
	_ "embed"
	"net/http"
	"time"
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
