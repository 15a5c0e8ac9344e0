package p2p

import (
	"fmt"

	"github.com/libp2p/go-libp2p"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

// resourceLimits scales libp2p's default limits to maxMiB, or to the
// machine (an eighth of RAM) when maxMiB is 0. Below 128 MiB libp2p uses its
// base limits, which is what a 1 GiB Raspberry Pi gets.
func resourceLimits(maxMiB int) (rcmgr.Limiter, error) {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	var scaled rcmgr.ConcreteLimitConfig
	if maxMiB > 0 {
		scaled = limits.Scale(int64(maxMiB)<<20, 1024)
	} else {
		scaled = limits.AutoScale()
	}
	if scaled.ToPartialLimitConfig().System.Memory == 0 {
		return nil, fmt.Errorf("resource limits: scaled to no memory")
	}
	return rcmgr.NewFixedLimiter(scaled), nil
}
