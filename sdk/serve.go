package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/vecino/vecino/internal/profiles"
	pluginv1 "github.com/vecino/vecino/pluginapi/v1"
)

// Serve runs p as a Vecino plugin. It blocks until the router ends the
// process; call it last in main.
func Serve(p Plugin) {
	ServeVersion(p, APIVersion)
}

// ServeVersion serves with the handshake of another API version. Only tests
// that check the router refuses a mismatched plugin need it.
func ServeVersion(p Plugin, version uint) {
	slog.SetDefault(NewLogger(os.Stderr, slog.LevelDebug))
	TuneGRPC()
	stop := newStopper(p)
	handleSIGTERM(stop)
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: HandshakeFor(version),
		// go-plugin's own chatter stays out of the router's log.
		Logger:  hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: os.Stderr, JSONFormat: true}),
		Plugins: plugin.PluginSet{PluginKey: &grpcPlugin{impl: p, stop: stop}},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(serverOptions(opts)...)
		},
	})
}

// KeyError names one wrong key in a plugin's table.
type KeyError struct {
	Key     string
	Message string
}

// ConfigErrors is returned by Configure when keys are wrong.
type ConfigErrors []KeyError

func (e ConfigErrors) Error() string {
	parts := make([]string, len(e))
	for i, k := range e {
		parts[i] = fmt.Sprintf("key %s: %s", k.Key, k.Message)
	}
	return strings.Join(parts, "; ")
}

type pluginServer struct {
	pluginv1.UnimplementedPluginServer
	impl   Plugin
	stop   *stopper
	broker *plugin.GRPCBroker

	mu     sync.Mutex
	conn   *grpc.ClientConn
	http   http.Handler
	socket string // the router's stream socket
}

func (s *pluginServer) Info(context.Context, *pluginv1.InfoRequest) (*pluginv1.InfoResponse, error) {
	i := s.impl.Info()
	return &pluginv1.InfoResponse{
		Name: i.Name, Version: i.Version, Description: i.Description,
		ApiVersion: APIVersion, Protocols: i.Protocols, Topics: i.Topics,
		PublicPaths: i.PublicPaths, HttpBodySocket: true, HttpBodyInline: true, Page: i.Page,
	}, nil
}

func (s *pluginServer) Configure(ctx context.Context, req *pluginv1.ConfigureRequest) (*pluginv1.ConfigureResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		conn, err := s.broker.DialWithOptions(req.HostBrokerId, DialOptions()...)
		if err != nil {
			return nil, fmt.Errorf("dial router host service: %w", err)
		}
		s.conn = conn
	}
	s.socket = req.StreamSocket
	host := &Host{c: pluginv1.NewHostClient(s.conn), streamSocket: req.StreamSocket}
	env := Env{Host: host, DataDir: req.DataDir, NodeID: req.NodeId}
	err := s.impl.Configure(ctx, []byte(req.Toml), env)
	var kerrs ConfigErrors
	switch {
	case errors.As(err, &kerrs):
		resp := &pluginv1.ConfigureResponse{}
		for _, k := range kerrs {
			resp.Errors = append(resp.Errors, &pluginv1.KeyError{Key: k.Key, Message: k.Message})
		}
		return resp, nil
	case err != nil:
		return nil, err
	}
	h := http.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, noHTTPText, http.StatusNotFound)
	}))
	if hp, ok := s.impl.(HTTPPlugin); ok {
		h = hp.HTTPHandler()
	}
	// Every plugin serves its process's profiles to requests the router
	// authenticated; see internal/profiles.
	s.http = profiles.Handler(h, func(r *http.Request) bool { return r.Header.Get(AuthenticatedHeader) == "1" })
	return &pluginv1.ConfigureResponse{}, nil
}

func (s *pluginServer) Start(ctx context.Context, _ *pluginv1.StartRequest) (*pluginv1.StartResponse, error) {
	return &pluginv1.StartResponse{}, s.impl.Start(ctx)
}

