package config

import (
	"errors"
	"testing"
)

// FuzzParse checks that no input makes Parse panic, and that every rejection
// is a *Error that names at least one problem.
func FuzzParse(f *testing.F) {
	f.Add(Local)
	f.Add(Example)
	f.Add([]byte("[plugins.chat]\nrooms = ['a']\n[network]\nlisten = ['/ip4/1.2.3.4/tcp/1']"))
	f.Add([]byte("[[plugins]]\nx=1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.toml", "/", data)
		if err == nil {
			if cfg == nil {
				t.Fatal("nil config without error")
			}
			return
		}
		var cerr *Error
		if !errors.As(err, &cerr) || len(cerr.Problems) == 0 || cerr.Error() == "" {
			t.Fatalf("rejection without problems: %T %v", err, err)
		}
	})
}
