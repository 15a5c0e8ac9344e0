// Package plugintest helps plugins test their settings against the
// documented configuration.
package plugintest

import (
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// DocumentedTable returns [plugins.NAME] from config/vecino.toml as TOML
// text, without the router's own keys (enabled, path, sha256), for the
// plugin's Configure.
func DocumentedTable(t testing.TB, name string) []byte {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(here), "..", "..", "config", "vecino.toml")
	var file struct {
		Plugins map[string]map[string]any
	}
	if _, err := toml.DecodeFile(path, &file); err != nil {
		t.Fatal(err)
	}
	table := file.Plugins[name]
	if table == nil {
		t.Fatalf("%s has no [plugins.%s]", path, name)
	}
	for _, k := range []string{"enabled", "path", "sha256"} {
		delete(table, k)
	}
	var b strings.Builder
	if err := toml.NewEncoder(&b).Encode(table); err != nil {
		t.Fatal(err)
	}
	return []byte(b.String())
}

// CheckDocumentedDefaults has configure take [plugins.NAME] as
// config/vecino.toml documents it and checks that it is accepted and that
// the settings configure ends with are want, the plugin's defaults.
func CheckDocumentedDefaults(t testing.TB, name string, configure func([]byte) (any, error), want any) {
	t.Helper()
	table := DocumentedTable(t, name)
	got, err := configure(table)
	if err != nil {
		t.Fatalf("config/vecino.toml's [plugins.%s]: %v\n%s", name, err, table)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the documented values are not the defaults:\n%+v\n%+v", got, want)
	}
}

// BadSetting is a table with one thing wrong and the key its error must name.
type BadSetting struct{ TOML, Key string }

// CheckBadSettings has configure take each table and checks its error
// names the key.
func CheckBadSettings(t testing.TB, configure func([]byte) error, cases []BadSetting) {
	t.Helper()
	for _, c := range cases {
		err := configure([]byte(c.TOML))
		if err == nil || !strings.Contains(err.Error(), c.Key) {
			t.Errorf("%s: %v, want an error naming %s", c.TOML, err, c.Key)
		}
	}
}
