package chat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vecino/vecino/internal/plugintest"
	"github.com/vecino/vecino/plugins/chat/wire"
	"github.com/vecino/vecino/sdk"
)

// TestDocumentedSettingsAreValid: every key config/vecino.toml documents for
// [plugins.chat] is one the plugin takes, with a value it accepts.
func TestDocumentedSettingsAreValid(t *testing.T) {
	configure := func(table []byte) (any, error) {
		c := newChat()
		err := c.Configure(context.Background(), table, sdk.Env{DataDir: t.TempDir()})
		return c.cfg, err
	}
	plugintest.CheckDocumentedDefaults(t, "chat", configure, defaults())
}

func TestBadSettingsNameTheirKey(t *testing.T) {
	configure := func(table []byte) error {
		return newChat().Configure(context.Background(), table, sdk.Env{DataDir: t.TempDir()})
	}
	plugintest.CheckBadSettings(t, configure, []plugintest.BadSetting{
		{TOML: `rooms = ["Lobby!"]`, Key: "rooms"},
		{TOML: `history = 0`, Key: "history"},
		{TOML: `rate = -1.0`, Key: "rate"},
		{TOML: `history_age = "soon"`, Key: "history_age"},
		{TOML: `mailbox_kib = 0`, Key: "mailbox_kib"},
		{TOML: `colour = "blue"`, Key: "colour"},
	})
}

