package main

import (
	"context"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/vecino/vecino/sdk"
)

// TestDocumentedSettingsAreValid: every key config/vecino.toml documents for
// [plugins.chat] is one the plugin takes, with a value it accepts.
func TestDocumentedSettingsAreValid(t *testing.T) {
	var file struct {
		Plugins map[string]map[string]any
	}
	if _, err := toml.DecodeFile("../../config/vecino.toml", &file); err != nil {
		t.Fatal(err)
	}
	table := file.Plugins["chat"]
	delete(table, "enabled")
	var b strings.Builder
	if err := toml.NewEncoder(&b).Encode(table); err != nil {
		t.Fatal(err)
	}
	c := newChat()
	if err := c.Configure(context.Background(), []byte(b.String()), sdk.Env{DataDir: t.TempDir()}); err != nil {
		t.Fatalf("config/vecino.toml's [plugins.chat]: %v\n%s", err, b.String())
	}
	if !reflect.DeepEqual(c.cfg, defaults()) {
		t.Errorf("the documented values are not the defaults:\n%+v\n%+v", c.cfg, defaults())
	}
}

func TestBadSettingsNameTheirKey(t *testing.T) {
	for _, c := range []struct{ toml, key string }{
		{`rooms = ["Lobby!"]`, "rooms"},
		{`history = 0`, "history"},
		{`rate = -1.0`, "rate"},
		{`history_age = "soon"`, "history_age"},
		{`mailbox_kib = 0`, "mailbox_kib"},
		{`colour = "blue"`, "colour"},
	} {
		err := newChat().Configure(context.Background(), []byte(c.toml), sdk.Env{DataDir: os.TempDir()})
		if err == nil || !strings.Contains(err.Error(), c.key) {
			t.Errorf("%s: %v, want an error naming %s", c.toml, err, c.key)
		}
	}
}
