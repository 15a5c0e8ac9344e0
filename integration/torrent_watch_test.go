package integration

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestWatchFolder: what a user drops into the watch folder is taken up. A
// folder is moved into the data folder and seeded; a .torrent whose data
// is there is seeded without a download; a .magnet file is added; a broken
// .torrent is set aside as .invalid, costing nothing else.
func TestWatchFolder(t *testing.T) {
	n := torrentNode(t)
	root := filepath.Join(n.State, "plugins", "torrent")
	data, watch := filepath.Join(root, "data"), filepath.Join(root, "watch")

	// A .torrent of album, made by the node, then forgotten by it: the
	// data stays in the data folder.
	makeFiles(t, data, album)
	alb := createTorrent(t, n, "album")
	file := torrentFileOf(t, n, alb.InfoHash)
	if code, _, _ := n.Do("DELETE", "/api/v1/plugins/torrent/torrents/"+alb.InfoHash, nil, true); code != http.StatusNoContent {
		t.Fatalf("remove album: %d", code)
	}

	// Drop four things, each written elsewhere and moved in whole.
	drop := func(name string, write func(path string)) {
		tmp := filepath.Join(t.TempDir(), name)
		write(tmp)
		if err := os.Rename(tmp, filepath.Join(watch, name)); err != nil {
			t.Fatal(err)
		}
	}
	sums := map[string]string{}
	drop("mixtape", func(p string) {
		for rel, sum := range makeFiles(t, filepath.Dir(p), map[string]int{"mixtape/a.ogg": 1<<20 + 7, "mixtape/b.ogg": 300 << 10}) {
			sums[rel] = sum
		}
	})
	drop("album.torrent", func(p string) { os.WriteFile(p, file, 0o644) })
	drop("broken.torrent", func(p string) { os.WriteFile(p, []byte("d4:infod4:name3:abce"), 0o644) })
	const wanted = "89abcdef0123456789abcdef0123456789abcdef"
	drop("wanted.magnet", func(p string) { os.WriteFile(p, []byte("magnet:?xt=urn:btih:"+wanted+"&dn=wanted\n"), 0o644) })

	waitFile := func(path string) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if _, err := os.Stat(path); err == nil {
				return
			}
		}
		entries, _ := os.ReadDir(watch)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("%s never appeared; the watch folder holds %v\n%s", path, names, n.Log())
	}
	waitFile(filepath.Join(watch, "album.torrent.added"))
	waitFile(filepath.Join(watch, "wanted.magnet.added"))
	waitFile(filepath.Join(watch, "broken.torrent.invalid"))
	waitFile(filepath.Join(data, "mixtape", "a.ogg"))

	if v := waitVecino(t, n, alb.InfoHash, "seeding", time.Minute); v.Progress != 1 {
		t.Errorf("album from the watch folder: %s", v)
	}
	if v := vecinoTorrent(t, n, wanted); v.InfoHash != wanted {
		t.Errorf("the magnet file's torrent is not on the node: %+v", v)
	}
	list := vecinoTorrents(t, n)
	var mix *torrentView
	for i, v := range list {
		if v.Name == "mixtape" {
			mix = &list[i]
		}
	}
	if mix == nil || len(list) != 3 {
		t.Fatalf("torrents after the drop: %v, want album, wanted and mixtape", list)
	}
	waitVecino(t, n, mix.InfoHash, "seeding", time.Minute)
	checkFiles(t, "mixtape in the data folder", data, sums)
	if _, err := os.Stat(filepath.Join(watch, "mixtape")); !os.IsNotExist(err) {
		t.Errorf("mixtape is still in the watch folder: %v", err)
	}
}

// TestWatchFolderWaitsForACopy: a folder copied into the watch folder
// slowly (as over the network, a file deep inside still growing) is left
// alone until the copy is done, then seeded whole.
func TestWatchFolderWaitsForACopy(t *testing.T) {
	n := torrentNode(t)
	root := filepath.Join(n.State, "plugins", "torrent")
	data, watch := filepath.Join(root, "data"), filepath.Join(root, "watch")
	part := filepath.Join(watch, "slow", "disc 1", "track.flac")
	if err := os.MkdirAll(filepath.Dir(part), 0o755); err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("vecino "), 64<<10/7)
	const writes = 15 // 400 ms apart: 6 s of copying
	for i := range writes {
		f, err := os.OpenFile(part, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatalf("write %d of %d: the folder was taken while still being copied: %v", i+1, writes, err)
		}
		f.Write(chunk)
		f.Close()
		time.Sleep(400 * time.Millisecond)
	}
	var v torrentView
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		list := vecinoTorrents(t, n)
		if len(list) == 1 && list[0].State == "seeding" {
			v = list[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the copied folder was not seeded: %+v\n%s", list, n.Log())
		}
	}
	if want := int64(writes * len(chunk)); v.Name != "slow" || v.Size != want {
		t.Errorf("seeded %s of %d bytes, want slow of %d", v.Name, v.Size, want)
	}
	if fi, err := os.Stat(filepath.Join(data, "slow", "disc 1", "track.flac")); err != nil || fi.Size() != int64(writes*len(chunk)) {
		t.Errorf("the copy in the data folder: %v %v", fi, err)
	}
}
