package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"golang.org/x/time/rate"

	"github.com/vecino/vecino/sdk"
)

type settings struct {
	QuotaMiB int64 `toml:"quota_mib"`
	// Replication is the number of nodes that should hold a pin, this one
	// included, unless the pin asks for another.
	Replication int `toml:"replication"`
	// Grace is how long a holder may be silent before another node takes
	// its copy.
	Grace            time.Duration `toml:"grace"`
	AnnounceInterval time.Duration `toml:"announce_interval"`
	// FetchTimeout is how long to wait for a peer's answer to one block
	// before asking others.
	FetchTimeout time.Duration `toml:"fetch_timeout"`
	// Bitswap serves this node's blocks to any peer that asks, IPFS nodes
	// included. Off, it answers only the neighbourhood's store nodes.
	Bitswap bool `toml:"bitswap"`
	// Provide announces pinned roots on the router's DHT, again every
	// ReprovideInterval, and fetches look there for holders no connected
	// peer is.
	Provide           bool          `toml:"provide"`
	ReprovideInterval time.Duration `toml:"reprovide_interval"`
	// ServeKiBps caps what bitswap sends, to all peers together, in KiB/s;
	// 0 is no cap.
	ServeKiBps int64 `toml:"serve_kib_per_s"`
	// GCWatermark is the share of the quota, in percent, past which blocks
	// no pin keeps are collected on their own (checked every GCInterval);
	// 0 leaves it to `vecino store gc`.
	GCWatermark int           `toml:"gc_watermark"`
	GCInterval  time.Duration `toml:"gc_interval"`
	// VerifyInterval is how often every block is read back and checked
	// against its hash, reading at most VerifyMiBps; 0 leaves it to
	// `vecino store verify`.
	VerifyInterval time.Duration `toml:"verify_interval"`
	VerifyMiBps    int64         `toml:"verify_mib_per_s"`
}

func defaults() settings {
	return settings{QuotaMiB: 10240, Replication: 3, Grace: 10 * time.Minute, AnnounceInterval: 30 * time.Second, FetchTimeout: 20 * time.Second, Bitswap: true,
		Provide: true, ReprovideInterval: 12 * time.Hour, GCWatermark: 90, GCInterval: time.Minute,
		VerifyInterval: 7 * 24 * time.Hour, VerifyMiBps: 32}
}

func (c settings) check() sdk.ConfigErrors {
	var errs sdk.ConfigErrors
	bad := func(key, format string, v any) {
		errs = append(errs, sdk.KeyError{Key: key, Message: fmt.Sprintf(format, v)})
	}
	if c.QuotaMiB <= 0 {
		bad("quota_mib", "must be positive, not %d", c.QuotaMiB)
	}
	if c.Replication < 1 || c.Replication > maxFactor {
		bad("replication", "must be 1 to 16, not %d", c.Replication)
	}
	if c.AnnounceInterval < 100*time.Millisecond {
		bad("announce_interval", "must be at least 100ms, not %s", c.AnnounceInterval)
	}
	if c.Grace < c.AnnounceInterval {
		bad("grace", "must be at least announce_interval, not %s", c.Grace)
	}
	if c.FetchTimeout < 100*time.Millisecond {
		bad("fetch_timeout", "must be at least 100ms, not %s", c.FetchTimeout)
	}
	if c.GCWatermark < 0 || c.GCWatermark > 100 {
		bad("gc_watermark", "must be a percentage of quota_mib, 0 (off) to 100, not %d", c.GCWatermark)
	}
	if c.GCInterval < time.Second {
		bad("gc_interval", "must be at least 1s, not %s", c.GCInterval)
	}
	if c.VerifyInterval != 0 && c.VerifyInterval < time.Minute {
		bad("verify_interval", "must be 0 (off) or at least 1m, not %s", c.VerifyInterval)
	}
	if c.VerifyMiBps < 1 {
		bad("verify_mib_per_s", "must be at least 1, not %d", c.VerifyMiBps)
	}
	if c.ServeKiBps < 0 {
		bad("serve_kib_per_s", "must be 0 (no cap) or more, not %d", c.ServeKiBps)
	}
	if c.ReprovideInterval < time.Minute || c.ReprovideInterval > 24*time.Hour {
		bad("reprovide_interval", "must be 1m to 24h (DHT records last 48h), not %s", c.ReprovideInterval)
	}
	return errs
}

// maxFactor bounds a replication factor.
const maxFactor = 16

// fetchWindow is how many blocks of one DAG are asked for at once.
const fetchWindow = 32

