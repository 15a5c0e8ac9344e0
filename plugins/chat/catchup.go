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
// nothing.
const catchUpProtocol = "/vecino/chat/catchup/1.0.0"

type catchUpRequest struct {
	Room string `json:"room"`
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
	// so it looks for some every 2 s for a minute.
	catchUpTries = 30
	catchUpEvery = 2 * time.Second
	// catchUpTimeout bounds one neighbour's answer.
	catchUpTimeout    = 30 * time.Second
	maxCatchUpRequest = 1 << 10
)

// serveCatchUp answers a neighbour's catchUpRequest.
func (c *chat) serveCatchUp(st *sdk.Stream) {
	defer st.Close()
	line, err := bufio.NewReader(io.LimitReader(st, maxCatchUpRequest)).ReadBytes('\n')
	var req catchUpRequest
	if err == nil {
		err = json.Unmarshal(line, &req)
	}
	if err == nil && (!wire.RoomName.MatchString(req.Room) || req.Limit < 1) {
		err = fmt.Errorf("room %.70q or limit %d out of range", req.Room, req.Limit)
	}
	if err != nil {
		c.count(&refusal{reason: "bad_catch_up", err: err})
		slog.Debug("bad catch-up request", "peer", st.Peer(), "err", err)
		return
	}
	now := time.Now()
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
	var envs [][]byte
	size := 2
	send := func() error {
		if len(envs) == 0 {
			return nil
		}
		b := wire.Bundle(envs)
		envs, size = envs[:0], 2
		if _, err := st.Write(binary.AppendUvarint(nil, uint64(len(b)))); err != nil {
			return err
		}
		_, err := st.Write(b)
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
	if err != nil {
		slog.Debug("catch-up answer cut short", "peer", st.Peer(), "room", req.Room, "err", err)
	}
}

// catchUp asks neighbours, once some are connected, for the messages of
// each of rooms that this node missed.
func (c *chat) catchUp(rooms []*room) {
	defer c.wg.Done()
	for try := 0; try < catchUpTries && len(rooms) > 0; try++ {
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
		for _, r := range rooms {
			for i, p := range peers {
				if i == catchUpAsk || c.ctx.Err() != nil {
					break
				}
				took, got, err := c.askCatchUp(p.ID, r)
				if err != nil {
					slog.Info("catch-up not had", "room", r.name, "peer", p.ID, "err", err)
					continue
				}
				if got > 0 {
					slog.Info("caught up", "room", r.name, "peer", p.ID, "messages", got, "taken", took)
					break
				}
			}
		}
		return
	}
}

// askCatchUp asks peer for r's messages that this node missed and takes
// them: it returns how many it took, of how many it got.
func (c *chat) askCatchUp(peer string, r *room) (took, got int, err error) {
	ctx, cancel := context.WithTimeout(c.ctx, catchUpTimeout)
	defer cancel()
	defer func() {
		c.mu.Lock()
		c.caughtUp += int64(took)
		c.mu.Unlock()
	}()
	req := catchUpRequest{Room: r.name, Limit: c.cfg.History}
	c.mu.Lock()
	for _, e := range r.entries {
		req.After = max(req.After, e.TS-catchUpMargin.Milliseconds())
	}
	c.mu.Unlock()
	s, err := c.env.Host.OpenStream(ctx, peer, catchUpProtocol)
	if err != nil {
		return 0, 0, err
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	line, _ := json.Marshal(req)
	if _, err := s.Write(append(line, '\n')); err != nil {
		return 0, 0, err
	}
	s.CloseWrite()
	in := bufio.NewReader(s)
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
			if err == nil {
				took++
				continue
			}
			if c.blameless(err) {
				continue // had already, too old, or over a limit of this node's
			}
			return took, got, c.countedCatchUp(err)
		}
	}
	return took, got, nil
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
