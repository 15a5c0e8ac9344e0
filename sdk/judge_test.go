package sdk

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	pluginv1 "github.com/vecino/vecino/pluginapi/v1"
)

// JudgeAll must check messages several at a time, take them in the order
// they came, and answer each under its own validation ID.
func TestJudgeAllChecksAtOnceTakesInOrder(t *testing.T) {
	const n = 64
	in := make(chan *pluginv1.PubsubMessage, n)
	for i := range n {
		in <- &pluginv1.PubsubMessage{Data: fmt.Appendf(nil, "%d", i), ValidationId: uint64(100 + i)}
	}
	close(in)
	host := &verdictHost{got: map[uint64]pluginv1.Verdict{}}
	sub := &Subscription{ctx: context.Background(), c: host, rpc: &feed{in: in}}
	var inCheck, most atomic.Int32
	var taken []string
	err := JudgeAll(sub, func(m Message) string {
		now := inCheck.Add(1)
		defer inCheck.Add(-1)
		for old := most.Load(); now > old && !most.CompareAndSwap(old, now); old = most.Load() {
		}
		time.Sleep(2 * time.Millisecond)
		return "checked " + string(m.Data)
	}, func(m Message, t string) Verdict {
		taken = append(taken, t)
		if len(m.Data)%2 == 0 {
			return Reject
		}
		return Accept
	})
	if err != io.EOF {
		t.Fatalf("JudgeAll ended with %v, want the subscription's end (EOF)", err)
	}
	if most.Load() < 2 {
		t.Errorf("at most %d message was checked at a time", most.Load())
	}
	for i, s := range taken {
		if want := fmt.Sprintf("checked %d", i); s != want {
			t.Fatalf("take %d had %q, want %q: out of order", i, s, want)
		}
	}
	if len(taken) != n || len(host.got) != n {
		t.Fatalf("%d taken, %d verdicts, of %d", len(taken), len(host.got), n)
	}
	for i := range n {
		want := pluginv1.Verdict_VERDICT_ACCEPT
		if len(fmt.Sprint(i))%2 == 0 {
			want = pluginv1.Verdict_VERDICT_REJECT
		}
		if v := host.got[uint64(100+i)]; v != want {
			t.Errorf("message %d: verdict %v, want %v", i, v, want)
		}
	}
}

// feed is a subscription's stream, from a channel.
type feed struct {
	grpc.ClientStream
	in chan *pluginv1.PubsubMessage
}

func (f *feed) Recv() (*pluginv1.PubsubMessage, error) {
	m, ok := <-f.in
	if !ok {
		return nil, io.EOF
	}
	return m, nil
}

// verdictHost records the verdicts a plugin gives.
type verdictHost struct {
	pluginv1.HostClient
	mu  sync.Mutex
	got map[uint64]pluginv1.Verdict
}

func (h *verdictHost) Verdict(_ context.Context, req *pluginv1.VerdictRequest, _ ...grpc.CallOption) (*pluginv1.VerdictResponse, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.got[req.ValidationId] = req.Verdict
	return &pluginv1.VerdictResponse{}, nil
}
