package config

import (
	"fmt"
	"os"
	"path/filepath"
)

// KeyProblem is a key of a plugin's own table that the plugin refuses.
type KeyProblem struct{ Key, Msg string }

// PluginChecker judges a plugin's own table (its TOML text) as the plugin
// will when it starts. ok is false when it cannot be judged here: a
// plugin that runs from a binary of its own (path set), or one the
// checker does not know; such a table is judged at the plugin's start.
type PluginChecker func(name, path, settings string) (problems []KeyProblem, ok bool)

// ParseChecked is Parse, then check on every enabled plugin's own table:
// a key a plugin would refuse is the file's problem, with its line, as
// much as a key the router refuses. check may be nil.
func ParseChecked(name, baseDir string, data []byte, check PluginChecker) (*Config, error) {
	cfg, err := Parse(name, baseDir, data)
	if err != nil || check == nil {
		return cfg, err
	}
	lines := keyLines(data)
	errs := &Error{File: name}
	for _, pname := range sortedKeys(cfg.Plugins) {
		p := cfg.Plugins[pname]
		if !p.Enabled {
			continue
		}
		problems, ok := check(pname, p.Path, p.Settings)
		if !ok {
			continue
		}
		for _, kp := range problems {
			key := "plugins." + pname
			if kp.Key != "" {
				key += "." + kp.Key
			}
			errs.add(Problem{Line: lines.of(key), Key: key, Msg: kp.Msg})
		}
	}
	if len(errs.Problems) > 0 {
		return nil, errs
	}
	return cfg, nil
}

// LoadChecked reads and validates a file with ParseChecked.
func LoadChecked(path string, check PluginChecker) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return ParseChecked(path, filepath.Dir(abs), data, check)
}
