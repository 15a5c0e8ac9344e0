package api

// The proxy: requests under /api/v1/plugins/NAME/ go to that plugin over
// the plugin API, in one of three ways by what the request carries and
// what the plugin offers (HTTPStream with a small body inline, with the
// bodies on the stream socket, or as frames), or by the unary call for
// plugins that predate HTTPStream.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vecino/vecino/internal/httpjson"
	pluginv1 "github.com/vecino/vecino/pluginapi/v1"
	"github.com/vecino/vecino/sdk"
)

// maxUnaryBody bounds a request body forwarded to a plugin that has only
// the unary HTTP call (plugins built before HTTPStream).
const maxUnaryBody = 1 << 20

// proxyFrame is the size of the body frames the router sends a plugin.
const proxyFrame = 256 << 10

// proxy forwards a request under /api/v1/plugins/NAME/ to that plugin with
// its body and response streamed, so a 1 GiB upload or download holds no
// more than a few frames in the router.
func (s *Server) proxy(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("plugin")
	p := s.Plugins.Plugin(name)
	if p == nil {
		httpjson.Error(w, http.StatusNotFound, fmt.Errorf("no plugin %q", name))
		return
	}
	client := p.Client()
	if client == nil {
		httpjson.Error(w, http.StatusServiceUnavailable, fmt.Errorf("plugin %q is %s", name, p.Snapshot().State))
		return
	}
	req := &pluginv1.HTTPRequest{
		Method: r.Method, Path: "/" + r.PathValue("path"), RawQuery: r.URL.RawQuery,
		Authenticated: s.Auth.Check(r),
	}
	for k, v := range r.Header {
		if k == "Authorization" || k == "Cookie" {
			continue // the router's secret stays with the router
		}
		if k == sdk.RemoteAddrHeader {
			continue
		}
		req.Headers = append(req.Headers, &pluginv1.Header{Name: k, Values: v})
	}
	req.Headers = append(req.Headers, &pluginv1.Header{Name: sdk.RemoteAddrHeader, Values: []string{r.RemoteAddr}})
	info := p.Info()
	if r.ContentLength >= 0 && r.ContentLength <= maxInlineBody && info.GetHttpBodyInline() {
		s.proxyInline(w, r, client, name, req, s.Direct != nil && info.GetHttpBodySocket())
		return
	}
	if s.Direct != nil && info.GetHttpBodySocket() {
		s.proxySocket(w, r, client, name, req)
		return
	}
	// The first MiB is read ahead: if that is the whole body, a plugin
	// without HTTPStream can still be served by the unary call.
	head, err := io.ReadAll(io.LimitReader(r.Body, maxUnaryBody+1))
	if err != nil {
		httpjson.Error(w, http.StatusBadRequest, fmt.Errorf("read request body: %w", err))
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	rpc, err := openHTTPStream(ctx, client, req)
	if err != nil {
		httpjson.Error(w, http.StatusBadGateway, fmt.Errorf("plugin %q: %w", name, err))
		return
	}
	go sendBody(rpc, io.MultiReader(bytes.NewReader(head), r.Body))
	f, err := rpc.Recv()
	if status.Code(err) == codes.Unimplemented && len(head) <= maxUnaryBody {
		req.Body = head
		s.proxyUnary(w, r, client, name, req)
		return
	}
	copyFrames(w, rpc, f, err, name, req.Path)
}

func openHTTPStream(ctx context.Context, client *sdk.Client, req *pluginv1.HTTPRequest) (pluginv1.Plugin_HTTPStreamClient, error) {
	rpc, err := client.HTTPStream(ctx)
	if err == nil {
		err = rpc.Send(&pluginv1.HTTPFrame{Frame: &pluginv1.HTTPFrame_Request{Request: req}})
	}
	return rpc, err
}

// writeHead answers with the plugin's response head, or with the error
// that took its place; it reports whether a body may follow.
func writeHead(w http.ResponseWriter, name string, f *pluginv1.HTTPFrame, err error) bool {
	if err == nil && f.GetResponse() == nil {
		err = errors.New("answered without a response head")
	}
	if err != nil {
		httpjson.Error(w, http.StatusBadGateway, fmt.Errorf("plugin %q: %w", name, err))
		return false
	}
	resp := f.GetResponse()
	for _, h := range resp.Headers {
		for _, v := range h.Values {
			w.Header().Add(h.Name, v)
		}
	}
	w.WriteHeader(int(resp.Status))
	w.Write(resp.Body)
	return true
}

// maxInlineBody bounds a request body sent inline with its request.
const maxInlineBody = 64 << 10

// proxyInline is proxy for a small request body of known length, or none:
// it goes whole in the request frame, and the response comes back as
// frames, or, when socket is set and the plugin finds the response large,
// on the stream socket.
func (s *Server) proxyInline(w http.ResponseWriter, r *http.Request, client *sdk.Client, name string, req *pluginv1.HTTPRequest, socket bool) {
	req.Body = make([]byte, r.ContentLength)
	if _, err := io.ReadFull(r.Body, req.Body); err != nil {
		httpjson.Error(w, http.StatusBadRequest, fmt.Errorf("read request body: %w", err))
		return
	}
	req.BodyInline = true
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	var connc <-chan *net.UnixConn
	if socket {
		tok, c, release, err := s.parkConn()
		if err != nil {
			httpjson.Error(w, http.StatusInternalServerError, err)
			return
		}
		defer release()
		req.BodyToken, connc = tok, c
	}
	rpc, err := openHTTPStream(ctx, client, req)
	if err == nil {
		err = rpc.CloseSend()
	}
	if err != nil {
		httpjson.Error(w, http.StatusBadGateway, fmt.Errorf("plugin %q: %w", name, err))
		return
	}
	f, err := rpc.Recv()
	if !f.GetResponse().GetBodyOnSocket() {
		copyFrames(w, rpc, f, err, name, req.Path)
		return
	}
	if !writeHead(w, name, f, err) {
		return
	}
	select {
	case conn, ok := <-connc:
		if ok {
			defer conn.Close()
			stop := context.AfterFunc(ctx, func() { conn.Close() })
			defer stop()
			copyResponse(w, conn)
		}
	case <-ctx.Done():
	}
}

// parkConn parks a token for the stream socket: the plugin's connection
// comes on the channel, which is closed if the token expires unclaimed.
// release, once the request is over, drops the token and closes a
// connection that came (or comes) too late, so that the plugin's writes on
// it fail rather than wait.
func (s *Server) parkConn() (tok []byte, connc <-chan *net.UnixConn, release func(), err error) {
	var mu sync.Mutex
	over := false
	c := make(chan *net.UnixConn, 1)
	tok, err = s.Direct.Park(func(conn *net.UnixConn) {
		mu.Lock()
		defer mu.Unlock()
		if over {
			conn.Close()
			return
		}
		c <- conn
	}, func() { close(c) })
	if err != nil {
		return nil, nil, nil, err
	}
	release = func() {
		s.Direct.Forget(tok)
		mu.Lock()
		defer mu.Unlock()
		over = true
		select {
		case conn, ok := <-c:
			if ok {
				conn.Close()
			}
		default:
		}
	}
	return tok, c, release, nil
}

// copyFrames answers with the plugin's response as it comes in frames,
// from the head (the first frame, f, or the error in its place) on.
func copyFrames(w http.ResponseWriter, rpc pluginv1.Plugin_HTTPStreamClient, f *pluginv1.HTTPFrame, err error, name, path string) {
	if !writeHead(w, name, f, err) {
		return
	}
	resp := f.GetResponse()
	if resp.GetComplete() {
		return // whole: net/http sends it with its length, in one write
	}
	rc := http.NewResponseController(w)
	if len(resp.GetBody()) > 0 {
		rc.Flush() // the first piece of a response that goes on
	}
	for {
		f, err := rpc.Recv()
		if err != nil {
			if err != io.EOF {
				slog.Warn("plugin response cut short", "plugin", name, "path", path, "err", err)
			}
			return
		}
		if _, err := w.Write(f.GetBody()); err != nil {
			return // the client went away; cancel ends the plugin's side
		}
		rc.Flush()
	}
}

// proxySocket is proxy with both bodies on the stream socket: gRPC carries
// the request and response heads, the socket the bytes, unencrypted and
// unframed, between two processes of the same user on the same machine.
func (s *Server) proxySocket(w http.ResponseWriter, r *http.Request, client *sdk.Client, name string, req *pluginv1.HTTPRequest) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	tok, connc, release, err := s.parkConn()
	if err != nil {
		httpjson.Error(w, http.StatusInternalServerError, err)
		return
	}
	defer release()
	req.BodyToken = tok
	rpc, err := openHTTPStream(ctx, client, req)
	if err != nil {
		httpjson.Error(w, http.StatusBadGateway, fmt.Errorf("plugin %q: %w", name, err))
		return
	}
	type head struct {
		f   *pluginv1.HTTPFrame
		err error
	}
	headc := make(chan head, 1)
	go func() {
		f, err := rpc.Recv()
		headc <- head{f, err}
	}()
	// The plugin connects before it answers; if it fails first, say so.
	var conn *net.UnixConn
	var h *head
	for conn == nil {
		select {
		case c, ok := <-connc:
			if !ok {
				httpjson.Error(w, http.StatusBadGateway, fmt.Errorf("plugin %q did not take the request body", name))
				return
			}
			conn = c
		case got := <-headc:
			if got.err != nil {
				writeHead(w, name, got.f, got.err)
				return
			}
			h, headc = &got, nil
		case <-ctx.Done():
			return
		}
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	go func() {
		// The end of the body is said on gRPC: a socket closed early (the
		// client went away) must not look like a complete upload.
		if err := copyBody(conn, r); err == nil && conn.CloseWrite() == nil {
			rpc.Send(&pluginv1.HTTPFrame{Frame: &pluginv1.HTTPFrame_End{End: &pluginv1.CloseWrite{}}})
		}
	}()
	if h == nil {
		got := <-headc
		h = &got
	}
	if !writeHead(w, name, h.f, h.err) {
		return
	}
	copyResponse(w, conn)
}

// Buffers for bodies on the stream socket. A request holds one only while
// it copies, and most requests are small: a message posted, a long poll
// waiting for its answer. So a copy starts with a small buffer and takes a
// large pooled one only when a read fills the small one (an upload, a
// download): a thousand waiting long polls hold 4 MiB, not 256 MiB, and a
// thousand small posts a second make next to no garbage.
const smallFrame = 4 << 10

var (
	smallBufs = sync.Pool{New: func() any { return new([smallFrame]byte) }}
	largeBufs = sync.Pool{New: func() any { return new([proxyFrame]byte) }}
)

// copyBody copies r's body to the plugin.
func copyBody(conn *net.UnixConn, r *http.Request) error {
	if r.ContentLength == 0 {
		return nil // no body (a GET, say): only its end to say
	}
	return copyGrowing(conn, r.Body, nil)
}

// copyResponse copies the plugin's response to w, flushing each piece as
// it comes (long polls, progress reports), until the plugin closes it or
// the client goes away.
func copyResponse(w http.ResponseWriter, conn *net.UnixConn) {
	rc := http.NewResponseController(w)
	copyGrowing(w, conn, func() { rc.Flush() })
}

// copyGrowing copies src to dst through a small buffer, then a large one
// once a read fills the small one; flushed, if set, runs after each write.
func copyGrowing(dst io.Writer, src io.Reader, flushed func()) error {
	small := smallBufs.Get().(*[smallFrame]byte)
	buf := small[:]
	var large *[proxyFrame]byte
	defer func() {
		smallBufs.Put(small)
		if large != nil {
			largeBufs.Put(large)
		}
	}()
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
			if flushed != nil {
				flushed()
			}
			if n == len(buf) && large == nil {
				large = largeBufs.Get().(*[proxyFrame]byte)
				buf = large[:]
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// sendBody streams a request body to the plugin, then marks its end.
func sendBody(rpc pluginv1.Plugin_HTTPStreamClient, body io.Reader) {
	for {
		buf := make([]byte, proxyFrame) // gRPC may hold on to it until sent
		n, err := io.ReadFull(body, buf)
		if n > 0 {
			if rpc.Send(&pluginv1.HTTPFrame{Frame: &pluginv1.HTTPFrame_Body{Body: buf[:n]}}) != nil {
				return
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			rpc.Send(&pluginv1.HTTPFrame{Frame: &pluginv1.HTTPFrame_End{End: &pluginv1.CloseWrite{}}})
			return
		}
		if err != nil {
			return // the plugin sees the call end without an end frame
		}
	}
}

func (s *Server) proxyUnary(w http.ResponseWriter, r *http.Request, client *sdk.Client, name string, req *pluginv1.HTTPRequest) {
	resp, err := client.HTTP(r.Context(), req)
	writeHead(w, name, &pluginv1.HTTPFrame{Frame: &pluginv1.HTTPFrame_Response{Response: resp}}, err)
}
