package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
)

func mustID(t testing.TB) *Identity {
	id, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestRoomMessageRoundTrip(t *testing.T) {
	alice := mustID(t)
	now := time.Now()
	raw, err := alice.SignRoom("lobby", 7, now, "hola, vecinos")
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseRoom(raw, now, time.Hour)
	if err != nil {
		t.Fatalf("a message just signed does not parse: %v", err)
	}
	if m.From != alice.Address().String() || m.Text != "hola, vecinos" || m.Seq != 7 || m.Room != "lobby" {
		t.Fatalf("parsed %+v", m.RoomBody)
	}

	// Change one letter of the text: the signature must no longer hold.
	var env Envelope
	json.Unmarshal(raw, &env)
	env.Body = strings.Replace(env.Body, "hola", "hole", 1)
	forged, _ := json.Marshal(env)
	if _, err := ParseRoom(forged, now, time.Hour); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("forged text: got %v, want a bad signature", err)
	}
	// Someone else's signature over the same body.
	mallory := mustID(t)
	env.Body = strings.Replace(env.Body, "hole", "hola", 1)
	env.Sig = mallory.signWith(roomDomain, []byte(env.Body))
	forged, _ = json.Marshal(env)
	if _, err := ParseRoom(forged, now, time.Hour); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("signed by another key: got %v, want a bad signature", err)
	}
	if _, err := ParseRoom(raw, now.Add(2*time.Hour), time.Hour); !errors.Is(err, ErrStale) {
		t.Fatalf("two hours later with a one-hour window: got %v, want stale", err)
	}
	if _, err := ParseRoom([]byte(`{"body":"{}"}`), now, time.Hour); !errors.Is(err, ErrUnsigned) {
		t.Fatalf("no sig: got %v, want unsigned", err)
	}
}

func TestSealedMail(t *testing.T) {
	alice, bob, eve := mustID(t), mustID(t), mustID(t)
	now := time.Now()
	raw, err := alice.Seal(bob.Address(), now, "the key is under the mat")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("under the mat")) {
		t.Fatal("the deposit carries the plaintext")
	}
	m, err := ParseMail(raw, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	got, err := bob.Open(*m)
	if err != nil || got.Text != "the key is under the mat" || got.From != alice.Address().String() {
		t.Fatalf("bob opens %+v, %v", got, err)
	}
	if _, err := eve.Open(*m); err == nil {
		t.Fatal("eve opened bob's mail")
	}
	a := bob.AuthorizeMailbox("delete", now, []string{m.ID})
	if err := CheckMailboxAuth(bob.Address().String(), "delete", a, now, time.Minute); err != nil {
		t.Fatalf("bob's own delete: %v", err)
	}
	if err := CheckMailboxAuth(bob.Address().String(), "list", a, now, time.Minute); err == nil {
		t.Fatal("a delete signature was taken for list")
	}
	ea := eve.AuthorizeMailbox("delete", now, []string{m.ID})
	if err := CheckMailboxAuth(bob.Address().String(), "delete", ea, now, time.Minute); err == nil {
		t.Fatal("eve deleted bob's mail")
	}
}

func TestKeysRoundTrip(t *testing.T) {
	id := mustID(t)
	back, err := UnmarshalKeys(id.MarshalKeys())
	if err != nil || back.Address().String() != id.Address().String() {
		t.Fatalf("keys do not round-trip: %v", err)
	}
	a, err := ParseAddress(id.Address().String())
	if err != nil || a.String() != id.Address().String() {
		t.Fatalf("address does not round-trip: %v", err)
	}
	for _, bad := range []string{"", "vc1", "xx1abc", id.Address().String()[:50], id.Address().String() + "aa"} {
		if _, err := ParseAddress(bad); err == nil {
			t.Errorf("ParseAddress(%q) took it", bad)
		}
	}
}