// store is the storage plugin: a block store on disk, the pins that keep
// DAGs in it, bitswap to exchange blocks with any IPFS-speaking peer, and
// replication among the neighbourhood's store nodes.
type store struct {
	cfg  settings
	env  sdk.Env
	bs   *blockstore
	pins *pinDB
	bit  *bitswap
	repl *replicator
	prov *provider

	ctx    context.Context
	cancel context.CancelFunc

	// gcMu keeps garbage collection out while blocks are being added or
	// fetched for a pin that is not recorded yet.
	gcMu sync.RWMutex

	fetching shared[cid.Cid, blocks.Block]

	repaired, fetched, addErrors atomic.Int64
	// garbage is set when blocks may have become unpinned (an unpin, a
	// fetch for get or cat, an add cut short) since the last collection.
	garbage         atomic.Bool
	gcRuns, gcFreed atomic.Int64
	// verifies counts whole-store verifications; lastVerify is when the
	// last began (Unix seconds).
	verifies, lastVerify atomic.Int64
}

func (s *store) Info() sdk.Info {
	return sdk.Info{
		Name: "store", Version: "0.2.0", Description: "content-addressed storage (IPFS-compatible), replicated among neighbours",
		Protocols: append([]string{replicateProto}, bitswapProtocols...),
		Topics:    []string{announceTopic},
		Page:      true,
	}
}

func (s *store) Configure(_ context.Context, raw []byte, env sdk.Env) error {
	cfg := defaults()
	errs := append(sdk.DecodeSettings(raw, &cfg), cfg.check()...)
	if len(errs) > 0 {
		return errs
	}
	s.cfg, s.env = cfg, env
	return nil
}

func (s *store) Start(ctx context.Context) error {
	// An add or a get makes garbage of every 256 KiB block it passes on.
	// Collecting at half the usual heap growth keeps the plugin's peak
	// memory about 4 MiB lower, at no throughput cost measured (see
	// bench/README.md). GOGC set in the environment wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	bs, err := openBlockstore(s.env.DataDir, s.cfg.QuotaMiB<<20)
	if err != nil {
		return err
	}
	pins, err := openPins(s.env.DataDir)
	if err != nil {
		return err
	}
	s.bs, s.pins = bs, pins
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.bit = newBitswap(s.env.Host, bs, func(peer string) bool { return s.cfg.Bitswap || s.repl.isStorePeer(peer) })
	if s.cfg.ServeKiBps > 0 {
		s.bit.limit = rate.NewLimiter(rate.Limit(s.cfg.ServeKiBps<<10), 256<<10+1024)
	}
	bs.onCrpt = func(c cid.Cid) { go s.repairBlock(c) }
	bs.onPut = s.bit.sendKept
	s.repl = newReplicator(s)
	s.prov = newProvider(s)
	if s.cfg.Provide {
		s.bit.find = s.prov.find
		go s.prov.loop(s.ctx)
	}
	if s.cfg.GCWatermark > 0 {
		s.garbage.Store(true) // what an earlier run left
		go s.autoGC(s.ctx)
	}
	if s.cfg.VerifyInterval > 0 {
		go s.autoVerify(s.ctx)
	}
	if err := s.bit.start(s.ctx); err != nil {
		return err
	}
	if err := s.repl.start(s.ctx); err != nil {
		return err
	}
	slog.Info("store open", "blocks", bs.count.Load(), "used_bytes", bs.used.Load(), "quota_mib", s.cfg.QuotaMiB)
	return nil
}

func (s *store) Stop(context.Context) error {
	if s.cancel != nil {
		s.cancel()
	}
	var err error
	if s.pins != nil {
		err = s.pins.Close()
	}
	if s.bs != nil {
		err = errors.Join(err, s.bs.Close())
	}
	return err
}

func (s *store) Health(context.Context) error {
	_, err := os.Stat(s.bs.dir)
	return err
}

func (s *store) Status(ctx context.Context) (sdk.Status, error) {
	pins, _ := s.pins.All()
	under := s.repl.underReplicated(pins)
	used := s.bs.used.Load()
	st := sdk.Status{
		Summary: fmt.Sprintf("%d pins, %d blocks, %d of %d MiB used, %d store peers, %d under-replicated", len(pins), s.bs.count.Load(), used>>20, s.cfg.QuotaMiB, s.repl.livePeers(), under),
		Details: map[string]any{
			"pins": len(pins), "blocks": s.bs.count.Load(), "used_bytes": used, "quota_mib": s.cfg.QuotaMiB,
			"store_peers": s.repl.livePeers(), "under_replicated": under,
			"corrupt_blocks": s.bs.bad.Load(), "repaired_blocks": s.repaired.Load(),
			"fetched_blocks": s.fetched.Load(), "served_blocks": s.bit.blocksSent.Load(),
			"unwanted_blocks": s.bit.unwanted.Load(), "bad_messages": s.bit.badMsgs.Load(),
			"wants_kept": s.bit.kept.size(), "kept_wants_served": s.bit.keptSent.Load(),
			"replicas_refused": s.repl.refused.Load(), "replicas_taken": s.repl.taken.Load(), "replicas_trimmed": s.repl.trimmed.Load(),
			"add_errors": s.addErrors.Load(), "gc_runs": s.gcRuns.Load(), "gc_freed_bytes": s.gcFreed.Load(),
			"verify_runs": s.verifies.Load(), "last_verify": unixOrEmpty(s.lastVerify.Load()),
			"dht_provided": s.prov.provided.Load(), "dht_provide_errors": s.prov.failed.Load(), "dht_holders_found": s.prov.found.Load(),
		},
	}
	if err := s.heldGC(); err != nil {
		st.Summary += "; " + err.Error()
		st.Details["gc_held"] = err.Error()
		st.Details["pins_salvaged"] = s.pins.salvaged
	}
	if s.bs.rebuilt != "" {
		st.Details["index_rebuilt"] = "blocks.db was unreadable at start: kept as " + s.bs.rebuilt + ", the index rebuilt from the packs"
	}
	return st, nil
}

