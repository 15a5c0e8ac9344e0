package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vecino/vecino/config"
	"github.com/vecino/vecino/plugins/chat"
	"github.com/vecino/vecino/plugins/store"
	"github.com/vecino/vecino/plugins/torrent"
	"github.com/vecino/vecino/router/internal/daemon"
	"github.com/vecino/vecino/sdk"
)

// builtins are the plugins linked into the router binary. The router runs
// each as `router plugin NAME`: its own process, supervised and spoken to
// over go-plugin and gRPC like any plugin, but from the same executable,
// so the processes share its pages in memory (and the image holds one
// binary). A [plugins.NAME] path runs a separate binary instead.
var builtins = map[string]struct {
	serve  func()
	plugin func() sdk.Plugin // for checking its table (checkBuiltin)
	env    []string
}{
	"torrent": {serve: torrent.Main, plugin: torrent.New, env: []string{torrent.FileIOEnv + "=classic"}},
	"chat":    {serve: func() { sdk.Serve(chat.New()) }, plugin: chat.New},
	"store":   {serve: func() { sdk.Serve(store.New()) }, plugin: store.New},
}

// checkBuiltin judges a built-in plugin's own table with the plugin's
// Configure, which only reads it: the keys the plugin would refuse at its
// start are found when the file is checked, saved or loaded instead. A
// plugin run from its own binary is judged when it starts.
func checkBuiltin(name, path, settings string) ([]config.KeyProblem, bool) {
	b, ok := builtins[name]
	if !ok || path != "" {
		return nil, false
	}
	env := sdk.Env{DataDir: filepath.Join(os.TempDir(), "vecino-config-check", name)} // not made: Configure only joins paths to it
	err := b.plugin().Configure(context.Background(), []byte(settings), env)
	var keys sdk.ConfigErrors
	switch {
	case err == nil:
		return nil, true
	case errors.As(err, &keys):
		out := make([]config.KeyProblem, len(keys))
		for i, k := range keys {
			out[i] = config.KeyProblem{Key: k.Key, Msg: k.Message}
		}
		return out, true
	}
	return []config.KeyProblem{{Msg: err.Error()}}, true
}

// servePlugin runs `router plugin NAME`.
func servePlugin(name string) {
	b, ok := builtins[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "no plugin %q built in (have torrent, chat, store)\n", name)
		os.Exit(2)
	}
	b.serve()
}

// builtinSpecs tells the daemon how to start the built-in plugins: as exe
// (the router's own binary) with arguments `plugin NAME`.
func builtinSpecs(exe string) map[string]daemon.Builtin {
	out := map[string]daemon.Builtin{}
	for name, b := range builtins {
		out[name] = daemon.Builtin{Path: exe, Args: []string{"plugin", name}, Env: b.env}
	}
	return out
}
