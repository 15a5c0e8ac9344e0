package store

import (
	"io"
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkImport256MiB chunks 256 MiB of random data into a block store
// on disk and syncs it: the store's own add path, without HTTP or the
// router. Compare with BenchmarkStoreAddGet1GiB in integration/.
func BenchmarkImport256MiB(b *testing.B) {
	const size = 256 << 20
	for range b.N {
		bs, err := openBlockstore(b.TempDir(), 1<<40)
		if err != nil {
			b.Fatal(err)
		}
		s := &store{bs: bs}
		r := io.LimitReader(rand.NewChaCha8([32]byte{}), size)
		start := time.Now()
		ds := newAsyncAdder(s)
		if _, err := importFile(ds, r); err != nil {
			b.Fatal(err)
		}
		if err := ds.Close(); err != nil {
			b.Fatal(err)
		}
		imported := time.Since(start)
		if err := bs.Sync(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(size/(1<<20)/imported.Seconds(), "import-MiB/s")
		b.ReportMetric(size/(1<<20)/time.Since(start).Seconds(), "with-sync-MiB/s")
	}
}
