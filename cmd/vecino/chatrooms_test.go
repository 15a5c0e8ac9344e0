package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vecino/vecino/plugins/chat/wire"
)

// TestRoomKeysFile: keys kept are read back, and a damaged file says
// which line is wrong instead of sending a private room's messages plain.
func TestRoomKeysFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "me.rooms")
	keys, err := loadRoomKeys(path)
	if err != nil || len(keys.keys) != 0 {
		t.Fatalf("no file yet: %v %v", keys, err)
	}
	k, _ := wire.NewRoomKey()
	if err := keys.add("club", k); err != nil {
		t.Fatal(err)
	}
	again, err := loadRoomKeys(path)
	if cur, _ := again.current("club"); err != nil || cur != k {
		t.Fatalf("read back: %v %v", again.keys, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode: %v %v", fi, err)
	}
	// A new key for club: it seals from now on, and the old one still
	// opens what came before, after the file is read back.
	id, _ := wire.NewIdentity()
	before, _ := id.SignSealedRoom("club", 1, time.Now(), "before", k)
	k2, _ := wire.NewRoomKey()
	if err := again.add("club", k2); err != nil {
		t.Fatal(err)
	}
	ring, err := loadRoomKeys(path)
	if cur, _ := ring.current("club"); err != nil || cur != k2 || len(ring.keys["club"]) != 2 {
		t.Fatalf("after a new key: %v %v", ring.keys["club"], err)
	}
	after, _ := ring.sign(id, "club", 2, "after")
	for raw, want := range map[string]string{string(before): "before", string(after): "after"} {
		m, err := wire.ParseRoom([]byte(raw), time.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if text, private, unread := ring.open(&m.RoomBody); text != want || !private || unread != "" {
			t.Errorf("opened %q %v %q, want %q", text, private, unread, want)
		}
		if m.Sealed == "" {
			t.Errorf("%q went plain", want)
		}
	}
	if m, _ := wire.ParseRoom(after, time.Now(), time.Hour); func() bool { _, err := m.Open(k); return err == nil }() {
		t.Error("the old key opens what the new one sealed")
	}

	other, _ := wire.NewRoomKey()
	if err := again.add("attic", other); err != nil {
		t.Fatal(err)
	}
	if err := again.forget("club"); err != nil {
		t.Fatal(err)
	}
	if err := again.forget("club"); err == nil || !strings.Contains(err.Error(), `no key for a private room "club"`) {
		t.Errorf("forget twice: %v", err)
	}
	if left, err := loadRoomKeys(path); err != nil || len(left.keys) != 1 || len(left.keys["attic"]) != 1 || left.keys["attic"][0] != other {
		t.Fatalf("after leaving club: %v %v", left.keys, err)
	}
	for text, want := range map[string]string{
		"club\n":                       "me.rooms:1: want ROOM KEY",
		"# mine\nclub AAAA\n":          "me.rooms:2: invite: room key",
		"Club " + k.String() + "\n":    "me.rooms:1: invite: room",
		"\n\nclub " + k.String() + "x": "me.rooms:3:",
	} {
		os.WriteFile(path, []byte(text), 0o600)
		if _, err := loadRoomKeys(path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", text, err, want)
		}
	}
	if roomKeysFile("/home/me/.config/vecino/chat.key") != "/home/me/.config/vecino/chat.rooms" {
		t.Errorf("beside chat.key: %s", roomKeysFile("/home/me/.config/vecino/chat.key"))
	}
}