// reopen closes d and opens its file again, as a restart does.
func reopen(tb testing.TB, d *db) *db {
	tb.Helper()
	path := d.b.Path()
	if err := d.close(); err != nil {
		tb.Fatal(err)
	}
	d, err := openDB(path)
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

// testChat is a configured chat with its database, not started.
func testChat(tb testing.TB, table string) (*chat, *db) {
	c := newChat()
	if err := c.Configure(context.Background(), []byte(table), sdk.Env{DataDir: tb.TempDir()}); err != nil {
		tb.Fatal(err)
	}
	d, err := openDB(filepath.Join(tb.TempDir(), "chat.db"))
	if err != nil {
		tb.Fatal(err)
	}
	c.db = d
	return c, d
}

// signer signs room messages in lobby by one new author, written at now.
func signer(tb testing.TB, now time.Time) func(seq uint64, text string) []byte {
	id, err := wire.NewIdentity()
	if err != nil {
		tb.Fatal(err)
	}
	return func(seq uint64, text string) []byte {
		raw, err := id.SignRoom("lobby", seq, now, text)
		if err != nil {
			tb.Fatal(err)
		}
		return raw
	}
}

// A bundle from the network: each member is checked on its own; the good
// ones are kept in order, on disk too, and the bad ones are counted under
// their reason without costing the others.
func TestBundleMembersStandAlone(t *testing.T) {
	c, d := testChat(t, "")
	now := time.Now()
	sign := signer(t, now)
	first, second := sign(1, "first"), sign(2, "second")
	forged := bytes.Replace(sign(3, "third"), []byte("third"), []byte("THIRD"), 1)
	r := c.roomLocked("lobby")
	// The good members are kept, but a bundle carrying a forgery is not
	// passed on, and its sender is blamed.
	if v := receiveNow(c, r, wire.Bundle([][]byte{first, forged, second, first}), now); v != sdk.Reject {
		t.Errorf("a bundle with a forged member: verdict %v, want Reject", v)
	}
	if v := receiveNow(c, r, []byte(`[{"body": 1}`), now); v != sdk.Reject {
		t.Errorf("a bundle that is not JSON: verdict %v, want Reject", v)
	}
	if v := receiveNow(c, r, second, now); v != sdk.Ignore {
		t.Errorf("a replay: verdict %v, want Ignore", v)
	}
	if v := receiveNow(c, r, sign(3, "third"), now); v != sdk.Accept {
		t.Errorf("a new good message: verdict %v, want Accept", v)
	}
	var texts []string
	for _, e := range r.entries {
		var doc entryDoc
		if err := json.Unmarshal(e.doc, &doc); err != nil {
			t.Fatal(err)
		}
		texts = append(texts, doc.Text)
	}
	if fmt.Sprint(texts) != "[first second third]" {
		t.Errorf("kept %q, want first, second and third", texts)
	}
	if c.dropped["bad_signature"] != 1 || c.dropped["replayed"] != 2 || c.dropped["malformed"] != 1 {
		t.Errorf("dropped %v, want one bad_signature, one malformed and two replayed", c.dropped)
	}
	d = reopen(t, d)
	defer d.close()
	var stored []string
	if _, err := d.loadRooms(func(_ string, _ uint64, _ time.Time, m *wire.RoomMessage) { stored = append(stored, m.Text) }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(stored) != "[first second third]" {
		t.Errorf("on disk %q, want first, second and third", stored)
	}
}

// A client's bundle: each message is taken or refused on its own, in
// order, and once an author is over the rate the rest of that author's
// messages are refused with it, while another author's go on.
func TestPostAllJudgesEachMessage(t *testing.T) {
	c, d := testChat(t, "rate = 0.001\nburst = 2")
	defer d.close()
	now := time.Now()
	alice, bob := signer(t, now), signer(t, now)
	r := c.roomLocked("lobby")
	first := alice(1, "one")
	forged := bytes.Replace(alice(2, "two"), []byte("two"), []byte("TWO"), 1)
	got := c.postAll(r, [][]byte{first, forged, alice(3, "three"), first, alice(4, "four"), bob(1, "bob's"), alice(5, "five")})
	var reasons []string
	for _, p := range got {
		switch {
		case p.Error == "" && p.ID != "" && p.Cursor > 0:
			reasons = append(reasons, "taken")
		case p.Error != "" && p.ID == "":
			reasons = append(reasons, p.Reason)
		default:
			t.Fatalf("result %+v: neither taken nor refused", p)
		}
	}
	// alice's burst of 2: one and three. The forgery and the replay of one
	// are refused before the limit is asked; four is over it, and five
	// waits with four.
	want := "[taken bad_signature taken replayed rate taken rate]"
	if fmt.Sprint(reasons) != want {
		t.Errorf("got %v, want %s", reasons, want)
	}
	if got[0].Cursor != 1 || got[2].Cursor != 2 || got[5].Cursor != 3 {
		t.Errorf("cursors %d, %d, %d: want 1, 2, 3 in the order sent", got[0].Cursor, got[2].Cursor, got[5].Cursor)
	}
	if n := len(r.out.take()); n != 3 {
		t.Errorf("%d messages queued to publish, want the 3 taken", n)
	}
}

// An author whose messages have all aged out of a room no longer counts
// as speaking in it, and a node that has run for long keeps nothing of
// authors long silent.
func TestSilentAuthorsAreForgotten(t *testing.T) {
	c, r, sign := joinedRoom(t, `history_age = "1h"`)
	now := time.Now()
	if v := receiveNow(c, r, sign(1, "hello"), now); v != sdk.Accept {
		t.Fatalf("message: %v", v)
	}
	if len(c.authorRooms) != 1 {
		t.Fatalf("authors speaking: %d, want 1", len(c.authorRooms))
	}
	c.expire(now.Add(30 * time.Minute))
	if len(c.authorRooms) != 1 {
		t.Errorf("an author forgotten within the history's age")
	}
	c.expire(now.Add(61 * time.Minute))
	if len(c.authorRooms) != 0 || len(r.lastSeq) != 0 {
		t.Errorf("after the history's age: %d authors speaking, %d last messages kept, want none", len(c.authorRooms), len(r.lastSeq))
	}
}

// joinedRoom is a chat with the room lobby joined, as if subscribed (there
// is no router here), and an author to sign messages in it, written now.
func joinedRoom(tb testing.TB, table string) (*chat, *room, func(seq uint64, text string) []byte) {
	c, d := testChat(tb, table)
	tb.Cleanup(func() { d.close() })
	r := c.roomLocked("lobby")
	r.joined = true
	return c, r, signer(tb, time.Now())
}

// BenchmarkReadPage: what a client's read of a page of 200 1 KiB messages
// costs the node. A room's readers each read every message, so this is the
// cost that grows with the clients of a busy room.
func BenchmarkReadPage(b *testing.B) {
	c, r, sign := joinedRoom(b, "history = 1000\nrate = 1000.0\nburst = 1000")
	now := time.Now()
	for i := range 200 {
		if v := receiveNow(c, r, sign(uint64(i+1), strings.Repeat("x", 1000)), now); v != sdk.Accept {
			b.Fatalf("message %d: %v", i, v)
		}
	}
	h := c.HTTPHandler()
	req := httptest.NewRequest("GET", "/rooms/lobby/messages?limit=200", nil)
	sink := &discard{buf: make([]byte, 32<<10)}
	for b.Loop() {
		h.ServeHTTP(sink, req)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	var page struct{ Messages []struct{ Text string } }
	if err := json.Unmarshal(w.Body.Bytes(), &page); w.Code != 200 || err != nil || len(page.Messages) != 200 || page.Messages[199].Text != strings.Repeat("x", 1000) {
		b.Fatalf("read %d, %v: %.200s", w.Code, err, w.Body)
	}
}

// discard is a ResponseWriter that copies what it is given into a 32 KiB
// buffer and keeps nothing, as the plugin's writer copies a response into
// its frames.
type discard struct{ buf []byte }

func (d *discard) Header() http.Header { return http.Header{} }
func (d *discard) WriteHeader(int)     {}
func (d *discard) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		b = b[copy(d.buf, b):]
	}
	return n, nil
}

// BenchmarkReceiveBundle: what a node that carries a room does with a
// bundle of 16 1 KiB messages from the network before it gives its
// verdict (split, check each signature on every core, keep each in the
// history and queue it for the disk), and then commits it, as the commit
// loop does. Reported per message.
func BenchmarkReceiveBundle(b *testing.B) {
	const perBundle = 16
	c, r, sign := joinedRoom(b, "history = 1000\nrate = 1000000.0\nburst = 1000000")
	d := c.db
	text := strings.Repeat("x", 1000)
	bundles := make([][]byte, 256)
	seq := uint64(0)
	signAll := func() { // signed ahead, outside the timing
		for i := range bundles {
			envs := make([][]byte, perBundle)
			for j := range envs {
				seq++
				envs[j] = sign(seq, text)
			}
			bundles[i] = wire.Bundle(envs)
		}
	}
	signAll()
	writes := d.b.Stats().TxStats.Write
	n := 0
	for b.Loop() {
		if n == len(bundles) {
			b.StopTimer()
			signAll()
			n = 0
			b.StartTimer()
		}
		if v := receiveNow(c, r, bundles[n], time.Now()); v != sdk.Accept {
			b.Fatalf("bundle %d: %v %v", n, v, c.dropped)
		}
		d.commit()
		n++
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*perBundle), "us/msg")
	b.ReportMetric(float64(d.b.Stats().TxStats.Write-writes)/float64(b.N), "writes/commit")
}

