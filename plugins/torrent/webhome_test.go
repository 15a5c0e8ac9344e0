package torrent

import (
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWebHome: the folder's files are served under /transmission/web/, and
// nothing outside it; without a web client there, the answer says what to
// set.
func TestWebHome(t *testing.T) {
	dir := t.TempDir()
	web := filepath.Join(dir, "web")
	os.MkdirAll(filepath.Join(web, "javascript"), 0o755)
	os.WriteFile(filepath.Join(web, "index.html"), []byte("<title>client</title>"), 0o644)
	os.WriteFile(filepath.Join(web, "javascript", "remote.js"), []byte("RPC._Root = '../rpc'"), 0o644)
	os.WriteFile(filepath.Join(dir, "secret"), []byte("not for the web"), 0o644)
	get := func(home, path string) (int, string) {
		s := &seedbox{cfg: settings{WebHome: home}, log: slog.Default()}
		w := httptest.NewRecorder()
		s.HTTPHandler().ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		return w.Code, w.Body.String()
	}
	for _, tc := range []struct {
		home, path string
		code       int
		want       string
	}{
		{web, "/transmission/web/", 200, "<title>client</title>"},
		{web, "/transmission/web/javascript/remote.js", 200, "../rpc"},
		{web, "/transmission/web", 301, ""},
		{web, "/transmission/web/../secret", 307, ""}, // cleaned: sent away, nothing served
		{web, "/transmission/web/%2e%2e/secret", 404, ""},
		{"", "/transmission/web/", 404, "set web_home in [plugins.torrent]"},
		{dir + "/nothing", "/transmission/web/", 404, "holds no web client"},
	} {
		code, body := get(tc.home, tc.path)
		if code != tc.code || !strings.Contains(body, tc.want) || strings.Contains(body, "not for the web") {
			t.Errorf("%s with web_home %q: %d %q, want %d with %q", tc.path, tc.home, code, body, tc.code, tc.want)
		}
	}
}
