package hostapi_test

import (
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/vecino/vecino/internal/testnet"
	"github.com/vecino/vecino/router/internal/hostapi"
)

// BenchmarkParkedTokenHeap is the heap a token leaves behind once it is
// forgotten: the proxy parks one for every request whose body may go on
// the stream socket (every GET, every long poll) and forgets it when the
// request is over, mostly long before the token would expire. Reported
// per token, live after a collection, with 10,000 forgotten.
func BenchmarkParkedTokenHeap(b *testing.B) {
	const n = 10000
	d, err := hostapi.NewDirect(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	var per float64
	for range b.N {
		before := testnet.LiveHeap()
		for range n {
			tok, err := d.Park(func(c *net.UnixConn) { c.Close() }, func() {})
			if err != nil {
				b.Fatal(err)
			}
			d.Forget(tok)
		}
		per = float64(int64(testnet.LiveHeap())-int64(before)) / n
	}
	b.ReportMetric(per, "heap-B/forgotten-token")
}
