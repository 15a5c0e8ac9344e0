// Command router is the Vecino node: it owns the node's libp2p identity and
// network, supervises the plugins, and serves the status page and API.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/vecino/vecino/config"
	"github.com/vecino/vecino/router/internal/daemon"
	"github.com/vecino/vecino/sdk"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "plugin" {
		servePlugin(os.Args[2])
		return
	}
	var (
		configPath  = flag.String("config", "", "configuration file (default: the built-in loopback-only configuration); PUT /api/v1/config saves here")
		defaultCfg  = flag.String("default-config", "", "configuration to start on while the -config file does not exist yet (the image ships one; a user's copy on /perm wins)")
		stateDir    = flag.String("state-dir", "", "state directory, overriding [node] state_dir; also where the last good configuration is found when the file is broken")
		checkConfig = flag.String("check-config", "", "validate this configuration file and exit")
		pluginDir   = flag.String("plugin-dir", "", "where binaries of plugins not built into the router are found (default: the router binary's folder)")
		logJSON     = flag.Bool("log-json", false, "log JSON lines instead of text")
	)
	flag.Parse()
	sdk.TuneGRPC()

	if *checkConfig != "" {
		if _, err := config.LoadChecked(*checkConfig, checkBuiltin); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("%s: ok\n", *checkConfig)
		return
	}

	path := *configPath
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) && *defaultCfg != "" {
		path = *defaultCfg
	}
	cfg, state, err := daemon.LoadConfig(path, *stateDir, checkBuiltin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var level slog.Level
	level.UnmarshalText([]byte(cfg.Node.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, opts)
	if *logJSON {
		h = slog.NewJSONHandler(os.Stderr, opts)
	}
	log := slog.New(h)
	slog.SetDefault(log)
	state.Editable = *configPath
	if state.UsingLastGood {
		log.Error("configuration refused; running on the last good copy", "file", state.File, "err", state.Error)
	}

	exe, err := os.Executable()
	if err != nil {
		log.Error("find own binary", "err", err)
		os.Exit(1)
	}
	builtin := builtinSpecs(exe)
	dir := *pluginDir
	if dir == "" {
		dir = filepath.Dir(exe)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	if err := daemon.Run(ctx, daemon.Options{Config: cfg, ConfigState: state, PluginDir: dir, Builtin: builtin, CheckPlugins: checkBuiltin,
		StateDir: *stateDir, Reload: hup, Log: log}); err != nil {
		log.Error("router stopped", "err", err)
		os.Exit(1)
	}
}
