package wire

// Private rooms: the room's messages are sealed with a key its members
// share (an invite), so the nodes that carry, keep and relay them hold
// only ciphertext, as they do for direct messages. The node still checks
// everything else (the author's signature over the sealed body, the room,
// the time, the replay window, the limits): it can refuse what is forged
// or too much without reading it.
//
// Each author's messages are sealed with a key of their own, derived from
// the room's key, the room and the author: a ciphertext copied into another
// room, or signed again by someone else, does not open there.

import (
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/nacl/secretbox"
)

const sealDomain = "vecino-chat-room-seal-v1"

// sealOverhead is what sealing adds to a text: the nonce and the tag.
const sealOverhead = 24 + secretbox.Overhead

// RoomKey is a private room's shared secret.
type RoomKey [32]byte

var keyText = base64.RawURLEncoding

// NewRoomKey makes a key for a new private room.
func NewRoomKey() (RoomKey, error) {
	var k RoomKey
	_, err := rand.Read(k[:])
	return k, err
}

// ParseRoomKey reads a key as Invite writes it (URL-safe base64).
func ParseRoomKey(s string) (RoomKey, error) {
	var k RoomKey
	b, err := keyText.DecodeString(s)
	if err != nil || len(b) != len(k) {
		return k, fmt.Errorf("room key %.12q...: not 32 bytes of URL-safe base64", s)
	}
	copy(k[:], b)
	return k, nil
}

func (k RoomKey) String() string { return keyText.EncodeToString(k[:]) }

// Invite is what a member gives others to join: "ROOM#KEY".
func Invite(room string, k RoomKey) string { return room + "#" + k.String() }

// PageFragment is the chat page's link fragment for the same invite; a
// browser never sends the fragment to the node.
func PageFragment(room string, k RoomKey) string {
	return "#room=" + room + "&key=" + k.String()
}

// ParseInvite reads "ROOM#KEY", or a link to the chat page that carries
// "#room=ROOM&key=KEY".
func ParseInvite(s string) (string, RoomKey, error) {
	s = strings.TrimSpace(s)
	if i := strings.Index(s, "#room="); i >= 0 {
		q, err := url.ParseQuery(s[i+1:])
		if err != nil {
			return "", RoomKey{}, fmt.Errorf("invite link: %w", err)
		}
		return checkInvite(q.Get("room"), q.Get("key"))
	}
	room, key, ok := strings.Cut(s, "#")
	if !ok {
		return "", RoomKey{}, errors.New(`invite: want ROOM#KEY, or a chat page link with #room=...&key=...`)
	}
	return checkInvite(room, key)
}

func checkInvite(room, key string) (string, RoomKey, error) {
	if !RoomName.MatchString(room) {
		return "", RoomKey{}, fmt.Errorf("invite: room %.70q: use lower-case letters, digits, - and _ (at most 64)", room)
	}
	k, err := ParseRoomKey(key)
	if err != nil {
		return "", RoomKey{}, fmt.Errorf("invite: %w", err)
	}
	return room, k, nil
}

// authorKey is the key one author's messages in one room are sealed with:
// the first 32 bytes of SHA-512(domain "\n" roomkey room "\n" from).
func (k RoomKey) authorKey(room, from string) *[32]byte {
	h := sha512.New()
	h.Write([]byte(sealDomain + "\n"))
	h.Write(k[:])
	h.Write([]byte(room + "\n" + from))
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return &out
}

// SignSealedRoom makes a private room message: the text sealed with the
// room's key, then signed as any room message.
func (id *Identity) SignSealedRoom(room string, seq uint64, at time.Time, text string, k RoomKey) ([]byte, error) {
	if err := checkText(text); err != nil {
		return nil, err
	}
	var nonce [24]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, err
	}
	sealed := secretbox.Seal(nonce[:], []byte(text), &nonce, k.authorKey(room, id.addr.String()))
	return id.signRoomBody(RoomBody{Room: room, From: id.addr.String(), Seq: seq, TS: at.UnixMilli(), Sealed: base64.StdEncoding.EncodeToString(sealed)})
}

// Open returns a private room message's text, if k opens it.
func (b *RoomBody) Open(k RoomKey) (string, error) {
	if b.Sealed == "" {
		return "", errors.New("not sealed")
	}
	raw, err := base64.StdEncoding.DecodeString(b.Sealed)
	if err != nil || len(raw) <= sealOverhead {
		return "", errors.New("sealed: not base64 of a sealed text")
	}
	nonce := [24]byte(raw[:24])
	plain, ok := secretbox.Open(nil, raw[24:], &nonce, k.authorKey(b.Room, b.From))
	if !ok {
		return "", errors.New("sealed with another key")
	}
	if !utf8.Valid(plain) {
		return "", errors.New("sealed text is not UTF-8")
	}
	return string(plain), nil
}

// checkSealed checks what a node can of a sealed text: base64, a nonce, a
// tag and at least one byte, and at most MaxText sealed.
func checkSealed(s string) error {
	n := base64.StdEncoding.DecodedLen(len(s))
	if n > MaxText+sealOverhead+2 {
		return fmt.Errorf("body.sealed holds %d bytes, at most %d: %w", n, MaxText+sealOverhead, ErrTooLarge)
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	switch {
	case err != nil:
		return fmt.Errorf("body.sealed is not base64: %w", err)
	case len(raw) <= sealOverhead:
		return fmt.Errorf("body.sealed is %d bytes: a nonce, a tag and a text take at least %d", len(raw), sealOverhead+1)
	case len(raw) > MaxText+sealOverhead:
		return fmt.Errorf("body.sealed holds %d bytes of text, at most %d: %w", len(raw)-sealOverhead, MaxText, ErrTooLarge)
	}
	return nil
}

// Size is how many bytes of text a message carries, sealed or not; a
// node's max_message_bytes bounds it.
func (b *RoomBody) Size() int {
	if s := b.Sealed; s != "" {
		n := base64.StdEncoding.DecodedLen(len(s)) - strings.Count(s[max(0, len(s)-2):], "=")
		return max(0, n-sealOverhead)
	}
	return len(b.Text)
}
