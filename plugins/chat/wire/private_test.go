package wire

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestPrivateRoomMessages: a member's sealed message verifies at a node
// that cannot read it, opens with the room's key, and opens with nothing
// else: not another key, not in another room, not under another author.
func TestPrivateRoomMessages(t *testing.T) {
	alice, mallory := mustID(t), mustID(t)
	now := time.UnixMilli(1_764_000_000_000)
	key, err := NewRoomKey()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := alice.SignSealedRoom("club", 1, now, "meet at the oak at 8", key)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "oak") {
		t.Fatalf("the plaintext travels: %s", raw)
	}
	m, err := ParseRoom(raw, now, time.Hour)
	if err != nil {
		t.Fatalf("a node refuses a sealed message: %v", err)
	}
	if m.Text != "" || m.Size() != len("meet at the oak at 8") {
		t.Fatalf("the node reads text %q, size %d", m.Text, m.Size())
	}
	if got, err := m.Open(key); err != nil || got != "meet at the oak at 8" {
		t.Fatalf("open: %q %v", got, err)
	}
	other, _ := NewRoomKey()
	if _, err := m.Open(other); err == nil {
		t.Fatal("another key opens it")
	}
	moved := m.RoomBody
	moved.Room = "other"
	if _, err := moved.Open(key); err == nil {
		t.Fatal("the ciphertext opens in another room")
	}
	// Mallory, without the key, signs alice's ciphertext as hers: the
	// node takes it (it cannot tell), the members do not read it as hers.
	stolen := m.RoomBody
	stolen.From = mallory.Address().String()
	again, err := mallory.signRoomBody(stolen)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := ParseRoom(again, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m2.Open(key); err == nil {
		t.Fatal("a ciphertext signed again by another author opens")
	}
}

func TestPrivateRoomRefusals(t *testing.T) {
	id := mustID(t)
	now := time.UnixMilli(1_764_000_000_000)
	body := func(extra string) []byte {
		b := `{"room":"club","from":"` + id.Address().String() + `","seq":1,"ts":1764000000000` + extra + `}`
		out, _ := json.Marshal(Envelope{Body: b, Sig: id.signWith(roomDomain, []byte(b))})
		return out
	}
	sealed := base64.StdEncoding.EncodeToString(make([]byte, sealOverhead+5))
	for _, tc := range []struct {
		name, extra, want string
	}{
		{"both", `,"text":"hi","sealed":"` + sealed + `"`, "both text and sealed"},
		{"neither", ``, "body.text is empty"},
		{"not base64", `,"sealed":"%%%"`, "not base64"},
		{"no text inside", `,"sealed":"` + base64.StdEncoding.EncodeToString(make([]byte, sealOverhead)) + `"`, "at least 41"},
		{"too large", `,"sealed":"` + base64.StdEncoding.EncodeToString(make([]byte, MaxText+sealOverhead+1)) + `"`, "too large"},
	} {
		_, err := ParseRoom(body(tc.extra), now, time.Hour)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	if m, err := ParseRoom(body(`,"sealed":"`+sealed+`"`), now, time.Hour); err != nil || m.Size() != 5 {
		t.Errorf("a well-formed sealed body: %v", err)
	}
}

func TestInvites(t *testing.T) {
	key, _ := NewRoomKey()
	for _, s := range []string{
		Invite("club", key),
		"  " + Invite("club", key) + "\n",
		"http://192.0.2.1:8734/api/v1/plugins/chat/" + PageFragment("club", key),
	} {
		room, k, err := ParseInvite(s)
		if err != nil || room != "club" || k != key {
			t.Errorf("%q: %q %v", s, room, err)
		}
	}
	for s, want := range map[string]string{
		"club":                          "want ROOM#KEY",
		"Club#" + key.String():          "room",
		"club#short":                    "not 32 bytes",
		"x/#room=club&key=" + "AAAA":    "not 32 bytes",
		"x/#room=&key=" + key.String():  "room",
		"club#" + key.String() + "AAAA": "not 32 bytes",
	} {
		if _, _, err := ParseInvite(s); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", s, err, want)
		}
	}
}

// FuzzParseInvite: whatever is pasted as an invite, ParseInvite does not
// panic, and what it takes is a valid room with the key it was given.
func FuzzParseInvite(f *testing.F) {
	k := RoomKey{7}
	f.Add(Invite("club", k))
	f.Add("http://127.0.0.1:8734/api/v1/plugins/chat/" + PageFragment("club", k))
	f.Add("#room=%zz&key=")
	f.Add("a#b#c")
	f.Fuzz(func(t *testing.T, s string) {
		room, key, err := ParseInvite(s)
		if err != nil {
			return
		}
		if !RoomName.MatchString(room) {
			t.Fatalf("took room %q from %q", room, s)
		}
		if back, _, err := ParseInvite(Invite(room, key)); err != nil || back != room {
			t.Fatalf("%q does not read back: %v", Invite(room, key), err)
		}
	})
}
