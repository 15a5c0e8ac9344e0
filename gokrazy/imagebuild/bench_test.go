package main

import (
	"testing"
	"time"
)

// BenchmarkBootToRunning boots the VM variant under QEMU (TCG, 2 vCPUs,
// 1 GiB) and reports the seconds from QEMU's start to all three plugins
// `running` in the router's status, the memory in use inside the VM 10 s
// later (MemTotal - MemAvailable), and the image's sizes.
func BenchmarkBootToRunning(b *testing.B) {
	image, res := buildVM(b)
	var boot time.Duration
	var used float64
	for range b.N {
		v := bootVM(b, image)
		v.waitRunning(5 * time.Minute)
		boot += time.Since(v.startedAt)
		b.StopTimer()
		time.Sleep(10 * time.Second)
		st, err := v.status()
		if err != nil {
			b.Fatal(err)
		}
		used += float64(st.System.MemTotalBytes - st.System.MemAvailableBytes)
		v.gokrazyPost("/poweroff")
		v.waitExit(2 * time.Minute)
		b.StartTimer()
	}
	var bins int64
	for _, n := range res.Binaries {
		bins += n
	}
	b.ReportMetric(boot.Seconds()/float64(b.N), "s-to-running")
	b.ReportMetric(used/float64(b.N)/(1<<20), "MiB-in-use")
	b.ReportMetric(mib(res.RootSize), "rootfs-MiB")
	b.ReportMetric(mib(bins), "binaries-MiB")
	for name, n := range res.Binaries {
		b.Logf("%-18s %5.1f MiB", name, mib(n))
	}
}
