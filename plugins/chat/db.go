package chat

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vecino/vecino/internal/damaged"
	"github.com/vecino/vecino/plugins/chat/wire"
)

// db keeps history and mailboxes in one bbolt file. Writes are grouped: many
// messages share one commit (one fsync), and a caller that must know its
// write is on disk waits for the commit that carried it.
//
// Layout: bucket "rooms" holds a bucket per room, cursor (8 bytes, big
// endian) -> stored record; bucket "mail" holds recipient + "/" + id ->
// record; bucket "seen" holds room + "/" + author -> the seq and time (8
// bytes each) of the author's last message in that room and the seqs of the
// few before it (seen.record), which outlives the message in the history so
// that a replay is refused even after a restart.
// Bucket "blocked" holds author -> the Block, for authors blocked
// through the API.
// Bucket "deleted" holds the deletions recipients signed for mail this
// node held, expiry (8 bytes, Unix ms) + a hash of the deletion -> the
// deletion as it travels on vecino/chat/mail (a wire.MailOp), kept while a
// copy of that mail could still come back from a node that was away
// (keepDeletion).
// A record is the receive time (8 bytes, Unix ms) then the message exactly
// as it travelled.
type db struct {
	b *bolt.DB

	mu      sync.Mutex
	pending []func(*bolt.Tx) error
	next    *batch // the batch the pending writes go in
	kick    chan struct{}
	stop    chan struct{}
	// logged and loggedAt are the last commit error logged, and when
	// (commitLoop's alone).
	logged   string
	loggedAt time.Time
	wg       sync.WaitGroup
}

var (
	roomsBucket = []byte("rooms")
	mailBucket  = []byte("mail")
	seenBucket  = []byte("seen")
	goneBucket  = []byte("deleted")
)

func openDB(path string) (*db, error) {
	// The freelist is not written at each commit (it is rebuilt by a scan
	// when the file is opened after a crash): with a long history trimmed
	// as it grows, writing it was much of every commit's page writes.
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	err = b.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{roomsBucket, mailBucket, seenBucket, goneBucket, blockedBucket} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("prepare %s: %w", path, err)
	}
	d := &db{b: b, next: newBatch(), kick: make(chan struct{}, 1), stop: make(chan struct{})}
	d.wg.Add(1)
	go d.commitLoop()
	return d, nil
}

// batch is the writes that one commit carries.
type batch struct {
	done chan struct{} // closed when the commit is over
	err  error         // its error, set before done is closed
}

func newBatch() *batch { return &batch{done: make(chan struct{})} }

// doneBatch is the batch of no writes.
var doneBatch = func() *batch {
	b := newBatch()
	close(b.done)
	return b
}()

// wait returns once the batch's commit is over, with its error: each
// writer learns the fate of its own write, whatever commits came after.
func (b *batch) wait() error {
	<-b.done
	return b.err
}

// write queues op for the next commit and returns its batch.
func (d *db) write(op func(*bolt.Tx) error) *batch {
	d.mu.Lock()
	d.pending = append(d.pending, op)
	b := d.next
	d.mu.Unlock()
	select {
	case d.kick <- struct{}{}:
	default:
	}
	return b
}

func (d *db) commitLoop() {
	defer d.wg.Done()
	for {
		select {
		case <-d.kick:
		case <-d.stop:
			d.commit()
			return
		}
		d.commit()
	}
}

