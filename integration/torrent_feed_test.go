package integration

import (
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anacrolix/torrent/metainfo"

	"github.com/vecino/vecino/internal/testnet"
)

// TestFeedsAddWhatIsNew: a feed on a web server (loopback) lists a show's
// .torrent files, a magnet, and an item its match leaves out. The node
// adds the shows into its folder, not the other; a show the owner removes
// is not added again, even after a restart; a show published later is.
func TestFeedsAddWhatIsNew(t *testing.T) {
	testnet.NeedTools(t, "transmission-create")
	var mu sync.Mutex
	files := map[string][]byte{}
	var items []string
	torrentOf := func(name string) string {
		dir := filepath.Join(t.TempDir(), name)
		makeFiles(t, filepath.Dir(dir), map[string]int{name + "/audio.ogg": 100<<10 + len(name)})
		data := makeTorrent(t, nil, dir)
		mi, err := metainfo.Load(strings.NewReader(string(data)))
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		files["/t/"+name+".torrent"] = data
		mu.Unlock()
		return mi.HashInfoBytes().HexString()
	}
	publish := func(title, link string) {
		mu.Lock()
		items = append([]string{fmt.Sprintf("<item><title>%s</title><guid>%s</guid><link>%s</link></item>", title, title, link)}, items...)
		mu.Unlock()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path == "/radio.rss" {
			fmt.Fprintf(w, `<?xml version="1.0"?><rss version="2.0"><channel><title>Radio</title>%s</channel></rss>`, strings.Join(items, "\n"))
			return
		}
		if b, ok := files[r.URL.Path]; ok {
			w.Write(b)
			return
		}
		http.NotFound(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	show1, notes := torrentOf("show1"), torrentOf("notes")
	const show2 = "89abcdef0123456789abcdef0123456789abcdef"
	publish("Show 1", "/t/show1.torrent")
	publish("Notes", "/t/notes.torrent")
	publish("Show 2", "magnet:?xt=urn:btih:"+show2+"&amp;dn=show2")

	n := torrentNode(t, `feed_interval = "1s"`, fmt.Sprintf("[[plugins.torrent.feeds]]\nurl = \"http://%s/radio.rss\"\nmatch = \"^Show\"\ndir = \"radio\"", ln.Addr()))
	has := func(ih string) *torrentView {
		for _, v := range vecinoTorrents(t, n) {
			if v.InfoHash == ih {
				return &v
			}
		}
		return nil
	}
	waitHas := func(ih string) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); has(ih) == nil; time.Sleep(200 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the feed's %s was not added in 20 s\n%s", ih, n.Log())
			}
		}
	}
	waitHas(show1)
	waitHas(show2)
	if has(notes) != nil {
		t.Errorf("an item the feed's match leaves out was added")
	}
	code, body, _ := n.Do("GET", "/api/v1/plugins/torrent/torrents/"+show1, nil, false)
	if code != http.StatusOK || !strings.Contains(string(body), `"dir": "radio"`) {
		t.Errorf("show1 is not in the feed's folder: %d %s", code, body)
	}

	if code, _, _ := n.Do("DELETE", "/api/v1/plugins/torrent/torrents/"+show1, nil, true); code != http.StatusNoContent {
		t.Fatalf("remove show1: %d", code)
	}
	show3 := torrentOf("show3")
	publish("Show 3", "/t/show3.torrent")
	waitHas(show3)
	time.Sleep(2 * time.Second) // two more readings
	if has(show1) != nil {
		t.Errorf("a show the owner removed came back from the feed")
	}
	st := n.Status().Plugin("torrent")
	if fs, _ := st.Details["feeds"].([]any); len(fs) != 1 || !strings.Contains(fmt.Sprint(fs[0]), "added:3") {
		t.Errorf("status of the feeds: %v, want one feed with 3 added", st.Details["feeds"])
	}

	n.Stop()
	n.Restart()
	n.WaitPlugin("torrent", 30*time.Second, testnet.Running)
	time.Sleep(3 * time.Second)
	if has(show1) != nil {
		t.Errorf("after a restart, a show the owner removed came back from the feed")
	}
}
