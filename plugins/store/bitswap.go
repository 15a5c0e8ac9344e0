package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	bsmsg "github.com/ipfs/boxo/bitswap/message"
	pb "github.com/ipfs/boxo/bitswap/message/pb"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-msgio"

	"golang.org/x/time/rate"

	"github.com/vecino/vecino/sdk"
)

// Bitswap protocol IDs, newest first. Vecino answers on 1.2.0 and 1.1.0
// (CIDv1 payloads); 1.0.0 and the bare ID are accepted for reading.
var bitswapProtocols = []string{"/ipfs/bitswap/1.2.0", "/ipfs/bitswap/1.1.0", "/ipfs/bitswap/1.0.0", "/ipfs/bitswap"}

const (
	// bitswapMaxMsg is bitswap's own limit on one message.
	bitswapMaxMsg = 4 << 20
	// sendTarget is the size at which a queued outgoing message is sent
	// rather than grown; senders wait while a peer's queue is over it.
	sendTarget = 1 << 20
	// maxEntries bounds the wantlist entries taken from one message.
	maxEntries = 8192
	// inlineHave is the size under which a want-have is answered with the
	// block itself, as go-bitswap does.
	inlineHave = 1024
	// peerIdle closes an outgoing stream nobody used for this long.
	peerIdle = time.Minute
)

// bitswap speaks the IPFS block exchange through the router: it serves the
// blocks this node holds to any peer that asks (kubo, other Vecino nodes),
// and fetches the blocks this node wants. Incoming messages arrive on
// streams peers open to us; answers and wants leave on one outgoing stream
// per peer, as the protocol has it.
type bitswap struct {
	host *sdk.Host
	bs   *blockstore
	// serves says whether to answer a peer's wants.
	serves func(peer string) bool
	// find, when set, looks up and connects to nodes that hold one of
	// keys, for content no connected peer has.
	find func(ctx context.Context, keys ...cid.Cid) []string
	// limit, when set, bounds the bytes sent to all peers together.
	limit *rate.Limiter

	mu     sync.Mutex
	queues map[string]*peerQueue
	wants  map[cid.Cid][]*want
	kept   ledger

	blocksSent, blocksRecv, unwanted, badMsgs, dontHaves, keptSent atomic.Int64
}

// presence is a peer's answer about one block.
type presence struct {
	peer  string
	block blocks.Block // nil: the peer does not have it
	have  bool
}

type want struct {
	c  cid.Cid
	ch chan presence
}

func newBitswap(host *sdk.Host, bs *blockstore, serves func(string) bool) *bitswap {
	return &bitswap{host: host, bs: bs, serves: serves, queues: map[string]*peerQueue{}, wants: map[cid.Cid][]*want{},
		kept: ledger{byCID: map[cid.Cid]map[string]keptWant{}, perPeer: map[string]int{}}}
}

// start registers the protocols with the router.
func (b *bitswap) start(ctx context.Context) error {
	for _, p := range bitswapProtocols {
		if err := b.host.Handle(ctx, p, b.handle); err != nil {
			return err
		}
	}
	go sdk.Every(ctx, keepFor, b.kept.expire)
	return nil
}

// handle reads the messages a peer sends on one stream.
func (b *bitswap) handle(s *sdk.Stream) {
	defer s.Close()
	r := msgio.NewVarintReaderSize(bufio.NewReaderSize(s, 64<<10), bitswapMaxMsg)
	for {
		m, _, err := bsmsg.FromMsgReader(r)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				b.badMsgs.Add(1)
				slog.Warn("bad bitswap message", "peer", s.Peer(), "err", err)
			}
			return
		}
		b.receive(s.Peer(), m)
	}
}

