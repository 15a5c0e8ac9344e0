package integration

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestTorrentPageInChromium: a person runs the seedbox from its page in a
// real browser. The page shows what the node seeds, with its size,
// progress, state and magnet link; adding asks for the API secret; a magnet
// link and a .torrent file are added through it, a bad link gets its error,
// a torrent is removed with its data kept, and one whose data went missing
// is downloaded again from its row.
func TestTorrentPageInChromium(t *testing.T) {
	wd := startWebDriver(t)
	n := torrentNode(t)
	data := filepath.Join(n.State, "plugins", "torrent", "data")
	makeFiles(t, data, album)
	v := createTorrent(t, n, "album")
	file := torrentFileOf(t, n, v.InfoHash)
	albumTorrent := filepath.Join(t.TempDir(), "album.torrent")
	os.WriteFile(albumTorrent, file, 0o644)

	wd.open(n.API + "/api/v1/plugins/torrent/")
	row := `tr[data-infohash="` + v.InfoHash + `"]`
	wd.waitText(row, "album", 15*time.Second)
	wd.waitText("#summary", "1 torrent, BitTorrent port", 5*time.Second)
	for _, want := range []string{fmt.Sprintf("%.1f MiB", float64(v.Size)/(1<<20)), "100.0 %", "seeding"} {
		if got := wd.text(row); !strings.Contains(got, want) {
			t.Errorf("album's row %q lacks %q", got, want)
		}
	}
	if href := wd.attr(row+" a.magnet", "href"); href != v.Magnet {
		t.Errorf("the page links magnet %q, the API says %q", href, v.Magnet)
	}
	// The page refreshes every 2 s in place: a row's buttons stay the same
	// elements, so one the user is pressing is not swapped for a copy
	// under the pointer (and WebDriver's reference to it stays good).
	before := wd.element(row + " button.verify")
	time.Sleep(4500 * time.Millisecond)
	if after := wd.element(row + " button.verify"); after != before {
		t.Errorf("the row's Verify button was made anew by the page's refresh (element %s, then %s)", before, after)
	}

	// Adding needs the secret; the page says so, and adds once given it.
	const wanted = "0123456789abcdef0123456789abcdef01234567"
	wd.typeInto("#link", "magnet:?xt=urn:btih:"+wanted+"&dn=wanted")
	wd.click("#add button")
	wd.waitText("#result", "API password or token", 10*time.Second)
	wd.typeInto("#secret", n.Token)
	wd.click("#add button")
	wd.waitText("#result", "Added", 10*time.Second)
	wd.waitText(`tr[data-infohash="`+wanted+`"]`, wanted[:12], 10*time.Second)
	if got := vecinoTorrent(t, n, wanted); got.InfoHash != wanted {
		t.Errorf("the node does not hold the magnet the page added: %+v", got)
	}

	wd.typeInto("#link", "magnet:?xt=urn:btih:nothex")
	wd.click("#add button")
	wd.waitText("#result", "bad magnet link", 10*time.Second)
	if cls := wd.attr("#result", "className"); cls != "err" {
		t.Errorf("the error for a bad link is shown as %q, not as an error", cls)
	}

	// Make a torrent of a file in the data folder: a 6 GiB sparse file
	// takes seconds to hash, and the page shows the hashing under way,
	// then the torrent seeding with its magnet link.
	sparseFile(t, filepath.Join(data, "big.img"), 6<<30)
	wd.typeInto("#make-name", "nothing-here")
	wd.click("#make button")
	wd.waitText("#result", "nothing-here: no such file", 10*time.Second)
	wd.clear("#make-name")
	wd.typeInto("#make-name", "big.img")
	wd.click("#make button")
	wd.waitText("#result", "Making a torrent of big.img", 10*time.Second)
	wd.waitText("#making-list", "big.img: hashing", 10*time.Second)
	if got := wd.text("#making-list"); !regexp.MustCompile(`hashing [0-9.]+ % of 6\.00 GiB`).MatchString(got) {
		t.Errorf("the making shows %q, not how far the hashing got", got)
	}
	wd.waitText("#making-list", "big.img: made, seeding", time.Minute)
	href := wd.attr("#making-list a.magnet", "href")
	ih := strings.TrimPrefix(strings.SplitN(href, "&", 2)[0], "magnet:?xt=urn:btih:")
	if got := vecinoTorrent(t, n, ih); got.Name != "big.img" || got.State != "seeding" || got.Magnet != href {
		t.Errorf("the page's magnet %q, the node has %s", href, got)
	}
	wd.waitText(`tr[data-infohash="`+ih+`"]`, "seeding", 10*time.Second)

	// One started by mistake (a 64 GiB disk image) is called off from
	// the page: it stops hashing and no torrent is made.
	sparseFile(t, filepath.Join(data, "huge.img"), 64<<30)
	wd.clear("#make-name")
	wd.typeInto("#make-name", "huge.img")
	wd.click("#make button")
	wd.waitText("#making-list", "huge.img: hashing", 10*time.Second)
	wd.click("#making-list button.cancel")
	wd.waitText("#result", "Called off the making of huge.img", 10*time.Second)
	wd.waitText("#making-list", "huge.img: cancelled after", 10*time.Second)
	for _, tv := range vecinoTorrents(t, n) {
		if tv.Name == "huge.img" {
			t.Errorf("a torrent of huge.img was made although called off: %s", tv)
		}
	}

	// Remove album from the page: gone from the node, its files kept.
	wd.click(row + " button.remove")
	wd.waitText("#result", "Removed album", 10*time.Second)
	if code, _, _ := n.Do("GET", "/api/v1/plugins/torrent/torrents/"+v.InfoHash, nil, false); code != http.StatusNotFound {
		t.Errorf("album still on the node after Remove: %d", code)
	}
	if _, err := os.Stat(filepath.Join(data, "album", "02 song.flac")); err != nil {
		t.Errorf("Remove took the data: %v", err)
	}

	// Add it back as a .torrent file: the node finds its data and seeds.
	wd.typeInto("#file", albumTorrent)
	wd.click("#add button")
	wd.waitText("#result", "Added album", 10*time.Second)
	waitVecino(t, n, v.InfoHash, "seeding", time.Minute)
	wd.waitText(row, "100.0 %", 15*time.Second)
	wd.click(row + " button.verify")
	wd.waitText("#result", "Verifying album", 10*time.Second)
	wd.waitText(row, "seeding", 30*time.Second)

	// Its data gone: the row says so and offers to download it again.
	if err := os.Rename(filepath.Join(data, "album"), filepath.Join(t.TempDir(), "away")); err != nil {
		t.Fatal(err)
	}
	wd.waitText(row, "no data found", 15*time.Second)
	wd.click(row + " button.start")
	wd.waitText("#result", "Downloading album anew", 10*time.Second)
	wd.waitText(row, "downloading", 15*time.Second)
}