// A bundle splits back into the envelopes it was made of, in order, each
// still verifying; a lone envelope is its own bundle of one.
func TestBundle(t *testing.T) {
	id := mustID(t)
	now := time.Now()
	var envs [][]byte
	for i := range 3 {
		raw, err := id.SignRoom("lobby", uint64(i+1), now, fmt.Sprintf("message %d", i))
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, raw)
	}
	for _, n := range []int{1, 3} {
		got, err := SplitRoom(Bundle(envs[:n]))
		if err != nil || len(got) != n {
			t.Fatalf("bundle of %d: split into %d, %v", n, len(got), err)
		}
		for i, raw := range got {
			m, err := ParseRoom(raw, now, time.Hour)
			if err != nil || m.Seq != uint64(i+1) {
				t.Fatalf("bundle of %d, member %d: %v (seq %v)", n, i, err, m)
			}
		}
	}
	for _, bad := range []string{`[]`, `[{"body":`, "[" + strings.Repeat(`{},`, MaxBundleMessages) + "{}]"} {
		if _, err := SplitRoom([]byte(bad)); err == nil {
			t.Errorf("SplitRoom(%.40q...) took it", bad)
		}
	}
}

// JSON that two parsers could read two ways is refused, so every node and
// client agrees on what a message says: a repeated key (which body did the
// signature cover?), a key in another case, bytes that are not UTF-8.
func TestParseRoomRefusesAmbiguousJSON(t *testing.T) {
	id := mustID(t)
	now := time.Now()
	good, err := id.SignRoom("lobby", 1, now, "hi")
	if err != nil {
		t.Fatal(err)
	}
	var env Envelope
	if err := json.Unmarshal(good, &env); err != nil {
		t.Fatal(err)
	}
	other, _ := json.Marshal(strings.Replace(env.Body, `"hi"`, `"bye"`, 1))
	sig, _ := json.Marshal(env.Sig)
	body, _ := json.Marshal(env.Body)
	for name, raw := range map[string]string{
		"repeated body":   `{"body":` + string(body) + `,"sig":` + string(sig) + `,"body":` + string(other) + `}`,
		"key in capitals": `{"Body":` + string(body) + `,"sig":` + string(sig) + `}`,
		"not UTF-8":       `{"body":` + string(body) + `,"sig":` + string(sig) + `,"x":"` + "\xff" + `"}`,
	} {
		if _, err := ParseRoom([]byte(raw), now, time.Hour); err == nil {
			t.Errorf("%s: taken", name)
		}
	}
	if _, err := ParseRoom(good, now, time.Hour); err != nil {
		t.Fatalf("the message itself: %v", err)
	}
}

// FuzzParseRoom: whatever arrives, ParseRoom does not panic, and what it
// accepts has a valid room, text and signature.
func FuzzParseRoom(f *testing.F) {
	id := mustID(f)
	now := time.UnixMilli(1_764_000_000_000)
	good, _ := id.SignRoom("lobby", 1, now, "hi")
	f.Add(good)
	f.Add([]byte(`{"body":"{\"room\":\"lobby\"}","sig":"AAAA"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[`))
	second, _ := id.SignRoom("lobby", 2, now, "there")
	f.Add(Bundle([][]byte{good, second}))
	f.Add([]byte(`[{}, 1, "x"]`))
	sealed, _ := id.SignSealedRoom("club", 3, now, "psst", RoomKey{1})
	f.Add(sealed)
	f.Fuzz(func(t *testing.T, data []byte) {
		envs, err := SplitRoom(data)
		if err != nil {
			return
		}
		if len(envs) > MaxBundleMessages {
			t.Fatalf("split into %d messages", len(envs))
		}
		for _, env := range envs {
			m, err := ParseRoom(env, now, time.Hour)
			if err != nil {
				continue
			}
			if !RoomName.MatchString(m.Room) || checkContent(&m.RoomBody) != nil || m.Size() > MaxText {
				t.Fatalf("accepted a bad message: %+v", m.RoomBody)
			}
			if _, err := ParseAddress(m.From); err != nil {
				t.Fatalf("accepted a bad author: %v", err)
			}
		}
	})
}

