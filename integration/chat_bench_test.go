package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vecino/vecino/internal/testnet"
)

// benchHTTP keeps connections open, as a busy client would.
var benchHTTP = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1100, MaxConnsPerHost: 0}, Timeout: time.Minute}

func benchPost(n *testnet.Node, path string, body []byte) (int, error) {
	resp, err := benchHTTP.Post(n.API+chatAPI+path, "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// padded is a 1 KiB text that starts with the time it was written.
func padded(at time.Time, who string, i int) string {
	s := fmt.Sprintf("%d %s %d ", at.UnixNano(), who, i)
	return s + strings.Repeat("x", 1024-len(s))
}

// BenchmarkChatThreeNodes: 32 clients on node 1 send 1 KiB messages as fast
// as the node takes them; a client long-polling on node 3 measures how many
// arrive a second and how long each took, from the moment its sender signed
// it. Targets: >= 5,000 msg/s, p99 < 50 ms.
func BenchmarkChatThreeNodes(b *testing.B) {
	const senders, total, limit = 32, 20000, 60 * time.Second
	for range b.N {
		b.StopTimer()
		nodes := startChatNodes(b, 3, roomyChat+"\nhistory = 100000")
		waitMesh(b, "lobby", nodes...)
		_, start := readRoom(b, nodes[2], "lobby", 0, 0)

		var lat []time.Duration
		var first, last time.Time
		done := make(chan struct{})
		go func() { // the receiver on node 3
			defer close(done)
			cur := start
			deadline := time.Now().Add(limit + 10*time.Second)
			for len(lat) < total && time.Now().Before(deadline) {
				msgs, next := readRoom(b, nodes[2], "lobby", cur, 5)
				now := time.Now()
				for _, m := range msgs {
					if sent, err := strconv.ParseInt(strings.Fields(m.Text)[0], 10, 64); err == nil && strings.Contains(m.Text, " bench ") {
						lat = append(lat, now.Sub(time.Unix(0, sent)))
						last = now
					}
				}
				cur = next
			}
		}()

		b.StartTimer()
		first = time.Now()
		var sent, refused atomic.Int64
		var wg sync.WaitGroup
		for s := range senders {
			c := newChatter(b, nodes[0])
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := s; i < total && time.Since(first) < limit; i += senders {
					c.seq++
					now := time.Now()
					raw, _ := c.id.SignRoom("lobby", c.seq, now, padded(now, "bench", i))
					if code, err := benchPost(nodes[0], "/rooms/lobby/messages", raw); err != nil || code != http.StatusAccepted {
						refused.Add(1)
						continue
					}
					sent.Add(1)
				}
			}()
		}
		wg.Wait()
		<-done
		b.StopTimer()

		slices.Sort(lat)
		if len(lat) == 0 {
			b.Fatalf("no message reached node 3 (%d sent, %d refused)", sent.Load(), refused.Load())
		}
		pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / 1e6 }
		rate := float64(len(lat)) / last.Sub(first).Seconds()
		b.ReportMetric(rate, "msg/s")
		b.ReportMetric(pct(0.50), "p50-ms")
		b.ReportMetric(pct(0.99), "p99-ms")
		b.ReportMetric(float64(int64(len(lat))-sent.Load()), "lost")
		b.Logf("1 KiB messages through 3 nodes: %d sent to node 1 (%d refused), %d arrived at node 3 in %.1fs: %.0f msg/s, p50 %.1f ms, p99 %.1f ms (targets >= 5000 msg/s, p99 < 50 ms)",
			sent.Load(), refused.Load(), len(lat), last.Sub(first).Seconds(), rate, pct(0.5), pct(0.99))
		for _, n := range nodes {
			n.Stop()
		}
	}
}

// BenchmarkChatMemory: one node holding 10,000 stored 1 KiB messages while
// 1,000 clients are connected, each waiting on a long poll. Reports the chat
// plugin's RSS.
func BenchmarkChatMemory(b *testing.B) {
	const stored, clients = 10000, 1000
	for range b.N {
		b.StopTimer()
		n := testnet.Start(b, testnet.Options{Name: "chat-mem", Plugins: map[string]string{"chat": roomyChat + "\nhistory = 20000"}})
		n.WaitPlugin("chat", 20*time.Second, testnet.Running)
		var wg sync.WaitGroup
		for s := range 16 {
			c := newChatter(b, n)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := s; i < stored; i += 16 {
					c.seq++
					raw, _ := c.id.SignRoom("lobby", c.seq, time.Now(), padded(time.Now(), "mem", i))
					if code, err := benchPost(n, "/rooms/lobby/messages", raw); err != nil || code != http.StatusAccepted {
						b.Errorf("store message %d: %d %v", i, code, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		idle, _ := readMemory(n.Status().Plugin("chat").PID)

		var rooms []struct {
			Last uint64 `json:"last_cursor"`
		}
		if code, body, err := n.Do("GET", chatAPI+"/rooms", nil, false); err != nil || code != 200 || json.Unmarshal(body, &rooms) != nil || len(rooms) != 1 {
			b.Fatalf("rooms: %d %v %s", code, err, body)
		}
		cur := rooms[0].Last
		var waiting atomic.Int64
		stop := make(chan struct{})
		var pollers sync.WaitGroup
		for range clients {
			pollers.Add(1)
			go func() {
				defer pollers.Done()
				// Its own connection: 1,000 sockets, as 1,000 phones.
				cl := &http.Client{Transport: &http.Transport{}, Timeout: time.Minute}
				defer cl.CloseIdleConnections()
				for range 3 {
					waiting.Add(1)
					resp, err := cl.Get(fmt.Sprintf("%s%s/rooms/lobby/messages?after=%d&wait=30", n.API, chatAPI, cur))
					waiting.Add(-1)
					if err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
					select {
					case <-stop:
						return
					default:
					}
				}
			}()
		}
		deadline := time.Now().Add(30 * time.Second)
		for waiting.Load() < clients && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(3 * time.Second)
		connected := waiting.Load()
		m, err := readMemory(n.Status().Plugin("chat").PID)
		if err != nil {
			b.Fatal(err)
		}
		close(stop)
		// One last message releases every long poll.
		newChatter(b, n).say("lobby", "good night")
		pollers.Wait()
		b.ReportMetric(float64(m.rss)/(1<<20), "RSS-MiB")
		b.ReportMetric(float64(m.pss)/(1<<20), "PSS-MiB")
		b.Logf("chat plugin with %d stored 1 KiB messages: RSS %.1f (PSS %.1f) MiB with no client, %.1f (PSS %.1f) MiB with %d clients waiting (%d connected at the reading)",
			stored, float64(idle.rss)/(1<<20), float64(idle.pss)/(1<<20), float64(m.rss)/(1<<20), float64(m.pss)/(1<<20), clients, connected)
		n.Stop()
	}
}
