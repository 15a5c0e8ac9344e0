package main

import (
	"fmt"
	"os"

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
	serve func()
	env   []string
}{
	"torrent": {serve: torrent.Main, env: []string{torrent.FileIOEnv + "=classic"}},
	"chat":    {serve: func() { sdk.Serve(chat.New()) }},
	"store":   {serve: func() { sdk.Serve(store.New()) }},
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
