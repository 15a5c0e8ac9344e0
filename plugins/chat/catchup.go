package chat

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vecino/vecino/plugins/chat/wire"
	"github.com/vecino/vecino/sdk"
)

// Gossipsub delivers what is said while a node listens; it does not replay
// what was said while the node was away (rebooted, unplugged, cut off), or
// before it carried the room. So a node that starts, or starts carrying a
// room, asks a neighbour for the room's messages it missed, and takes them
// as it would from the network: every signature checked, replays refused.
//
// The protocol: the asking node writes one line of JSON, a catchUpRequest,
// and half-closes; the neighbour answers with the room's messages newer
// than After, oldest first, as bundles (wire.Bundle), each after its length
// (uvarint), and closes. A neighbour that does not carry the room answers
// nothing. Asked for mail, it answers with the deposits it holds, one a
// frame. docs/chat-wire.md says the same for other clients.
const catchUpProtocol = "/vecino/chat/catchup/1.0.0"

type catchUpRequest struct {
	// Mail asks for the sealed direct messages the neighbour holds, for
	// every recipient, instead of a room's messages.
	Mail bool `json:"mail,omitempty"`
	// Deletes, with Mail, asks first for the deletions the neighbour
	// keeps (forgetMail), so that mail its recipient had is not taken
	// again, and is dropped here.
	Deletes bool   `json:"deletes,omitempty"`
	Room    string `json:"room,omitempty"`
	// After is a time (Unix ms, the authors' clocks): messages written
	// after it are wanted. 0 asks for all the neighbour keeps.
	After int64 `json:"after"`
	// Limit is the most messages wanted: the newest that many.
	Limit int `json:"limit"`
}

const (
	// catchUpMargin is how far before its newest message a node asks
	// from: authors' clocks differ, and messages take slow paths.
	catchUpMargin = 10 * time.Minute
	// catchUpAsk is how many neighbours are asked until one has messages.
	catchUpAsk = 3
	// catchUpTries and catchUpEvery: a node that starts has no peers yet,
	// so it looks for some every 2 s for a minute; and it looks as often
	// for neighbours that come back (watchNeighbours).
	catchUpTries = 30
	catchUpEvery = 2 * time.Second
	// catchUpAgain is the least time between two catch-ups from one
	// neighbour whose connection comes and goes.
	catchUpAgain = time.Minute
	// catchUpTimeout bounds one neighbour's answer.
	catchUpTimeout    = 30 * time.Second
	maxCatchUpRequest = 1 << 10
	// maxCatchUpMail bounds the deposits of one answer.
	maxCatchUpMail = 10_000
)