// receiveNow checks data and takes it into r, as consume does with a
// message from the network.
func receiveNow(c *chat, r *room, data []byte, now time.Time) sdk.Verdict {
	return c.receive(r)(c.check(data, now), data, now)
}

// Gossipsub does not keep an author's order: a message can come after a
// later one. It is taken once, if it is newer than the oldest of the
// author's last seenKept messages; a second copy, or anything older, is a
// replay, also after a restart (what is kept is on disk). Seqs come from
// clients' clocks, so they lie far apart.
func TestLateMessagesTakenOnce(t *testing.T) {
	const table = "burst = 1000\nrate = 1000.0"
	c, d := testChat(t, table)
	now := time.Now()
	sign := signer(t, now)
	r := c.roomLocked("lobby")
	type step struct {
		seq  uint64
		want sdk.Verdict
	}
	run := func(c *chat, when string, steps []step) {
		t.Helper()
		for _, s := range steps {
			if v := receiveNow(c, r, sign(s.seq, fmt.Sprint(s.seq)), now); v != s.want {
				t.Errorf("%s, seq %d: verdict %v, want %v", when, s.seq, v, s.want)
			}
		}
	}
	run(c, "first", []step{
		{5000, sdk.Accept}, {3000, sdk.Accept}, {3000, sdk.Ignore}, {5000, sdk.Ignore}, {4000, sdk.Accept},
		{1000, sdk.Accept}, {6000, sdk.Accept}, {10_000_000, sdk.Accept},
		{2000, sdk.Accept}, {7000, sdk.Accept},
		{8000, sdk.Accept}, // the ninth: 1000 is no longer kept, and the floor
		{1000, sdk.Ignore}, {500, sdk.Ignore}, {1500, sdk.Accept}, {1500, sdk.Ignore}, {2000, sdk.Ignore},
	})
	d = reopen(t, d)
	defer d.close()
	again := newChat()
	if err := again.Configure(context.Background(), []byte(table), sdk.Env{DataDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if err := d.loadSeen(func(room, author string, last seen) { again.roomLocked(room).saw(author, last) }); err != nil {
		t.Fatal(err)
	}
	again.db = d
	r = again.roomLocked("lobby")
	run(again, "after a restart", []step{
		{10_000_000, sdk.Ignore}, {8000, sdk.Ignore}, {1500, sdk.Ignore}, {2000, sdk.Ignore},
		{9000, sdk.Accept}, {10_000_001, sdk.Accept},
	})
}

// A seen record reads back as written; one from before late messages were
// taken (16 bytes) reads with its floor at its seq.
func TestSeenRecordsRead(t *testing.T) {
	s := seen{Seq: 9000, TS: 1234}.with(7000, 1).with(8000, 1)
	if got, ok := parseSeen(s.record()); !ok || got != s {
		t.Errorf("round trip: %+v %v, want %+v", got, ok, s)
	}
	if got, ok := parseSeen(s.record()[:16]); !ok || got != (seen{Seq: 9000, TS: 1234, Floor: 9000}) {
		t.Errorf("16 bytes: %+v %v", got, ok)
	}
	for _, n := range []int{20, 28, 24 + 8*seenKept} {
		if _, ok := parseSeen(make([]byte, n)); ok {
			t.Errorf("a %d-byte record read", n)
		}
	}
}

// TestDeletedMailIsNotTakenAgain: once its recipient deleted a mail, a copy
// of it (from a node that was away, catching up) is not held again, even
// after a restart, for as long as the copy could be taken; a deletion a
// neighbour passes on must be signed by the recipient.
func TestDeletedMailIsNotTakenAgain(t *testing.T) {
	c, d := testChat(t, "")
	now := time.Now()
	alice, dave, eve := identity(t), identity(t), identity(t)
	sealed, err := alice.Seal(dave.Address(), now, "read once")
	if err != nil {
		t.Fatal(err)
	}
	m, saved, err := c.deposit(sealed, now)
	if err != nil || saved.wait() != nil {
		t.Fatalf("deposit: %v", err)
	}
	del := &wire.MailDelete{To: dave.Address().String(), Auth: dave.AuthorizeMailbox("delete", now, []string{m.ID})}
	if err := c.forgetMail(del).wait(); err != nil {
		t.Fatal(err)
	}
	if _, saved, err := c.deposit(sealed, now); err != nil || saved != nil || c.boxes[del.To] != nil {
		t.Fatalf("a copy of the deleted mail was held again (err %v, box %v)", err, c.boxes[del.To])
	}

	d = reopen(t, d)
	var kept []int64
	if _, err := d.loadGone(func(expiry int64, got *wire.MailDelete) {
		if got.To != del.To || !slices.Equal(got.Auth.IDs, del.Auth.IDs) {
			t.Errorf("kept %+v, want %+v", got, del)
		}
		kept = append(kept, expiry)
	}); err != nil {
		t.Fatal(err)
	}
	if want := now.Add(keepDeletion(c.cfg.MailboxTTL)).UnixMilli(); len(kept) != 1 || kept[0] != want {
		t.Fatalf("after a restart the deletions kept expire at %v, want [%d]", kept, want)
	}

	// Passed on by a neighbour: eve cannot delete dave's mail.
	forged := &wire.MailDelete{To: del.To, Auth: eve.AuthorizeMailbox("delete", now, []string{"x"})}
	if err := c.caughtUpDeletion(forged, now); err == nil || c.blameless(err) {
		t.Errorf("a deletion eve signed for dave's mail: %v", err)
	}
	// Once a copy could no longer be taken, the deletion is forgotten.
	c.db = d
	c.expire(now.Add(keepDeletion(c.cfg.MailboxTTL) + time.Minute))
	if len(c.gone) != 0 || len(c.kept) != 0 {
		t.Errorf("expired deletions still kept: %v %v", c.gone, c.kept)
	}
	c.db.write(func(*bolt.Tx) error { return nil }).wait()
	if n, _ := d.loadGone(func(int64, *wire.MailDelete) { t.Error("an expired deletion is still on disk") }); n != 0 {
		t.Errorf("%d damaged deletions", n)
	}
}

func identity(tb testing.TB) *wire.Identity {
	id, err := wire.NewIdentity()
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

// An author the operator blocks: what the node held of theirs leaves the
// history, memory and disk; their new messages are refused, from the
// network without blame; others' go on; the block outlives a restart; an
// author the TOML file blocks is dropped as the history loads, and is
// unblocked only there.
func TestBlockedAuthorIsDroppedAndRefused(t *testing.T) {
	c, r, spam := joinedRoom(t, "")
	ham := signer(t, time.Now())
	now := time.Now()
	for i, raw := range [][]byte{spam(1, "buy now"), ham(1, "hello"), spam(2, "buy more"), ham(2, "anyone?")} {
		if v := receiveNow(c, r, raw, now); v != sdk.Accept {
			t.Fatalf("message %d: %v", i, v)
		}
	}
	author := func(raw []byte) string {
		m, err := wire.ParseRoom(raw, now, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return m.From
	}
	spammer := author(spam(3, "x"))
	n, err := c.block(spammer, "sells things", now)
	if err != nil || n != 2 {
		t.Fatalf("block: %d removed, %v; want 2", n, err)
	}
	texts := func() []string {
		var out []string
		for _, e := range r.entries {
			var doc entryDoc
			json.Unmarshal(e.doc, &doc)
			out = append(out, doc.Text)
		}
		return out
	}
	if got := texts(); !slices.Equal(got, []string{"hello", "anyone?"}) {
		t.Errorf("history after the block: %q", got)
	}
	if v := receiveNow(c, r, spam(4, "still selling"), now); v != sdk.Ignore {
		t.Errorf("a blocked author's message from the network: %v, want Ignore (no blame on the neighbour that passed it)", v)
	}
	if v := receiveNow(c, r, ham(3, "quiet now"), now); v != sdk.Accept {
		t.Errorf("another author's message after the block: %v", v)
	}
	if c.dropped["blocked"] != 1 {
		t.Errorf("dropped %v, want one counted as blocked", c.dropped)
	}
	if _, err := c.block("vc1nonsense", "", now); err == nil || !strings.Contains(err.Error(), "author") {
		t.Errorf("blocking a malformed address: %v", err)
	}

	// On disk: after a restart the spam is not back, and the block holds.
	var kept int
	if err := c.db.write(func(*bolt.Tx) error { return nil }).wait(); err != nil { // what was accepted is committed
		t.Fatal(err)
	}
	c.db.b.View(func(tx *bolt.Tx) error {
		return tx.Bucket(roomsBucket).Bucket([]byte("lobby")).ForEach(func(k, v []byte) error { kept++; return nil })
	})
	if kept != 3 {
		t.Errorf("chat.db holds %d lobby messages, want 3", kept)
	}
	again := newChat()
	blocks := 0
	if _, err := c.db.loadBlocked(func(b Block) {
		blocks++
		again.blocked[b.Author] = b
	}); err != nil || blocks != 1 || again.blocked[spammer].Note != "sells things" {
		t.Errorf("blocks read back: %d %v %+v", blocks, err, again.blocked)
	}

	// Unblocked: taken again.
	if err := c.unblock(spammer); err != nil {
		t.Fatal(err)
	}
	if v := receiveNow(c, r, spam(5, "sorry"), now); v != sdk.Accept {
		t.Errorf("after unblocking: %v", v)
	}
	if err := c.unblock(spammer); err == nil {
		t.Error("unblocking twice was taken")
	}
}

func TestAuthorsBlockedInTheConfigStayBlocked(t *testing.T) {
	id := identity(t)
	c := newChat()
	if err := c.Configure(context.Background(), []byte(fmt.Sprintf("blocked = [%q]", id.Address().String())), sdk.Env{DataDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	c.blocked[id.Address().String()] = Block{Author: id.Address().String(), Config: true}
	if err := c.unblock(id.Address().String()); !errors.Is(err, errBlockedInConfig) {
		t.Errorf("unblocking an author the TOML file blocks: %v", err)
	}
	err := newChat().Configure(context.Background(), []byte(`blocked = ["vc1abc"]`), sdk.Env{DataDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "blocked") {
		t.Errorf("a malformed address in blocked: %v", err)
	}
}
