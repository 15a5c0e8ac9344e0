package integration

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vecino/vecino/internal/testnet"
)

// httpGet GETs url with extra headers (name, value, ...), not following
// redirects, and returns the answer and its whole body.
func httpGet(t testing.TB, url string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	client := &http.Client{Timeout: time.Minute, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp, body
}

// TestGatewayServesAWebsite: a folder kubo holds is a website the node
// serves at /ipfs/CID/, fetched from kubo over bitswap: files, ranges and
// content types as kubo's own gateway serves them, folders redirected to
// their slash and listed without an index.html, and the site renders in
// Chromium with its style and script, its script kept out of the node's
// origin.
func TestGatewayServesAWebsite(t *testing.T) {
	kuboGW := testnet.FreePort(t)
	k := startKuboWith(t, "Addresses.Gateway", fmt.Sprintf(`"/ip4/127.0.0.1/tcp/%d"`, kuboGW))
	n := storeNode(t, "gateway", storeConf)
	k.run("swarm", "connect", n.TCPAddr())

	site := filepath.Join(t.TempDir(), "site")
	write := func(rel, content string) {
		p := filepath.Join(site, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("index.html", `<!doctype html><html><head><link rel="stylesheet" href="style.css"><title>Neighbours</title></head>
<body><h1 id="title">Garden club</h1><p id="script">no script</p><p id="origin"></p>
<script src="app.js"></script></body></html>`)
	write("style.css", "h1 { color: rgb(0, 128, 0); }\n")
	write("app.js", `document.getElementById('script').textContent = 'script ran';
try { localStorage.getItem('x'); document.getElementById('origin').textContent = 'node origin'; }
catch (e) { document.getElementById('origin').textContent = 'own origin'; }
`)
	write("notes/readme.txt", "meet on saturday\n")
	photo := randomFile(t, filepath.Join(site, "pics", "cat.jpg"), 700<<10+3)
	root := k.run("add", "-Q", "-r", "--cid-version=1", site)

	ours, theirs := n.API+"/ipfs/"+root, fmt.Sprintf("http://127.0.0.1:%d/ipfs/%s", kuboGW, root)
	resp, body := httpGet(t, ours+"/pics/cat.jpg")
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, photo) {
		t.Fatalf("cat.jpg through the node: %d, %d bytes, same: %v", resp.StatusCode, len(body), bytes.Equal(body, photo))
	}
	for _, c := range []struct {
		path   string
		header []string
	}{
		{"/pics/cat.jpg", []string{"Range", "bytes=1000-1999"}},
		{"/pics/cat.jpg", []string{"Range", "bytes=262000-263999"}}, // across two leaves
		{"/pics/cat.jpg", []string{"Range", "bytes=-500"}},
		{"/pics/cat.jpg", []string{"Range", "bytes=700000-"}},
		{"/pics/cat.jpg", []string{"Range", "bytes=9999999-"}}, // past the end: 416
		{"/style.css", nil},
		{"/index.html", nil},
		{"/notes/readme.txt", nil},
	} {
		r1, b1 := httpGet(t, ours+c.path, c.header...)
		r2, b2 := httpGet(t, theirs+c.path, c.header...)
		t1, _, _ := mime.ParseMediaType(r1.Header.Get("Content-Type"))
		t2, _, _ := mime.ParseMediaType(r2.Header.Get("Content-Type"))
		if r1.StatusCode >= 400 { // an error: the status alone, each says it in its words
			b1, b2, t1, t2 = nil, nil, "", ""
		}
		if r1.StatusCode != r2.StatusCode || !bytes.Equal(b1, b2) || t1 != t2 || r1.Header.Get("Content-Range") != r2.Header.Get("Content-Range") {
			t.Errorf("%s %v: the node %d %q (%d bytes), kubo %d %q (%d bytes)", c.path, c.header,
				r1.StatusCode, r1.Header.Get("Content-Type"), len(b1), r2.StatusCode, r2.Header.Get("Content-Type"), len(b2))
		}
	}
	if resp, _ := httpGet(t, ours+"/pics/cat.jpg", "If-None-Match", `"`+strings.TrimSpace(k.run("resolve", "-r", "/ipfs/"+root+"/pics/cat.jpg")[6:])+`"`); resp.StatusCode != http.StatusNotModified {
		t.Errorf("a conditional GET with the file's CID as ETag: %d, want 304", resp.StatusCode)
	}
	if resp, _ := httpGet(t, ours+"/notes"); resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "notes/" {
		t.Errorf("a folder without its slash: %d to %q, want 301 to notes/", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, body := httpGet(t, ours+"/notes/"); resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `href="readme.txt"`) {
		t.Errorf("a folder without an index.html: %d\n%s", resp.StatusCode, body)
	}
	if resp, body := httpGet(t, ours+"/nothing.html"); resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "nothing.html") {
		t.Errorf("a path that names nothing: %d %s", resp.StatusCode, body)
	}
	if resp, _ := httpGet(t, ours+"/"); !strings.Contains(resp.Header.Get("Content-Security-Policy"), "sandbox") {
		t.Errorf("the site is served without a sandbox: %q", resp.Header.Get("Content-Security-Policy"))
	}

	wd := startWebDriver(t)
	wd.open(ours + "/")
	wd.waitText("#script", "script ran", 20*time.Second)
	wd.waitText("#origin", "own origin", 5*time.Second)
	wd.waitText("#title", "Garden club", 5*time.Second)
}
