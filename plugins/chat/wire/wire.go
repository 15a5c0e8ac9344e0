// Package wire is the chat plugin's wire format: identities, signed room
// messages, and mailbox messages sealed to their recipient. The plugin, the
// CLI and the tests share it; docs/chat-wire.md describes the same format for
// people who write clients in other languages.
package wire

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/nacl/box"
)

// Topic prefixes on gossipsub.
const (
	RoomTopicPrefix = "vecino/chat/room/"
	MailTopic       = "vecino/chat/mail"
)

// Domain separation: every signature covers one of these, then a newline,
// then the signed bytes.
const (
	roomDomain    = "vecino-chat-room-v1"
	mailDomain    = "vecino-chat-mail-v1"
	mailboxDomain = "vecino-chat-mailbox-v1"
)

// Limits every node applies on top of its configured ones.
const (
	MaxEnvelope = 96 << 10
	// MaxMail bounds a mailbox deposit: a sealed envelope in base64.
	MaxMail = 2 * MaxEnvelope
	MaxText = 64 << 10
	// MaxSkew is how far in the future a timestamp may be.
	MaxSkew = 5 * time.Minute
)

// RoomName is what a room may be called.
var RoomName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

const addrPrefix = "vc1"

// Address names a chat user: their Ed25519 signing key and X25519 sealing
// key, as "vc1" + lower-case base32 (no padding) of the 64 bytes.
type Address struct {
	Sign ed25519.PublicKey
	Box  [32]byte
}

func (a Address) String() string {
	b := make([]byte, 0, 64)
	b = append(append(b, a.Sign...), a.Box[:]...)
	return addrPrefix + strings.ToLower(b32.EncodeToString(b))
}

// ParseAddress reads an address written by String.
func ParseAddress(s string) (Address, error) {
	rest, ok := strings.CutPrefix(s, addrPrefix)
	if !ok {
		return Address{}, fmt.Errorf("address %.16q: does not start with %q", s, addrPrefix)
	}
	b, err := b32.DecodeString(strings.ToUpper(rest))
	if err != nil || len(b) != 64 {
		return Address{}, fmt.Errorf("address %.16q...: not 64 bytes of base32", s)
	}
	var a Address
	a.Sign = ed25519.PublicKey(b[:32])
	copy(a.Box[:], b[32:])
	return a, nil
}

// Identity is a user's two private keys.
type Identity struct {
	sign ed25519.PrivateKey
	box  [32]byte
	addr Address
	// Name, if set, goes with the room messages SignRoom makes (not
	// private rooms'): see RoomBody.Name.
	Name string
}

// NewIdentity makes fresh keys.
func NewIdentity() (*Identity, error) {
	var seed, boxKey [32]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, err
	}
	if _, err := rand.Read(boxKey[:]); err != nil {
		return nil, err
	}
	return identityFrom(seed[:], boxKey)
}

func identityFrom(seed []byte, boxKey [32]byte) (*Identity, error) {
	id := &Identity{sign: ed25519.NewKeyFromSeed(seed), box: boxKey}
	pub, err := curve25519.X25519(boxKey[:], curve25519.Basepoint)
	if err != nil {
		return nil, fmt.Errorf("box key: %w", err)
	}
	id.addr.Sign = id.sign.Public().(ed25519.PublicKey)
	copy(id.addr.Box[:], pub)
	return id, nil
}

// Address is the identity's public address.
func (id *Identity) Address() Address { return id.addr }

type keyFile struct {
	Sign string `json:"sign"`
	Box  string `json:"box"`
}

// MarshalKeys writes the identity's private keys (keep the file private).
func (id *Identity) MarshalKeys() []byte {
	b, _ := json.MarshalIndent(keyFile{
		Sign: base64.StdEncoding.EncodeToString(id.sign.Seed()),
		Box:  base64.StdEncoding.EncodeToString(id.box[:]),
	}, "", "  ")
	return append(b, '\n')
}

