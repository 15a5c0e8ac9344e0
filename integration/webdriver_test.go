package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/vecino/vecino/internal/testnet"
)

// webDriver drives Debian's Chromium through chromedriver's W3C WebDriver
// API: enough to load a page, type, click and read it, as a user would.
type webDriver struct {
	t       *testing.T
	base    string
	session string
}

func startWebDriver(t *testing.T) *webDriver {
	browser := chromium(t)
	testnet.NeedTools(t, "chromedriver")
	port := testnet.FreePort(t)
	cmd := exec.Command("chromedriver", "--port="+strconv.Itoa(port))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	wd := &webDriver{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	waitTCP(t, fmt.Sprintf("127.0.0.1:%d", port))
	var s struct{ SessionID string }
	wd.call("POST", "/session", map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName": "chrome",
		"goog:chromeOptions": map[string]any{"binary": browser, "args": []string{
			"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--user-data-dir=" + t.TempDir(), "--window-size=400,800",
		}},
	}}}, &s)
	wd.session = s.SessionID
	t.Cleanup(func() { wd.call("DELETE", "/session/"+wd.session, nil, nil) })
	return wd
}

func (wd *webDriver) call(method, path string, in, out any) {
	wd.t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, wd.base+path, body)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		wd.t.Fatalf("webdriver %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		wd.t.Fatalf("webdriver %s %s: %d %s", method, path, resp.StatusCode, data)
	}
	if out != nil {
		var v struct{ Value json.RawMessage }
		json.Unmarshal(data, &v)
		if err := json.Unmarshal(v.Value, out); err != nil {
			wd.t.Fatalf("webdriver %s %s: %v: %s", method, path, err, data)
		}
	}
}

func (wd *webDriver) open(url string) {
	wd.call("POST", "/session/"+wd.session+"/url", map[string]string{"url": url}, nil)
}

func (wd *webDriver) element(css string) string {
	var e map[string]string
	wd.call("POST", "/session/"+wd.session+"/element", map[string]string{"using": "css selector", "value": css}, &e)
	for _, id := range e {
		return id
	}
	wd.t.Fatalf("no element %s", css)
	return ""
}

func (wd *webDriver) typeInto(css, text string) {
	wd.call("POST", "/session/"+wd.session+"/element/"+wd.element(css)+"/value", map[string]string{"text": text}, nil)
}

// clear empties a text field, as selecting all and deleting would.
func (wd *webDriver) clear(css string) {
	wd.call("POST", "/session/"+wd.session+"/element/"+wd.element(css)+"/clear", map[string]any{}, nil)
}

func (wd *webDriver) click(css string) {
	wd.call("POST", "/session/"+wd.session+"/element/"+wd.element(css)+"/click", map[string]any{}, nil)
}

func (wd *webDriver) text(css string) string {
	var s string
	wd.call("GET", "/session/"+wd.session+"/element/"+wd.element(css)+"/text", nil, &s)
	return s
}

// exec runs script in the page with args (arguments[0], ...) and decodes
// what it returns into out, if out is not nil.
func (wd *webDriver) exec(script string, out any, args ...any) {
	wd.t.Helper()
	if args == nil {
		args = []any{}
	}
	wd.call("POST", "/session/"+wd.session+"/execute/sync", map[string]any{"script": script, "args": args}, out)
}

// url is the address the page shows.
func (wd *webDriver) url() string {
	var s string
	wd.call("GET", "/session/"+wd.session+"/url", nil, &s)
	return s
}

func (wd *webDriver) attr(css, name string) string {
	var s string
	wd.call("GET", "/session/"+wd.session+"/element/"+wd.element(css)+"/property/"+name, nil, &s)
	return s
}

// offline cuts the browser off from every network, or joins it again, as
// a phone between networks is (chromedriver's network conditions).
func (wd *webDriver) offline(off bool) {
	wd.call("POST", "/session/"+wd.session+"/chromium/network_conditions", map[string]any{"network_conditions": map[string]any{
		"offline": off, "latency": 0, "download_throughput": -1, "upload_throughput": -1,
	}}, nil)
}

// waitText waits until the element's visible text contains want; the
// element may appear meanwhile (the page renders what it fetches).
func (wd *webDriver) waitText(css, want string, timeout time.Duration) {
	wd.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var got string
		wd.exec("const e = document.querySelector(arguments[0]); return e ? e.innerText : '';", &got, css)
		if bytes.Contains([]byte(got), []byte(want)) {
			return
		}
		if time.Now().After(deadline) {
			wd.t.Fatalf("%s never showed %q; it shows:\n%s", css, want, got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
