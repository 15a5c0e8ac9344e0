package supervisor

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// A plugin's log line, as go-plugin hands it on, comes out as a structured
// record at its level with its fields, numbers as they were written; the
// status page's ring gets it as one line.
func TestPluginLogLine(t *testing.T) {
	var out bytes.Buffer
	w := &logWriter{log: slog.New(slog.NewTextHandler(&out, nil)), ring: newRing(4)}
	w.Write([]byte(`{"@level":"info","@message":"created","@module":"torrent","size":50000003,"secs":0.25,"name":"share"}` + "\n"))
	got := out.String()
	for _, want := range []string{"level=INFO", "msg=created", "size=50000003", "secs=0.25", "name=share"} {
		if !strings.Contains(got, want) {
			t.Errorf("record %q lacks %q", got, want)
		}
	}
	if lines := w.ring.lines(); len(lines) != 1 || !strings.HasPrefix(lines[0], "INFO created") || !strings.Contains(lines[0], "size=50000003") {
		t.Errorf("ring: %q", lines)
	}
}