// UnmarshalKeys reads what MarshalKeys wrote.
func UnmarshalKeys(data []byte) (*Identity, error) {
	var kf keyFile
	if err := json.Unmarshal(data, &kf); err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	seed, err1 := base64.StdEncoding.DecodeString(kf.Sign)
	boxKey, err2 := base64.StdEncoding.DecodeString(kf.Box)
	if err1 != nil || err2 != nil || len(seed) != 32 || len(boxKey) != 32 {
		return nil, errors.New("key file: sign and box must each be 32 bytes of base64")
	}
	return identityFrom(seed, [32]byte(boxKey))
}

func (id *Identity) signWith(domain string, body []byte) string {
	return base64.StdEncoding.EncodeToString(ed25519.Sign(id.sign, signed(domain, body)))
}

func signed(domain string, body []byte) []byte {
	return append([]byte(domain+"\n"), body...)
}

// Envelope is a signed message: body is JSON text, sig the author's
// Ed25519 signature over the domain line and body.
type Envelope struct {
	Body string `json:"body"`
	Sig  string `json:"sig"`
}

// RoomBody is what a room message says.
type RoomBody struct {
	Room string `json:"room"`
	From string `json:"from"`
	// Seq counts the author's messages; it orders them.
	Seq uint64 `json:"seq"`
	TS  int64  `json:"ts"` // Unix milliseconds
	// Text is the message; in a private room it is Sealed instead (base64
	// of a nonce and the text sealed with the room's key: Open). A body
	// carries one of the two.
	Text   string `json:"text,omitempty"`
	Sealed string `json:"sealed,omitempty"`
	// Name is what the author calls themself (optional, MaxName bytes,
	// no control characters: CheckName). Anyone may take any name: clients show
	// it beside the address, which is what says who wrote. Private
	// rooms' messages carry none, as the nodes would read it.
	Name string `json:"name,omitempty"`
}

// MaxName bounds a display name, in bytes.
const MaxName = 64

// RoomMessage is a room message that verified.
type RoomMessage struct {
	RoomBody
	ID  string `json:"id"` // hex SHA-256 of the body
	Raw []byte `json:"-"`  // the envelope as it travels
}

// SignRoom makes a room message.
func (id *Identity) SignRoom(room string, seq uint64, at time.Time, text string) ([]byte, error) {
	return id.signRoomBody(RoomBody{Room: room, From: id.addr.String(), Seq: seq, TS: at.UnixMilli(), Text: text, Name: id.Name})
}

func (id *Identity) signRoomBody(b RoomBody) ([]byte, error) {
	body, err := json.Marshal(b)
	if err != nil {
		return nil, err
	}
	return json.Marshal(Envelope{Body: string(body), Sig: id.signWith(roomDomain, body)})
}

// Errors that say why a message was refused.
var (
	ErrUnsigned     = errors.New("unsigned: body and sig are required")
	ErrBadSignature = errors.New("signature does not verify against body.from")
	ErrTooLarge     = errors.New("too large")
)

// ErrStale marks a message too old (or too far ahead) to accept: a replay,
// or a clock far off.
var ErrStale = errors.New("timestamp outside the accepted window")

