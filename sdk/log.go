package sdk

import (
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
