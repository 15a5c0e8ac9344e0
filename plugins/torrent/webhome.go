package torrent

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
)

// webHome serves web_home: a web client written for Transmission's RPC,
// such as Transmission's own (Debian's transmission-common installs it in
// /usr/share/transmission/web) or one of those made to replace it. They
// find the RPC at ../rpc, as Transmission lays them out, so they run here
// unchanged, and ask the browser for the node's password as Transmission
// does (basic auth, any user name). Without web_home, or with a folder that
// holds no index.html, the answer says what to set.
func (s *seedbox) webHome(w http.ResponseWriter, r *http.Request) {
	dir := s.cfg.WebHome
	switch _, err := os.Stat(filepath.Join(dir, "index.html")); {
	case dir == "":
		http.Error(w, "no web client here: set web_home in [plugins.torrent] to the folder of one made for Transmission (Debian's transmission-common puts Transmission's in /usr/share/transmission/web), or use this node's own page at /api/v1/plugins/torrent/", http.StatusNotFound)
		return
	case err != nil:
		http.Error(w, fmt.Sprintf("web_home %s holds no web client: %v", dir, err), http.StatusNotFound)
		return
	}
	w.Header().Set("Cache-Control", "no-cache")
	http.StripPrefix("/transmission/web", http.FileServerFS(os.DirFS(dir))).ServeHTTP(w, r)
}