// ParseRoom checks a room message: its size, its JSON, its room, its text,
// its age (maxAge back, MaxSkew ahead) and its author's signature.
//
// What others send is read with JSON v2 (go-json-experiment, what Go's
// encoding/json/v2 grew from): one pass over the bytes, where v1 validates
// first and decodes after, four times faster on a 1 KiB message (16 -> 4 us,
// and 8 -> 1 us a member to split a bundle), which every node pays for every
// message. It is also strict where v1 is lenient, and strict is what a
// signed format wants: a repeated key, a key in another case or bytes that
// are not UTF-8 are refused, not read one way here and another elsewhere.
func ParseRoom(data []byte, now time.Time, maxAge time.Duration) (*RoomMessage, error) {
	env, err := parseEnvelope(data)
	if err != nil {
		return nil, err
	}
	var b RoomBody
	if err := jsonv2.Unmarshal([]byte(env.Body), &b); err != nil {
		return nil, fmt.Errorf("body: %w", err)
	}
	if !RoomName.MatchString(b.Room) {
		return nil, fmt.Errorf("body.room %.70q: use lower-case letters, digits, - and _ (at most 64)", b.Room)
	}
	if err := checkContent(&b); err != nil {
		return nil, err
	}
	if err := CheckName(b.Name); err != nil {
		return nil, fmt.Errorf("body.name: %w", err)
	}
	if err := checkTime(b.TS, now, maxAge); err != nil {
		return nil, err
	}
	from, err := ParseAddress(b.From)
	if err != nil {
		return nil, fmt.Errorf("body.from: %w", err)
	}
	if err := verify(from, roomDomain, env); err != nil {
		return nil, err
	}
	return &RoomMessage{RoomBody: b, ID: BodyID(env.Body), Raw: data}, nil
}

// Bundles: a node that has several room messages to publish at once sends
// them as one gossipsub message, a JSON array of envelopes in the order they
// were accepted. Gossipsub's per-message costs (the publisher's signature,
// its check on every node, a hop through each router) are then paid once.
const (
	MaxBundle         = 512 << 10
	MaxBundleMessages = 256
)

// Bundle joins room message envelopes, each valid JSON as ParseRoom took
// it, into one bundle; a single envelope travels as itself.
func Bundle(envs [][]byte) []byte {
	if len(envs) == 1 {
		return envs[0]
	}
	n := 2
	for _, e := range envs {
		n += len(e) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, '[')
	for i, e := range envs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, e...)
	}
	return append(b, ']')
}

// IsBundle reports whether data is a bundle: its first byte after any
// white space is '['.
func IsBundle(data []byte) bool {
	i := 0
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i < len(data) && data[i] == '['
}

// SplitRoom returns the envelopes a room topic's message carries: itself,
// or the members of a bundle. Each is then checked with ParseRoom.
func SplitRoom(data []byte) ([][]byte, error) {
	if !IsBundle(data) {
		return [][]byte{data}, nil
	}
	if len(data) > MaxBundle {
		return nil, fmt.Errorf("bundle is %d bytes, at most %d: %w", len(data), MaxBundle, ErrTooLarge)
	}
	var raws []jsontext.Value
	if err := jsonv2.Unmarshal(data, &raws); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	if len(raws) == 0 || len(raws) > MaxBundleMessages {
		return nil, fmt.Errorf("bundle holds %d messages, from 1 to %d", len(raws), MaxBundleMessages)
	}
	out := make([][]byte, len(raws))
	for i, r := range raws {
		out[i] = r
	}
	return out, nil
}

func parseEnvelope(data []byte) (Envelope, error) {
	var env Envelope
	if len(data) > MaxEnvelope {
		return env, fmt.Errorf("message is %d bytes, at most %d: %w", len(data), MaxEnvelope, ErrTooLarge)
	}
	if err := jsonv2.Unmarshal(data, &env); err != nil {
		return env, fmt.Errorf("envelope: %w", err)
	}
	if env.Body == "" || env.Sig == "" {
		return env, fmt.Errorf("envelope: %w", ErrUnsigned)
	}
	return env, nil
}

// checkContent checks that a room message carries a text or a sealed
// text, not both.
func checkContent(b *RoomBody) error {
	switch {
	case b.Sealed == "":
		return checkText(b.Text)
	case b.Text != "":
		return errors.New("body has both text and sealed: a message is one or the other")
	}
	return checkSealed(b.Sealed)
}

