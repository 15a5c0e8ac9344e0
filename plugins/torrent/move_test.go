package torrent

import (
	"bytes"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// TestCopyTreeThenRecopyChanged: a torrent's folder is copied whole,
// bytes counted; a file written to during the copy, and one that came
// since, are copied again before the switch; a copy never writes over a
// file, and one stopped midway says why.
func TestCopyTreeThenRecopyChanged(t *testing.T) {
	src, dst := filepath.Join(t.TempDir(), "album"), filepath.Join(t.TempDir(), "album")
	files := map[string][]byte{
		"01 intro.flac":   bytes.Repeat([]byte("a"), 300_000),
		"cover/front.jpg": bytes.Repeat([]byte("b"), 70_001),
		"notes/empty.txt": nil,
	}
	var total int64
	for rel, b := range files {
		p := filepath.Join(src, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		total += int64(len(b))
	}
	if got := treeSize(src); got != total {
		t.Errorf("treeSize %d, want %d", got, total)
	}
	var done atomic.Int64
	copied := map[string]fileStamp{}
	if err := copyTree(src, dst, copied, &done, nil); err != nil {
		t.Fatal(err)
	}
	if done.Load() != total || len(copied) != len(files) {
		t.Errorf("counted %d bytes, %d files; want %d, %d", done.Load(), len(copied), total, len(files))
	}
	same := func(when string) {
		t.Helper()
		for rel, want := range files {
			if got, err := os.ReadFile(filepath.Join(dst, rel)); err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s: %s: %d bytes (%v), want %d", when, rel, len(got), err, len(want))
			}
		}
	}
	same("copied")

	// A chunk lands in src after its file was copied; a file is added.
	later := time.Now().Add(time.Second)
	files["01 intro.flac"] = append(bytes.Repeat([]byte("a"), 299_999), 'z')
	files["cover/back.jpg"] = []byte("back")
	for rel, b := range files {
		if rel == "01 intro.flac" || rel == "cover/back.jpg" {
			p := filepath.Join(src, rel)
			os.WriteFile(p, b, 0o644)
			os.Chtimes(p, later, later)
		}
	}
	if err := recopyChanged(src, dst, copied); err != nil {
		t.Fatal(err)
	}
	same("after the recopy")

	if err := copyTree(src, dst, map[string]fileStamp{}, &done, nil); err == nil {
		t.Error("a copy onto a folder that exists went ahead")
	}
	stop := make(chan struct{})
	close(stop)
	if err := copyTree(src, filepath.Join(t.TempDir(), "x"), map[string]fileStamp{}, &done, stop); err == nil {
		t.Error("a copy told to stop went on")
	}
}

// TestSettleMove: a plugin killed during a move finds its data at start:
// renamed already (the record takes the new folder), or where it was with
// a partial copy in the new folder (which goes), or not moved at all.
func TestSettleMove(t *testing.T) {
	write := func(path string) {
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	exists := func(path string) bool { _, err := os.Stat(path); return err == nil }
	to := func(s string) *string { return &s }

	data := t.TempDir()
	write(filepath.Join(data, "tv", "show", "e1.mkv"))
	rec := &record{Name: "show", Dir: "", Incomplete: "incomplete", MovingTo: to("tv")}
	if did := settleMove(data, rec); rec.Dir != "tv" || rec.Incomplete != "" || rec.MovingTo != nil || did == "" {
		t.Errorf("renamed before the kill: %+v, %q; want the record in tv/", rec, did)
	}

	data = t.TempDir()
	write(filepath.Join(data, "show", "e1.mkv"))
	write(filepath.Join(data, "usb", "show", "e1.mkv"))
	rec = &record{Name: "show", MovingTo: to("usb")}
	if did := settleMove(data, rec); rec.Dir != "" || rec.MovingTo != nil || exists(filepath.Join(data, "usb", "show")) ||
		!exists(filepath.Join(data, "show", "e1.mkv")) || did == "" {
		t.Errorf("killed mid-copy: %+v, %q; want the data where it was and the partial copy gone", rec, did)
	}

	data = t.TempDir()
	write(filepath.Join(data, "show", "e1.mkv"))
	rec = &record{Name: "show", MovingTo: to("tv")}
	if did := settleMove(data, rec); rec.Dir != "" || rec.MovingTo != nil || !exists(filepath.Join(data, "show", "e1.mkv")) || did != "" {
		t.Errorf("killed before the data went: %+v, %q; want it as it was", rec, did)
	}

	rec = &record{Name: "../escape", MovingTo: to("tv")}
	if did := settleMove(data, rec); did != "" || rec.MovingTo != nil {
		t.Errorf("an unsafe name: %+v %q", rec, did)
	}
	outside := filepath.Join(filepath.Dir(data), "show")
	write(filepath.Join(outside, "keep.txt"))
	rec = &record{Name: "show", MovingTo: to("..")}
	if did := settleMove(data, rec); did != "" || !exists(filepath.Join(outside, "keep.txt")) {
		t.Errorf("a destination outside the data folder: %+v %q; nothing there may go", rec, did)
	}
}
