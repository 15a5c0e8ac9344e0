package torrent

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An unreadable list.json (a disk error wrote over it) is set aside whole,
// not written over at the next save: it holds what the .torrent files do
// not (ratios, paused torrents, files left out, magnets still resolving).
func TestUnreadableListIsKept(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "list.json")
	junk := []byte(`{"torrents": {"aa": {"info_hash": "aa", "paused": tr`)
	if err := os.WriteFile(path, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := loadList(dir)
	if err == nil || !strings.Contains(err.Error(), "list.json") || !strings.Contains(err.Error(), "kept as list.json.unreadable-") {
		t.Fatalf("loadList of a damaged list: %v", err)
	}
	if len(l.Records) != 0 {
		t.Errorf("records from a damaged list: %v", l.Records)
	}
	kept, _ := filepath.Glob(path + ".unreadable-*")
	if len(kept) != 1 {
		t.Fatalf("set-aside lists: %v, want one", kept)
	}
	if b, err := os.ReadFile(kept[0]); err != nil || !bytes.Equal(b, junk) {
		t.Errorf("the set-aside list does not hold what was there: %v %q", err, b)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("list.json is still there to be written over: %v", err)
	}
}

func TestFoldersForDataStayInTheDataFolder(t *testing.T) {
	s := &seedbox{cfg: settings{DataDir: "/srv/data"}}
	for _, c := range []struct{ in, want, err string }{
		{"", "", ""},
		{"tv-sonarr", "tv-sonarr", ""},
		{"films/2024/", "films/2024", ""},
		{"/srv/data", "", ""},
		{"/srv/data/tv-sonarr", "tv-sonarr", ""},
		{"/srv/data/a/../b", "b", ""},
		{"/srv/database", "", "not in this node's data folder"},
		{"/srv/data/../etc", "", "not in this node's data folder"},
		{"/etc", "", "not in this node's data folder"},
		{"../etc", "", `".."`},
		{"a/../../etc", "", `".."`},
		{".hidden", "", `".hidden"`},
		{"a\\b", "", `"a\\b"`},
	} {
		got, err := s.rpcDir(c.in)
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: %q, %v; want an error saying %s", c.in, got, err, c.err)
			}
		case err != nil || got != c.want:
			t.Errorf("%q: %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	if _, err := cleanDir("/srv/data/x"); err == nil {
		t.Error("the API took an absolute folder")
	}
}
