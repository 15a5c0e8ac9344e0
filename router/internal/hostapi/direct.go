package hostapi

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
)

// tokenLen is the size of the one-time token that claims a direct stream.
const tokenLen = 32

// Direct carries stream bytes between plugins and the router on a unix
// socket, outside gRPC. gRPC (with go-plugin's mutual TLS) stays the control
// plane: it hands out a one-time token per stream, and whoever presents the
// token on the socket gets the stream. The socket lives in a 0700 directory,
// so only the router's user can reach it at all. Without this, every byte
// was encrypted three times on its way between two plugins on two nodes
// (bench/README.md).
type Direct struct {
	dir  string
	ln   *net.UnixListener
	log  *slog.Logger
	wg   sync.WaitGroup
	done atomic.Bool

	pending *parking[[tokenLen]byte, parked]
}

// parked is what a token claims: attach gets the plugin's connection;
// expire runs instead if nobody claims it in time (or at Close).
type parked struct {
	attach func(*net.UnixConn)
	expire func()
}

// NewDirect listens on a fresh socket under the system's temporary
// directory (a tmpfs on the appliance).
func NewDirect(log *slog.Logger) (*Direct, error) {
	dir, err := os.MkdirTemp("", "vecino-streams-")
	if err != nil {
		return nil, fmt.Errorf("stream socket dir: %w", err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "streams.sock"), Net: "unix"})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("stream socket: %w", err)
	}
	d := &Direct{dir: dir, ln: ln, log: log, pending: newParking[[tokenLen]byte](attachTimeout, func(p parked) { p.expire() })}
	d.wg.Add(1)
	go d.serve()
	return d, nil
}

// Path is the socket plugins connect to.
func (d *Direct) Path() string { return d.ln.Addr().String() }

// Close stops accepting, resets unclaimed streams and removes the socket.
func (d *Direct) Close() error {
	d.done.Store(true)
	err := d.ln.Close()
	d.wg.Wait()
	d.pending.expireAll()
	os.RemoveAll(d.dir)
	return err
}

// register parks st until a plugin claims it with the returned token.
func (d *Direct) register(st network.Stream, c *Counters) ([]byte, error) {
	return d.Park(func(conn *net.UnixConn) { pipe(conn, st, c) }, func() { st.Reset() })
}

// Park holds attach until a plugin presents the returned token on the
// socket, or runs expire after attachTimeout.
func (d *Direct) Park(attach func(*net.UnixConn), expire func()) ([]byte, error) {
	var tok [tokenLen]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return nil, err
	}
	d.pending.park(tok, parked{attach: attach, expire: expire})
	return tok[:], nil
}

// Forget drops a parked token nobody claimed, before its time is up.
func (d *Direct) Forget(tok []byte) {
	var t [tokenLen]byte
	copy(t[:], tok)
	d.pending.take(t)
}

func (d *Direct) serve() {
	defer d.wg.Done()
	for {
		c, err := d.ln.AcceptUnix()
		if err != nil {
			if !d.done.Load() {
				d.log.Error("stream socket stopped accepting", "err", err)
			}
			return
		}
		go d.handle(c)
	}
}

func (d *Direct) handle(c *net.UnixConn) {
	var tok [tokenLen]byte
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, tok[:]); err != nil {
		c.Close()
		return
	}
	c.SetReadDeadline(time.Time{})
	p, ok := d.pending.take(tok)
	if !ok {
		d.log.Warn("stream socket: unknown or expired token")
		c.Close()
		return
	}
	p.attach(c)
}

// pipe copies both ways, passing half-closes through, until both directions
// are done. A failure either way resets the libp2p stream.
func pipe(c *net.UnixConn, st network.Stream, k *Counters) {
	errc := make(chan error, 2)
	go func() { // plugin -> peer
		_, err := io.CopyBuffer(&counting{w: st, n: &k.BytesOut}, c, make([]byte, 256<<10))
		if err == nil {
			err = st.CloseWrite()
		}
		errc <- err
	}()
	go func() { // peer -> plugin
		_, err := io.CopyBuffer(&counting{w: c, n: &k.BytesIn}, st, make([]byte, 256<<10))
		if err == nil {
			err = c.CloseWrite()
		}
		errc <- err
	}()
	var failed error
	for range 2 {
		if err := <-errc; err != nil && failed == nil {
			failed = err
			st.Reset() // unblocks the other direction
			c.Close()
		}
	}
	if failed == nil {
		st.Close()
		c.Close()
	} else if !errors.Is(failed, net.ErrClosed) {
		slog.Debug("direct stream ended with an error", "peer", st.Conn().RemotePeer().String(), "err", failed)
	}
}

type counting struct {
	w io.Writer
	n *atomic.Uint64
}

func (c *counting) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(uint64(n))
	return n, err
}
