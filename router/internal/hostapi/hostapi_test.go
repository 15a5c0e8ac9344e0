package hostapi_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	pluginv1 "github.com/vecino/vecino/pluginapi/v1"
)

// TestStreamModesCarryTheSameBytes echoes data between the echo plugins of
// two routers, once with stream bytes as gRPC frames and once on the stream
// socket, and checks every byte comes back.
func TestStreamModesCarryTheSameBytes(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, mode := range []struct {
		name   string
		direct bool
	}{{"frames", false}, {"socket", true}} {
		t.Run(mode.name, func(t *testing.T) {
			a, b := startRouter(t, log, mode.direct), startRouter(t, log, mode.direct)
			ctx := context.Background()
			if err := a.node.Host.Connect(ctx, peer.AddrInfo{ID: b.node.Host.ID(), Addrs: b.node.Host.Addrs()}); err != nil {
				t.Fatal(err)
			}
			msg := make([]byte, 5<<20+17)
			rand.Read(msg)
			resp, err := a.sup.Plugin("echo").Client().HTTP(ctx, &pluginv1.HTTPRequest{
				Method: "POST", Path: "/echo", RawQuery: "peer=" + b.node.Host.ID().String(), Body: msg,
			})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != 200 || !bytes.Equal(resp.Body, msg) {
				t.Fatalf("echo: status %d, %d bytes back of %d sent: %.200s", resp.Status, len(resp.Body), len(msg), resp.Body)
			}
			if err := sendBridged(ctx, a, b.node.Host.ID(), 64<<20); err != nil {
				t.Fatalf("send 64 MiB: %v", err)
			}
		})
	}
}