// unixOrEmpty is t (Unix seconds) as RFC 3339, or "" for never.
func unixOrEmpty(t int64) string {
	if t == 0 {
		return ""
	}
	return time.Unix(t, 0).UTC().Format(time.RFC3339)
}

// block reads c from disk; with a session, a block that is missing or
// corrupt is fetched from the network (and stored).
func (s *store) block(ctx context.Context, c cid.Cid, sess *session) (blocks.Block, error) {
	b, err := s.bs.Get(c)
	if err == nil || sess == nil {
		return b, err
	}
	var ce *corruptError
	if !errors.Is(err, errNotFound) && !errors.As(err, &ce) {
		return nil, err
	}
	b, ferr := s.fetchAndPut(ctx, c, sess)
	if ferr != nil {
		if ce != nil {
			return nil, fmt.Errorf("%w; no good copy found: %w", err, ferr)
		}
		return nil, ferr
	}
	return b, nil
}

// fetchAndPut gets c from the network once however many ask at a time.
func (s *store) fetchAndPut(ctx context.Context, c cid.Cid, sess *session) (blocks.Block, error) {
	return s.fetching.do(ctx, s.ctx, c, func(ctx context.Context) (blocks.Block, error) {
		blk, err := s.bit.fetchOne(ctx, c, sess)
		if err == nil {
			err = s.bs.Put(blk)
			s.fetched.Add(1)
			s.garbage.Store(true)
		}
		return blk, err
	})
}

// repairBlock fetches a good copy of a block found corrupt on disk.
func (s *store) repairBlock(c cid.Cid) {
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Minute)
	defer cancel()
	if _, err := s.fetchAndPut(ctx, c, s.bit.newSession(s.cfg.FetchTimeout)); err != nil {
		slog.Error("corrupt block not repaired", "cid", c.String(), "err", err)
		return
	}
	s.repaired.Add(1)
	slog.Info("corrupt block repaired from a neighbour", "cid", c.String())
}

// progress reports how much of a long job is done.
type progress func(blocks int, bytes int64)

// fetchDAG makes sure every block under root is here, fetching what is
// missing, and returns the DAG's block count and size.
func (s *store) fetchDAG(ctx context.Context, root cid.Cid, sess *session, report progress) (int, int64, error) {
	var n, size atomic.Int64
	err := walkDAG(ctx, root, fetchWindow, func(ctx context.Context, c cid.Cid) ([]cid.Cid, error) {
		if c.Type() == cid.Raw {
			if sz := s.bs.Size(c); sz >= 0 {
				size.Add(sz)
				n.Add(1)
				return nil, nil
			}
		}
		b, err := s.block(ctx, c, sess)
		if err != nil {
			return nil, err
		}
		size.Add(int64(len(b.RawData())))
		if k := n.Add(1); report != nil && k%64 == 0 {
			report(int(k), size.Load())
		}
		ls, err := links(b)
		if err != nil {
			return nil, fmt.Errorf("block %s: %w", c, err)
		}
		return ls, nil
	})
	if report != nil {
		report(int(n.Load()), size.Load())
	}
	return int(n.Load()), size.Load(), err
}

// add stores a file (or, with dir, a tar of a directory) and pins it.
func (s *store) add(ctx context.Context, r io.Reader, dir bool, p pin) (pin, error) {
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	start := time.Now()
	ds := newAsyncAdder(s)
	var node ipld.Node
	var err error
	if dir {
		node, err = importTar(ctx, ds, r)
	} else {
		node, err = importFile(ds, r)
	}
	if cerr := ds.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		s.addErrors.Add(1)
		s.garbage.Store(true)
		slog.Error("add failed; blocks written so far are unpinned until gc", "err", err)
		return pin{}, err
	}
	imported := time.Since(start)
	p.Root = node.Cid().String()
	p, err = s.pinLocked(ctx, node.Cid(), nil, nil, p)
	if err == nil {
		slog.Info("added", "cid", p.Root, "name", p.Name, "bytes", p.Size, "blocks", p.Blocks,
			"took", time.Since(start).Round(time.Millisecond).String(), "import", imported.Round(time.Millisecond).String())
	}
	return p, err
}

