package sdk

import (
	"math/bits"
	"sync"

	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/mem"
)

// TuneGRPC makes gRPC in this process reuse its buffers without zeroing
// them first. grpc-go's public pools clear every buffer they hand out; for
// bulk stream frames that clearing cost more than any other step of the
// bridge (see bench/README.md). Marshalling and reads overwrite every byte
// they ask for, so nothing stale is ever sent. Serve calls it in plugins;
// the router calls it in main.
func TuneGRPC() {
	tuneOnce.Do(func() { experimental.SetDefaultBufferPool(&dirtyPool{}) })
}

var tuneOnce sync.Once

// dirtyPool is a power-of-two tiered mem.BufferPool, 256 B to 4 MiB.
type dirtyPool struct {
	tiers [maxTier + 1]sync.Pool
}

const (
	minTier = 8  // 256 B
	maxTier = 22 // 4 MiB
)

var _ mem.BufferPool = (*dirtyPool)(nil)

func tierOf(n int) int {
	if n <= 1<<minTier {
		return minTier
	}
	return bits.Len(uint(n - 1))
}

func (p *dirtyPool) Get(n int) *[]byte {
	t := tierOf(n)
	if t > maxTier {
		b := make([]byte, n)
		return &b
	}
	if b, ok := p.tiers[t].Get().(*[]byte); ok {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<t)
	return &b
}

func (p *dirtyPool) Put(b *[]byte) {
	c := cap(*b)
	if c < 1<<minTier || c > 1<<maxTier || c&(c-1) != 0 {
		return // not one of ours: let the GC have it
	}
	p.tiers[bits.Len(uint(c))-1].Put(b)
}
