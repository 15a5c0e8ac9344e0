package torrent

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
)

// quietEngine drops two warnings anacrolix/torrent v1.61 gives about
// nothing wrong, which filled the log at every verify (3,801 lines for an
// 11 MiB torrent: the status page's last lines were nothing else):
//
//   - "error flushing file before promotion", for a .part file that does
//     not exist: the engine flushes the .part path of each completed file
//     even when it keeps no .part files, as this plugin has it;
//   - "finished hashing piece" with correct=true: the piece's data hashed
//     right, and the copy error it is logged for ("short write") changed
//     nothing. A piece that hashed wrong is still logged.
type quietEngine struct{ slog.Handler }

func (q quietEngine) Handle(ctx context.Context, r slog.Record) error {
	if engineNoise(r) {
		return nil
	}
	return q.Handler.Handle(ctx, r)
}

func (q quietEngine) WithAttrs(as []slog.Attr) slog.Handler {
	return quietEngine{q.Handler.WithAttrs(as)}
}

func (q quietEngine) WithGroup(name string) slog.Handler {
	return quietEngine{q.Handler.WithGroup(name)}
}

// engineNoise reports whether r is one of the warnings quietEngine drops.
func engineNoise(r slog.Record) bool {
	switch r.Message {
	case "error flushing file before promotion":
		noise := false
		r.Attrs(func(a slog.Attr) bool {
			if err, ok := a.Value.Any().(error); ok && a.Key == "err" {
				noise = errors.Is(err, fs.ErrNotExist)
				return false
			}
			return true
		})
		return noise
	case "finished hashing piece":
		correct := false
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "correct" {
				correct = a.Value.Kind() == slog.KindBool && a.Value.Bool()
				return false
			}
			return true
		})
		return correct
	}
	return false
}
