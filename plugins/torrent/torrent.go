package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vecino/vecino/sdk"
)

type settings struct {
	DataDir    string `toml:"data_dir"`
	ListenPort int    `toml:"listen_port"`
}

// torrent validates its table, prepares its folders and reports them. The
// BitTorrent engine itself is the subject of its own issue.
type torrent struct {
	cfg    settings
	env    sdk.Env
	nodeID string
}

func (t *torrent) Info() sdk.Info {
	return sdk.Info{Name: "torrent", Version: "0.1.0", Description: "BitTorrent seedbox"}
}

func (t *torrent) Configure(_ context.Context, raw []byte, env sdk.Env) error {
	cfg := settings{DataDir: "data", ListenPort: 6881}
	errs := sdk.DecodeSettings(raw, &cfg)
	if cfg.ListenPort < 0 || cfg.ListenPort > 65535 {
		errs = append(errs, sdk.KeyError{Key: "listen_port", Message: fmt.Sprintf("must be from 0 to 65535, not %d", cfg.ListenPort)})
	}
	if len(errs) > 0 {
		return errs
	}
	if !filepath.IsAbs(cfg.DataDir) {
		cfg.DataDir = filepath.Join(env.DataDir, cfg.DataDir)
	}
	t.cfg, t.env = cfg, env
	return nil
}

func (t *torrent) Start(ctx context.Context) error {
	if err := os.MkdirAll(t.cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	self, err := t.env.Host.Self(ctx)
	if err != nil {
		return err
	}
	t.nodeID = self.ID
	return nil
}

func (t *torrent) Stop(context.Context) error   { return nil }
func (t *torrent) Health(context.Context) error { return nil }

func (t *torrent) Status(context.Context) (sdk.Status, error) {
	return sdk.Status{
		Summary: "no torrents",
		Details: map[string]any{"data_dir": t.cfg.DataDir, "listen_port": t.cfg.ListenPort, "torrents": []any{}, "node": t.nodeID},
	}, nil
}