func (d *db) commit() {
	d.mu.Lock()
	ops, b := d.pending, d.next
	d.pending, d.next = nil, newBatch()
	d.mu.Unlock()
	defer close(b.done)
	if len(ops) == 0 {
		return
	}
	b.err = d.b.Update(func(tx *bolt.Tx) error {
		for _, op := range ops {
			if err := op(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if b.err != nil && (time.Since(d.loggedAt) > time.Minute || b.err.Error() != d.logged) {
		// Once a minute for the same error: a full disk fails every
		// commit until it has space again.
		slog.Error("history not saved", "messages", len(ops), "err", b.err)
		d.loggedAt, d.logged = time.Now(), b.err.Error()
	}
}

// salvage puts back into d what can still be read from the chat.db set
// aside at aside (damaged pages leave the others whole), each record as it
// was; loading then checks them as it does any. It returns how many.
func (d *db) salvage(aside string) int {
	n, err := damaged.SalvageInto(d.b, aside, string(roomsBucket), string(mailBucket), string(seenBucket), string(goneBucket), string(blockedBucket))
	if err != nil {
		slog.Warn("nothing read back from the chat.db set aside", "kept_as", aside, "err", err)
		return 0
	}
	slog.Warn("records read back from the chat.db set aside", "records", n, "kept_as", aside)
	return n
}

func (d *db) close() error {
	close(d.stop)
	d.wg.Wait()
	return damaged.Close(d.b)
}

func cursorKey(c uint64) []byte { return binary.BigEndian.AppendUint64(nil, c) }

func record(recv time.Time, raw []byte) []byte {
	return append(binary.BigEndian.AppendUint64(nil, uint64(recv.UnixMilli())), raw...)
}

func splitRecord(v []byte) (time.Time, []byte, bool) {
	if len(v) < 8 {
		return time.Time{}, nil, false
	}
	return time.UnixMilli(int64(binary.BigEndian.Uint64(v))), v[8:], true
}

// saveRoom stores m under cursor c, notes it as its author's last, and
// drops cursors below keepFrom.
func saveRoom(room string, c uint64, recv time.Time, m *wire.RoomMessage, last seen, keepFrom uint64) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		b, err := tx.Bucket(roomsBucket).CreateBucketIfNotExists([]byte(room))
		if err != nil {
			return err
		}
		// Cursors only grow, so a full page is never split again: fill
		// each (bbolt splits at half by default). With 1 KiB messages that
		// is three to a page instead of two, a third less disk and fewer
		// pages written at each commit.
		b.FillPercent = 1
		if err := b.Put(cursorKey(c), record(recv, m.Raw)); err != nil {
			return err
		}
		if err := tx.Bucket(seenBucket).Put(seenKey(room, m.From), last.record()); err != nil {
			return err
		}
		return deleteBelow(b, keepFrom)
	}
}

func seenKey(room, author string) []byte { return []byte(room + "/" + author) }

// record is s as the seen bucket keeps it, 8-byte big-endian numbers: seq,
// time, floor, then the older seqs kept. A record of 16 bytes (before late
// messages were taken) is seq and time, with the floor at seq.
func (s seen) record() []byte {
	b := binary.BigEndian.AppendUint64(nil, s.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(s.TS))
	b = binary.BigEndian.AppendUint64(b, s.Floor)
	for _, o := range s.older[:s.n] {
		b = binary.BigEndian.AppendUint64(b, o)
	}
	return b
}

func parseSeen(v []byte) (seen, bool) {
	n := (len(v) - 24) / 8
	if len(v) != 16 && (len(v) < 24 || len(v)%8 != 0 || n > seenKept-1) {
		return seen{}, false
	}
	s := seen{Seq: binary.BigEndian.Uint64(v), TS: int64(binary.BigEndian.Uint64(v[8:]))}
	if len(v) == 16 {
		s.Floor = s.Seq
		return s, true
	}
	s.Floor = binary.BigEndian.Uint64(v[16:])
	for i := range n {
		s.older[i] = binary.BigEndian.Uint64(v[24+8*i:])
	}
	s.n = n
	return s, true
}

func deleteSeen(room string, authors []string) func(*bolt.Tx) error {
	keys := make([][]byte, len(authors))
	for i, a := range authors {
		keys[i] = seenKey(room, a)
	}
	return deleteKeys(seenBucket, keys)
}

// deleteKeys removes keys from a top-level bucket.
func deleteKeys(bucket []byte, keys [][]byte) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	}
}

// loadSeen reads every author's last message in every room.
func (d *db) loadSeen(fn func(room, author string, last seen)) error {
	return d.b.View(func(tx *bolt.Tx) error {
		return tx.Bucket(seenBucket).ForEach(func(k, v []byte) error {
			room, author, ok := strings.Cut(string(k), "/")
			if s, valid := parseSeen(v); ok && valid {
				fn(room, author, s)
			}
			return nil
		})
	})
}

func pruneRoom(room string, keepFrom uint64) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		if b := tx.Bucket(roomsBucket).Bucket([]byte(room)); b != nil {
			return deleteBelow(b, keepFrom)
		}
		return nil
	}
}

