#!/usr/bin/env bash
# Runs Vecino's benchmarks and prints their figures. Every benchmark talks
# to loopback only. Usage: bash bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CGO_ENABLED=0

echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r), $(go version | cut -d' ' -f3)"
echo "# date: $(date -u +%Y-%m-%dT%H:%MZ)  commit: $(git rev-parse --short HEAD 2>/dev/null || echo none)"

# Router core (issue 2).
go test -run '^$' -bench BenchmarkStreamBridgedVsDirect -benchtime 3x ./router/internal/hostapi/
go test -run '^$' -bench 'Benchmark(IdleMemory|KillToServing)' -benchtime 5x -v ./integration/ |
	grep -v '^=== RUN'
# What a key the node provides keeps on the heap: kad-dht's default map
# against the records file the router gives it.
go test -run '^$' -bench BenchmarkProviderRecordHeap -benchtime 1x -count 2 ./router/internal/dhtstore/
# What reading a bbolt state file through costs a start after a crash or a
# power cut (internal/damaged.Check), for a 36 MiB file.
go test -run '^$' -bench BenchmarkCheck -benchtime 20x ./internal/damaged/
# What the stream-socket token of a request, parked for every GET the
# router proxies to a plugin, leaves on the heap once the request is over.
go test -run '^$' -bench BenchmarkParkedTokenHeap -benchtime 3x ./router/internal/hostapi/

# The gokrazy image (issue 3): boot under QEMU (TCG) to all plugins running,
# memory in use in the VM, sizes.
go test -run '^$' -bench BenchmarkBootToRunning -benchtime 2x -v ./gokrazy/imagebuild/ |
	grep -v '^=== RUN'

# The seedbox (issue 4): Vecino vs transmission-daemon seeding the same
# 1 GiB torrent to aria2c, throughput and the seeder's peak RSS.
go test -run '^$' -bench BenchmarkSeed1GiB -benchtime 1x -timeout 30m ./integration/ |
	grep -v '^=== RUN'
# Making a torrent of 1 GiB: Vecino's making vs transmission-create.
go test -run '^$' -bench BenchmarkMakeTorrent1GiB -benchtime 3x ./integration/ |
	grep -v '^=== RUN'

# Chat (issue 5): 1 KiB messages through three nodes, throughput and
# latency, three times (on a shared 2-core VM one run swings by a fifth);
# the plugin's RSS with 10,000 stored messages and 1,000 clients.
go test -run '^$' -bench 'BenchmarkChatThreeNodes' -benchtime 1x -count 3 -v ./integration/ |
	grep -v '^=== RUN'
go test -run '^$' -bench 'BenchmarkChatMemory' -benchtime 1x -v ./integration/ |
	grep -v '^=== RUN'
# What one node spends on a message: checking one, reading a page of 200,
# taking a bundle of 16 from the network.
go test -run '^$' -bench 'BenchmarkParseRoom|BenchmarkReadPage|BenchmarkReceiveBundle' -count 3 ./plugins/chat/...

# Storage (issue 6): the same 1 GiB file added to Vecino and to kubo v0.40.1
# and read back, throughput and peak RSS of the store plugin and of kubo.
go test -run '^$' -bench BenchmarkStoreAddGet1GiB -benchtime 2x -timeout 30m ./integration/ |
	grep -v '^=== RUN'
go test -run '^$' -bench BenchmarkImport256MiB -benchtime 3x ./plugins/store/
# The gateway: a 256 MiB file whole and by 64 ranges, the node's /ipfs/
# against kubo's gateway.
go test -run '^$' -bench BenchmarkGateway256MiB -benchtime 2x ./integration/ |
	grep -v '^=== RUN'
# What the store keeps on its heap per file added and unpinned (about 0).
go test -run '^$' -bench BenchmarkStoreHeapPerFile -benchtime 1x -v ./integration/ |
	grep -v '^=== RUN'

# The node left running under a steady mixed load (chat, store, torrent,
# pages): PSS, live heap (from each process's profile), open files and
# the router's goroutines over time.
# VECINO_SOAK=1h for a long run; the default is 2 minutes.
go test -run '^$' -bench BenchmarkSoak -benchtime 1x -timeout 3h -v ./integration/ |
	grep -v '^=== RUN'
