package store

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/vecino/vecino/sdk"
)

const (
	// announceTopic carries each store node's holdings and free space.
	announceTopic = "vecino/store/v1/holders"
	// replicateProto asks a node to hold a copy of a DAG.
	replicateProto = "/vecino/store/replicate/1.0.0"
	// maxRequest bounds a replication request or answer.
	maxRequest = 4 << 10
	// askBackoff is how long a node that refused or failed is not asked
	// again for the same DAG.
	askBackoff = time.Minute
	// unpinnedFor is how long a node's announcements list what its user
	// unpinned.
	unpinnedFor = 7 * 24 * time.Hour
	// maxUnpinned bounds how many of those an announcement names, the
	// newest. Without it, a node that adds and unpins files all day named
	// every one of the past week in each announcement: the soak's grew by
	// 60 bytes a second, the routers kept the last few, and gossipsub
	// drops messages over 1 MiB.
	maxUnpinned = 1000
	// maxAnnouncedPins bounds the pins one announcement names; a node
	// that holds more announces them in parts. gossipsub drops a message
	// over 1 MiB without a word, and at about 100 bytes a pin, a node with
	// 10,000 replicated files went silent to its peers, who then took it
	// for gone and copied everything it held elsewhere.
	maxAnnouncedPins = 4000
	// replicateTimeout bounds how long a holder may take to copy a DAG.
	replicateTimeout = 30 * time.Minute
)

// announcement is what each store node publishes every announce_interval
// (signed by gossipsub with its peer key), or once when its user unpins a
// replicated DAG.
type announcement struct {
	Free  int64  `json:"free"`
	Pins  []held `json:"pins,omitempty"`
	Unpin string `json:"unpin,omitempty"`
	// Unpinned lists the roots this node's user unpinned in the last
	// unpinnedFor (the newest maxUnpinned), so that replicas which missed
	// the unpin (offline then, or made by a repair that had not heard)
	// drop theirs too.
	Unpinned []string `json:"unpinned,omitempty"`
	// A node with more than maxAnnouncedPins pins announces them in Parts
	// messages of one Round, Part 0 to Parts-1; a peer replaces what it
	// knows this node holds once it has every part of a round.
	Round int64 `json:"round,omitempty"`
	Part  int   `json:"part,omitempty"`
	Parts int   `json:"parts,omitempty"`
	// Added marks an announcement that lists only the pins this node
	// took since its last one (a pin kicked it): a peer adds them to what
	// it knows the node holds and forgets nothing. See delta.
	Added  bool   `json:"added,omitempty"`
	Origin string `json:"-"`
}

// split cuts a into parts of at most maxAnnouncedPins pins each; the
// first part carries the unpinned roots.
func (a announcement) split(round int64) []announcement {
	if len(a.Pins) <= maxAnnouncedPins {
		return []announcement{a}
	}
	chunks := slices.Collect(slices.Chunk(a.Pins, maxAnnouncedPins))
	out := make([]announcement, len(chunks))
	for i, pins := range chunks {
		out[i] = announcement{Free: a.Free, Round: round, Part: i, Parts: len(chunks), Pins: pins}
	}
	out[0].Unpinned = a.Unpinned
	return out
}

// delta is what a round a pin kicked announces when this node only took
// pins since it last announced (before): the new ones, marked Added, in
// parts of at most maxAnnouncedPins. Parts is one more than are sent, so
// that a peer that does not know Added (an older node) takes them for the
// parts of a round that never completes, which also adds their pins and
// forgets nothing. A node holding tens of thousands of pins used to send
// all of them, megabytes, for every pin a folder's import added.
func (a announcement) delta(before map[string]bool, round int64) []announcement {
	var added []held
	for _, h := range a.Pins {
		if !before[h.Root] {
			added = append(added, h)
		}
	}
	chunks := slices.Collect(slices.Chunk(added, maxAnnouncedPins))
	out := make([]announcement, len(chunks))
	for i, pins := range chunks {
		out[i] = announcement{Free: a.Free, Added: true, Round: round, Part: i, Parts: len(chunks) + 1, Pins: pins}
	}
	return out
}

type held struct {
	Root   string `json:"cid"`
	Factor int    `json:"replication"`
	Size   int64  `json:"size"`
}

// replicateRequest asks a node to hold root; its answer is a
// replicateAnswer once the copy is complete (or refused).
type replicateRequest struct {
	Root   string `json:"cid"`
	Factor int    `json:"replication"`
	Size   int64  `json:"size"`
	// Origin is the node whose user pinned the DAG; only it may unpin.
	Origin string `json:"origin"`
}

