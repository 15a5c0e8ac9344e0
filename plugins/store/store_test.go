package store

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/vecino/vecino/internal/plugintest"
	"github.com/vecino/vecino/sdk"
)

// TestDocumentedSettingsAreValid: config/vecino.toml documents every
// [plugins.store] key with its default value.
func TestDocumentedSettingsAreValid(t *testing.T) {
	configure := func(table []byte) (any, error) {
		s := &store{}
		err := s.Configure(context.Background(), table, sdk.Env{DataDir: t.TempDir()})
		return s.cfg, err
	}
	plugintest.CheckDocumentedDefaults(t, "store", configure, defaults())
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

// A request whose UnixFS data trips boxo costs that request (422), not
// the plugin.
func TestAPanicReadingUnixFSCostsOneRequest(t *testing.T) {
	w := httptest.NewRecorder()
	func() {
		defer survivePanic(w, httptest.NewRequest("GET", "/ipfs/bafy/x", nil))
		var shard map[string]int
		shard["boom"]++ // as a library's nil map would
	}()
	if w.Code != http.StatusUnprocessableEntity || !strings.Contains(w.Body.String(), "/ipfs/bafy/x") {
		t.Errorf("answer %d %q", w.Code, w.Body.String())
	}
}
