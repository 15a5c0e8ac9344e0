package sdk

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"

	pluginv1 "github.com/vecino/vecino/pluginapi/v1"
)

// HTTPStream serves one request whose body and response are streamed, so
// that uploads and downloads of any size pass through the router with
// bounded memory on both sides: as frames, or, when the router sends a
// body token, on its stream socket (no framing, no TLS, one copy less).
func (s *pluginServer) HTTPStream(rpc pluginv1.Plugin_HTTPStreamServer) error {
	f, err := rpc.Recv()
	if err != nil {
		return err
	}
	req := f.GetRequest()
	if req == nil {
		return errors.New("http stream: first frame is not a request")
	}
	h := s.handler()
	if h == nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(int(noHTTP.Status))
			w.Write(noHTTP.Body)
		})
	}
	w := &streamWriter{rpc: rpc, header: http.Header{}}
	s.mu.Lock()
	socket := s.socket
	s.mu.Unlock()
	var body io.ReadCloser
	switch {
	case req.BodyInline:
		body = io.NopCloser(bytes.NewReader(req.Body))
		if req.BodyToken != nil {
			// The socket is there for a large response: claimed only if
			// the response outgrows one frame before it ends or flushes.
			w.claim = func() (*net.UnixConn, error) { return claimSocket(rpc.Context(), socket, req.BodyToken) }
			defer w.closeClaimed()
		}
	case req.BodyToken != nil:
		conn, err := claimSocket(rpc.Context(), socket, req.BodyToken)
		if err != nil {
			return fmt.Errorf("http body: %w", err)
		}
		defer conn.Close()
		body, w.direct = &socketBody{conn: conn, end: waitEnd(rpc)}, conn
	default:
		pr, feed := io.Pipe()
		go feedBody(rpc, feed)
		body = pr
	}
	defer body.Close()
	hr, err := newHTTPRequest(rpc.Context(), req, body)
	if err != nil {
		resp := &pluginv1.HTTPResponse{Status: http.StatusBadRequest, Body: []byte(err.Error())}
		return rpc.Send(&pluginv1.HTTPFrame{Frame: &pluginv1.HTTPFrame_Response{Response: resp}})
	}
	h.ServeHTTP(w, hr)
	w.flush(true)
	return w.err
}

// socketBody is a request body read from the stream socket. Its end is
// the socket's EOF confirmed by the end frame on gRPC; EOF without it (the
// router gave up on the client) is an error, not a short body.
type socketBody struct {
	conn io.Reader
	end  <-chan error
}

func (b *socketBody) Read(p []byte) (int, error) {
	n, err := b.conn.Read(p)
	if err == io.EOF {
		if eerr := <-b.end; eerr != nil {
			return n, fmt.Errorf("request body cut short: %w", eerr)
		}
	}
	return n, err
}

func (b *socketBody) Close() error { return nil }

// waitEnd reports the end frame (nil) or the call's failure.
func waitEnd(rpc pluginv1.Plugin_HTTPStreamServer) <-chan error {
	c := make(chan error, 1)
	go func() {
		f, err := rpc.Recv()
		if err == nil && f.GetEnd() == nil {
			err = errors.New("unexpected frame")
		}
		c <- err
		close(c)
	}()
	return c
}

// feedBody passes the request body frames to the handler's reader.
func feedBody(rpc pluginv1.Plugin_HTTPStreamServer, feed *io.PipeWriter) {
	for {
		f, err := rpc.Recv()
		switch {
		case err != nil:
			feed.CloseWithError(fmt.Errorf("request body: %w", err))
			return
		case f.GetEnd() != nil:
			feed.Close()
			return
		case f.GetBody() != nil:
			if _, err := feed.Write(f.GetBody()); err != nil {
				return // the handler stopped reading
			}
		}
	}
}

// streamWriter sends a response as frames. The head waits for the first
// flush, for a frame's worth of body (streamFrameN bytes) or for the end,
// and carries what is buffered by then: a small response is one frame,
// marked complete. Then the body goes in pieces of up to streamFrameN
// bytes; Flush sends what is buffered (long polls and progress reports use
// it). With claim set, a response that outgrows one frame claims the
// stream socket and the head says the body follows there. With direct set
// (the request came on the socket) the head goes at once and the body
// straight to the socket: the router reads the socket only once it has
// the head.
type streamWriter struct {
	rpc    pluginv1.Plugin_HTTPStreamServer
	direct io.Writer // the body goes here instead, when set
	header http.Header
	sent   bool // the status is decided
	held   bool // ... but the head is not sent yet
	status int
	buf    []byte
	err    error

	claim   func() (*net.UnixConn, error)
	claimed *net.UnixConn
}

func (w *streamWriter) Header() http.Header { return w.header }

func (w *streamWriter) WriteHeader(code int) {
	if w.sent {
		return
	}
	w.sent, w.status = true, code
	if w.direct != nil {
		w.sendHead(nil, false, false)
		return
	}
	w.held = true
}

// sendHead sends the response head: with body (the first of it, or all
// of it when complete), or saying the body follows on the socket.
func (w *streamWriter) sendHead(body []byte, complete, onSocket bool) {
	w.held = false
	resp := &pluginv1.HTTPResponse{Status: int32(w.status), Headers: headerList(w.header), Body: body, Complete: complete, BodyOnSocket: onSocket}
	w.send(&pluginv1.HTTPFrame{Frame: &pluginv1.HTTPFrame_Response{Response: resp}})
}

func (w *streamWriter) Write(p []byte) (int, error) {
	if !w.sent {
		w.WriteHeader(http.StatusOK)
	}
	if w.direct != nil {
		if w.err != nil {
			return 0, w.err
		}
		n, err := w.direct.Write(p)
		w.err = err
		return n, err
	}
	n := len(p)
	for len(p) > 0 && w.err == nil {
		k := min(len(p), streamFrameN-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		if len(w.buf) == streamFrameN {
			if w.held && w.claim != nil {
				w.toSocket()
				if w.direct != nil { // the rest goes on the socket
					m, err := w.Write(p)
					return n - len(p) + m, err
				}
			}
			w.Flush()
		}
	}
	if w.err != nil {
		return 0, w.err
	}
	return n, nil
}

// toSocket claims the stream socket for a response that outgrew a frame,
// sends the head saying so and moves what is buffered there. If the
// socket cannot be had, the response goes on as frames.
func (w *streamWriter) toSocket() {
	conn, err := w.claim()
	if err != nil {
		return
	}
	w.claimed = conn
	w.sendHead(nil, false, true)
	if w.err == nil {
		_, w.err = conn.Write(w.buf)
	}
	w.buf, w.direct = nil, conn
}

func (w *streamWriter) Flush() { w.flush(false) }

// flush sends what is buffered. last says the handler is done: a head
// still held then goes with the whole body, marked complete.
func (w *streamWriter) flush(last bool) {
	if !w.sent {
		w.WriteHeader(http.StatusOK)
	}
	body := w.buf
	w.buf = nil // gRPC may hold on to the slice until it is sent
	switch {
	case w.held:
		w.sendHead(body, last, false)
	case len(body) > 0:
		w.send(&pluginv1.HTTPFrame{Frame: &pluginv1.HTTPFrame_Body{Body: body}})
	}
}

// closeClaimed ends a response sent on a claimed socket: the router reads
// it to EOF.
func (w *streamWriter) closeClaimed() {
	if w.claimed != nil {
		w.claimed.Close()
	}
}

func (w *streamWriter) send(f *pluginv1.HTTPFrame) {
	if w.err == nil {
		w.err = w.rpc.Send(f)
	}
}