type replicateAnswer struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// Reason is "quota", "bad_request", "fetch" or "unpinned".
	Reason string `json:"reason,omitempty"`
}

type peerState struct {
	seen  time.Time
	free  int64
	roots map[string]bool
	// next gathers the roots of round's parts, got the parts, until all
	// have come.
	round int64
	next  map[string]bool
	got   map[int]bool
}

// replicator keeps every replicated pin on `replication` live nodes. Each
// holder announces what it holds; when a pin has fewer live holders than
// its factor (a holder silent for longer than grace is not live), the
// holder with the lowest peer ID asks others, chosen by rendezvous hash,
// to take copies.
type replicator struct {
	s    *store
	self string

	mu    sync.Mutex
	peers map[string]*peerState
	asked map[string]time.Time // root+peer → when
	// pending counts copies asked for and not finished, per root: they
	// count as holders, or every round would ask for more.
	pending map[string]int
	busy    map[string]bool // roots being copied here
	// over is when each root held here was first seen on more live nodes
	// than its factor.
	over map[string]time.Time
	// announced is the roots the last announcements named (loop's alone).
	announced map[string]bool
	kickC     chan struct{}

	refused, taken, trimmed atomic.Int64
}

func newReplicator(s *store) *replicator {
	return &replicator{s: s, self: s.env.NodeID, peers: map[string]*peerState{}, asked: map[string]time.Time{}, pending: map[string]int{}, busy: map[string]bool{}, over: map[string]time.Time{}, kickC: make(chan struct{}, 1)}
}

func (r *replicator) start(ctx context.Context) error {
	sub, err := r.s.env.Host.Subscribe(ctx, announceTopic)
	if err != nil {
		return err
	}
	if err := r.s.env.Host.Handle(ctx, replicateProto, r.serve); err != nil {
		return err
	}
	go r.listen(ctx, sub)
	go r.loop(ctx)
	return nil
}

// kick runs a round of announcing and repair soon.
func (r *replicator) kick() {
	select {
	case r.kickC <- struct{}{}:
	default:
	}
}

func (r *replicator) loop(ctx context.Context) {
	t := time.NewTicker(r.s.cfg.AnnounceInterval)
	defer t.Stop()
	tombstones := true
	for {
		r.round(ctx, tombstones)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			tombstones = true
		case <-r.kickC:
			tombstones = false
		}
	}
}

// round announces what this node holds and repairs what needs it. The
// unpinned roots go out once an announce_interval, not in the rounds a
// pin kicks: a node adding files one after another would otherwise send
// up to maxUnpinned of them with every file.
func (r *replicator) round(ctx context.Context, tombstones bool) {
	pins, err := r.s.pins.All()
	if err != nil {
		slog.Error("list pins", "err", err)
		return
	}
	a := announcement{Free: r.free()}
	for _, p := range pins {
		if p.Factor > 1 {
			a.Pins = append(a.Pins, held{Root: p.Root, Factor: p.Factor, Size: p.Size})
		}
	}
	unpinned := func() []string {
		roots, err := r.s.pins.Unpinned(time.Now().Add(-unpinnedFor), maxUnpinned)
		if err != nil {
			slog.Error("list unpinned roots", "err", err)
		}
		return roots
	}
	for _, part := range r.toAnnounce(a, tombstones, unpinned, time.Now().UnixNano()) {
		r.publish(ctx, part)
	}
	r.forget(pins)
	for _, p := range pins {
		if p.Factor > 1 {
			r.repair(ctx, p)
			r.trim(p)
		}
	}
}

// toAnnounce is what a round announces of a, what this node holds: all of
// it in ticker rounds (with the unpinned roots), and in the rounds a pin
// kicks, only what was added since the last announcement, if nothing was
// dropped (a delta), else all of it.
func (r *replicator) toAnnounce(a announcement, tombstones bool, unpinned func() []string, round int64) []announcement {
	now := make(map[string]bool, len(a.Pins))
	for _, h := range a.Pins {
		now[h.Root] = true
	}
	before := r.announced
	r.announced = now
	if !tombstones && before != nil && subset(before, now) {
		return a.delta(before, round)
	}
	if tombstones {
		a.Unpinned = unpinned()
	}
	return a.split(round)
}