// receive hands blocks and presences to the wants waiting for them and
// answers the peer's wantlist.
func (b *bitswap) receive(peer string, m bsmsg.BitSwapMessage) {
	for _, blk := range m.Blocks() {
		if !b.deliver(blk.Cid(), presence{peer: peer, block: blk, have: true}) {
			b.unwanted.Add(1)
		}
	}
	for _, bp := range m.BlockPresences() {
		b.deliver(bp.Cid, presence{peer: peer, have: bp.Type == pb.Message_Have})
	}
	if !b.serves(peer) {
		return
	}
	entries := m.Wantlist()
	if len(entries) > maxEntries {
		b.badMsgs.Add(1)
		slog.Warn("bitswap wantlist too long; serving the first entries", "peer", peer, "entries", len(entries), "max", maxEntries)
		entries = entries[:maxEntries]
	}
	q := b.queue(peer)
	if m.Full() {
		b.kept.dropPeer(peer)
	}
	for _, e := range entries {
		if e.Cancel {
			b.kept.drop(e.Cid, peer)
			continue
		}
		b.answer(q, e)
	}
}

// answer sends the peer the block it wants, or HAVE; if this node does not
// have it, DONT_HAVE when asked for, and the want is kept: the block goes
// to the peer if it arrives here later (see sendKept).
func (b *bitswap) answer(q *peerQueue, e bsmsg.Entry) {
	var blk blocks.Block
	err := errNotFound
	if size := b.bs.Size(e.Cid); haveOnly(e.WantType, size) {
		q.add(64, func(m bsmsg.BitSwapMessage) { m.AddHave(e.Cid) })
		return
	} else if size >= 0 {
		blk, err = b.bs.Get(e.Cid)
	}
	if err != nil {
		b.kept.keep(e.Cid, q.peer, e.WantType, time.Now())
		if e.SendDontHave {
			q.add(64, func(m bsmsg.BitSwapMessage) { m.AddDontHave(e.Cid) })
		}
		return
	}
	b.give(q, blk)
}

// haveOnly reports whether a want of type w for a stored block of size
// bytes is answered with HAVE rather than the block itself: a want-have
// for anything but a tiny block (the answer then needs no disk read).
func haveOnly(w pb.Message_Wantlist_WantType, size int64) bool {
	return w == pb.Message_Wantlist_Have && size > inlineHave
}

// give queues blk for q's peer.
func (b *bitswap) give(q *peerQueue, blk blocks.Block) {
	b.blocksSent.Add(1)
	q.add(len(blk.RawData()), func(m bsmsg.BitSwapMessage) { m.AddBlock(blk) })
}

// sendKept sends a block just stored to the peers that asked for it
// while this node did not have it. It does not wait for slow peers: it is
// called on the path that stores blocks.
func (b *bitswap) sendKept(blk blocks.Block) {
	if ws := b.kept.take(blk.Cid(), time.Now()); len(ws) > 0 {
		go b.send(blk, ws)
	}
}

func (b *bitswap) send(blk blocks.Block, ws map[string]pb.Message_Wantlist_WantType) {
	for peer, w := range ws {
		if !b.serves(peer) {
			continue
		}
		q := b.queue(peer)
		if haveOnly(w, int64(len(blk.RawData()))) {
			q.add(64, func(m bsmsg.BitSwapMessage) { m.AddHave(blk.Cid()) })
			continue
		}
		b.keptSent.Add(1)
		b.give(q, blk)
	}
}

func (b *bitswap) deliver(c cid.Cid, p presence) bool {
	b.mu.Lock()
	ws := b.wants[c]
	b.mu.Unlock()
	for _, w := range ws {
		select {
		case w.ch <- p:
		default: // the fetcher has more answers than it reads; drop
		}
	}
	if p.block != nil && len(ws) > 0 {
		b.blocksRecv.Add(1)
	}
	return len(ws) > 0
}

func (b *bitswap) register(c cid.Cid) *want {
	w := &want{c: c, ch: make(chan presence, 16)}
	b.mu.Lock()
	b.wants[c] = append(b.wants[c], w)
	b.mu.Unlock()
	return w
}

func (b *bitswap) unregister(w *want) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ws := b.wants[w.c]
	for i, x := range ws {
		if x == w {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(b.wants, w.c)
	} else {
		b.wants[w.c] = ws
	}
}

