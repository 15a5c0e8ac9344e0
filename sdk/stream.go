package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	pluginv1 "github.com/vecino/vecino/pluginapi/v1"
)

// Stream is one libp2p stream, reached through the router. It behaves like a
// libp2p stream: Write, Read, CloseWrite to half-close, Close to finish,
// Reset to abort. Its bytes travel on the router's stream socket when the
// router offers one (conn is set), else as gRPC frames.
type Stream struct {
	peer  string
	proto string

	// Direct mode.
	conn *net.UnixConn

	// Frame mode.
	rpc    pluginv1.Host_StreamClient
	cancel context.CancelFunc
	rmu    sync.Mutex
	rbuf   []byte
	rerr   error
	wmu    sync.Mutex
	closed bool
}

// Peer is the remote peer's ID.
func (s *Stream) Peer() string { return s.peer }

// Protocol is the protocol the stream speaks.
func (s *Stream) Protocol() string { return s.proto }

func (s *Stream) Read(p []byte) (int, error) {
	if s.conn != nil {
		return s.conn.Read(p)
	}
	s.rmu.Lock()
	defer s.rmu.Unlock()
	for len(s.rbuf) == 0 {
		if s.rerr != nil {
			return 0, s.rerr
		}
		f, err := s.rpc.Recv()
		switch {
		case err != nil:
			s.rerr = fmt.Errorf("stream from %s: %w", s.peer, err)
		case f.GetCloseWrite() != nil:
			s.rerr = io.EOF
		default:
			s.rbuf = f.GetData()
		}
	}
	n := copy(p, s.rbuf)
	s.rbuf = s.rbuf[n:]
	return n, nil
}

func (s *Stream) Write(p []byte) (int, error) {
	if s.conn != nil {
		return s.conn.Write(p)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return 0, errors.New("write on closed stream")
	}
	written := 0
	for len(p) > 0 {
		n := min(len(p), streamFrameN)
		// gRPC may hold on to the slice until it is sent: copy.
		chunk := append([]byte(nil), p[:n]...)
		if err := s.rpc.Send(&pluginv1.StreamFrame{Frame: &pluginv1.StreamFrame_Data{Data: chunk}}); err != nil {
			return written, fmt.Errorf("stream to %s: %w", s.peer, err)
		}
		written += n
		p = p[n:]
	}
	return written, nil
}

// CloseWrite tells the peer we will write no more; reading goes on.
func (s *Stream) CloseWrite() error {
	if s.conn != nil {
		return s.conn.CloseWrite()
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.rpc.CloseSend()
}

// Close half-closes, then drains what the peer still sends until the stream
// ends (at most a minute), so that it finishes cleanly on both sides.
func (s *Stream) Close() error {
	err := s.CloseWrite()
	go func() {
		if s.conn != nil {
			s.conn.SetReadDeadline(time.Now().Add(time.Minute))
			io.Copy(io.Discard, s.conn)
			s.conn.Close()
			return
		}
		t := time.AfterFunc(time.Minute, s.cancel)
		defer t.Stop()
		defer s.cancel()
		buf := make([]byte, 32<<10)
		for {
			if _, err := s.Read(buf); err != nil {
				break
			}
		}
		// Wait for the router to end the call: cancelling earlier could
		// overtake our half-close and make the router reset the stream.
		for {
			if _, err := s.rpc.Recv(); err != nil {
				return
			}
		}
	}()
	return err
}

// Reset aborts the stream in both directions. On the stream socket the
// router sees the connection end and resets the libp2p stream when it next
// writes; the peer sees the stream end early.
func (s *Stream) Reset() error {
	if s.conn != nil {
		return s.conn.Close()
	}
	s.cancel()
	return nil
}
