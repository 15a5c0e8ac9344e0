package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/vecino/vecino/internal/atomicfile"
	"github.com/vecino/vecino/plugins/chat/wire"
)

// roomKeys are the keys of the private rooms this user is in: a file
// beside the chat key, one "ROOM KEY" a line, readable by the user alone.
// A room may have several, oldest first: after a new key (rekey) the
// older ones still open what was sealed with them, and the newest seals.
type roomKeys struct {
	path string
	keys map[string][]wire.RoomKey
}

// roomKeysFile is where the keys of keyFile's user are kept.
func roomKeysFile(keyFile string) string {
	return strings.TrimSuffix(keyFile, ".key") + ".rooms"
}

func loadRoomKeys(path string) (*roomKeys, error) {
	r := &roomKeys{path: path, keys: map[string][]wire.RoomKey{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read room keys: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		room, key, ok := strings.Cut(text, " ")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want ROOM KEY", path, line)
		}
		_, k, err := wire.ParseInvite(room + "#" + strings.TrimSpace(key))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		if !slices.Contains(r.keys[room], k) {
			r.keys[room] = append(r.keys[room], k)
		}
	}
	return r, sc.Err()
}

// current is the key room's messages are sealed with now.
func (r *roomKeys) current(room string) (wire.RoomKey, bool) {
	ks := r.keys[room]
	if len(ks) == 0 {
		return wire.RoomKey{}, false
	}
	return ks[len(ks)-1], true
}

// add makes k room's current key, keeping the older ones to read with.
func (r *roomKeys) add(room string, k wire.RoomKey) error {
	r.keys[room] = append(slices.DeleteFunc(r.keys[room], func(o wire.RoomKey) bool { return o == k }), k)
	return r.save()
}

// forget drops room's keys.
func (r *roomKeys) forget(room string) error {
	if _, ok := r.keys[room]; !ok {
		return fmt.Errorf("%s: no key for a private room %q here", r.path, room)
	}
	delete(r.keys, room)
	return r.save()
}

func (r *roomKeys) save() error {
	names := make([]string, 0, len(r.keys))
	for name := range r.keys {
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("# vecino chat: the keys of your private rooms, oldest first. Whoever has a room's key reads it.\n")
	for _, name := range names {
		for _, k := range r.keys[name] {
			fmt.Fprintf(&b, "%s %s\n", name, k)
		}
	}
	if err := os.MkdirAll(filepath.Dir(r.path), 0o700); err != nil {
		return fmt.Errorf("room keys: %w", err)
	}
	if err := atomicfile.Write(r.path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("save room keys: %w", err)
	}
	return nil
}

// sign makes a message for room: sealed with its current key if it is
// private.
func (r *roomKeys) sign(id *wire.Identity, room string, seq uint64, text string) ([]byte, error) {
	if k, ok := r.current(room); ok {
		return id.SignSealedRoom(room, seq, time.Now(), text, k)
	}
	return id.SignRoom(room, seq, time.Now(), text)
}

// open gives what a member reads of m: its text, opened with one of the
// room's keys; private says the room is one of this user's private rooms,
// and unread why a text cannot be shown.
func (r *roomKeys) open(m *wire.RoomBody) (text string, private bool, unread string) {
	ks := r.keys[m.Room]
	private = len(ks) > 0
	switch {
	case m.Sealed == "":
		return m.Text, private, ""
	case !private:
		return "", false, "sealed: you have no key for this private room (vecino chat join INVITE)"
	}
	var err error
	for i := len(ks) - 1; i >= 0; i-- { // the newest is the likeliest
		if text, err = m.Open(ks[i]); err == nil {
			return text, true, ""
		}
	}
	return "", true, err.Error()
}

// chatPrivate makes room private for this user (a new key), or, if it is
// already, prints its invite again; with rekey, it gives the room a new
// key, for the members who should read on.
func (c *client) chatPrivate(keys *roomKeys, room string, rekey bool) error {
	if !wire.RoomName.MatchString(room) {
		return fmt.Errorf("room %q: use lower-case letters, digits, - and _ (at most 64)", room)
	}
	k, ok := keys.current(room)
	switch {
	case rekey && !ok:
		return fmt.Errorf("%s is not one of your private rooms: make it one with vecino chat private %s", room, room)
	case rekey || !ok:
		var err error
		if k, err = wire.NewRoomKey(); err != nil {
			return err
		}
		if err := keys.add(room, k); err != nil {
			return err
		}
		if rekey {
			fmt.Printf("%s has a new key: what you send there now opens only with it; the old ones still read what came before\n", room)
		} else {
			fmt.Printf("%s is private: what you send there is sealed with its key, kept in %s\n", room, keys.path)
		}
	}
	fmt.Printf("invite (give it to members only): %s\n", wire.Invite(room, k))
	fmt.Printf("chat page: %s%s/%s\n", c.base, chatAPI, wire.PageFragment(room, k))
	return nil
}

// chatJoin keeps an invite's key as the room's current one.
func (c *client) chatJoin(keys *roomKeys, invite string) error {
	room, k, err := wire.ParseInvite(invite)
	if err != nil {
		return err
	}
	if err := keys.add(room, k); err != nil {
		return err
	}
	fmt.Printf("joined the private room %s\n", room)
	return nil
}

// chatLeave forgets a private room's keys: its sealed messages no longer
// open here, and what is sent there goes plain.
func (c *client) chatLeave(keys *roomKeys, room string) error {
	if err := keys.forget(room); err != nil {
		return err
	}
	fmt.Printf("left the private room %s: its keys are no longer kept here\n", room)
	return nil
}