func (s *pluginServer) Stop(ctx context.Context, _ *pluginv1.StopRequest) (*pluginv1.StopResponse, error) {
	return &pluginv1.StopResponse{}, s.stop.stop(ctx)
}

func (s *pluginServer) Health(ctx context.Context, _ *pluginv1.HealthRequest) (*pluginv1.HealthResponse, error) {
	if err := s.impl.Health(ctx); err != nil {
		return &pluginv1.HealthResponse{Ok: false, Message: err.Error()}, nil
	}
	return &pluginv1.HealthResponse{Ok: true}, nil
}

func (s *pluginServer) Status(ctx context.Context, _ *pluginv1.StatusRequest) (*pluginv1.StatusResponse, error) {
	st, err := s.impl.Status(ctx)
	if err != nil {
		return nil, err
	}
	details, err := structpb.NewStruct(jsonSafe(st.Details))
	if err != nil {
		return nil, fmt.Errorf("status details: %w", err)
	}
	return &pluginv1.StatusResponse{Summary: st.Summary, Details: details}, nil
}

// jsonSafe turns the values structpb refuses (typed slices and maps,
// structs) into the JSON values they stand for, which it takes.
func jsonSafe(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = jsonValue(v)
	}
	return out
}

func jsonValue(v any) any {
	if _, err := structpb.NewValue(v); err == nil {
		return v
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	var out any
	json.Unmarshal(b, &out)
	return out
}

func (s *pluginServer) handler() http.Handler {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.http
}

const noHTTPText = "this plugin serves no HTTP API"

var noHTTP = &pluginv1.HTTPResponse{Status: http.StatusNotFound, Body: []byte(noHTTPText + "\n")}

func (s *pluginServer) HTTP(ctx context.Context, req *pluginv1.HTTPRequest) (*pluginv1.HTTPResponse, error) {
	h := s.handler()
	if h == nil {
		return noHTTP, nil
	}
	hr, err := newHTTPRequest(ctx, req, bytes.NewReader(req.Body))
	if err != nil {
		return &pluginv1.HTTPResponse{Status: http.StatusBadRequest, Body: []byte(err.Error())}, nil
	}
	w := &responseWriter{header: http.Header{}}
	h.ServeHTTP(w, hr)
	return &pluginv1.HTTPResponse{Status: int32(w.status()), Body: w.body.Bytes(), Headers: headerList(w.header)}, nil
}

// newHTTPRequest rebuilds the request the router forwarded.
func newHTTPRequest(ctx context.Context, req *pluginv1.HTTPRequest, body io.Reader) (*http.Request, error) {
	url := req.Path
	if req.RawQuery != "" {
		url += "?" + req.RawQuery
	}
	hr, err := http.NewRequestWithContext(ctx, req.Method, url, body)
	if err != nil {
		return nil, err
	}
	for _, hd := range req.Headers {
		for _, v := range hd.Values {
			hr.Header.Add(hd.Name, v)
		}
	}
	if req.Authenticated {
		hr.Header.Set(AuthenticatedHeader, "1")
	} else {
		hr.Header.Del(AuthenticatedHeader)
	}
	return hr, nil
}

// headerList is h in a stable order.
func headerList(h http.Header) []*pluginv1.Header {
	names := make([]string, 0, len(h))
	for name := range h {
		names = append(names, name)
	}
	sort.Strings(names)
	out := make([]*pluginv1.Header, 0, len(names))
	for _, name := range names {
		out = append(out, &pluginv1.Header{Name: name, Values: h[name]})
	}
	return out
}

// RemoteAddrHeader carries the address the HTTP request came from, set by
// the router (a client's own value is replaced).
const RemoteAddrHeader = "X-Vecino-Remote-Addr"

// AuthenticatedHeader is set on requests the router authenticated.
const AuthenticatedHeader = "X-Vecino-Authenticated"

type responseWriter struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (w *responseWriter) Header() http.Header { return w.header }

func (w *responseWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.body.Write(b)
}

func (w *responseWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *responseWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}
