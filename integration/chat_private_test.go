package integration

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vecino/vecino/internal/testnet"
)

// privateRead is one message as `vecino chat read -json` gives it.
type privateRead struct {
	From, Text, Sealed, Unread string
	Private                    bool
}

// readPrivate has the CLI read room on n with keyFile's keys until a
// message from `from` says want, and returns all it read.
func readPrivate(t *testing.T, n *testnet.Node, keyFile, room, from, want string) []privateRead {
	t.Helper()
	var msgs []privateRead
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		msgs = msgs[:0]
		found := false
		for _, line := range strings.Split(vecinoCLI(t, n, true, "chat", "read", "-json", "-key", keyFile, room), "\n") {
			var m privateRead
			if json.Unmarshal([]byte(line), &m) == nil && m.From != "" {
				msgs = append(msgs, m)
				found = found || m.From == from && m.Text == want
			}
		}
		if found {
			return msgs
		}
	}
	t.Fatalf("%s never read %q from %.12s in %s: %+v", keyFile, want, from, room, msgs)
	return nil
}

// TestPrivateRoom: a private room's members, on three nodes, with the CLI
// and the chat page in Chromium, read each other; someone without the key,
// on a node that carries the room, reads nothing of it; and no node holds
// the plaintext, on disk or in what it serves.
func TestPrivateRoom(t *testing.T) {
	wd := startWebDriver(t)
	nodes := startChatNodes(t, 3, roomyChat)
	// The probes' messages are plain: a private room's members see them
	// marked as such.
	waitMesh(t, "club", nodes...)
	dir := t.TempDir()
	aliceKey, bobKey, eveKey := filepath.Join(dir, "alice.key"), filepath.Join(dir, "bob.key"), filepath.Join(dir, "eve.key")
	alice := strings.TrimSpace(vecinoCLI(t, nodes[0], true, "chat", "id", "-key", aliceKey))
	bob := strings.TrimSpace(vecinoCLI(t, nodes[2], true, "chat", "id", "-key", bobKey))

	out := vecinoCLI(t, nodes[0], true, "chat", "private", "-key", aliceKey, "club")
	var invite, link string
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "invite (give it to members only): "); ok {
			invite = v
		}
		if v, ok := strings.CutPrefix(line, "chat page: "); ok {
			link = v
		}
	}
	if !strings.HasPrefix(invite, "club#") || !strings.HasPrefix(link, nodes[0].API+chatAPI+"/#room=club&key=") {
		t.Fatalf("chat private printed:\n%s", out)
	}
	if fi, err := os.Stat(filepath.Join(dir, "alice.rooms")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("alice's room keys: %v %v", fi, err)
	}
	if again := vecinoCLI(t, nodes[0], true, "chat", "private", "-key", aliceKey, "club"); !strings.Contains(again, invite) {
		t.Fatalf("asked again, chat private printed another invite:\n%s", again)
	}
	vecinoCLI(t, nodes[2], false, "chat", "join", "-key", bobKey, "club#not-a-key")
	vecinoCLI(t, nodes[2], true, "chat", "join", "-key", bobKey, invite)
	// Carol is a member too, for now.
	carolKey := filepath.Join(dir, "carol.key")
	vecinoCLI(t, nodes[1], true, "chat", "join", "-key", carolKey, invite)

	secrets := []string{"meet at the oak at 8", "bring the spare key", "the gate code is 4512"}
	vecinoCLI(t, nodes[0], true, "chat", "send", "-key", aliceKey, "club", secrets[0])
	got := readPrivate(t, nodes[2], bobKey, "club", alice, secrets[0])
	for _, m := range got {
		if m.From == alice && !m.Private {
			t.Errorf("bob read alice's message as not private: %+v", m)
		}
	}
	// Lines from stdin go sealed too, in one bundle.
	send := vecinoCmd(t, nodes[2], "chat", "send", "-key", bobKey, "club", "-")
	send.Stdin = strings.NewReader(secrets[1] + "\n" + secrets[2] + "\n")
	runCLI(t, send, true)
	readPrivate(t, nodes[0], aliceKey, "club", bob, secrets[2])

	// Eve reads the room on the node between them: no text, and why.
	eve := vecinoCLI(t, nodes[1], true, "chat", "read", "-key", eveKey, "club")
	for _, s := range secrets {
		if strings.Contains(eve, s) {
			t.Errorf("eve, without the key, reads %q:\n%s", s, eve)
		}
	}
	if !strings.Contains(eve, "sealed: you have no key for this private room") || !strings.Contains(eve, "probe 0") {
		t.Errorf("eve's read of the room:\n%s", eve)
	}

	// The page on node 2, opened with alice's link: it reads the members,
	// marks the plain probes, and its message reaches bob sealed.
	wd.open(nodes[1].API + chatAPI + "/" + link[strings.Index(link, "#"):])
	wd.waitText("#log", secrets[2], 20*time.Second)
	wd.waitText("#log", "probe 0 (not sealed: anyone can read this)", 5*time.Second)
	if inv := wd.attr("#invite", "value"); !strings.HasSuffix(inv, link[strings.Index(link, "#"):]) {
		t.Errorf("the page's invite is %q, want the room's key in it", inv)
	}
	if u := wd.url(); strings.Contains(u, "key=") {
		t.Errorf("the key stays in the address bar: %s", u)
	}
	wd.typeInto("#text", "see you there")
	wd.click("#send button")
	wd.waitText("#log", "see you there", 15*time.Second)
	wd.click("details summary")
	pageAddr := strings.TrimSpace(wd.text("#addr"))
	readPrivate(t, nodes[2], bobKey, "club", pageAddr, "see you there")
	secrets = append(secrets, "see you there")

	// A room made private on the page: its invite link, given to bob,
	// lets the CLI read it.
	wd.clear("#room")
	wd.typeInto("#room", "attic")
	wd.click("#make-private")
	wd.waitText("#log", "only those with its key read them", 10*time.Second)
	pageInvite := wd.attr("#invite", "value")
	if !strings.HasPrefix(pageInvite, nodes[1].API+chatAPI+"/#room=attic&key=") {
		t.Fatalf("the page's invite for attic: %q", pageInvite)
	}
	wd.typeInto("#text", "the ladder is behind the door")
	wd.click("#send button")
	wd.waitText("#log", "the ladder is behind the door", 15*time.Second)
	// The room field offers the page's private rooms first.
	var offered []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && len(offered) < 2; time.Sleep(100 * time.Millisecond) {
		wd.exec("return [...document.querySelectorAll('#rooms option')].filter(o => o.label.endsWith('private')).map(o => o.value)", &offered)
	}
	if strings.Join(offered, " ") != "club attic" && strings.Join(offered, " ") != "attic club" {
		t.Errorf("the room field offers %q as private, want club and attic", offered)
	}
	vecinoCLI(t, nodes[2], true, "chat", "join", "-key", bobKey, pageInvite)
	readPrivate(t, nodes[2], bobKey, "attic", pageAddr, "the ladder is behind the door")
	secrets = append(secrets, "the ladder is behind the door")

	// Carol leaves the group, keeping her key: alice gives club a new key
	// and its invite to bob alone. What is sent from now on opens for
	// them, not for carol; what came before still opens for all three.
	out = vecinoCLI(t, nodes[0], true, "chat", "private", "-new", "-key", aliceKey, "club")
	var invite2 string
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "invite (give it to members only): "); ok {
			invite2 = v
		}
	}
	if !strings.HasPrefix(invite2, "club#") || invite2 == invite {
		t.Fatalf("chat private -new printed:\n%s", out)
	}
	vecinoCLI(t, nodes[2], true, "chat", "join", "-key", bobKey, invite2)
	vecinoCLI(t, nodes[0], true, "chat", "send", "-key", aliceKey, "club", "the new gate code is 7788")
	readPrivate(t, nodes[2], bobKey, "club", alice, "the new gate code is 7788")
	readPrivate(t, nodes[2], bobKey, "club", alice, secrets[0])
	// Carol's node has the new message (bob's read above was on node 3;
	// wait for it on node 2, as a sealed message carol cannot open).
	var carolSaw string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if carolSaw = vecinoCLI(t, nodes[1], true, "chat", "read", "-key", carolKey, "club"); strings.Contains(carolSaw, "sealed with another key") {
			break
		}
	}
	if !strings.Contains(carolSaw, "sealed with another key") || strings.Contains(carolSaw, "7788") || !strings.Contains(carolSaw, secrets[0]) {
		t.Errorf("carol, with the old key alone, reads:\n%s", carolSaw)
	}
	// The page, with the old key, sees the same; given the new invite
	// link, it reads the new message and still the old ones.
	wd.clear("#room")
	wd.typeInto("#room", "club")
	wd.click("#join")
	wd.waitText("#log", "sealed with another key", 15*time.Second)
	wd.exec("location.hash = arguments[0]", nil, "#room=club&key="+strings.TrimPrefix(invite2, "club#"))
	wd.waitText("#log", "the new gate code is 7788", 15*time.Second)
	wd.waitText("#log", secrets[0], 5*time.Second)
	secrets = append(secrets, "the new gate code is 7788")
	// The page's own "new key" gives it another invite.
	was := wd.attr("#invite", "value")
	wd.click("#rekey")
	if now := wd.attr("#invite", "value"); now == was || !strings.Contains(now, "#room=club&key=") {
		t.Errorf("after new key the page's invite is %q (was %q)", now, was)
	}

	// The page leaves club (after it asks): its messages no longer open
	// there, and it offers to make the room private again.
	wd.click("#leave")
	wd.call("POST", "/session/"+wd.session+"/alert/accept", map[string]any{}, nil)
	wd.waitText("#log", "sealed: this page has no key for the room", 15*time.Second)
	var canMake bool
	wd.exec("return !document.getElementById('make-private').hidden", &canMake)
	if strings.Contains(wd.text("#log"), "7788") || !canMake {
		t.Errorf("after leaving (make private offered: %v), the page shows:\n%s", canMake, wd.text("#log"))
	}

	// Bob leaves club: its messages no longer open for him.
	vecinoCLI(t, nodes[2], true, "chat", "leave", "-key", bobKey, "club")
	if out := vecinoCLI(t, nodes[2], true, "chat", "read", "-key", bobKey, "club"); strings.Contains(out, secrets[0]) || !strings.Contains(out, "you have no key") {
		t.Errorf("bob, having left club, reads:\n%s", out)
	}

	// What the nodes serve and keep holds none of it.
	for i, n := range nodes {
		var body []byte
		for _, room := range []string{"club", "attic"} {
			code, page, err := n.Do("GET", chatAPI+"/rooms/"+room+"/messages?limit=1000", nil, false)
			if err != nil || code != 200 {
				t.Fatalf("node %d: %d %v", i, code, err)
			}
			body = append(body, page...)
		}
		// Club's four (nodes[0] may not carry attic yet: the read above
		// starts it).
		if sealed := bytes.Count(body, []byte(`"sealed"`)); sealed < 4 {
			t.Errorf("node %d serves %d sealed messages, want 4 or more", i, sealed)
		}
		filepath.WalkDir(n.State, func(path string, d fs.DirEntry, err error) error {
			data, rerr := os.ReadFile(path)
			for _, s := range secrets {
				if err == nil && !d.IsDir() && rerr == nil && bytes.Contains(data, []byte(s)) {
					t.Errorf("%s holds %q", path, s)
				}
			}
			return nil
		})
		for _, s := range secrets {
			if bytes.Contains(body, []byte(s)) {
				t.Errorf("node %d serves %q", i, s)
			}
		}
	}
}
