package main

import (
	"context"
	"strings"
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

// TestPluginKeysAreCheckedWithTheFile: a key a built-in plugin would
// refuse at its start is the file's error, with its line, when the file is
// checked; a plugin run from a binary of its own is left to judge its table
// when it starts.
func TestPluginKeysAreCheckedWithTheFile(t *testing.T) {
	file := "[node]\nstate_dir = \"s\"\n\n[plugins.torrent]\nratio_limt = 2.0\n\n[plugins.chat]\nhistory = 0\n"
	_, err := config.ParseChecked("vecino.toml", t.TempDir(), []byte(file), checkBuiltin)
	for _, want := range []string{"vecino.toml:5: key plugins.torrent.ratio_limt: unknown key", "vecino.toml:8: key plugins.chat.history: must be"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
	own := "[node]\nstate_dir = \"s\"\n[plugins.torrent]\npath = \"/opt/torrent\"\nratio_limt = 2.0\n"
	if _, err := config.ParseChecked("vecino.toml", t.TempDir(), []byte(own), checkBuiltin); err != nil {
		t.Errorf("a plugin with a binary of its own: %v", err)
	}
	off := "[node]\nstate_dir = \"s\"\n[plugins.torrent]\nenabled = false\nratio_limt = 2.0\n"
	if _, err := config.ParseChecked("vecino.toml", t.TempDir(), []byte(off), checkBuiltin); err != nil {
		t.Errorf("a disabled plugin: %v", err)
	}
}
