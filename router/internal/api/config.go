package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"

	"github.com/vecino/vecino/config"
	"github.com/vecino/vecino/internal/atomicfile"
	"github.com/vecino/vecino/internal/httpjson"
)

// maxConfigBody bounds an uploaded configuration file.
const maxConfigBody = 1 << 20

// getConfig returns the text of the configuration file the node edits. It
// needs the secret, as the file may hold the API password.
func (s *Server) getConfig(w http.ResponseWriter, r *http.Request) {
	if !s.Auth.Check(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="vecino"`)
		httpjson.Error(w, http.StatusUnauthorized, errors.New("reading the configuration needs the API password or token"))
		return
	}
	path := s.Config.Editable
	if path == "" {
		httpjson.Error(w, http.StatusConflict, errNoEditable)
		return
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && s.Config.File != path {
		data, err = os.ReadFile(s.Config.File) // not edited yet: the shipped default
	}
	if err != nil {
		httpjson.Error(w, http.StatusInternalServerError, fmt.Errorf("read configuration: %w", err))
		return
	}
	w.Header().Set("Content-Type", "application/toml")
	w.Write(data)
}

var errNoEditable = errors.New("this node runs on its built-in configuration; start the router with -config FILE to edit it through the API")

// putConfig validates a new configuration file and saves it where the router
// reads it at its next start. A file that does not validate is refused with
// the line and key at fault, and the saved file is left as it was.
func (s *Server) putConfig(w http.ResponseWriter, r *http.Request) {
	path := s.Config.Editable
	if path == "" {
		httpjson.Error(w, http.StatusConflict, errNoEditable)
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxConfigBody))
	if err != nil {
		httpjson.Error(w, http.StatusRequestEntityTooLarge, fmt.Errorf("configuration larger than %d bytes", maxConfigBody))
		return
	}
	abs, _ := filepath.Abs(path)
	cfg, err := config.ParseChecked(path, filepath.Dir(abs), data, s.CheckPlugins)
	if err != nil {
		httpjson.Error(w, http.StatusBadRequest, err)
		return
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		httpjson.Error(w, http.StatusInternalServerError, fmt.Errorf("save configuration: %w", err))
		return
	}
	if err := atomicfile.Write(path, data, 0o600); err != nil {
		httpjson.Error(w, http.StatusInternalServerError, err)
		return
	}
	applied := s.ApplyNow(cfg)
	s.Log.Info("configuration saved", "file", path, "applied_now", applied)
	httpjson.Write(w, http.StatusOK, map[string]any{
		"file": path, "applied_now": applied,
		"applies": "the plugins in applied_now restarted with their new settings, and [network] allow_peers took effect if it is listed there; the rest applies at the router's next start",
	})
}

// ApplyNow puts in force what of cfg can change while the router runs:
// each running plugin's table (one whose table changed restarts with it,
// at once) and [network] allow_peers (peers it leaves out are
// disconnected). The rest of the router's sections, and which plugins
// run, apply at its next start. It returns what it applied: the plugins
// restarted, and "[network] allow_peers" if that changed.
func (s *Server) ApplyNow(cfg *config.Config) []string {
	applied := []string{}
	for name, p := range cfg.Plugins {
		if sp := s.Plugins.Plugin(name); sp != nil && p.Enabled && sp.Reconfigure(p.Settings) {
			applied = append(applied, name)
		}
	}
	slices.Sort(applied)
	if s.Node != nil {
		changed, err := s.Node.SetAllowPeers(cfg.Network.AllowPeers)
		if err != nil { // validated with the file: not expected
			s.Log.Error("allow_peers not applied", "err", err)
		} else if changed {
			applied = append(applied, allowPeersApplied)
		}
	}
	return applied
}

// allowPeersApplied names allow_peers among what ApplyNow applied.
const allowPeersApplied = "[network] allow_peers"

// SetReload records the outcome of a reload for the status.
func (s *Server) SetReload(r ReloadState) {
	s.configMu.Lock()
	defer s.configMu.Unlock()
	if s.Config.Reload != nil {
		r.Count = s.Config.Reload.Count
	}
	r.Count++
	s.Config.Reload = &r
	if r.Error == "" && len(r.AtNextStart) == 0 {
		// The file is good and nothing of it waits for a restart: the
		// node no longer runs on the last good copy.
		s.Config.UsingLastGood, s.Config.Error = false, ""
	}
}

func (s *Server) configState() ConfigState {
	s.configMu.Lock()
	defer s.configMu.Unlock()
	return s.Config
}