// serveCatchUp answers a neighbour's catchUpRequest.
func (c *chat) serveCatchUp(st *sdk.Stream) {
	defer st.Close()
	line, err := bufio.NewReader(io.LimitReader(st, maxCatchUpRequest)).ReadBytes('\n')
	var req catchUpRequest
	if err == nil {
		err = json.Unmarshal(line, &req)
	}
	if err == nil && (!req.Mail && !wire.RoomName.MatchString(req.Room) || req.Limit < 1) {
		err = fmt.Errorf("room %.70q or limit %d out of range", req.Room, req.Limit)
	}
	if err != nil {
		c.count(&refusal{reason: "bad_catch_up", err: err})
		slog.Debug("bad catch-up request", "peer", st.Peer(), "err", err)
		return
	}
	now := time.Now()
	if req.Mail {
		c.mu.Lock()
		allowed := c.catchUps.allow(st.Peer(), now, 1)
		c.mu.Unlock()
		if allowed {
			err = c.sendMail(st, min(req.Limit, maxCatchUpMail), req.Deletes)
		}
		if err != nil {
			slog.Debug("catch-up answer cut short", "peer", st.Peer(), "mail", true, "err", err)
		}
		return
	}
	c.mu.Lock()
	r, carried := c.rooms[req.Room]
	var cursors []uint64
	if carried && c.catchUps.allow(st.Peer(), now, 1) {
		for _, e := range r.entries {
			if e.TS > req.After {
				cursors = append(cursors, e.Cursor)
			}
		}
	}
	c.mu.Unlock()
	if len(cursors) > req.Limit {
		cursors = cursors[len(cursors)-req.Limit:]
	}
	out := bufio.NewWriterSize(st, 64<<10)
	var envs [][]byte
	size := 2
	send := func() error {
		if len(envs) == 0 {
			return nil
		}
		err := writeFrame(out, wire.Bundle(envs))
		envs, size = envs[:0], 2
		return err
	}
	err = c.db.b.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(roomsBucket).Bucket([]byte(req.Room))
		if b == nil {
			return nil
		}
		for _, cur := range cursors {
			_, raw, ok := splitRecord(b.Get(cursorKey(cur)))
			if !ok { // trimmed since, or not yet committed
				continue
			}
			if len(envs) == wire.MaxBundleMessages || size+len(raw)+1 > wire.MaxBundle {
				if err := send(); err != nil {
					return err
				}
			}
			envs = append(envs, raw)
			size += len(raw) + 1
		}
		return send()
	})
	if err == nil {
		err = out.Flush()
	}
	if err != nil {
		slog.Debug("catch-up answer cut short", "peer", st.Peer(), "room", req.Room, "err", err)
	}
}

// writeFrame writes b after its length.
func writeFrame(w *bufio.Writer, b []byte) error {
	if _, err := w.Write(binary.AppendUvarint(nil, uint64(len(b)))); err != nil {
		return err
	}
	_, err := w.Write(b)
	return err
}

// sendMail writes up to limit of the deposits this node holds, each as it
// travelled, in a frame of its own; with deletes, after the deletions it
// keeps, each a wire.MailOp in a frame of its own.
func (c *chat) sendMail(st *sdk.Stream, limit int, deletes bool) error {
	out := bufio.NewWriterSize(st, 64<<10)
	if deletes {
		if err := c.db.eachGone(func(op []byte) error { return writeFrame(out, op) }); err != nil {
			return err
		}
	}
	err := c.db.b.View(func(tx *bolt.Tx) error {
		cur := tx.Bucket(mailBucket).Cursor()
		for k, v := cur.First(); k != nil && limit > 0; k, v = cur.Next() {
			_, raw, ok := splitRecord(v)
			if !ok || len(raw) == 0 {
				continue
			}
			if err := writeFrame(out, raw); err != nil {
				return err
			}
			limit--
		}
		return nil
	})
	if err != nil {
		return err
	}
	return out.Flush()
}

// catchUp asks neighbours, once some are connected, for the messages of
// each of rooms that this node missed and, with mail, for the deposits. It
// is for a room a client opened; watchNeighbours covers the rest.
func (c *chat) catchUp(rooms []*room, mail bool) {
	defer c.wg.Done()
	for try := 0; try < catchUpTries; try++ {
		if try > 0 {
			select {
			case <-c.ctx.Done():
				return
			case <-time.After(catchUpEvery):
			}
		}
		peers, err := c.env.Host.Peers(c.ctx, catchUpProtocol)
		if err != nil || len(peers) == 0 {
			continue
		}
		ids := make([]string, 0, catchUpAsk)
		for _, p := range peers[:min(len(peers), catchUpAsk)] {
			ids = append(ids, p.ID)
		}
		// A neighbour's router may know the protocol while its chat is
		// restarting: until one answers, look again at the next try.
		if len(c.catchUpFrom(ids, rooms, mail)) > 0 {
			return
		}
	}
}

