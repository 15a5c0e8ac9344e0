package integration

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vecino/vecino/internal/testnet"
)

// getData GETs a file of torrent ih from n, with the API token as the
// basic-auth password (what a browser sends once its user gives it), or
// with no secret; extra headers too.
func getData(t testing.TB, n *testnet.Node, ih, path string, auth bool, header ...string) (*http.Response, []byte) {
	t.Helper()
	if auth {
		header = append(header, "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("me:"+n.Token)))
	}
	return httpGet(t, n.API+"/api/v1/plugins/torrent/torrents/"+ih+"/data/"+path, header...)
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestTakingFilesOffTheSeedbox: what the node seeds, its owner takes off
// it over HTTP, with the secret: whole, by range (a player's seek, a
// resumed download), and with the CLI; without the secret, nothing.
func TestTakingFilesOffTheSeedbox(t *testing.T) {
	n := torrentNode(t)
	data := filepath.Join(n.State, "plugins", "torrent", "data")
	sums := makeFiles(t, data, album)
	v := createTorrent(t, n, "album")

	resp, body := getData(t, n, v.InfoHash, "01%20intro.flac", false)
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
		t.Errorf("without the secret: %d %q %s, want 401 with a Basic challenge", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
	}
	resp, body = getData(t, n, v.InfoHash, "01%20intro.flac", true)
	if resp.Header.Get("Content-Security-Policy") != "sandbox" {
		t.Errorf("a torrent's file is served without a sandbox: %q", resp.Header.Get("Content-Security-Policy"))
	}
	if resp.StatusCode != http.StatusOK || sha(body) != sums["album/01 intro.flac"] {
		t.Errorf("01 intro.flac: %d, %d bytes, sha256 %s; want %s", resp.StatusCode, len(body), sha(body), sums["album/01 intro.flac"])
	}
	whole := body
	resp, body = getData(t, n, v.InfoHash, "01%20intro.flac", true, "Range", "bytes=1000000-1000999")
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, whole[1000000:1001000]) {
		t.Errorf("a range: %d, %d bytes, same as the file's: %v", resp.StatusCode, len(body), bytes.Equal(body, whole[1000000:1001000]))
	}
	if resp, body := getData(t, n, v.InfoHash, "nothing.flac", true); resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "nothing.flac") {
		t.Errorf("a file the torrent lacks: %d %s", resp.StatusCode, body)
	}
	out := filepath.Join(t.TempDir(), "front.jpg")
	if msg := vecinoCLI(t, n, true, "torrent", "get", "-o", out, v.InfoHash, "cover/front.jpg"); !strings.Contains(msg, "saved cover/front.jpg") {
		t.Errorf("torrent get printed %q", msg)
	}
	if got, err := os.ReadFile(out); err != nil || sha(got) != sums["album/cover/front.jpg"] {
		t.Errorf("torrent get saved %d bytes (%v), not cover/front.jpg", len(got), err)
	}
}

// TestStreamingAFileStillDownloading: a file the node is still fetching
// from Transmission (at 2 MiB/s) is read as it comes, the engine fetching
// what is read first, and arrives whole; a file left out of the download
// is refused rather than fetched.
func TestStreamingAFileStillDownloading(t *testing.T) {
	_, n, v, sums := slowDownload(t, "reel", map[string]int{"reel/a.mkv": 8 << 20, "reel/b.mkv": 8<<20 + 11, "reel/extras.mkv": 2 << 20})
	vecinoCLI(t, n, true, "torrent", "skip", v.InfoHash, "extras.mkv")
	waitProgress(t, n, v.InfoHash, 0.02)
	var files struct {
		Files []struct {
			Path       string
			Size, Done int64
		}
	}
	code, list, err := n.Do("GET", "/api/v1/plugins/torrent/torrents/"+v.InfoHash+"/files", nil, false)
	if err != nil || code != http.StatusOK || json.Unmarshal(list, &files) != nil {
		t.Fatalf("files: %d %v %s", code, err, list)
	}
	for _, f := range files.Files {
		if f.Path == "b.mkv" && f.Done == f.Size {
			t.Fatalf("b.mkv is whole before it is read: the test would not stream")
		}
	}
	start := time.Now()
	resp, body := getData(t, n, v.InfoHash, "b.mkv", true)
	if resp.StatusCode != http.StatusOK || sha(body) != sums["reel/b.mkv"] {
		t.Fatalf("b.mkv streamed: %d, %d bytes, sha256 %s, want %s", resp.StatusCode, len(body), sha(body), sums["reel/b.mkv"])
	}
	t.Logf("b.mkv (8 MiB) streamed whole in %s while the torrent downloaded", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(n.Log(), "streaming a file still downloading") {
		t.Errorf("the node did not stream b.mkv; it says:\n%s", n.Log())
	}
	if resp, body := getData(t, n, v.InfoHash, "extras.mkv", true); resp.StatusCode != http.StatusConflict || !strings.Contains(string(body), "left out") {
		t.Errorf("a file left out: %d %s, want 409 saying so", resp.StatusCode, body)
	}
}
