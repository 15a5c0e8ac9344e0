package daemon

import (
	"fmt"
	"testing"

	"github.com/vecino/vecino/config"
)

func TestChangedSections(t *testing.T) {
	base := t.TempDir()
	parse := func(text string) *config.Config {
		t.Helper()
		cfg, err := config.ParseChecked("t.toml", base, []byte(text), nil)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	old := parse("[node]\nname = \"a\"\n[plugins.chat]\nhistory = 5\n")
	for text, want := range map[string]string{
		"[node]\nname = \"a\"\n[plugins.chat]\nhistory = 9\n":                     "[]", // a plugin's own keys apply now
		"[node]\nname = \"b\"\n[plugins.chat]\nhistory = 5\n":                     "[[node]]",
		"[node]\nname = \"a\"\n[api]\nlisten = \"127.0.0.1:9\"\n[plugins.chat]\n": "[[api]]",
		"[node]\nname = \"a\"\n[plugins.chat]\nenabled = false\n":                 "[[plugins.chat] enabled, path or sha256]",
	} {
		if got := fmt.Sprint(changedSections(old, parse(text))); got != want {
			t.Errorf("%q: %s, want %s", text, got, want)
		}
	}
}
