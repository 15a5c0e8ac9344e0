package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/ipfs/go-cid"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/time/rate"

	"github.com/vecino/vecino/internal/atomicfile"
)

// Verifying reads every stored block back and checks it against its hash,
// so that rot in a block nobody reads is found while neighbours still
// hold good copies. A corrupt block is handled as on any read: kept aside,
// counted, and fetched again from a neighbour.

// verifyResult is what a verification checked.
type verifyResult struct {
	Blocks  int   `json:"blocks"`
	Bytes   int64 `json:"bytes"`
	Corrupt int   `json:"corrupt"`
}

// indexFrom lists up to n indexed CIDs after the key after (all, from the
// start, when after is nil), in a short read transaction.
func (bs *blockstore) indexFrom(after []byte, n int) []cid.Cid {
	var out []cid.Cid
	bs.db.View(func(tx *bolt.Tx) error {
		cur := tx.Bucket(indexBucket).Cursor()
		k, _ := cur.First()
		if after != nil {
			if k, _ = cur.Seek(after); k != nil && bytes.Equal(k, after) {
				k, _ = cur.Next()
			}
		}
		for ; k != nil && len(out) < n; k, _ = cur.Next() {
			if c, err := cid.Cast(k); err == nil {
				out = append(out, c)
			}
		}
		return nil
	})
	return out
}

// verify checks every indexed block, reading at most lim's rate (nil: no
// limit), and reports progress every 256 blocks.
func (bs *blockstore) verify(ctx context.Context, lim *rate.Limiter, report progress) (verifyResult, error) {
	var res verifyResult
	if err := bs.Sync(); err != nil { // index what is pending, to check it too
		return res, err
	}
	buf := make([]byte, chunkSize)
	var after []byte
	for batch := bs.indexFrom(nil, 1024); len(batch) > 0; batch = bs.indexFrom(after, 1024) {
		for _, c := range batch {
			size := bs.Size(c)
			if size < 0 {
				continue // collected meanwhile
			}
			if lim != nil {
				if err := lim.WaitN(ctx, int(min(size, int64(lim.Burst())))); err != nil {
					return res, err
				}
			} else if err := ctx.Err(); err != nil {
				return res, err
			}
			var ce *corruptError
			switch _, err := bs.read(c, buf); {
			case err == nil:
			case errors.As(err, &ce):
				res.Corrupt++
			case errors.Is(err, errNotFound):
				continue
			default:
				return res, err
			}
			res.Blocks++
			res.Bytes += size
			if report != nil && res.Blocks%256 == 0 {
				report(res.Blocks, res.Bytes)
			}
		}
		after = batch[len(batch)-1].Bytes()
	}
	if report != nil {
		report(res.Blocks, res.Bytes)
	}
	return res, nil
}

// verify checks every block, reading at most lim's rate (nil: as fast as
// the disk reads), and records when.
func (s *store) verify(ctx context.Context, lim *rate.Limiter, report progress) (verifyResult, error) {
	start := time.Now()
	res, err := s.bs.verify(ctx, lim, report)
	if err != nil {
		return res, fmt.Errorf("verify blocks: %w", err)
	}
	s.saveVerifyClock(verifyClock{Last: start, From: start})
	s.lastVerify.Store(start.Unix())
	s.verifies.Add(1)
	slog.Info("blocks verified", "blocks", res.Blocks, "bytes", res.Bytes, "corrupt", res.Corrupt, "took", time.Since(start).Round(time.Millisecond).String())
	return res, nil
}

// verifyClock, kept in the file last-verify, is when the store was last
// verified (zero: never) and when the wait for the next verification
// began: then, or when the store was first opened.
type verifyClock struct {
	Last time.Time `json:"last_verify,omitzero"`
	From time.Time `json:"due_from"`
}

func (s *store) verifyFile() string { return filepath.Join(s.env.DataDir, "last-verify") }

func (s *store) saveVerifyClock(vc verifyClock) {
	raw, _ := json.Marshal(vc)
	if err := atomicfile.Write(s.verifyFile(), append(raw, '\n'), 0o600); err != nil {
		slog.Warn("record when blocks were verified", "err", err)
	}
}

// autoVerify verifies the store verify_interval after the last time (or
// after the store was first opened), reading at most verify_mib_per_s, so
// that a node left alone for months still finds rot, however often it
// restarts.
func (s *store) autoVerify(ctx context.Context) {
	var vc verifyClock
	if raw, err := os.ReadFile(s.verifyFile()); err != nil || json.Unmarshal(raw, &vc) != nil || vc.From.IsZero() {
		vc = verifyClock{From: time.Now()}
		s.saveVerifyClock(vc)
	}
	if !vc.Last.IsZero() {
		s.lastVerify.CompareAndSwap(0, vc.Last.Unix())
	}
	lim := rate.NewLimiter(rate.Limit(s.cfg.VerifyMiBps<<20), maxBlockSize)
	for {
		t := time.NewTimer(time.Until(vc.From.Add(s.cfg.VerifyInterval)))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		vc.From = time.Now()
		if _, err := s.verify(ctx, lim, nil); err != nil && ctx.Err() == nil {
			slog.Error("scheduled verify", "err", err)
		}
	}
}