// pin makes sure the DAG under c is here (from the network if need be)
// and records the pin.
func (s *store) pin(ctx context.Context, c cid.Cid, sess *session, report progress, p pin) (pin, error) {
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	return s.pinLocked(ctx, c, sess, report, p)
}

func (s *store) pinLocked(ctx context.Context, c cid.Cid, sess *session, report progress, p pin) (pin, error) {
	n, size, err := s.fetchDAG(ctx, c, sess, report)
	if err != nil {
		return pin{}, fmt.Errorf("pin %s: %w", c, err)
	}
	if err := s.bs.Sync(); err != nil {
		return pin{}, err
	}
	if old, ok := s.pins.Get(c); ok && old.Origin == "" && p.Origin != "" {
		return old, nil // the user's own pin stays the user's
	}
	p.Root, p.Blocks, p.Size, p.Added = c.String(), n, size, time.Now().UTC()
	if p.Factor == 0 {
		p.Factor = s.cfg.Replication
	}
	if err := s.pins.Put(p); err != nil {
		return pin{}, err
	}
	s.repl.kick()
	s.prov.kick()
	return p, nil
}

// unpin drops c's pin; a pin this node asked others to replicate is
// dropped by them too.
func (s *store) unpin(ctx context.Context, c cid.Cid) (pin, error) {
	p, ok := s.pins.Get(c)
	if !ok {
		return pin{}, fmt.Errorf("%s: not pinned", c)
	}
	if p.Origin == "" && p.Factor > 1 {
		if err := s.pins.Unpin(c, time.Now()); err != nil {
			return pin{}, err
		}
		s.repl.announceUnpin(ctx, c)
	} else if err := s.pins.Delete(c); err != nil {
		return pin{}, err
	}
	s.garbage.Store(true)
	return p, nil
}

// errGCHeld says why garbage collection waits.
var errGCHeld = errors.New("garbage collection is held")

// heldGC says why garbage collection must wait, or nil: while the pins of
// an unreadable pins.db are not known, every block might be pinned. Pin
// again what must be kept, then delete the set-aside file.
func (s *store) heldGC() error {
	if s.pins.lost == "" {
		return nil
	}
	if _, err := os.Stat(s.pins.lost); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return fmt.Errorf("%w: pins.db was unreadable at start and is kept as %s; %d pins were read back from it, but there may have been more: pin again what must be kept (add it again, or pin its CID: a neighbour that holds it sends it), then delete that file", errGCHeld, s.pins.lost, s.pins.salvaged)
}

// gc deletes every block no pin reaches.
func (s *store) gc(ctx context.Context) (int, int64, error) {
	if err := s.heldGC(); err != nil {
		return 0, 0, err
	}
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	pins, err := s.pins.All()
	if err != nil {
		return 0, 0, err
	}
	keep := map[cid.Cid]bool{}
	var mu sync.Mutex
	for _, p := range pins {
		root, err := cid.Decode(p.Root)
		if err != nil {
			continue
		}
		walkDAG(ctx, root, fetchWindow, func(ctx context.Context, c cid.Cid) ([]cid.Cid, error) {
			mu.Lock()
			keep[c] = true
			mu.Unlock()
			if c.Type() == cid.Raw {
				return nil, nil
			}
			b, err := s.bs.Get(c)
			if err != nil {
				return nil, nil // missing or corrupt: nothing below it to keep
			}
			ls, _ := links(b)
			return ls, nil
		})
	}
	n, freed, err := s.bs.keepOnly(func(c cid.Cid) bool { return keep[c] })
	slog.Info("garbage collected", "blocks", n, "bytes", freed)
	s.gcRuns.Add(1)
	s.gcFreed.Add(freed)
	return n, freed, err
}

// autoGC collects garbage on its own once the blocks take more than
// gc_watermark percent of the quota, if anything may have become garbage
// since the last collection: an always-on node nobody logs in to would
// otherwise fill with what was unpinned until adds are refused.
func (s *store) autoGC(ctx context.Context) {
	sdk.Every(ctx, s.cfg.GCInterval, func(time.Time) {
		if s.bs.used.Load()*100 <= s.bs.quota*int64(s.cfg.GCWatermark) || s.heldGC() != nil || !s.garbage.Swap(false) {
			return
		}
		slog.Info("store past its gc watermark: collecting garbage", "used_bytes", s.bs.used.Load(), "watermark_pct", s.cfg.GCWatermark)
		if _, _, err := s.gc(ctx); err != nil {
			slog.Error("automatic gc", "err", err)
		}
	})
}