// FuzzParseMail: deposits and their opening never panic.
func FuzzParseMail(f *testing.F) {
	alice, bob := mustID(f), mustID(f)
	now := time.UnixMilli(1_764_000_000_000)
	good, _ := alice.Seal(bob.Address(), now, "hi")
	f.Add(good)
	f.Add([]byte(`{"to":"vc1","sealed":"","ts":0}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMail(data, now, time.Hour)
		if err != nil {
			return
		}
		bob.Open(*m)
	})
}

// BenchmarkParseRoom: what checking one 1 KiB room message costs a node,
// and its JSON alone; and splitting a bundle of 32 into its members.
func BenchmarkParseRoom(b *testing.B) {
	id, _ := NewIdentity()
	now := time.Now()
	raw, err := id.SignRoom("lobby", 1, now, strings.Repeat("x", 1000))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("all", func(b *testing.B) {
		for b.Loop() {
			if _, err := ParseRoom(raw, now, time.Hour); err != nil {
				b.Fatal(err)
			}
		}
	})
	// A private room's message of the same length: what a node pays to
	// check it, and what a member pays to open it.
	key, _ := NewRoomKey()
	sealed, err := id.SignSealedRoom("lobby", 2, now, strings.Repeat("x", 1000), key)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("sealed", func(b *testing.B) {
		for b.Loop() {
			if _, err := ParseRoom(sealed, now, time.Hour); err != nil {
				b.Fatal(err)
			}
		}
	})
	m, _ := ParseRoom(sealed, now, time.Hour)
	b.Run("open", func(b *testing.B) {
		for b.Loop() {
			if _, err := m.Open(key); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json", func(b *testing.B) {
		for b.Loop() {
			env, err := parseEnvelope(raw)
			if err != nil {
				b.Fatal(err)
			}
			var rb RoomBody
			if err := jsonv2.Unmarshal([]byte(env.Body), &rb); err != nil {
				b.Fatal(err)
			}
		}
	})
	envs := make([][]byte, 32)
	for i := range envs {
		envs[i], _ = id.SignRoom("lobby", uint64(i+1), now, strings.Repeat("x", 1000))
	}
	bundle := Bundle(envs)
	b.Run("split-bundle-of-32", func(b *testing.B) {
		for b.Loop() {
			if got, err := SplitRoom(bundle); err != nil || len(got) != len(envs) {
				b.Fatal(len(got), err)
			}
		}
	})
}

// TestNames: a name goes with its author's public room messages, under
// the signature; a private room's message carries none; a name that could
// pass for something else (too long, a line break, padding) is refused.
func TestNames(t *testing.T) {
	alice := mustID(t)
	alice.Name = "Ana de la 3ª"
	now := time.Now()
	raw, err := alice.SignRoom("lobby", 1, now, "hola")
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseRoom(raw, now, time.Hour)
	if err != nil || m.Name != "Ana de la 3ª" {
		t.Fatalf("named message: %+v, %v", m, err)
	}
	k, _ := NewRoomKey()
	raw, _ = alice.SignSealedRoom("club", 2, now, "secret", k)
	if m, err := ParseRoom(raw, now, time.Hour); err != nil || m.Name != "" {
		t.Errorf("a private room's message: %+v, %v; want no name", m, err)
	}
	for _, bad := range []string{strings.Repeat("a", MaxName+1), "Ana\nadmin: all good", " Ana", "Ana\u0007", "Ana\u2028admin", "Ana\u202egnp.exe"} {
		b, _ := json.Marshal(RoomBody{Room: "lobby", From: alice.Address().String(), Seq: 3, TS: now.UnixMilli(), Text: "x", Name: bad})
		raw, _ := json.Marshal(Envelope{Body: string(b), Sig: alice.signWith(roomDomain, b)})
		if _, err := ParseRoom(raw, now, time.Hour); err == nil || !strings.Contains(err.Error(), "body.name") {
			t.Errorf("name %q: %v, want it refused", bad, err)
		}
	}
}
