// Package daemon wires the router together: the libp2p host, the plugin
// supervisor with each plugin's Host service, and the HTTP API. It owns
// their lifetimes and the order they stop in.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/vecino/vecino/config"
	"github.com/vecino/vecino/internal/atomicfile"
	pluginv1 "github.com/vecino/vecino/pluginapi/v1"
	"github.com/vecino/vecino/router/internal/api"
	"github.com/vecino/vecino/router/internal/hostapi"
	"github.com/vecino/vecino/router/internal/p2p"
	"github.com/vecino/vecino/router/internal/supervisor"
)

// Version is the router's version, set at link time.
var Version = "dev"

// Options are what main hands the daemon.
type Options struct {
	Config      *config.Config
	ConfigState api.ConfigState
	// PluginDir is where plugin binaries are looked for when a plugin's
	// table gives no path and the plugin is not built in.
	PluginDir string
	// Builtin runs the plugins built into the router binary: name to the
	// command (the router's own executable) and its environment.
	Builtin map[string]Builtin
	// CheckPlugins judges the built-in plugins' own tables, for a file
	// sent to PUT /api/v1/config.
	CheckPlugins config.PluginChecker
	// StateDir is -state-dir, which overrides the file's [node] state_dir.
	StateDir string
	// Reload, when it delivers, has the router read its configuration
	// file again (SIGHUP) and apply the plugins' tables.
	Reload <-chan os.Signal
	Log    *slog.Logger
}

// Builtin is how to start a plugin linked into the router binary.
type Builtin struct {
	Path string
	Args []string
	Env  []string
}

// APIAddrFile names the file, under the state directory, that holds the
// address the API listens on (useful with port 0).
const APIAddrFile = "api-addr"

// Run runs the node until ctx ends, then stops plugins, the API and the
// host, in that order.
func Run(ctx context.Context, o Options) error {
	cfg, log := o.Config, o.Log
	stateDir := cfg.Node.StateDir
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return fmt.Errorf("create state dir: %w", err)
	}
	node, err := p2p.New(cfg.Network, stateDir, log.With("component", "p2p"))
	if err != nil {
		return err
	}
	defer node.Close()

	direct, err := hostapi.NewDirect(log.With("component", "streams"))
	if err != nil {
		return err
	}
	defer direct.Close()

	counters := map[string]*hostapi.Counters{}
	var specs []supervisor.Spec
	for _, name := range sortedNames(cfg.Plugins) {
		p := cfg.Plugins[name]
		spec := supervisor.Spec{
			Name: name, Path: p.Path, SHA256: p.SHA256, Settings: p.Settings,
			DataDir: filepath.Join(stateDir, "plugins", name), Enabled: p.Enabled,
		}
		if b, ok := o.Builtin[name]; ok && spec.Path == "" {
			spec.Path, spec.Args, spec.Env = b.Path, b.Args, b.Env
		} else if spec.Path == "" {
			spec.Path = filepath.Join(o.PluginDir, name)
		}
		counters[name] = &hostapi.Counters{}
		specs = append(specs, spec)
	}
	sup := supervisor.New(specs, supervisor.Options{
		NodeID:       node.Host.ID().String(),
		StreamSocket: direct.Path(),
		Log:          log.With("component", "supervisor"),
		Host: func(name string, info *pluginv1.InfoResponse) pluginv1.HostServer {
			return hostapi.New(node, name, info, filepath.Join(stateDir, "plugins", name), counters[name], direct, log.With("component", "hostapi", "plugin", name))
		},
	})

	auth, where, err := api.LoadAuth(cfg.API, stateDir)
	if err != nil {
		return err
	}
	srv := &api.Server{
		Direct: direct,
		Name:   cfg.Node.Name, Version: Version, Node: node, Plugins: sup, Counters: counters,
		Config: o.ConfigState, Auth: auth, Log: log.With("component", "api"), StartedAt: time.Now(),
		CheckPlugins: o.CheckPlugins,
	}
	ln, err := net.Listen("tcp", cfg.API.Listen)
	if err != nil {
		return fmt.Errorf("api listen: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(stateDir, APIAddrFile), []byte(ln.Addr().String()+"\n"), 0o644); err != nil {
		ln.Close()
		return err
	}
	httpSrv := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	httpDone := make(chan error, 1)
	go func() { httpDone <- httpSrv.Serve(ln) }()
	log.Info("api up", "url", "http://"+ln.Addr().String()+"/", "auth", where)

	if o.Reload != nil {
		running := *cfg // its own copy: a reload updates what it applied
		r := &reloader{running: &running, state: o.ConfigState, stateDir: o.StateDir, check: o.CheckPlugins, srv: srv, log: log.With("component", "config")}
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-o.Reload:
					r.reload()
				}
			}
		}()
	}

	supCtx, stopPlugins := context.WithCancel(context.Background())
	supDone := make(chan struct{})
	go func() {
		sup.Run(supCtx)
		close(supDone)
	}()

	select {
	case <-ctx.Done():
	case err = <-httpDone:
		err = fmt.Errorf("api: %w", err)
	}
	log.Info("shutting down: stopping plugins")
	stopPlugins()
	<-supDone
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if herr := httpSrv.Shutdown(sctx); herr != nil && !errors.Is(herr, http.ErrServerClosed) {
		log.Warn("api shutdown", "err", herr)
	}
	log.Info("stopped")
	return err
}

func sortedNames(m map[string]*config.Plugin) []string {
	return slices.Sorted(maps.Keys(m))
}
