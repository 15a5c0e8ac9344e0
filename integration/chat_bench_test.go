package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
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

// benchPostMessages posts raws to the lobby, one message or, as a bundle,
// many, and returns how many the node took.
func benchPostMessages(n *testnet.Node, raws [][]byte, bundle bool) (int, error) {
	body := raws[0]
	if bundle {
		body = append(append([]byte{'['}, bytes.Join(raws, []byte{','})...), ']')
	}
	resp, err := benchHTTP.Post(n.API+chatAPI+"/rooms/lobby/messages", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	defer func() {
		io.Copy(io.Discard, resp.Body) // read to the end, the connection is used again
		resp.Body.Close()
	}()
	if resp.StatusCode != http.StatusAccepted {
		return 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	if !bundle {
		return 1, nil
	}
	var out struct{ Accepted int }
	err = json.NewDecoder(resp.Body).Decode(&out)
	return out.Accepted, err
}

// padded is a 1 KiB text that starts with the time it was written.
func padded(at time.Time, who string, i int) string {
	s := fmt.Sprintf("%d %s %d ", at.UnixNano(), who, i)
	return s + strings.Repeat("x", 1024-len(s))
}

// chatLoad is one phase of BenchmarkChatThreeNodes: what was sent, what
// arrived, and how long each took.
type chatLoad struct {
	sent, refused int64
	lat           []time.Duration // sorted
	took          time.Duration   // first send to last arrival
	// validating is the share of the phase that node 2's and node 3's
	// routers spent waiting for their chat plugin's verdicts: gossipsub
	// validates one message at a time, so near 1 means messages queue.
	validating [2]float64
}

func (l *chatLoad) pct(p float64) float64 {
	return float64(l.lat[int(p*float64(len(l.lat)-1))]) / 1e6
}

func (l *chatLoad) rate() float64 { return float64(len(l.lat)) / l.took.Seconds() }

// runChatLoad has 32 clients on nodes[0] sign and post total 1 KiB
// messages, up to perRequest to a request (a bundle, when more than one),
// as fast as the node takes them or, with perSecond > 0, due at that many
// a second in all, while a client long-polling nodes[2] records when each
// arrives: latency is from the moment its sender signed it, as it sent it.
// Bounded by count and by time.
func runChatLoad(b *testing.B, nodes []*testnet.Node, tag string, total, perRequest int, perSecond float64) *chatLoad {
	const senders, limit = 32, 60 * time.Second
	var start uint64 // the room's last cursor on node 3: read past what is there
	for msgs, next := readRoom(b, nodes[2], "lobby", 0, 0); len(msgs) > 0; msgs, next = readRoom(b, nodes[2], "lobby", next, 0) {
		start = next
	}
	res := &chatLoad{}
	var last time.Time
	done := make(chan struct{})
	go func() { // the receiver on node 3
		defer close(done)
		cur := start
		deadline := time.Now().Add(limit + 10*time.Second)
		for len(res.lat) < total && time.Now().Before(deadline) {
			msgs, next := readRoom(b, nodes[2], "lobby", cur, 5)
			now := time.Now()
			for _, m := range msgs {
				if sent, err := strconv.ParseInt(strings.Fields(m.Text)[0], 10, 64); err == nil && strings.Contains(m.Text, " "+tag+" ") {
					res.lat = append(res.lat, now.Sub(time.Unix(0, sent)))
					last = now
				}
			}
			cur = next
		}
	}()

	validated := func() (v [2]float64) {
		for i, n := range nodes[1:3] {
			v[i] = routerMetrics(b, n, `vecino_plugin_pubsub_validation_seconds_total{plugin="chat"}`)[0]
		}
		return v
	}
	before := validated()
	first := time.Now()
	var sent, refused atomic.Int64
	var wg sync.WaitGroup
	for s := range senders {
		c := newChatter(b, nodes[0])
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Message i is due at once when flat out, else at
			// i/perSecond. A sender posts what is due and not yet sent, up
			// to perRequest, as a client with an outbox does, signing each
			// as it goes: latency counts from there, as in every phase (a
			// message that waited in the sender for its previous post to be
			// answered does not count that wait).
			due := func(i int) time.Time {
				if perSecond == 0 {
					return time.Now()
				}
				return first.Add(time.Duration(float64(i) / perSecond * float64(time.Second)))
			}
			var raws [][]byte
			for i := s; i < total && time.Since(first) < limit; raws = raws[:0] {
				time.Sleep(time.Until(due(i)))
				for ; i < total && len(raws) < perRequest && !due(i).After(time.Now()); i += senders {
					c.seq++
					now := time.Now()
					raw, _ := c.id.SignRoom("lobby", c.seq, now, padded(now, tag, i))
					raws = append(raws, raw)
				}
				taken, err := benchPostMessages(nodes[0], raws, perRequest > 1)
				sent.Add(int64(taken))
				refused.Add(int64(len(raws) - taken))
				if err != nil {
					b.Logf("post: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	<-done
	res.sent, res.refused, res.took = sent.Load(), refused.Load(), last.Sub(first)
	after, took := validated(), time.Since(first)
	for i := range after {
		res.validating[i] = (after[i] - before[i]) / took.Seconds()
	}
	slices.Sort(res.lat)
	if len(res.lat) == 0 {
		b.Fatalf("%s: no message reached node 3 (%d sent, %d refused)", tag, res.sent, res.refused)
	}
	return res
}

// BenchmarkChatThreeNodes: 1 KiB messages through three nodes, first as
// fast as node 1 takes them, one message a request (throughput, and latency
// when every queue is full), then paced at a steady 1,000 a second
// (latency under a load the nodes carry), then flat out again with each
// client posting bundles of 16 (the network's own capacity, with less of
// the clients' HTTP in it), then due at 4,000 a second and sent as they
// come due, up to 16 a request (latency at 80 % of that capacity).
// Targets: >= 5,000 msg/s, p99 < 50 ms.
func BenchmarkChatThreeNodes(b *testing.B) {
	const paced, perBundle, busyRate = 1000.0, 16, 4000.0
	for range b.N {
		b.StopTimer()
		nodes := startChatNodes(b, 3, roomyChat+"\nhistory = 100000")
		waitMesh(b, "lobby", nodes...)
		relayBefore := heapFigures(b, nodes[1], "")
		b.StartTimer()
		full := runChatLoad(b, nodes, "flat-out", 20000, 1, 0)
		b.StopTimer()
		steady := runChatLoad(b, nodes, "steady", 5000, 1, paced)
		bundled := runChatLoad(b, nodes, "bundled", 40000, perBundle, 0)
		busy := runChatLoad(b, nodes, "busy", 20000, perBundle, busyRate)

		b.ReportMetric(full.rate(), "msg/s")
		b.ReportMetric(full.pct(0.50), "p50-ms")
		b.ReportMetric(full.pct(0.99), "p99-ms")
		b.ReportMetric(float64(int64(len(full.lat))-full.sent), "lost")
		b.ReportMetric(steady.pct(0.50), "paced-p50-ms")
		b.ReportMetric(steady.pct(0.99), "paced-p99-ms")
		b.ReportMetric(bundled.rate(), "bundled-msg/s")
		b.ReportMetric(bundled.pct(0.99), "bundled-p99-ms")
		b.ReportMetric(busy.pct(0.99), "busy-p99-ms")
		b.Logf("1 KiB messages through 3 nodes, flat out: %d sent to node 1 (%d refused), %d arrived at node 3 in %.1fs: %.0f msg/s, p50 %.1f ms, p99 %.1f ms (targets >= 5000 msg/s, p99 < 50 ms)",
			full.sent, full.refused, len(full.lat), full.took.Seconds(), full.rate(), full.pct(0.5), full.pct(0.99))
		b.Logf("paced at %.0f msg/s: %d sent (%d refused), %d arrived: p50 %.1f ms, p90 %.1f, p95 %.1f, p99 %.1f ms, max %.1f",
			paced, steady.sent, steady.refused, len(steady.lat), steady.pct(0.5), steady.pct(0.9), steady.pct(0.95), steady.pct(0.99), steady.pct(1))
		b.Logf("flat out, %d messages a request: %d sent (%d refused), %d arrived in %.1fs: %.0f msg/s, p50 %.1f ms, p99 %.1f ms",
			perBundle, bundled.sent, bundled.refused, len(bundled.lat), bundled.took.Seconds(), bundled.rate(), bundled.pct(0.5), bundled.pct(0.99))
		b.Logf("due at %.0f msg/s, sent as they come due (up to %d a request): %d sent (%d refused), %d arrived: p50 %.1f ms, p90 %.1f, p99 %.1f ms, max %.1f",
			busyRate, perBundle, busy.sent, busy.refused, len(busy.lat), busy.pct(0.5), busy.pct(0.9), busy.pct(0.99), busy.pct(1))
		for _, l := range []struct {
			name string
			load *chatLoad
		}{{"flat out", full}, {"paced", steady}, {"bundled", bundled}, {"due at 4000/s", busy}} {
			b.Logf("%s: the routers of nodes 2 and 3 waited for verdicts %.0f%% and %.0f%% of the time", l.name, 100*l.load.validating[0], 100*l.load.validating[1])
		}
		// What node 2's router keeps once the load is over, past the 10 s a
		// validation sent ahead may wait: nothing of the 85,000 messages
		// should stay.
		time.Sleep(12 * time.Second)
		relayAfter := heapFigures(b, nodes[1], "")
		b.ReportMetric(float64(relayAfter.heap)/(1<<20), "relay-router-heap-MiB")
		b.Logf("node 2's router: live heap %.1f MiB before the load, %.1f MiB 12 s after it", float64(relayBefore.heap)/(1<<20), float64(relayAfter.heap)/(1<<20))
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
					if _, err := benchPostMessages(n, [][]byte{raw}, false); err != nil {
						b.Errorf("store message %d: %v", i, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		idle, _ := readMemory(n.Status().Plugin("chat").PID)
		routerIdle, _ := readMemory(n.PID())
		db, err := os.Stat(filepath.Join(n.State, "plugins/chat/chat.db"))
		if err != nil {
			b.Fatal(err)
		}

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
		// The router holds the 1,000 connections and proxies each poll.
		rm, err := readMemory(n.PID())
		if err != nil {
			b.Fatal(err)
		}
		close(stop)
		// One last message releases every long poll.
		newChatter(b, n).say("lobby", "good night")
		pollers.Wait()
		b.ReportMetric(float64(m.rss)/(1<<20), "RSS-MiB")
		b.ReportMetric(float64(m.pss)/(1<<20), "PSS-MiB")
		b.ReportMetric(float64(rm.pss)/(1<<20), "router-PSS-MiB")
		b.ReportMetric(float64(db.Size())/stored, "disk-B/msg")
		mib := func(v int64) float64 { return float64(v) / (1 << 20) }
		b.Logf("chat plugin with %d stored 1 KiB messages: RSS %.1f (PSS %.1f) MiB with no client, %.1f (PSS %.1f) MiB with %d clients waiting (%d connected at the reading)",
			stored, mib(idle.rss), mib(idle.pss), mib(m.rss), mib(m.pss), clients, connected)
		b.Logf("chat.db: %.1f MiB, %.0f bytes a stored message", mib(db.Size()), float64(db.Size())/stored)
		b.Logf("router meanwhile: RSS %.1f (PSS %.1f) MiB with no client, %.1f (PSS %.1f) MiB with the clients waiting",
			mib(routerIdle.rss), mib(routerIdle.pss), mib(rm.rss), mib(rm.pss))
		n.Stop()
	}
}