// watchNeighbours asks each neighbour that connects for what this node
// missed while they were apart: at start, every neighbour is one; later,
// one that comes back after the node was cut off for longer than a
// connection outlives (a Wi-Fi outage, a cable pulled: gossipsub does not
// replay what was said meanwhile), and a new one. Of those that come at
// once, catchUpAsk are asked, for every room the node carries and for
// mail; one that answers covers the others. A neighbour that does not
// answer (its chat restarting) is asked again at the next look, catchUpTries
// times at most, and none is asked more than once in catchUpAgain, however
// often its connection drops.
func (c *chat) watchNeighbours() {
	defer c.wg.Done()
	known := map[string]bool{}      // connected at the last look, and asked or covered
	asked := map[string]time.Time{} // when each was last asked
	failed := map[string]int{}      // tries that had no answer, of those connected
	for first := true; ; first = false {
		if !first {
			select {
			case <-c.ctx.Done():
				return
			case <-time.After(catchUpEvery):
			}
		}
		peers, err := c.env.Host.Peers(c.ctx, catchUpProtocol)
		if err != nil {
			continue
		}
		now := time.Now()
		here := map[string]bool{}
		var fresh, ask []string
		for _, p := range peers {
			here[p.ID] = true
			if known[p.ID] {
				continue
			}
			fresh = append(fresh, p.ID)
			if len(ask) < catchUpAsk && now.Sub(asked[p.ID]) >= catchUpAgain {
				ask = append(ask, p.ID)
			}
		}
		for id := range known {
			if !here[id] {
				delete(known, id)
			}
		}
		for id := range failed {
			if !here[id] {
				delete(failed, id)
			}
		}
		for id, at := range asked {
			if now.Sub(at) >= catchUpAgain {
				delete(asked, id)
			}
		}
		if len(ask) == 0 {
			continue
		}
		answered := c.catchUpFrom(ask, c.joinedRooms(), true)
		for _, id := range fresh {
			switch {
			case answered[id]:
				known[id], asked[id] = true, now
				delete(failed, id)
			case slices.Contains(ask, id):
				if failed[id]++; failed[id] >= catchUpTries {
					known[id], asked[id] = true, now
					delete(failed, id)
				}
			case len(answered) > 0:
				known[id] = true // covered by one that answered
			}
		}
	}
}

// joinedRooms lists the rooms this node carries.
func (c *chat) joinedRooms() []*room {
	c.mu.Lock()
	defer c.mu.Unlock()
	var rooms []*room
	for _, r := range c.rooms {
		if r.joined {
			rooms = append(rooms, r)
		}
	}
	return rooms
}

// catchUpFrom asks peers for the messages of rooms that this node missed,
// each room from one peer after another until one has some, and, with
// mail, each of them for the deposits it holds. It returns those that
// answered.
func (c *chat) catchUpFrom(peers []string, rooms []*room, mail bool) map[string]bool {
	answered := map[string]bool{}
	for _, r := range rooms {
		for _, p := range peers {
			took, got, err := c.askRoom(p, r)
			if err != nil {
				slog.Info("catch-up not had", "room", r.name, "peer", p, "err", err)
				continue
			}
			answered[p] = true
			if got > 0 {
				slog.Info("caught up", "room", r.name, "peer", p, "messages", got, "taken", took)
				break
			}
		}
	}
	if !mail {
		return answered
	}
	// A deposit is held by the nodes that were up when it was made: each
	// neighbour may hold some that the others do not.
	for _, p := range peers {
		took, got, err := c.askMail(p)
		if err != nil {
			slog.Info("catch-up not had", "mail", true, "peer", p, "err", err)
			continue
		}
		answered[p] = true
		if got > 0 {
			slog.Info("caught up", "mail", true, "peer", p, "deposits", got, "taken", took)
		}
	}
	return answered
}

// ask sends req to peer and returns the answer to read, and a function to
// call once it is read.
func (c *chat) ask(peer string, req catchUpRequest) (*bufio.Reader, func(), error) {
	ctx, cancel := context.WithTimeout(c.ctx, catchUpTimeout)
	s, err := c.env.Host.OpenStream(ctx, peer, catchUpProtocol)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	done := func() {
		stop()
		s.Close()
		cancel()
	}
	line, _ := json.Marshal(req)
	if _, err := s.Write(append(line, '\n')); err != nil {
		done()
		return nil, nil, err
	}
	s.CloseWrite()
	return bufio.NewReader(s), done, nil
}

