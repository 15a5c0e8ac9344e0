package torrent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"

	"github.com/vecino/vecino/sdk"
)

// startSeedbox runs the plugin in this process on a data folder under
// dir, every way of finding peers off and its port on loopback.
func startSeedbox(t *testing.T, dir string) *seedbox {
	t.Helper()
	s := &seedbox{}
	conf := `listen_port = 0
listen_host = "127.0.0.1"
dht = false
pex = false
utp = false
trackers = false
local_peer_discovery = false
port_mapping = false
`
	if err := s.Configure(context.Background(), []byte(conf), sdk.Env{DataDir: dir}); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	return s
}

// waitItem polls torrent ih under the lock until ok says so, for at most
// a minute.
func waitItem(t *testing.T, s *seedbox, ih, what string, ok func(*item) bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		s.mu.Lock()
		done := ok(s.torrents[ih])
		v := s.torrents[ih].view()
		s.mu.Unlock()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: never %s; it is %s %q", v.Name, what, v.State, v.Error)
		}
	}
}

// A torrent whose data went is held, and "Download again" has it
// downloaded anew. The engine goes on counting the gone pieces as here
// until the verify that start begins has hashed them, and the plugin
// looks for missing data every second meanwhile: that look must not take
// the engine's stale count for data that was here and hold the torrent
// again, or the user's click is undone a second later.
func TestDownloadAnewIsNotHeldAgain(t *testing.T) {
	dir := t.TempDir()
	s := startSeedbox(t, dir)
	folder := filepath.Join(s.cfg.DataDir, "album")
	os.MkdirAll(folder, 0o755)
	for i := range 4 {
		data := make([]byte, 300<<10)
		for j := range data {
			data[j] = byte(i*7 + j*13)
		}
		if err := os.WriteFile(filepath.Join(folder, fmt.Sprintf("%02d song.flac", i)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	info, _, err := makeInfo(context.Background(), t, folder)
	if err != nil {
		t.Fatal(err)
	}
	ib, err := bencode.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	mi, err := bencode.Marshal(metainfo.MetaInfo{InfoBytes: ib})
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.addMetainfo(mi, "")
	if err != nil {
		t.Fatal(err)
	}
	ih := v.InfoHash
	waitItem(t, s, ih, "seeding", func(it *item) bool { return it.hasInfo() && it.t.BytesMissing() == 0 })

	if err := os.RemoveAll(folder); err != nil {
		t.Fatal(err)
	}
	waitItem(t, s, ih, "held", func(it *item) bool { return it.gone != "" })

	if v, err := s.start(ih); err != nil || v.DataMissing {
		t.Fatalf("start: %v; data missing: %v", err, v.DataMissing)
	}
	// The verify hashes one piece at a time and takes the lock after each:
	// held here, most pieces are still counted as here.
	s.mu.Lock()
	it := s.torrents[ih]
	counted := it.t.BytesCompleted()
	s.watchData(it)
	held := it.gone
	s.mu.Unlock()
	if counted == 0 {
		t.Fatalf("the verify had hashed every piece already: this test shows nothing")
	}
	if held != "" {
		t.Fatalf("held again while %d bytes still counted as here: %s", counted, held)
	}
	waitItem(t, s, ih, "verified", func(it *item) bool { return !it.verifying })
	s.mu.Lock()
	s.watchData(it)
	v = it.view()
	s.mu.Unlock()
	if v.DataMissing || v.State != "downloading" || v.Done != 0 {
		t.Errorf("after the verify: %s, %d bytes done, data missing %v, %q; want it downloading from nothing", v.State, v.Done, v.DataMissing, v.Error)
	}
}
