package chat

// Blocking an author. Each node's operator decides what the node carries:
// an author blocked here (spam, abuse) has their room messages refused
// by this node, from clients and from neighbours alike; what it held of
// theirs leaves its history, on disk too, so it is served and sent to
// neighbours no more. Other nodes decide for themselves: a bundle another
// node made of this author's messages and others' is still passed on
// whole. Direct messages are sealed, their sender hidden from the
// node, so blocking is for rooms.

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vecino/vecino/plugins/chat/wire"
)

var blockedBucket = []byte("blocked")

// Block is one blocked author.
type Block struct {
	Author string `json:"author"`
	At     int64  `json:"at,omitempty"` // Unix ms, when blocked through the API
	Note   string `json:"note,omitempty"`
	// Config is set for the authors listed in [plugins.chat] blocked,
	// which only the TOML file unblocks.
	Config bool `json:"config,omitempty"`
}

// errBlockedInConfig refuses to unblock an author the TOML file blocks.
var errBlockedInConfig = errors.New("blocked in [plugins.chat] blocked of the TOML file: remove it there")

// blockedLocked refuses a message of an author blocked here.
func (c *chat) blockedLocked(author string) error {
	if _, ok := c.blocked[author]; !ok {
		return nil
	}
	return &refusal{http.StatusForbidden, "blocked", fmt.Errorf("this node does not carry messages of %s: its operator blocked that author", short(author))}
}

func short(author string) string {
	if len(author) > 16 {
		return author[:16] + "..."
	}
	return author
}

// block blocks author and drops what the history holds of theirs,
// returning how many messages went. Blocking twice only updates the note.
func (c *chat) block(author, note string, now time.Time) (int, error) {
	if _, err := wire.ParseAddress(author); err != nil {
		return 0, &refusal{http.StatusBadRequest, "malformed", fmt.Errorf("author: %w", err)}
	}
	if len(note) > 1000 {
		return 0, &refusal{http.StatusBadRequest, "malformed", errors.New("note: over 1000 bytes")}
	}
	c.mu.Lock()
	b, had := c.blocked[author]
	if !had || !b.Config {
		b = Block{Author: author, At: now.UnixMilli(), Note: note}
	}
	c.blocked[author] = b
	removed := c.dropAuthorLocked(author)
	c.mu.Unlock()
	rec, _ := json.Marshal(b)
	batch := c.db.write(func(tx *bolt.Tx) error {
		if err := tx.Bucket(blockedBucket).Put([]byte(author), rec); err != nil {
			return err
		}
		return deleteMessages(removed)(tx)
	})
	n := 0
	for _, cursors := range removed {
		n += len(cursors)
	}
	if err := batch.wait(); err != nil {
		return n, fmt.Errorf("blocked here, but not saved: %w", err)
	}
	slog.Info("author blocked", "author", author, "messages_removed", n)
	return n, nil
}

// dropAuthorLocked takes author's messages out of every room's history,
// returning their cursors by room.
func (c *chat) dropAuthorLocked(author string) map[string][]uint64 {
	removed := map[string][]uint64{}
	for name, r := range c.rooms {
		r.entries = slices.DeleteFunc(r.entries, func(e entry) bool {
			var d struct {
				From string `json:"from"`
			}
			if json.Unmarshal(e.doc, &d) == nil && d.From == author {
				removed[name] = append(removed[name], e.Cursor)
				return true
			}
			return false
		})
	}
	delete(c.authorRooms, author)
	return removed
}

// deleteMessages deletes the messages named, by room and cursor.
func deleteMessages(cursors map[string][]uint64) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		for room, cs := range cursors {
			b := tx.Bucket(roomsBucket).Bucket([]byte(room))
			if b == nil {
				continue
			}
			for _, cur := range cs {
				if err := b.Delete(cursorKey(cur)); err != nil {
					return err
				}
			}
		}
		return nil
	}
}

// unblock takes author off the list, unless the TOML file lists them.
func (c *chat) unblock(author string) error {
	c.mu.Lock()
	b, ok := c.blocked[author]
	switch {
	case !ok:
		c.mu.Unlock()
		return &refusal{http.StatusNotFound, "not_blocked", fmt.Errorf("%s is not blocked here", short(author))}
	case b.Config:
		c.mu.Unlock()
		return &refusal{http.StatusConflict, "blocked_in_config", errBlockedInConfig}
	}
	delete(c.blocked, author)
	c.mu.Unlock()
	if err := c.db.write(func(tx *bolt.Tx) error { return tx.Bucket(blockedBucket).Delete([]byte(author)) }).wait(); err != nil {
		return fmt.Errorf("unblocked here, but not saved: %w", err)
	}
	slog.Info("author unblocked", "author", author)
	return nil
}

// blocks lists the blocked authors, the TOML file's first.
func (c *chat) blocks() []Block {
	c.mu.Lock()
	out := make([]Block, 0, len(c.blocked))
	for _, b := range c.blocked {
		out = append(out, b)
	}
	c.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Config != out[j].Config {
			return out[i].Config
		}
		return out[i].At < out[j].At || out[i].At == out[j].At && out[i].Author < out[j].Author
	})
	return out
}

// loadBlocked reads the authors blocked through the API.
func (d *db) loadBlocked(fn func(Block)) (bad int, err error) {
	err = d.b.View(func(tx *bolt.Tx) error {
		return tx.Bucket(blockedBucket).ForEach(func(k, v []byte) error {
			var b Block
			if json.Unmarshal(v, &b) != nil || b.Author != string(k) {
				bad++
				return nil
			}
			if _, err := wire.ParseAddress(b.Author); err != nil {
				bad++
				return nil
			}
			b.Config = false
			fn(b)
			return nil
		})
	})
	return bad, err
}