// sendWant asks peer for c: the block itself, or only whether it has it.
func (b *bitswap) sendWant(peer string, c cid.Cid, wantType pb.Message_Wantlist_WantType) {
	b.queue(peer).add(64, func(m bsmsg.BitSwapMessage) { m.AddEntry(c, 1, wantType, true) })
}

func (b *bitswap) sendCancel(peer string, c cid.Cid) {
	b.queue(peer).add(64, func(m bsmsg.BitSwapMessage) { m.Cancel(c) })
}

func (b *bitswap) queue(peer string) *peerQueue {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.queues[peer]
	if q == nil {
		q = &peerQueue{b: b, peer: peer, msg: bsmsg.New(false)}
		q.cond = sync.NewCond(&q.mu)
		b.queues[peer] = q
		go q.run()
	}
	return q
}

// peerQueue gathers what is to be sent to one peer into messages and
// writes them, one at a time, on an outgoing stream it keeps open.
type peerQueue struct {
	b    *bitswap
	peer string

	mu      sync.Mutex
	cond    *sync.Cond
	msg     bsmsg.BitSwapMessage
	pending int
	closed  bool
}

// add applies fn to the message being gathered; it waits while the queue
// holds more than sendTarget bytes, so a slow peer slows down whoever
// feeds it rather than filling memory.
func (q *peerQueue) add(size int, fn func(bsmsg.BitSwapMessage)) {
	q.mu.Lock()
	for q.pending > sendTarget && !q.closed {
		q.cond.Wait()
	}
	if !q.closed {
		fn(q.msg)
		q.pending += size
	}
	q.cond.Broadcast()
	q.mu.Unlock()
}

func (q *peerQueue) run() {
	var s *sdk.Stream
	defer func() {
		if s != nil {
			s.Close()
		}
	}()
	idle := time.AfterFunc(peerIdle, func() { q.close() })
	for {
		q.mu.Lock()
		for q.msg.Empty() && !q.closed {
			q.cond.Wait()
		}
		if q.closed {
			q.mu.Unlock()
			return
		}
		m, size := q.msg, q.pending
		q.msg, q.pending = bsmsg.New(false), 0
		q.cond.Broadcast()
		q.mu.Unlock()
		idle.Reset(peerIdle)
		q.b.pace(size)
		var err error
		for attempt := 0; attempt < 2; attempt++ {
			if s == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				s, err = q.b.host.OpenStream(ctx, q.peer, bitswapProtocols[:2]...)
				cancel()
				if err != nil {
					s = nil
					continue
				}
			}
			if err = m.ToNetV1(s); err == nil {
				break
			}
			s.Close()
			s = nil
		}
		if err != nil {
			slog.Debug("bitswap send failed", "peer", q.peer, "err", err)
		}
	}
}

// pace waits until the serve rate limit, if any, lets n more bytes go.
func (b *bitswap) pace(n int) {
	if b.limit == nil {
		return
	}
	for n > 0 {
		k := min(n, b.limit.Burst())
		b.limit.WaitN(context.Background(), k)
		n -= k
	}
}

// close ends the queue; a later add to this peer starts a new one.
func (q *peerQueue) close() {
	q.b.mu.Lock()
	if q.b.queues[q.peer] == q {
		delete(q.b.queues, q.peer)
	}
	q.b.mu.Unlock()
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
}

// errNoProvider says no reachable peer had a block.
var errNoProvider = errors.New("no reachable peer has it")

