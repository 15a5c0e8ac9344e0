package testnet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// LAN is a local network of two machines that reaches nothing else: two
// network namespaces made for the test, joined by a veth pair, with
// addresses in 10.77.0.0/24 and the multicast range routed onto the link.
// What is sent inside it, multicast included, stays inside it.
type LAN struct {
	NS  [2]string // namespace names
	IP  [2]string // each machine's address
	Dev [2]string // each machine's end of the link
}

// NewLAN makes the two namespaces and removes them when the test ends.
// It needs root and ip(8).
func NewLAN(t testing.TB) *LAN {
	t.Helper()
	NeedTools(t, "ip")
	var b [3]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	l := &LAN{NS: [2]string{"vecA" + id, "vecB" + id}, IP: [2]string{"10.77.0.1", "10.77.0.2"}, Dev: [2]string{"va" + id, "vb" + id}}
	dev := l.Dev
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	for _, ns := range l.NS {
		run("netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	}
	run("link", "add", dev[0], "type", "veth", "peer", "name", dev[1])
	for i, ns := range l.NS {
		run("link", "set", dev[i], "netns", ns)
		run("-n", ns, "addr", "add", l.IP[i]+"/24", "dev", dev[i])
		run("-n", ns, "link", "set", "lo", "up")
		run("-n", ns, "link", "set", dev[i], "up")
		run("-n", ns, "route", "add", "224.0.0.0/4", "dev", dev[i])
	}
	return l
}

// DropIPv4 takes the IPv4 addresses off the link, leaving the IPv6
// link-local addresses every interface has: a network with IPv6 alone.
// It returns once those addresses are usable (duplicate address detection
// over: a program started before would not see them). IP is empty after.
func (l *LAN) DropIPv4(t testing.TB) {
	t.Helper()
	for i, ns := range l.NS {
		if out, err := exec.Command("ip", "-n", ns, "-4", "addr", "flush", "dev", l.Dev[i]).CombinedOutput(); err != nil {
			t.Fatalf("ip -n %s -4 addr flush dev %s: %v %s", ns, l.Dev[i], err, out)
		}
		l.IP[i] = ""
		var out []byte
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			out, _ = exec.Command("ip", "-n", ns, "-6", "addr", "show", "dev", l.Dev[i], "scope", "link").CombinedOutput()
			if strings.Contains(string(out), "fe80::") && !strings.Contains(string(out), "tentative") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no usable IPv6 link-local address on %s in %s:\n%s", l.Dev[i], ns, out)
			}
		}
	}
}

// Link takes the link between the two machines down, or brings it back
// up: a cable pulled, or a Wi-Fi outage.
func (l *LAN) Link(t testing.TB, up bool) {
	t.Helper()
	state := "down"
	if up {
		state = "up"
	}
	for i, ns := range l.NS {
		if out, err := exec.Command("ip", "-n", ns, "link", "set", "dev", l.Dev[i], state).CombinedOutput(); err != nil {
			t.Fatalf("ip -n %s link set dev %s %s: %v %s", ns, l.Dev[i], state, err, out)
		}
	}
}

// Command is name run inside namespace i.
func (l *LAN) Command(i int, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", l.NS[i], name}, args...)...)
}

// Dialer dials from inside network namespace ns: the socket is made on a
// thread moved into it, and keeps to it after. "" is this process's own.
func Dialer(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	if ns == "" {
		return d.DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		ch := make(chan result, 1)
		go func() {
			// The thread is never unlocked: Go ends it with the
			// goroutine, and no other goroutine runs in the namespace.
			runtime.LockOSThread()
			f, err := os.Open("/var/run/netns/" + ns)
			if err != nil {
				ch <- result{nil, err}
				return
			}
			defer f.Close()
			if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
				ch <- result{nil, fmt.Errorf("enter network namespace %s: %w", ns, err)}
				return
			}
			c, err := d.DialContext(ctx, network, addr)
			ch <- result{c, err}
		}()
		r := <-ch
		return r.c, r.err
	}
}

// HTTPClient is an HTTP client that connects from inside namespace ns.
func HTTPClient(ns string) *http.Client {
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DialContext: Dialer(ns)}}
}
