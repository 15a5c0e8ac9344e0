package store

import (
	"context"
	"reflect"
	"testing"

	"github.com/vecino/vecino/internal/plugintest"
	"github.com/vecino/vecino/sdk"
)

// TestDocumentedSettingsAreValid: config/vecino.toml documents every
// [plugins.store] key with its default value.
func TestDocumentedSettingsAreValid(t *testing.T) {
	table := plugintest.DocumentedTable(t, "store")
	s := &store{}
	if err := s.Configure(context.Background(), table, sdk.Env{DataDir: t.TempDir()}); err != nil {
		t.Fatalf("config/vecino.toml's [plugins.store]: %v\n%s", err, table)
	}
	if !reflect.DeepEqual(s.cfg, defaults()) {
		t.Errorf("the documented values are not the defaults:\n%+v\n%+v", s.cfg, defaults())
	}
}

func TestBadSettingsNameTheirKey(t *testing.T) {
	configure := func(table []byte) error {
		return (&store{}).Configure(context.Background(), table, sdk.Env{DataDir: t.TempDir()})
	}
	plugintest.CheckBadSettings(t, configure, []plugintest.BadSetting{
		{TOML: `quota_mib = 0`, Key: "quota_mib"},
		{TOML: `replication = 40`, Key: "replication"},
		{TOML: `grace = "1s"` + "\n" + `announce_interval = "5s"`, Key: "grace"},
		{TOML: `fetch_timeout = "often"`, Key: "fetch_timeout"},
		{TOML: `bitswap = "yes"`, Key: "bitswap"},
		{TOML: `colour = "blue"`, Key: "colour"},
	})
}
