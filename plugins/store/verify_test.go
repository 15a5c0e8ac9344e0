package store

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	blocks "github.com/ipfs/go-block-format"

	"github.com/vecino/vecino/sdk"
)

// Verifying reads every block, pending ones too, and finds the one that
// rotted; it is handled as on a read.
func TestBlockstoreVerify(t *testing.T) {
	bs := openTestStore(t, t.TempDir())
	bl := testBlocks(t, 0, 2000, 1<<10) // more than one batch of the index
	putAll(t, bs, bl[:1990])
	bs.Sync()
	putAll(t, bs, bl[1990:]) // pending
	reported := watchCorrupt(bs)
	rot(t, bs, bl[7], 3)
	var last int
	res, err := bs.verify(context.Background(), nil, func(n int, _ int64) { last = n })
	if err != nil || res.Blocks != 2000 || res.Corrupt != 1 || res.Bytes != 2000<<10 || last != 2000 {
		t.Fatalf("verify: %+v, %v (last progress %d)", res, err, last)
	}
	if len(*reported) != 1 || (*reported)[0] != bl[7].Cid() {
		t.Errorf("reported %v", *reported)
	}
	wantBlocks(t, bs, append(append([]blocks.Block{}, bl[:7]...), bl[8:]...), bl[7:8])
}

// The wait for the next verification survives restarts: a store last
// verified longer ago than verify_interval is verified at once; a new one
// only after the interval.
func TestAutoVerifyKeepsItsClock(t *testing.T) {
	dir := t.TempDir()
	bs := openTestStore(t, dir)
	s := &store{bs: bs, env: sdk.Env{DataDir: dir}, cfg: defaults()}
	s.cfg.VerifyInterval = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	go s.autoVerify(ctx)
	time.Sleep(200 * time.Millisecond)
	cancel()
	var vc verifyClock
	raw, _ := os.ReadFile(s.verifyFile())
	if err := json.Unmarshal(raw, &vc); err != nil || time.Since(vc.From) > time.Minute || !vc.Last.IsZero() || s.verifies.Load() != 0 {
		t.Fatalf("a new store: clock %s (%v), %d verifications", raw, err, s.verifies.Load())
	}

	s.saveVerifyClock(verifyClock{From: time.Now().Add(-2 * time.Hour)})
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	go s.autoVerify(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for s.verifies.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("a store due for verification was not verified")
		}
		time.Sleep(20 * time.Millisecond)
	}
	raw, _ = os.ReadFile(s.verifyFile())
	if err := json.Unmarshal(raw, &vc); err != nil || time.Since(vc.Last) > time.Minute {
		t.Errorf("after verifying, the clock says %s", raw)
	}
}
