package supervisor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// newHCLogger gives go-plugin a logger whose JSON lines logWriter turns back
// into structured slog records.
func newHCLogger(w *logWriter) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Output: w, JSONFormat: true, Level: hclog.Trace, DisableTime: true,
	})
}

// logWriter re-logs what go-plugin writes: the plugin's own log lines (which
// go-plugin has parsed and tagged with @module) at their level, and
// go-plugin's bookkeeping at debug. Plugin lines also go to the ring that
// the status page shows.
type logWriter struct {
	log  *slog.Logger
	ring *ring
	mu   sync.Mutex
	part []byte
}

func (w *logWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.part = append(w.part, b...)
	for {
		i := bytes.IndexByte(w.part, '\n')
		if i < 0 {
			break
		}
		w.entry(w.part[:i])
		w.part = w.part[i+1:]
	}
	return len(b), nil
}

func (w *logWriter) entry(line []byte) {
	var m map[string]any
	// Numbers stay as written: a byte count reads 50000003, not the
	// float64 5.0000003e+07.
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		w.log.Info(string(line))
		w.ring.add(string(line))
		return
	}
	msg, _ := m["@message"].(string)
	lvl, _ := m["@level"].(string)
	module, _ := m["@module"].(string)
	delete(m, "@message")
	delete(m, "@level")
	delete(m, "@module")
	delete(m, "@timestamp")
	delete(m, "timestamp") // go-plugin's copy of the plugin's (absent) time; ours stamps the record
	level := map[string]slog.Level{"trace": slog.LevelDebug, "debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}[lvl]
	fromPlugin := module != ""
	if !fromPlugin && level < slog.LevelWarn {
		level = slog.LevelDebug // go-plugin's own bookkeeping
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	attrs := make([]slog.Attr, 0, len(keys))
	var text strings.Builder
	fmt.Fprintf(&text, "%s %s", strings.ToUpper(lvl), msg)
	for _, k := range keys {
		attrs = append(attrs, slog.Any(k, m[k]))
		fmt.Fprintf(&text, " %s=%v", k, m[k])
	}
	w.log.LogAttrs(context.Background(), level, msg, attrs...)
	if fromPlugin || level >= slog.LevelWarn {
		w.ring.add(text.String())
	}
}

// stream returns a writer for the plugin's stdout or stderr.
func (w *logWriter) stream(name string) *streamWriter {
	return &streamWriter{w: w, name: name}
}

type streamWriter struct {
	w    *logWriter
	name string
	mu   sync.Mutex
	part []byte
}

func (s *streamWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.part = append(s.part, b...)
	for {
		i := bytes.IndexByte(s.part, '\n')
		if i < 0 {
			break
		}
		line := string(s.part[:i])
		s.w.log.Info(line, "stream", s.name)
		s.w.ring.add(s.name + ": " + line)
		s.part = s.part[i+1:]
	}
	return len(b), nil
}

// ring keeps the last n log lines.
type ring struct {
	mu   sync.Mutex
	buf  []string
	next int
	full bool
}

func newRing(n int) *ring { return &ring{buf: make([]string, n)} }

func (r *ring) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(s) > 500 {
		s = s[:500] + "…"
	}
	r.buf[r.next] = s
	r.next = (r.next + 1) % len(r.buf)
	if r.next == 0 {
		r.full = true
	}
}

func (r *ring) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.full {
		return append([]string(nil), r.buf[:r.next]...)
	}
	return append(append([]string(nil), r.buf[r.next:]...), r.buf[:r.next]...)
}

// lastLineSuffix is ": LAST LINE" for error messages, or "".
func (r *ring) lastLineSuffix() string {
	l := r.lines()
	if len(l) == 0 {
		return ""
	}
	return " (last log line: " + l[len(l)-1] + ")"
}
