package integration

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vecino/vecino/internal/testnet"
)

// chromium finds Debian's Chromium. On CI it must be there (.ci/run installs
// it); elsewhere the test skips without it.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed; .ci/run installs Debian's chromium")
	}
	t.Skip("chromium not installed")
	return ""
}

func headless(t *testing.T, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir(),
	}
	out, err := exec.CommandContext(ctx, chromium(t), append(base, args...)...).Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	return string(out)
}

// TestStatusPageRendersInChromium loads the status page in a real browser
// and reads what its script rendered from the status API.
func TestStatusPageRendersInChromium(t *testing.T) {
	n := testnet.Start(t, testnet.Options{Name: "browser-node", Plugins: map[string]string{"chat": "", "store": "", "torrent": ""}})
	for _, p := range []string{"chat", "store", "torrent"} {
		n.WaitPlugin(p, 20*time.Second, testnet.Running)
	}
	dom := headless(t, "--virtual-time-budget=5000", "--dump-dom", n.API+"/")
	for _, want := range []string{
		`data-loaded="1"`,
		n.ID,
		"browser-node",
		`data-plugin="chat" data-state="running"`,
		`data-plugin="store" data-state="running"`,
		`data-plugin="torrent" data-state="running"`,
		"1 room, 0 messages kept",
		"3 / 3",
		`<b id="dht">0 / 0</b>`, // a lone node's DHTs know nobody
		// Each plugin's own page is a link away.
		`href="/api/v1/plugins/chat/"`,
		`href="/api/v1/plugins/store/"`,
		`href="/api/v1/plugins/torrent/"`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered page lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}
	// On a new node each plugin's page says what to do to fill it, and
	// leads back to the status page.
	for page, hint := range map[string]string{ // the chat page: TestChatPageInChromium
		"torrent": "No torrents yet. Add a magnet link or a .torrent file above",
		"store":   "Nothing stored yet. Add a file above",
	} {
		dom := headless(t, "--virtual-time-budget=5000", "--dump-dom", n.API+"/api/v1/plugins/"+page+"/")
		if !strings.Contains(dom, hint) || !strings.Contains(dom, `id="node-link" href="/"`) {
			t.Errorf("the %s page of a new node lacks the hint %q or the link back to the status page:\n%s", page, hint, dom)
		}
	}
	if shot := os.Getenv("VECINO_SCREENSHOT"); shot != "" {
		headless(t, "--virtual-time-budget=5000", "--window-size=1100,900", "--screenshot="+shot, n.API+"/")
	}
}
