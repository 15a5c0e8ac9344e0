package integration

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/vecino/vecino/internal/testnet"
)

// natted is a libp2p peer that listens on nothing, as a phone behind NAT:
// it can dial out but nobody can dial it.
func natted(t *testing.T) host.Host {
	h, err := libp2p.New(libp2p.NoListenAddrs, libp2p.EnableRelay(), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// TestDeviceBehindNATIsReachableThroughRelay: a device that cannot be dialled
// reserves a slot on the node (circuit relay v2) and another peer reaches
// it through the node. A circuit carries at most the configured data, a
// peer is in at most the configured circuits at once, and the node grants
// at most the configured reservations per IP address, refusing the next
// with an error the device sees.
func TestDeviceBehindNATIsReachableThroughRelay(t *testing.T) {
	n := testnet.Start(t, testnet.Options{Name: "relay", Plugins: map[string]string{"chat": ""}, Network: `relay_service = true

[network.relay]
max_reservations_per_ip = 2
max_circuits = 2
circuit_data_kib = 512
`})
	ai, err := peer.AddrInfoFromString(n.TCPAddr())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	phone := natted(t)
	if err := phone.Connect(ctx, *ai); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Reserve(ctx, phone, *ai); err != nil {
		t.Fatalf("reserve a slot on the node: %v", err)
	}
	phone.SetStreamHandler("/vecino-test/hello/1", func(s network.Stream) {
		s.Write([]byte("hello from behind the NAT"))
		s.Close()
	})
	// bulk/1 sends as many KiB as the asker says (one byte: KiB / 64).
	phone.SetStreamHandler("/vecino-test/bulk/1", func(s network.Stream) {
		var kib [1]byte
		if _, err := io.ReadFull(s, kib[:]); err == nil {
			s.Write(make([]byte, int(kib[0])*64<<10))
		}
		s.Close()
	})

	friend := natted(t)
	circuit := ma.StringCast(strings.Split(n.TCPAddr(), "/p2p/")[0] + "/p2p/" + n.ID + "/p2p-circuit")
	if err := friend.Connect(ctx, peer.AddrInfo{ID: phone.ID(), Addrs: []ma.Multiaddr{circuit}}); err != nil {
		t.Fatalf("dial the phone through the node: %v", err)
	}
	s, err := friend.NewStream(network.WithAllowLimitedConn(ctx, "relay test"), phone.ID(), "/vecino-test/hello/1")
	if err != nil {
		t.Fatalf("open a stream to the phone through the node: %v", err)
	}
	got, err := io.ReadAll(s)
	if err != nil || string(got) != "hello from behind the NAT" {
		t.Fatalf("read through the relay: %q, %v", got, err)
	}
	// The relay carries at most circuit_data_kib (512 KiB here; 128 by
	// default) each way on one circuit: 256 KiB come through, then a
	// megabyte is cut off.
	bulk := func(units byte) (int64, error) {
		s, err := friend.NewStream(network.WithAllowLimitedConn(ctx, "relay test"), phone.ID(), "/vecino-test/bulk/1")
		if err != nil {
			return 0, err
		}
		defer s.Close()
		s.Write([]byte{units})
		return io.Copy(io.Discard, s)
	}
	if n, err := bulk(4); n != 256<<10 || err != nil {
		t.Fatalf("256 KiB through a circuit allowed 512 KiB: got %d bytes, %v", n, err)
	}
	if n, err := bulk(16); n >= 1<<20 || err == nil {
		t.Fatalf("a megabyte through a circuit allowed 512 KiB: got %d bytes, %v", n, err)
	}

	// A peer takes part in at most max_circuits circuits at once (2 here;
	// the megabyte above ended the first): a third friend is refused.
	var friends []host.Host
	for i := range 3 {
		f := natted(t)
		err := f.Connect(ctx, peer.AddrInfo{ID: phone.ID(), Addrs: []ma.Multiaddr{circuit}})
		if i < 2 && err != nil {
			t.Fatalf("circuit %d of 2 to the phone: %v", i+1, err)
		}
		if i == 2 && (err == nil || !strings.Contains(err.Error(), "RESOURCE_LIMIT_EXCEEDED")) {
			t.Fatalf("a third circuit to the phone: %v, want RESOURCE_LIMIT_EXCEEDED", err)
		}
		friends = append(friends, f)
	}
	t.Logf("third circuit refused")
	friends[0].Close() // a slot frees when a circuit ends
	fourth := natted(t)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		fourth.Network().(*swarm.Swarm).Backoff().Clear(phone.ID()) // retry now
		err := fourth.Connect(ctx, peer.AddrInfo{ID: phone.ID(), Addrs: []ma.Multiaddr{circuit}})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no circuit once one of the two ended: %v", err)
		}
	}

	// Every peer here comes from 127.0.0.1: the second reservation is the
	// last one the node grants that address.
	second := natted(t)
	second.Connect(ctx, *ai)
	if _, err := client.Reserve(ctx, second, *ai); err != nil {
		t.Fatalf("second reservation from 127.0.0.1: %v", err)
	}
	third := natted(t)
	third.Connect(ctx, *ai)
	_, err = client.Reserve(ctx, third, *ai)
	if err == nil || !strings.Contains(err.Error(), "RESERVATION_REFUSED") {
		t.Fatalf("third reservation from one address: %v, want RESERVATION_REFUSED", err)
	}
	t.Logf("third reservation refused: %v", err)
}