func checkText(t string) error {
	switch {
	case t == "":
		return errors.New("body.text is empty")
	case len(t) > MaxText:
		return fmt.Errorf("body.text is %d bytes, at most %d: %w", len(t), MaxText, ErrTooLarge)
	case !utf8.ValidString(t):
		return errors.New("body.text is not UTF-8")
	}
	return nil
}

// CheckName says why name may not be a display name, if it may not: ""
// (none) may.
func CheckName(name string) error {
	switch {
	case len(name) > MaxName:
		return fmt.Errorf("%d bytes, at most %d", len(name), MaxName)
	case !utf8.ValidString(name):
		return errors.New("not UTF-8")
	case strings.TrimSpace(name) != name:
		return fmt.Errorf("%q starts or ends with a space", name)
	case strings.IndexFunc(name, nameControl) >= 0:
		return fmt.Errorf("%q holds a control character (line breaks and text-direction marks are ones)", name)
	}
	return nil
}

// nameControl reports whether r may not be in a name: control characters,
// line and paragraph separators, and the marks that turn text's direction,
// with which a name could pass for another or run into the message.
func nameControl(r rune) bool {
	switch {
	case unicode.IsControl(r), unicode.Is(unicode.Zl, r), unicode.Is(unicode.Zp, r):
		return true
	case r == 0x200e || r == 0x200f || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069):
		return true
	}
	return false
}

func checkTime(ts int64, now time.Time, maxAge time.Duration) error {
	at := time.UnixMilli(ts)
	if at.Before(now.Add(-maxAge)) || at.After(now.Add(MaxSkew)) {
		return fmt.Errorf("body.ts %s: %w (%s back, %s ahead)", at.UTC().Format(time.RFC3339), ErrStale, maxAge, MaxSkew)
	}
	return nil
}

func verify(from Address, domain string, env Envelope) error {
	sig, err := base64.StdEncoding.DecodeString(env.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("sig is not 64 bytes of base64: %w", ErrBadSignature)
	}
	if !checkSig(from.Sign, signed(domain, []byte(env.Body)), sig) {
		return fmt.Errorf("sig: %w", ErrBadSignature)
	}
	return nil
}

// BodyID is a message's ID: the hex SHA-256 of its body.
func BodyID(body string) string {
	h := sha256.Sum256([]byte(body))
	return hex.EncodeToString(h[:])
}

// ---------------------------------------------------------------- mailboxes

// MailBody is what a direct message says; it travels sealed.
type MailBody struct {
	From string `json:"from"`
	To   string `json:"to"`
	TS   int64  `json:"ts"`
	Text string `json:"text"`
}

// Mail is a direct message as the node sees it: the recipient and
// ciphertext only.
type Mail struct {
	To     string `json:"to"`
	Sealed string `json:"sealed"` // base64: ephemeral key, nonce, box
	TS     int64  `json:"ts"`
	ID     string `json:"id,omitempty"` // hex SHA-256 of the sealed bytes
}

// Seal signs text as id and seals it to to.
func (id *Identity) Seal(to Address, at time.Time, text string) ([]byte, error) {
	body, err := json.Marshal(MailBody{From: id.addr.String(), To: to.String(), TS: at.UnixMilli(), Text: text})
	if err != nil {
		return nil, err
	}
	plain, _ := json.Marshal(Envelope{Body: string(body), Sig: id.signWith(mailDomain, body)})
	epk, esk, err := box.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	var nonce [24]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, err
	}
	out := append(epk[:], nonce[:]...)
	out = box.Seal(out, plain, &nonce, &to.Box, esk)
	return json.Marshal(Mail{To: to.String(), Sealed: base64.StdEncoding.EncodeToString(out), TS: at.UnixMilli()})
}