func deleteBelow(b *bolt.Bucket, keepFrom uint64) error {
	cur := b.Cursor()
	for k, _ := cur.First(); k != nil && binary.BigEndian.Uint64(k) < keepFrom; k, _ = cur.Next() {
		if err := cur.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// loadRooms reads every room's history, oldest first. A record that does
// not parse (a torn or corrupted page) is skipped and counted.
func (d *db) loadRooms(fn func(room string, c uint64, recv time.Time, m *wire.RoomMessage)) (bad int, err error) {
	err = d.b.View(func(tx *bolt.Tx) error {
		rooms := tx.Bucket(roomsBucket)
		return rooms.ForEach(func(name, v []byte) error {
			if v != nil {
				return nil // not a room's bucket
			}
			return rooms.Bucket(name).ForEach(func(k, v []byte) error {
				recv, raw, ok := splitRecord(v)
				var m wire.RoomMessage
				var env wire.Envelope
				if !ok || len(k) != 8 || json.Unmarshal(raw, &env) != nil || json.Unmarshal([]byte(env.Body), &m.RoomBody) != nil {
					bad++
					return nil
				}
				m.ID = wire.BodyID(env.Body)
				fn(string(name), binary.BigEndian.Uint64(k), recv, &m)
				return nil
			})
		})
	})
	return bad, err
}

func mailKey(to, id string) []byte { return []byte(to + "/" + id) }

func saveMail(m *wire.Mail, recv time.Time, raw []byte) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		return tx.Bucket(mailBucket).Put(mailKey(m.To, m.ID), record(recv, raw))
	}
}

func deleteMail(to string, ids []string) func(*bolt.Tx) error {
	keys := make([][]byte, len(ids))
	for i, id := range ids {
		keys[i] = mailKey(to, id)
	}
	return deleteKeys(mailBucket, keys)
}

func (d *db) loadMail(fn func(m *wire.Mail, recv time.Time, size int)) (bad int, err error) {
	err = d.b.View(func(tx *bolt.Tx) error {
		return tx.Bucket(mailBucket).ForEach(func(k, v []byte) error {
			recv, raw, ok := splitRecord(v)
			var m wire.Mail
			to, id, cut := strings.Cut(string(k), "/")
			if !ok || !cut || json.Unmarshal(raw, &m) != nil || m.To != to {
				bad++
				return nil
			}
			m.ID = id
			fn(&m, recv, len(raw))
			return nil
		})
	})
	return bad, err
}

// goneKey is the key a deletion is kept under until expiry.
func goneKey(expiry int64, op []byte) []byte {
	h := sha256.Sum256(op)
	return append(binary.BigEndian.AppendUint64(nil, uint64(expiry)), h[:16]...)
}

func saveGone(key, op []byte) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error { return tx.Bucket(goneBucket).Put(key, op) }
}

// pruneGone drops the deletions kept until before now (Unix ms).
func pruneGone(now int64) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		cur := tx.Bucket(goneBucket).Cursor()
		for k, _ := cur.First(); k != nil && len(k) >= 8 && int64(binary.BigEndian.Uint64(k)) < now; k, _ = cur.First() {
			if err := cur.Delete(); err != nil {
				return err
			}
		}
		return nil
	}
}

// loadGone reads the deletions kept, with their expiries.
func (d *db) loadGone(fn func(expiry int64, del *wire.MailDelete)) (bad int, err error) {
	err = d.b.View(func(tx *bolt.Tx) error {
		return tx.Bucket(goneBucket).ForEach(func(k, v []byte) error {
			var op wire.MailOp
			if len(k) != 24 || json.Unmarshal(v, &op) != nil || op.Delete == nil {
				bad++
				return nil
			}
			fn(int64(binary.BigEndian.Uint64(k)), op.Delete)
			return nil
		})
	})
	return bad, err
}

// eachGone calls fn with each deletion kept, as it travels, until fn fails.
func (d *db) eachGone(fn func(op []byte) error) error {
	return d.b.View(func(tx *bolt.Tx) error {
		return tx.Bucket(goneBucket).ForEach(func(_, v []byte) error { return fn(v) })
	})
}
