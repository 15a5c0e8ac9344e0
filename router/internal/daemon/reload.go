package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"time"

	"github.com/vecino/vecino/config"
	"github.com/vecino/vecino/router/internal/api"
)

// reloader reads the configuration file again while the node runs (on
// SIGHUP, as daemons do), and applies what can change without a restart:
// each plugin's own table, the plugin restarting with it. A file that is
// refused changes nothing; the refusal, with its line and key, is on the
// status page until a reload takes.
type reloader struct {
	running  *config.Config // as the router started: its own sections
	state    api.ConfigState
	stateDir string // -state-dir, which overrides the file's
	check    config.PluginChecker
	srv      *api.Server
	log      *slog.Logger
}

// file is what the router would read at its next start: the file it
// edits, or, while that does not exist, the one it was started on (the
// default the image ships).
func (r *reloader) file() (string, error) {
	if e := r.state.Editable; e != "" {
		if _, err := os.Stat(e); err == nil {
			return e, nil
		}
	}
	if r.state.File == builtinName {
		return "", errors.New("the node runs on its built-in configuration: start the router with -config FILE to have a file to reload")
	}
	return r.state.File, nil
}

func (r *reloader) reload() {
	out := api.ReloadState{At: time.Now().Unix()}
	defer func() { r.srv.SetReload(out) }()
	path, err := r.file()
	out.File = path
	var cfg *config.Config
	var data []byte
	if err == nil {
		cfg, data, _, err = readConfig(path, r.check)
	}
	if err != nil {
		out.Error = fmt.Sprintf("reload: %v", err)
		r.log.Error("configuration reload refused: the node runs on as it was", "file", path, "err", err)
		return
	}
	if r.stateDir != "" {
		cfg.Node.StateDir = r.stateDir
	}
	out.Applied = r.srv.ApplyNow(cfg)
	r.running.Network.AllowPeers = cfg.Network.AllowPeers // in force now
	out.AtNextStart = changedSections(r.running, cfg)
	if err := saveLastGood(cfg.Node.StateDir, data); err != nil {
		r.log.Error("keep the reloaded configuration as the last good one", "err", err)
	}
	r.log.Info("configuration reloaded", "file", path, "applied_now", out.Applied, "apply_at_next_start", out.AtNextStart)
}

// changedSections names what differs between the running configuration
// and a new one that only a restart of the router applies.
func changedSections(old, cfg *config.Config) []string {
	var out []string
	for _, c := range []struct {
		name     string
		old, new any
	}{{"[node]", old.Node, cfg.Node}, {"[network]", old.Network, cfg.Network}, {"[api]", old.API, cfg.API}} {
		if !reflect.DeepEqual(c.old, c.new) {
			out = append(out, c.name)
		}
	}
	for name, p := range cfg.Plugins {
		o, ok := old.Plugins[name]
		switch {
		case !ok:
			out = append(out, "[plugins."+name+"] (new)")
		case o.Enabled != p.Enabled || o.Path != p.Path || o.SHA256 != p.SHA256:
			out = append(out, "[plugins."+name+"] enabled, path or sha256")
		}
	}
	for name := range old.Plugins {
		if _, ok := cfg.Plugins[name]; !ok {
			out = append(out, "[plugins."+name+"] (removed)")
		}
	}
	slices.Sort(out)
	return out
}