// ParseMail checks a mailbox deposit as the node can: size, recipient, age.
func ParseMail(data []byte, now time.Time, maxAge time.Duration) (*Mail, error) {
	if len(data) > MaxMail {
		return nil, fmt.Errorf("mail is %d bytes, at most %d: %w", len(data), MaxMail, ErrTooLarge)
	}
	var m Mail
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("mail: %w", err)
	}
	if _, err := ParseAddress(m.To); err != nil {
		return nil, fmt.Errorf("mail.to: %w", err)
	}
	sealed, err := base64.StdEncoding.DecodeString(m.Sealed)
	if err != nil || len(sealed) < 32+24+box.Overhead {
		return nil, errors.New("mail.sealed: not base64 of a sealed box")
	}
	if err := checkTime(m.TS, now, maxAge); err != nil {
		return nil, fmt.Errorf("mail: %w", err)
	}
	h := sha256.Sum256(sealed)
	m.ID = hex.EncodeToString(h[:])
	return &m, nil
}

// Open unseals a mail addressed to id and checks its sender's signature.
func (id *Identity) Open(m Mail) (*MailBody, error) {
	sealed, err := base64.StdEncoding.DecodeString(m.Sealed)
	if err != nil || len(sealed) < 32+24+box.Overhead {
		return nil, errors.New("sealed: not a sealed box")
	}
	epk, nonce := [32]byte(sealed[:32]), [24]byte(sealed[32:56])
	plain, ok := box.Open(nil, sealed[56:], &nonce, &epk, &id.box)
	if !ok {
		return nil, errors.New("sealed: does not open with this key")
	}
	env, err := parseEnvelope(plain)
	if err != nil {
		return nil, err
	}
	var b MailBody
	if err := json.Unmarshal([]byte(env.Body), &b); err != nil {
		return nil, fmt.Errorf("body: %w", err)
	}
	from, err := ParseAddress(b.From)
	if err != nil {
		return nil, fmt.Errorf("body.from: %w", err)
	}
	if b.To != id.addr.String() {
		return nil, errors.New("body.to is someone else: forwarded mail")
	}
	if err := verify(from, mailDomain, env); err != nil {
		return nil, err
	}
	return &b, nil
}

// MailboxAuth proves to a node that the caller holds addr's key, for one
// operation on its mailbox ("list", or "delete" with the IDs).
type MailboxAuth struct {
	TS  int64    `json:"ts"`
	IDs []string `json:"ids,omitempty"`
	Sig string   `json:"sig"`
}

func mailboxSigned(addr, op string, a MailboxAuth) []byte {
	return fmt.Appendf(nil, "%s\n%s\n%d\n%s", addr, op, a.TS, strings.Join(a.IDs, ","))
}

// AuthorizeMailbox signs op on id's own mailbox.
func (id *Identity) AuthorizeMailbox(op string, at time.Time, ids []string) MailboxAuth {
	a := MailboxAuth{TS: at.UnixMilli(), IDs: ids}
	a.Sig = id.signWith(mailboxDomain, mailboxSigned(id.addr.String(), op, a))
	return a
}

// CheckMailboxAuth verifies a for op on addr's mailbox, made within window
// of now.
func CheckMailboxAuth(addr, op string, a MailboxAuth, now time.Time, window time.Duration) error {
	to, err := ParseAddress(addr)
	if err != nil {
		return err
	}
	at := time.UnixMilli(a.TS)
	if at.Before(now.Add(-window)) || at.After(now.Add(window)) {
		return fmt.Errorf("mailbox auth: %w (%s either way)", ErrStale, window)
	}
	return verify(to, mailboxDomain, Envelope{Body: string(mailboxSigned(addr, op, a)), Sig: a.Sig})
}

// MailOp is what nodes tell each other on MailTopic: a deposit to keep, or
// a deletion the recipient signed.
type MailOp struct {
	Deposit json.RawMessage `json:"deposit,omitempty"` // a Mail
	Delete  *MailDelete     `json:"delete,omitempty"`
}

// MailDelete is a recipient's signed request to drop mail from its box.
type MailDelete struct {
	To   string      `json:"to"`
	Auth MailboxAuth `json:"auth"`
}
