package hostapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/vecino/vecino/config"
	"github.com/vecino/vecino/internal/testnet"
	pluginv1 "github.com/vecino/vecino/pluginapi/v1"
	"github.com/vecino/vecino/router/internal/hostapi"
	"github.com/vecino/vecino/router/internal/p2p"
	"github.com/vecino/vecino/router/internal/supervisor"
	"github.com/vecino/vecino/sdk"
)

// routerNode is a router's host and plugin supervisor, in this process, with
// the echo plugin as a real child process.
type routerNode struct {
	node *p2p.Node
	sup  *supervisor.Supervisor
}

// startRouter starts a router; with direct false it offers no stream socket,
// so stream bytes travel as gRPC frames.
func startRouter(tb testing.TB, log *slog.Logger, withDirect bool) *routerNode {
	tb.Helper()
	cfg := config.Defaults().Network
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.DHT, cfg.RelayService, cfg.HolePunching = "off", false, false
	state := tb.TempDir()
	node, err := p2p.New(cfg, state, log)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { node.Close() })
	data := filepath.Join(state, "plugins", "echo")
	var direct *hostapi.Direct
	socket := ""
	if withDirect {
		direct, err = hostapi.NewDirect(log)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { direct.Close() })
		socket = direct.Path()
	}
	sup := supervisor.New([]supervisor.Spec{{
		Name: "echo", Path: filepath.Join(testnet.Binaries(tb), "echo"), DataDir: data, Enabled: true,
	}}, supervisor.Options{
		NodeID: node.Host.ID().String(), Log: log, StreamSocket: socket,
		Host: func(name string, info *pluginv1.InfoResponse) pluginv1.HostServer {
			return hostapi.New(node, name, info, data, &hostapi.Counters{}, direct, log)
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sup.Run(ctx); close(done) }()
	tb.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(20 * time.Second)
	for sup.Plugin("echo").Client() == nil {
		if time.Now().After(deadline) {
			tb.Fatalf("echo plugin not running: %+v", sup.Plugin("echo").Snapshot())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &routerNode{node: node, sup: sup}
}

const sinkProto = "/vecino/bench/direct-sink/1.0.0"

// sendDirect writes n bytes on a plain libp2p stream to a sink on the other
// host and waits for its count: the same work the echo plugin's /send does.
func sendDirect(ctx context.Context, from *p2p.Node, to peer.ID, n int64) error {
	s, err := from.Host.NewStream(ctx, to, sinkProto)
	if err != nil {
		return err
	}
	defer s.Close()
	buf := make([]byte, 256<<10)
	for left := n; left > 0; {
		k := min(left, int64(len(buf)))
		if _, err := s.Write(buf[:k]); err != nil {
			return err
		}
		left -= k
	}
	s.CloseWrite()
	reply, err := io.ReadAll(s)
	if err != nil {
		return err
	}
	if got, _ := strconv.ParseInt(string(reply), 10, 64); got != n {
		return fmt.Errorf("sink got %s of %d bytes", reply, n)
	}
	return nil
}

func sendBridged(ctx context.Context, from *routerNode, to peer.ID, n int64) error {
	resp, err := from.sup.Plugin("echo").Client().HTTP(ctx, &pluginv1.HTTPRequest{
		Method: "POST", Path: "/send", RawQuery: fmt.Sprintf("peer=%s&bytes=%d", to, n),
	})
	if err != nil {
		return err
	}
	if resp.Status != 200 {
		return fmt.Errorf("send: %d %s", resp.Status, resp.Body)
	}
	var r struct{ Bytes int64 }
	return json.Unmarshal(resp.Body, &r)
}

// BenchmarkStreamBridgedVsDirect moves the same bytes between the same two
// hosts twice per iteration: on a direct libp2p stream, and from the echo
// plugin on one router through both routers to the echo plugin on the other.
// It reports both rates and bridged/direct. Target: ratio >= 0.5.
// The socket case is what the router does; the frames case is what a plugin
// that does not ask for the stream socket gets.
func BenchmarkStreamBridgedVsDirect(b *testing.B) {
	sdk.TuneGRPC() // as router/main.go does
	b.Run("socket", func(b *testing.B) { benchBridge(b, true) })
	b.Run("frames", func(b *testing.B) { benchBridge(b, false) })
}

func benchBridge(b *testing.B, withDirect bool) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, c := startRouter(b, log, withDirect), startRouter(b, log, withDirect)
	c.node.Host.SetStreamHandler(sinkProto, func(s network.Stream) {
		defer s.Close()
		n, _ := io.Copy(io.Discard, s)
		fmt.Fprintf(s, "%d", n)
	})
	ctx := context.Background()
	if err := a.node.Host.Connect(ctx, peer.AddrInfo{ID: c.node.Host.ID(), Addrs: c.node.Host.Addrs()}); err != nil {
		b.Fatal(err)
	}
	const size = 256 << 20
	to := c.node.Host.ID()
	// Warm up both paths once.
	if err := sendDirect(ctx, a.node, to, 8<<20); err != nil {
		b.Fatal(err)
	}
	if err := sendBridged(ctx, a, to, 8<<20); err != nil {
		b.Fatal(err)
	}
	var direct, bridged time.Duration
	b.SetBytes(2 * size)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if err := sendDirect(ctx, a.node, to, size); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := sendBridged(ctx, a, to, size); err != nil {
			b.Fatal(err)
		}
		direct += t1.Sub(t0)
		bridged += time.Since(t1)
	}
	mbps := func(d time.Duration) float64 { return float64(size) * float64(b.N) / d.Seconds() / 1e6 }
	b.ReportMetric(mbps(direct), "direct-MB/s")
	b.ReportMetric(mbps(bridged), "bridged-MB/s")
	b.ReportMetric(direct.Seconds()/bridged.Seconds(), "bridged/direct")
}
