package sdk

import (
	"context"
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

// PageHandler serves html, a plugin's page for people (see Info.Page).
func PageHandler(html []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(html)
	}
}
