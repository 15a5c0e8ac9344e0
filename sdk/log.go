package sdk

import (
	"context"
	"io"
	"log/slog"
	"strings"
)

// NewLogger returns a structured logger that writes the JSON lines go-plugin
// understands (hclog's @level and @message), so that the router re-logs each
// plugin line with its own level, fields and the plugin's name.
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.TimeKey:
				return slog.Attr{} // the router stamps its own time
			case slog.LevelKey:
				return slog.String("@level", strings.ToLower(a.Value.String()))
			case slog.MessageKey:
				return slog.String("@message", a.Value.String())
			}
			return a
		},
	}))
}

// LevelAtLeast wraps h so that records below min are dropped: for a chatty
// library whose debug output would drown the plugin's own.
func LevelAtLeast(h slog.Handler, min slog.Level) slog.Handler {
	return &minLevel{Handler: h, min: min}
}

type minLevel struct {
	slog.Handler
	min slog.Level
}

func (m *minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.Handler.Enabled(ctx, l)
}

func (m *minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return &minLevel{Handler: m.Handler.WithAttrs(as), min: m.min}
}

func (m *minLevel) WithGroup(name string) slog.Handler {
	return &minLevel{Handler: m.Handler.WithGroup(name), min: m.min}
}
