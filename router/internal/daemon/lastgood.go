package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/BurntSushi/toml"

	"github.com/vecino/vecino/config"
	"github.com/vecino/vecino/internal/atomicfile"
	"github.com/vecino/vecino/router/internal/api"
)

// builtinName is how the built-in configuration is named in the status.
const builtinName = "(built-in local.toml)"

// LastGoodFile names the copy of the last configuration that loaded, under
// the state directory.
const LastGoodFile = "last-good.toml"

// LoadConfig reads the configuration at path (the built-in one when path is
// empty). When the file is refused but a last good copy exists, it returns
// that copy with the refusal in the state, so that a bad edit on an
// appliance does not take the node off the network, nor one of its
// plugins (check judges their own tables). stateDir, when not empty,
// overrides [node] state_dir.
func LoadConfig(path, stateDir string, check config.PluginChecker) (*config.Config, api.ConfigState, error) {
	state := api.ConfigState{File: path}
	var (
		data []byte
		base string
		err  error
	)
	var cfg *config.Config
	if path == "" {
		state.File = builtinName
		data = config.Local
		if base, err = os.Getwd(); err == nil {
			cfg, err = config.ParseChecked(state.File, base, data, check)
		}
	} else {
		cfg, data, base, err = readConfig(path, check)
	}
	if err == nil {
		if stateDir != "" {
			cfg.Node.StateDir = stateDir
		}
		if serr := saveLastGood(cfg.Node.StateDir, data); serr != nil {
			return nil, state, serr
		}
		return cfg, state, nil
	}

	dir := stateDir
	if dir == "" {
		dir = guessStateDir(data, base)
	}
	if dir == "" {
		return nil, state, fmt.Errorf("%w\n(no last good configuration to fall back on: pass -state-dir to find it)", err)
	}
	lastPath := filepath.Join(dir, LastGoodFile)
	last, lerr := os.ReadFile(lastPath)
	if lerr != nil {
		return nil, state, fmt.Errorf("%w\n(no last good configuration at %s)", err, lastPath)
	}
	cfg, lerr = config.ParseChecked(lastPath, base, last, check)
	if lerr != nil {
		return nil, state, fmt.Errorf("%w\n(last good configuration %s is bad too: %v)", err, lastPath, lerr)
	}
	if stateDir != "" {
		cfg.Node.StateDir = stateDir
	}
	state.UsingLastGood = true
	state.Error = err.Error()
	return cfg, state, nil
}

// readConfig reads and checks the configuration file at path, as at
// start and at a reload; base is its folder, which relative paths in it
// are resolved against.
func readConfig(path string, check config.PluginChecker) (cfg *config.Config, data []byte, base string, err error) {
	data, err = os.ReadFile(path)
	if abs, aerr := filepath.Abs(path); aerr == nil {
		base = filepath.Dir(abs)
	}
	if err == nil {
		cfg, err = config.ParseChecked(path, base, data, check)
	}
	return cfg, data, base, err
}

func saveLastGood(stateDir string, data []byte) error {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return fmt.Errorf("create state dir: %w", err)
	}
	path := filepath.Join(stateDir, LastGoodFile)
	old, err := os.ReadFile(path)
	if err == nil && bytes.Equal(old, data) {
		return nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read last good config: %w", err)
	}
	return atomicfile.Write(path, data, 0o600)
}

// guessStateDir reads [node] state_dir from a file that failed validation;
// it finds nothing when the TOML itself does not parse.
func guessStateDir(data []byte, base string) string {
	var f struct {
		Node struct {
			StateDir string `toml:"state_dir"`
		} `toml:"node"`
	}
	if _, err := toml.Decode(string(data), &f); err != nil {
		return ""
	}
	dir := f.Node.StateDir
	if dir == "" {
		dir = config.Defaults().Node.StateDir
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(base, dir)
	}
	return dir
}