func subset(a, b map[string]bool) bool {
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// forget drops what no longer steers a repair or a trim: when a peer was
// asked for a root, once askBackoff is past, and since when a root no
// longer pinned here was over its factor. A box that pins and unpins
// files for years keeps only what concerns what it holds.
func (r *replicator) forget(pins []pin) {
	pinned := pinnedRoots(pins)
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, when := range r.asked {
		if time.Since(when) > askBackoff {
			delete(r.asked, k)
		}
	}
	for root := range r.over {
		if !pinned[root] {
			delete(r.over, root)
		}
	}
}

func (r *replicator) free() int64 { return r.s.bs.quota - r.s.bs.used.Load() }

func (r *replicator) publish(ctx context.Context, a announcement) {
	b, _ := json.Marshal(a)
	if err := r.s.env.Host.Publish(ctx, announceTopic, b); err != nil && ctx.Err() == nil {
		slog.Warn("announce holdings", "err", err)
	}
}

func (r *replicator) announceUnpin(ctx context.Context, c cid.Cid) {
	r.publish(ctx, announcement{Free: r.free(), Unpin: c.String()})
}

func (r *replicator) listen(ctx context.Context, sub *sdk.Subscription) {
	for {
		m, err := sub.Next()
		if err != nil {
			if ctx.Err() == nil {
				slog.Warn("holders subscription ended", "err", err)
			}
			return
		}
		if m.Local || m.From == r.self {
			continue
		}
		var a announcement
		if err := json.Unmarshal(m.Data, &a); err != nil {
			r.s.bit.badMsgs.Add(1)
			slog.Warn("bad store announcement", "peer", m.From, "err", err)
			continue
		}
		r.heard(ctx, m.From, a)
	}
}

func (r *replicator) heard(ctx context.Context, from string, a announcement) {
	r.mu.Lock()
	ps := r.peers[from]
	if ps == nil {
		ps = &peerState{roots: map[string]bool{}}
		r.peers[from] = ps
	}
	ps.seen, ps.free = time.Now(), a.Free
	switch {
	case a.Unpin != "":
		delete(ps.roots, a.Unpin)
		delete(ps.next, a.Unpin)
	case a.Added:
		for _, h := range a.Pins {
			ps.roots[h.Root] = true
			if ps.next != nil {
				ps.next[h.Root] = true
			}
		}
	case a.Parts > 1:
		ps.heardPart(a)
	default:
		ps.roots = make(map[string]bool, len(a.Pins))
		for _, h := range a.Pins {
			ps.roots[h.Root] = true
		}
		ps.next, ps.got = nil, nil
	}
	r.mu.Unlock()
	// Only the node whose user pinned a DAG may drop its replicas.
	for _, root := range append(a.Unpinned, a.Unpin) {
		c, err := cid.Decode(root)
		if err != nil {
			continue
		}
		if p, ok := r.s.pins.Get(c); ok && p.Origin == from {
			if err := r.s.pins.Delete(c); err == nil {
				r.s.garbage.Store(true)
				slog.Info("replica dropped: its origin unpinned it", "cid", root, "origin", from)
			}
		}
	}
}

// heardPart takes one part of a round: its roots count as held at once,
// and what the peer no longer holds is dropped once every part has come.
// A round left incomplete (a part lost) drops nothing.
func (ps *peerState) heardPart(a announcement) {
	if a.Part < 0 || a.Part >= a.Parts {
		return
	}
	if a.Round != ps.round || ps.next == nil {
		ps.round, ps.next, ps.got = a.Round, map[string]bool{}, map[int]bool{}
	}
	for _, h := range a.Pins {
		ps.roots[h.Root] = true
		ps.next[h.Root] = true
	}
	ps.got[a.Part] = true
	if len(ps.got) == a.Parts {
		ps.roots, ps.next, ps.got = ps.next, nil, nil
	}
}

func (r *replicator) live(ps *peerState) bool { return time.Since(ps.seen) <= r.s.cfg.Grace }

// isStorePeer says whether peer announced itself as a store node lately.
func (r *replicator) isStorePeer(peer string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	ps := r.peers[peer]
	return ps != nil && r.live(ps)
}

func (r *replicator) livePeers() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, ps := range r.peers {
		if r.live(ps) {
			n++
		}
	}
	return n
}

// holders lists the live nodes holding root, this one first if it does.
func (r *replicator) holders(root string, here bool) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	if here {
		out = append(out, r.self)
	}
	for id, ps := range r.peers {
		if ps.roots[root] && r.live(ps) {
			out = append(out, id)
		}
	}
	return out
}

