package integration

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vecino/vecino/internal/testnet"
)

// TestTheQueueDecidesWhatRuns: with max_active = 1, the first torrent in
// the queue seeds and the rest wait. The owner puts one at the top with
// the CLI, one at the bottom and one at a position through Transmission's
// RPC (queue-move-bottom, torrent-set queuePosition); each time the one
// now first runs and the one it passed waits, and the order is kept
// across a restart; the page's arrow moves one up.
func TestTheQueueDecidesWhatRuns(t *testing.T) {
	n := torrentNode(t, "max_active = 1")
	data := filepath.Join(n.State, "plugins", "torrent", "data")
	makeFiles(t, data, map[string]int{"a/a.bin": 1 << 20, "b/b.bin": 1<<20 + 1, "c/c.bin": 1<<20 + 2})
	ih := map[string]string{}
	for _, name := range []string{"a", "b", "c"} {
		ih[name] = postCreate(t, n, name).InfoHash
	}
	// runs waits until first seeds and the others are queued, in order.
	runs := func(order ...string) {
		t.Helper()
		waitVecino(t, n, ih[order[0]], "seeding", 30*time.Second)
		for pos, name := range order {
			if pos > 0 {
				waitVecino(t, n, ih[name], "queued", 30*time.Second)
			}
			if v := vecinoTorrent(t, n, ih[name]); v.Queue != pos {
				t.Errorf("%s is at %d in the queue, want %d (order %v)", name, v.Queue, pos, order)
			}
		}
	}
	runs("a", "b", "c")

	if out := vecinoCLI(t, n, true, "torrent", "queue", ih["c"], "top"); !strings.Contains(out, "1 in the queue") {
		t.Errorf("torrent queue top printed %q", out)
	}
	runs("c", "a", "b")

	rpc := nodeRPC(t, n)
	rpc.call("queue-move-bottom", map[string]any{"ids": []string{ih["c"]}})
	runs("a", "b", "c")
	rpc.call("torrent-set", map[string]any{"ids": []string{ih["b"]}, "queuePosition": 0})
	runs("b", "a", "c")
	got := rpc.call("torrent-get", map[string]any{"fields": []string{"hashString", "queuePosition"}})
	want := map[string]float64{ih["b"]: 0, ih["a"]: 1, ih["c"]: 2}
	for _, tv := range got["torrents"].([]any) {
		m := tv.(map[string]any)
		if m["queuePosition"] != want[m["hashString"].(string)] {
			t.Errorf("torrent-get: %v at %v, want %v", m["hashString"], m["queuePosition"], want[m["hashString"].(string)])
		}
	}

	if out := vecinoCLI(t, n, false, "torrent", "queue", ih["a"], "sideways"); !strings.Contains(out, "top, up, down, bottom or a position") {
		t.Errorf("a queue move nowhere: %q", out)
	}
	n.Stop()
	n.Restart()
	n.WaitPlugin("torrent", 30*time.Second, testnet.Running)
	runs("b", "a", "c")

	// The page's arrows, in Chromium.
	onTorrentPage(t, n, ih["a"], "queued", "button.up", "Moved a up the queue: 1 in the queue")
	runs("a", "b", "c")
}
