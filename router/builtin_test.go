package main

import (
	"context"
	"testing"

	"github.com/vecino/vecino/config"
	"github.com/vecino/vecino/plugins/chat"
	"github.com/vecino/vecino/plugins/store"
	"github.com/vecino/vecino/plugins/torrent"
	"github.com/vecino/vecino/sdk"
)

// TestShippedPluginTablesConfigure: every [plugins.NAME] table in the files
// we ship is accepted by the plugin itself, which is what checks those keys
// (the router leaves them to it). A key misspelt in the commented example
// would otherwise be found only by a user whose plugin refuses to start.
func TestShippedPluginTablesConfigure(t *testing.T) {
	plugins := map[string]func() sdk.Plugin{"torrent": torrent.New, "chat": chat.New, "store": store.New}
	for name, data := range map[string][]byte{"local.toml": config.Local, "vecino.toml": config.Example} {
		cfg, err := config.Parse(name, t.TempDir(), data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for pname, newPlugin := range plugins {
			p, ok := cfg.Plugins[pname]
			if !ok {
				t.Errorf("%s has no [plugins.%s]", name, pname)
				continue
			}
			if err := newPlugin().Configure(context.Background(), []byte(p.Settings), sdk.Env{DataDir: t.TempDir()}); err != nil {
				t.Errorf("%s [plugins.%s]: %v", name, pname, err)
			}
		}
	}
}