func (r *replicator) underReplicated(pins []pin) int {
	n := 0
	for _, p := range pins {
		if p.Factor > 1 && len(r.holders(p.Root, true)) < p.Factor {
			n++
		}
	}
	return n
}

// acts says whether this node is the one to repair p, held by hs: the
// node whose user pinned it while it is live; else the live holder with
// the lowest peer ID, once it has held its copy for a grace period (and
// so has heard the others).
func (r *replicator) acts(p pin, hs []string) bool {
	switch {
	case p.Origin == "":
		return true
	case slices.Contains(hs, p.Origin):
		return false
	case time.Since(p.Added) < r.s.cfg.Grace:
		return false
	}
	return slices.Min(hs) == r.self
}

// repair asks more nodes to hold p if it has too few live holders and
// this node is the one to act.
func (r *replicator) repair(ctx context.Context, p pin) {
	hs := r.holders(p.Root, true)
	r.mu.Lock()
	need := p.Factor - len(hs) - r.pending[p.Root]
	r.mu.Unlock()
	if need <= 0 || !r.acts(p, hs) {
		return
	}
	r.mu.Lock()
	var cands []string
	for id, ps := range r.peers {
		// The origin is never asked: if it does not hold its own pin,
		// its user unpinned it (the news may just not be here yet).
		if id != p.Origin && r.live(ps) && !ps.roots[p.Root] && ps.free >= p.Size && time.Since(r.asked[p.Root+id]) > askBackoff {
			cands = append(cands, id)
		}
	}
	if len(cands) == 0 {
		r.mu.Unlock()
		return
	}
	byRank(p.Root, cands)
	if len(cands) > need {
		cands = cands[:need]
	}
	for _, id := range cands {
		r.asked[p.Root+id] = time.Now()
	}
	r.pending[p.Root] += len(cands)
	r.mu.Unlock()
	origin := p.Origin
	if origin == "" {
		origin = r.self
	}
	for _, id := range cands {
		go r.ask(ctx, id, replicateRequest{Root: p.Root, Factor: p.Factor, Size: p.Size, Origin: origin})
	}
}

// byRank orders peers by rendezvous hash for root: the order in which
// repair asks them to hold it, and in which trim keeps their copies.
func byRank(root string, peers []string) {
	rank := func(id string) [32]byte { return sha256.Sum256([]byte(root + id)) }
	slices.SortFunc(peers, func(a, b string) int {
		ra, rb := rank(a), rank(b)
		return slices.Compare(ra[:], rb[:])
	})
}

// trim drops this node's replica of p when more live nodes have held p
// than its factor asks, steadily for a grace period: a holder came back
// after the others had repaired around its absence. The copies kept are
// the origin's, if it is live, then the first by rank; a replica outside
// those goes. A pin a user made here never goes, and the kept holders keep
// theirs, so the count does not fall below the factor.
func (r *replicator) trim(p pin) {
	if p.Origin == "" {
		return // this node's user pinned it
	}
	hs := r.holders(p.Root, true)
	r.mu.Lock()
	if len(hs) <= p.Factor || r.pending[p.Root] > 0 {
		delete(r.over, p.Root)
		r.mu.Unlock()
		return
	}
	since, ok := r.over[p.Root]
	if !ok {
		r.over[p.Root] = time.Now()
	}
	r.mu.Unlock()
	if !ok || time.Since(since) < r.s.cfg.Grace || time.Since(p.Added) < r.s.cfg.Grace {
		return
	}
	var keep []string
	others := slices.DeleteFunc(slices.Clone(hs), func(id string) bool { return id == p.Origin })
	if len(others) < len(hs) {
		keep = append(keep, p.Origin)
	}
	byRank(p.Root, others)
	keep = append(keep, others[:p.Factor-len(keep)]...)
	if slices.Contains(keep, r.self) {
		return
	}
	c, err := cid.Decode(p.Root)
	if err != nil {
		return
	}
	if err := r.s.pins.Delete(c); err != nil {
		slog.Warn("extra replica not dropped", "cid", p.Root, "err", err)
		return
	}
	r.mu.Lock()
	delete(r.over, p.Root)
	r.mu.Unlock()
	r.trimmed.Add(1)
	slog.Info("replica dropped: more nodes hold it than its factor asks", "cid", p.Root, "holders", len(hs), "replication", p.Factor)
}

