package torrent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"strings"
	"testing"
)

func TestQuietEngine(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(quietEngine{slog.NewTextHandler(&buf, nil)}).With("component", "engine")
	log.Warn("error flushing file before promotion", "file", "data/a.part", "err", &fs.PathError{Op: "open", Path: "data/a.part", Err: fs.ErrNotExist})
	log.Warn("finished hashing piece", "piece", 3, "correct", true, "err", io.ErrShortWrite)
	log.Warn("error flushing file before promotion", "file", "data/b.part", "err", fmt.Errorf("fsync: %w", errors.New("input/output error")))
	log.Warn("finished hashing piece", "piece", 4, "correct", false, "err", io.ErrShortWrite)
	log.Warn("disk full")
	out := buf.String()
	for _, want := range []string{"input/output error", "piece=4", "disk full"} {
		if !strings.Contains(out, want) {
			t.Errorf("a real warning was dropped (%s):\n%s", want, out)
		}
	}
	for _, noise := range []string{"a.part", "piece=3"} {
		if strings.Contains(out, noise) {
			t.Errorf("noise kept (%s):\n%s", noise, out)
		}
	}
}
