// Package profiles serves Go's runtime profiles (net/http/pprof) to the
// holder of the API secret: the router's own at /debug/pprof/, and each
// plugin's, from its own process, at /api/v1/plugins/NAME/debug/pprof/.
// A box that grows or spins can then be looked at where it runs:
//
//	go tool pprof -http : 'http://:PASSWORD@127.0.0.1:8080/api/v1/plugins/store/debug/pprof/heap'
//
// Profiles show what the node holds in memory, so reading one needs the
// secret, unlike the status.
package profiles

import (
	"errors"
	"net/http"
	"net/http/pprof"
	"strings"

	"github.com/vecino/vecino/internal/httpjson"
)

// Prefix is where the profiles are, in the router's paths and in a
// plugin's own.
const Prefix = "/debug/pprof/"

// Handler serves the profiles under Prefix to the requests allowed lets
// have them, and passes every other path to next.
func Handler(next http.Handler, allowed func(*http.Request) bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(Prefix, pprof.Index) // and the named ones: heap, goroutine, allocs...
	mux.HandleFunc(Prefix+"cmdline", pprof.Cmdline)
	mux.HandleFunc(Prefix+"profile", pprof.Profile)
	mux.HandleFunc(Prefix+"symbol", pprof.Symbol)
	mux.HandleFunc(Prefix+"trace", pprof.Trace)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, Prefix) {
			next.ServeHTTP(w, r)
			return
		}
		if !allowed(r) {
			w.Header().Set("WWW-Authenticate", `Basic realm="vecino"`)
			httpjson.Error(w, http.StatusUnauthorized, errors.New("profiles show what the node holds in memory: send the API password (basic auth) or token (Authorization: Bearer)"))
			return
		}
		mux.ServeHTTP(w, r)
	})
}