// ask has peer take a copy and waits until it has.
func (r *replicator) ask(ctx context.Context, peer string, req replicateRequest) {
	ctx, cancel := context.WithTimeout(ctx, replicateTimeout)
	defer cancel()
	ans, err := r.call(ctx, peer, req)
	defer func() {
		r.mu.Lock()
		if r.pending[req.Root]--; r.pending[req.Root] <= 0 {
			delete(r.pending, req.Root)
		}
		r.mu.Unlock()
	}()
	if err == nil && !ans.OK {
		err = errors.New(ans.Error)
		if ans.Reason == "quota" {
			r.refused.Add(1)
		}
	}
	if err != nil {
		slog.Warn("replica not taken", "cid", req.Root, "peer", peer, "err", err)
		return
	}
	r.mu.Lock()
	if ps := r.peers[peer]; ps != nil {
		ps.roots[req.Root] = true
	}
	r.mu.Unlock()
	slog.Info("replica taken", "cid", req.Root, "peer", peer)
}

func (r *replicator) call(ctx context.Context, peer string, req replicateRequest) (replicateAnswer, error) {
	var ans replicateAnswer
	s, err := r.s.env.Host.OpenStream(ctx, peer, replicateProto)
	if err != nil {
		return ans, err
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	b, _ := json.Marshal(req)
	if _, err := s.Write(append(b, '\n')); err != nil {
		return ans, err
	}
	s.CloseWrite()
	line, err := bufio.NewReader(io.LimitReader(s, maxRequest)).ReadBytes('\n')
	if err != nil {
		return ans, fmt.Errorf("read answer: %w", err)
	}
	if err := json.Unmarshal(line, &ans); err != nil {
		return ans, fmt.Errorf("bad answer: %w", err)
	}
	return ans, nil
}

// serve takes a copy for the peer that asks, if there is room.
func (r *replicator) serve(st *sdk.Stream) {
	defer st.Close()
	answer := func(a replicateAnswer) {
		b, _ := json.Marshal(a)
		st.Write(append(b, '\n'))
	}
	line, err := bufio.NewReader(io.LimitReader(st, maxRequest)).ReadBytes('\n')
	var req replicateRequest
	if err == nil {
		err = json.Unmarshal(line, &req)
	}
	var c cid.Cid
	if err == nil {
		c, err = cid.Decode(req.Root)
	}
	if err == nil && (req.Factor < 2 || req.Factor > maxFactor || req.Size < 0) {
		err = fmt.Errorf("replication %d or size %d out of range", req.Factor, req.Size)
	}
	if err != nil {
		r.s.bit.badMsgs.Add(1)
		answer(replicateAnswer{Error: fmt.Sprintf("bad replication request: %v", err), Reason: "bad_request"})
		return
	}
	if _, ok := r.s.pins.Get(c); ok {
		answer(replicateAnswer{OK: true})
		return
	}
	if req.Origin == r.self {
		// A copy of this node's own pin, which it no longer has: its
		// user unpinned it, and the asker has not heard yet.
		answer(replicateAnswer{Error: "this node is the pin's origin and no longer pins it", Reason: "unpinned"})
		return
	}
	if free := r.free(); req.Size > free {
		r.refused.Add(1)
		slog.Warn("replica refused: over quota", "cid", req.Root, "peer", st.Peer(), "size", req.Size, "free", free)
		answer(replicateAnswer{Error: (&quotaError{need: req.Size, free: free, quota: r.s.bs.quota}).Error(), Reason: "quota"})
		return
	}
	r.mu.Lock()
	busy := r.busy[req.Root]
	r.busy[req.Root] = true
	r.mu.Unlock()
	if busy {
		answer(replicateAnswer{Error: "already copying it", Reason: "fetch"})
		return
	}
	defer func() {
		r.mu.Lock()
		delete(r.busy, req.Root)
		r.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(r.s.ctx, replicateTimeout)
	defer cancel()
	sess := r.s.bit.newSession(r.s.cfg.FetchTimeout, st.Peer())
	_, err = r.s.pin(ctx, c, sess, nil, pin{Factor: req.Factor, Origin: req.Origin})
	if err != nil {
		reason := "fetch"
		var qe *quotaError
		if errors.As(err, &qe) {
			reason = "quota"
			r.refused.Add(1)
		}
		answer(replicateAnswer{Error: err.Error(), Reason: reason})
		return
	}
	r.taken.Add(1)
	answer(replicateAnswer{OK: true})
	r.kick()
}