// askRoom asks peer for r's messages that this node missed and takes
// them: it returns how many it took, of how many it got.
func (c *chat) askRoom(peer string, r *room) (took, got int, err error) {
	req := catchUpRequest{Room: r.name, Limit: c.cfg.History}
	c.mu.Lock()
	for _, e := range r.entries {
		req.After = max(req.After, e.TS-catchUpMargin.Milliseconds())
	}
	c.mu.Unlock()
	in, done, err := c.ask(peer, req)
	if err != nil {
		return 0, 0, err
	}
	defer done()
	defer c.countCaughtUp(&took)
	for got < req.Limit {
		bundle, err := readFrame(in, wire.MaxBundle)
		if errors.Is(err, io.EOF) {
			return took, got, nil
		}
		if err != nil {
			return took, got, err
		}
		ch := c.check(bundle, time.Now())
		if ch.err != nil {
			return took, got, c.countedCatchUp(ch.err)
		}
		for i, m := range ch.msgs {
			got++
			err := ch.errs[i]
			if err == nil {
				_, _, err = c.acceptOld(r, m, time.Now())
			}
			switch {
			case err == nil:
				took++
			case !c.blameless(err): // malformed or forged: no honest node sends it
				return took, got, c.countedCatchUp(err)
			}
		}
	}
	return took, got, nil
}

// askMail asks peer for the deposits it holds and takes those this node
// lacks: it returns how many it took, of how many it got.
func (c *chat) askMail(peer string) (took, got int, err error) {
	in, done, err := c.ask(peer, catchUpRequest{Mail: true, Deletes: true, Limit: maxCatchUpMail})
	if err != nil {
		return 0, 0, err
	}
	defer done()
	defer c.countCaughtUp(&took)
	deletions := true // they come first
	for n := 0; got < maxCatchUpMail && n < maxCatchUpMail+maxDeletionsKept; n++ {
		raw, err := readFrame(in, wire.MaxMail)
		if errors.Is(err, io.EOF) {
			return took, got, nil
		}
		if err != nil {
			return took, got, err
		}
		if deletions {
			var op wire.MailOp
			if json.Unmarshal(raw, &op) == nil && op.Delete != nil {
				if err := c.caughtUpDeletion(op.Delete, time.Now()); err != nil && !c.blameless(err) {
					return took, got, c.countedCatchUp(err)
				}
				continue
			}
			deletions = false
		}
		got++
		_, saved, err := c.deposit(raw, time.Now())
		switch {
		case err == nil && saved != nil: // nil: held already
			took++
		case err != nil && !c.blameless(err):
			return took, got, c.countedCatchUp(err)
		}
	}
	return took, got, nil
}

func (c *chat) countCaughtUp(took *int) {
	c.mu.Lock()
	c.caughtUp += int64(*took)
	c.mu.Unlock()
}

// countedCatchUp counts err, what a neighbour's catch-up answer held that
// no node would send, and says so.
func (c *chat) countedCatchUp(err error) error {
	c.count(err)
	return fmt.Errorf("answer refused: %w", err)
}

// readFrame reads one uvarint length, at most limit, and that many bytes.
func readFrame(in *bufio.Reader, limit int) ([]byte, error) {
	n, err := binary.ReadUvarint(in)
	if err != nil {
		return nil, err
	}
	if n == 0 || n > uint64(limit) {
		return nil, fmt.Errorf("frame of %d bytes; at most %d", n, limit)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(in, b); err != nil {
		return nil, fmt.Errorf("frame of %d bytes: %w", n, io.ErrUnexpectedEOF)
	}
	return b, nil
}
