package torrent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
)

// makeInfo lays out and hashes root as a create does.
func makeInfo(ctx context.Context, t *testing.T, root string) (metainfo.Info, int64, error) {
	t.Helper()
	info, files, err := layout(root)
	if err != nil {
		return info, 0, err
	}
	var hashed atomic.Int64
	info.Pieces, err = hashPieces(ctx, &info, files, &hashed)
	return info, hashed.Load(), err
}

func infoHash(t *testing.T, info metainfo.Info) metainfo.Hash {
	t.Helper()
	b, err := bencode.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	return metainfo.HashBytes(b)
}

// A torrent the node makes is the one any client makes of the same data:
// same files, same order, same pieces, so the same info hash as
// anacrolix's own maker, for a folder of several files (pieces spanning
// files, empty and nested ones) and for a single file. The bytes counted
// as hashed are all the data.
func TestMakeMatchesTheEngine(t *testing.T) {
	dir := t.TempDir()
	folder := filepath.Join(dir, "album")
	files := map[string]int{"b.flac": 70000, "a.txt": 5, "sub/c.bin": 40000, "sub/empty": 0, "z/y/x": 16384}
	for name, n := range files {
		p := filepath.Join(folder, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		data := []byte(strings.Repeat(name, n/len(name)+1)[:n])
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	single := filepath.Join(dir, "one.iso")
	os.WriteFile(single, []byte(strings.Repeat("iso", 50000)), 0o644)
	for _, root := range []string{folder, single} {
		got, hashed, err := makeInfo(context.Background(), t, root)
		if err != nil {
			t.Fatalf("make %s: %v", root, err)
		}
		var want metainfo.Info
		if err := want.BuildFromFilePath(root); err != nil {
			t.Fatal(err)
		}
		if infoHash(t, got) != infoHash(t, want) {
			t.Errorf("%s: info hash %s, the engine's maker gives %s\nours %+v\ntheirs %+v", root, infoHash(t, got), infoHash(t, want), got.Files, want.Files)
		}
		if hashed != want.TotalLength() {
			t.Errorf("%s: %d bytes counted as hashed of %d", root, hashed, want.TotalLength())
		}
	}
}

// A link in the folder is left out (its size is not its target's, so a
// torrent of it would not match what is read), an empty folder is refused
// with its name, and a making whose context ends stops with that reason.
func TestMakeLeavesOutLinksAndStops(t *testing.T) {
	dir := t.TempDir()
	folder := filepath.Join(dir, "f")
	os.MkdirAll(folder, 0o755)
	os.WriteFile(filepath.Join(folder, "real"), make([]byte, 3<<20), 0o644)
	os.Symlink(filepath.Join(folder, "real"), filepath.Join(folder, "link"))
	info, _, err := makeInfo(context.Background(), t, folder)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Files) != 1 || info.Files[0].Path[0] != "real" {
		t.Errorf("files %+v, want only real", info.Files)
	}

	os.MkdirAll(filepath.Join(dir, "empty", "sub"), 0o755)
	if _, _, err := makeInfo(context.Background(), t, filepath.Join(dir, "empty")); err == nil || !strings.Contains(err.Error(), "empty holds no files") {
		t.Errorf("empty folder: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := makeInfo(ctx, t, folder); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled making: %v, want context.Canceled", err)
	}
}

// A file that shrinks while it is hashed ends the making with its name
// and what happened, not with a torrent that does not match the data.
func TestMakeNoticesAShrunkFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "grows")
	os.WriteFile(p, make([]byte, 1<<20), 0o644)
	info, files, err := layout(p)
	if err != nil {
		t.Fatal(err)
	}
	os.Truncate(p, 1000)
	var hashed atomic.Int64
	_, err = hashPieces(context.Background(), &info, files, &hashed)
	if err == nil || !strings.Contains(err.Error(), "changed while it was hashed") || !strings.Contains(err.Error(), p) {
		t.Errorf("shrunk file: %v", err)
	}
}

// Announce URLs a client could use pass; others are refused with their
// place in the list.
func TestCheckTrackers(t *testing.T) {
	if err := checkTrackers([]string{"http://127.0.0.1:6969/announce", "udp://tracker.example:1337", "https://t.example/a?k=1"}); err != nil {
		t.Errorf("good trackers refused: %v", err)
	}
	for _, bad := range []string{"tracker.example", "ftp://t.example/", "http://", "udp:1337", "::"} {
		err := checkTrackers([]string{"http://ok.example/announce", bad})
		if err == nil || !strings.Contains(err.Error(), "trackers[1]") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