// fetchOne gets c from the network. It asks sources (peers that already
// gave blocks of the same DAG) one at a time, then every other bitswap
// peer at once, and gives up after timeout without an answer.
func (b *bitswap) fetchOne(ctx context.Context, c cid.Cid, sess *session) (blocks.Block, error) {
	w := b.register(c)
	asked := map[string]bool{}
	defer func() {
		b.unregister(w)
		for p := range asked {
			b.sendCancel(p, c)
		}
	}()
	lacking := 0
	sess.begin(c)
	var ask func() bool
	ask = func() bool {
		if p, ok := sess.next(asked); ok {
			asked[p] = true
			b.sendWant(p, c, pb.Message_Wantlist_Block)
			return true
		}
		any := false
		for _, p := range sess.candidates(ctx) {
			if !asked[p] {
				asked[p] = true
				any = true
				b.sendWant(p, c, pb.Message_Wantlist_Block)
			}
		}
		// Nobody connected has it: look for holders on the DHT, once.
		return any || sess.discover(ctx, c) && ask()
	}
	if !ask() {
		return nil, fmt.Errorf("fetch %s: %w (no bitswap peer connected, none found on the DHT)", c, errNoProvider)
	}
	timer := time.NewTimer(sess.timeout)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timer.C:
			if !ask() {
				return nil, fmt.Errorf("fetch %s: no answer in %s from %d peers: %w", c, sess.timeout, len(asked), errNoProvider)
			}
			timer.Reset(sess.timeout)
		case p := <-w.ch:
			switch {
			case p.block != nil:
				sess.good(p.peer)
				return p.block, nil
			case !p.have:
				b.dontHaves.Add(1)
				sess.bad(p.peer)
				lacking++
				if lacking >= len(asked) && !ask() {
					return nil, fmt.Errorf("fetch %s: %d peers asked: %w", c, len(asked), errNoProvider)
				}
			}
		}
	}
}

// session remembers which peers serve one DAG well.
type session struct {
	b       *bitswap
	timeout time.Duration
	prefer  []string

	mu      sync.Mutex
	sources []string
	rr      int
	peers   []string
	listed  time.Time
	root    cid.Cid // the first block asked for: the DAG's root
	looked  bool    // the DHT was searched for holders
}

// begin notes the session's first block as the root of what it fetches.
func (s *session) begin(c cid.Cid) {
	s.mu.Lock()
	if !s.root.Defined() {
		s.root = c
	}
	s.mu.Unlock()
}

// discover searches the DHT, once per session, for nodes announcing the
// DAG's root (or else c), connects to them and has them asked first. It
// says whether it found any.
func (s *session) discover(ctx context.Context, c cid.Cid) bool {
	s.mu.Lock()
	if s.looked || s.b.find == nil {
		s.mu.Unlock()
		return false
	}
	s.looked = true
	root := s.root
	s.mu.Unlock()
	found := s.b.find(ctx, root, c)
	if len(found) == 0 {
		return false
	}
	s.mu.Lock()
	s.prefer = append(s.prefer, found...)
	s.listed = time.Time{}
	s.mu.Unlock()
	return true
}

func (b *bitswap) newSession(timeout time.Duration, prefer ...string) *session {
	return &session{b: b, timeout: timeout, prefer: prefer}
}

// next picks a source not yet asked, round robin.
func (s *session) next(asked map[string]bool) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.sources {
		p := s.sources[(s.rr+i)%len(s.sources)]
		if !asked[p] {
			s.rr = (s.rr + i + 1) % len(s.sources)
			return p, true
		}
	}
	return "", false
}

func (s *session) good(p string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.sources {
		if x == p {
			return
		}
	}
	s.sources = append(s.sources, p)
}

func (s *session) bad(p string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, x := range s.sources {
		if x == p {
			s.sources = append(s.sources[:i], s.sources[i+1:]...)
			return
		}
	}
}

// candidates are the preferred peers and every connected peer that
// speaks bitswap, listed afresh every few seconds.
func (s *session) candidates(ctx context.Context) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.listed) > 3*time.Second {
		peers, err := s.b.host.Peers(ctx, bitswapProtocols[0])
		if err == nil {
			s.peers = append([]string(nil), s.prefer...)
			for _, p := range peers {
				s.peers = append(s.peers, p.ID)
			}
			s.listed = time.Now()
		}
	}
	return s.peers
}
