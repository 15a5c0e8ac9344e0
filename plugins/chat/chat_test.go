package chat

import (
	"context"
	"testing"

	"github.com/vecino/vecino/internal/plugintest"
	"github.com/vecino/vecino/sdk"
)

// TestDocumentedSettingsAreValid: every key config/vecino.toml documents for
// [plugins.chat] is one the plugin takes, with a value it accepts.
func TestDocumentedSettingsAreValid(t *testing.T) {
	configure := func(table []byte) (any, error) {
		c := newChat()
		err := c.Configure(context.Background(), table, sdk.Env{DataDir: t.TempDir()})
		return c.cfg, err
	}
	plugintest.CheckDocumentedDefaults(t, "chat", configure, defaults())
}

func TestBadSettingsNameTheirKey(t *testing.T) {
	configure := func(table []byte) error {
		return newChat().Configure(context.Background(), table, sdk.Env{DataDir: t.TempDir()})
	}
	plugintest.CheckBadSettings(t, configure, []plugintest.BadSetting{
		{TOML: `rooms = ["Lobby!"]`, Key: "rooms"},
		{TOML: `history = 0`, Key: "history"},
		{TOML: `rate = -1.0`, Key: "rate"},
		{TOML: `history_age = "soon"`, Key: "history_age"},
		{TOML: `mailbox_kib = 0`, Key: "mailbox_kib"},
		{TOML: `colour = "blue"`, Key: "colour"},
	})
}
