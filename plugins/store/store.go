package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/vecino/vecino/sdk"
)

type settings struct {
	QuotaMiB int64 `toml:"quota_mib"`
}

// store validates its table, prepares its block folder and reports its use
// of the quota. Blocks, pins and replication are the subject of their own
// issue.
type store struct {
	cfg    settings
	env    sdk.Env
	blocks string
	peers  int
}

func (s *store) Info() sdk.Info {
	return sdk.Info{Name: "store", Version: "0.1.0", Description: "content-addressed storage", Protocols: []string{"/vecino/store/*"}}
}

func (s *store) Configure(_ context.Context, raw []byte, env sdk.Env) error {
	cfg := settings{QuotaMiB: 10240}
	errs := sdk.DecodeSettings(raw, &cfg)
	if cfg.QuotaMiB <= 0 {
		errs = append(errs, sdk.KeyError{Key: "quota_mib", Message: fmt.Sprintf("must be positive, not %d", cfg.QuotaMiB)})
	}
	if len(errs) > 0 {
		return errs
	}
	s.cfg, s.env = cfg, env
	s.blocks = filepath.Join(env.DataDir, "blocks")
	return nil
}

func (s *store) Start(ctx context.Context) error {
	if err := os.MkdirAll(s.blocks, 0o700); err != nil {
		return fmt.Errorf("create block dir: %w", err)
	}
	peers, err := s.env.Host.Peers(ctx, "")
	if err != nil {
		return err
	}
	s.peers = len(peers)
	return nil
}

func (s *store) Stop(context.Context) error { return nil }

func (s *store) Health(context.Context) error {
	_, err := os.Stat(s.blocks)
	return err
}

func (s *store) Status(context.Context) (sdk.Status, error) {
	var used int64
	filepath.WalkDir(s.blocks, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				used += info.Size()
			}
		}
		return nil
	})
	return sdk.Status{
		Summary: fmt.Sprintf("%d of %d MiB used", used>>20, s.cfg.QuotaMiB),
		Details: map[string]any{"used_bytes": used, "quota_mib": s.cfg.QuotaMiB, "peers_at_start": s.peers},
	}, nil
}
