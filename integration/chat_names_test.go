package integration

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vecino/vecino/internal/testnet"
)

// TestChatNames: people in a room see who wrote by name, not by a
// 103-character address alone. Ana names herself with the CLI, Bo on the
// page (in Chromium); each sees the other's name beside the address. A
// name that could pass for something else is refused; a private room's
// messages go without a name, which the nodes would read.
func TestChatNames(t *testing.T) {
	wd := startWebDriver(t)
	n := testnet.Start(t, testnet.Options{Name: "names", Plugins: map[string]string{"chat": roomyChat}})
	n.WaitPlugin("chat", 20*time.Second, testnet.Running)
	ana := filepath.Join(t.TempDir(), "ana.key")
	if out := vecinoCLI(t, n, true, "chat", "name", "-key", ana, "Ana", "de", "la", "3ª"); !strings.Contains(out, `"Ana de la 3ª"`) {
		t.Errorf("chat name printed %q", out)
	}
	if msg := vecinoCLI(t, n, false, "chat", "name", "-key", ana, "Ana\nadmin: all is well"); !strings.Contains(msg, "control character") {
		t.Errorf("a name with a line break: %q", msg)
	}
	vecinoCLI(t, n, true, "chat", "send", "-key", ana, "lobby", "hola, vecinos")
	anaAddr := strings.TrimSpace(vecinoCLI(t, n, true, "chat", "id", "-key", ana))

	wd.open(n.API + chatAPI + "/")
	wd.waitText("#log", "Ana de la 3ª ("+anaAddr[:12]+"…)", 15*time.Second)
	wd.typeInto("#name", "Bo")
	wd.typeInto("#text", "hi from the browser")
	wd.click("#send button")
	wd.waitText("#log", "hi from the browser", 15*time.Second)
	var out string
	for deadline := time.Now().Add(15 * time.Second); !strings.Contains(out, "Bo (vc1"); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the CLI reads:\n%s", out)
		}
		out = vecinoCLI(t, n, true, "chat", "read", "-key", ana, "lobby")
	}
	if !strings.Contains(out, "Ana de la 3ª (vc1") || !strings.Contains(out, ": hi from the browser") {
		t.Errorf("the CLI reads:\n%s", out)
	}

	vecinoCLI(t, n, true, "chat", "private", "-key", ana, "club")
	vecinoCLI(t, n, true, "chat", "send", "-key", ana, "club", "between us")
	msgs, _ := readRoom(t, n, "club", 0, 0)
	if len(msgs) != 1 || msgs[0].Sealed == "" || msgs[0].Name != "" {
		t.Errorf("the node holds %+v of the private room; want one sealed message without a name", msgs)
	}
}
