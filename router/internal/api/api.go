// Package api is the router's HTTP face: the status page, the JSON API, the
// Prometheus metrics, and each plugin's API proxied under
// /api/v1/plugins/NAME/. Requests that change state need the API token.
package api

import (
	"context"
	_ "embed"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vecino/vecino/config"
	"github.com/vecino/vecino/internal/httpjson"
	"github.com/vecino/vecino/internal/profiles"
	pluginv1 "github.com/vecino/vecino/pluginapi/v1"
	"github.com/vecino/vecino/router/internal/hostapi"
	"github.com/vecino/vecino/router/internal/p2p"
	"github.com/vecino/vecino/router/internal/supervisor"
)

//go:embed status.html
var statusPage []byte

// ConfigState says which configuration the node runs on.
type ConfigState struct {
	File          string `json:"file"`
	UsingLastGood bool   `json:"using_last_good"`
	// Error is why the file was refused, when UsingLastGood.
	Error string `json:"error,omitempty"`
	// Editable is where PUT /api/v1/config saves; empty when the node runs
	// on its built-in configuration.
	Editable string `json:"editable,omitempty"`
	// Reload is what became of the last reload (SIGHUP), if any.
	Reload *ReloadState `json:"reload,omitempty"`
}

// ReloadState is the outcome of reading the configuration file again
// while the node runs.
type ReloadState struct {
	Count int    `json:"count"` // reloads since the router started
	At    int64  `json:"at"`    // Unix seconds
	File  string `json:"file"`
	// Error is why the file was refused: the node runs on as it was.
	Error string `json:"error,omitempty"`
	// Applied is what took effect at once: the plugins restarted with
	// new settings, and [network] allow_peers if it changed (ApplyNow);
	// AtNextStart the sections that changed and apply when the router
	// starts again.
	Applied     []string `json:"applied,omitempty"`
	AtNextStart []string `json:"at_next_start,omitempty"`
}

// Server serves the API.
type Server struct {
	Name     string
	Version  string
	Node     *p2p.Node
	Plugins  *supervisor.Supervisor
	Counters map[string]*hostapi.Counters
	// Direct, when set, carries large HTTP bodies to and from plugins that
	// take them on the stream socket.
	Direct *hostapi.Direct
	Config ConfigState
	// configMu guards Config's Reload, set while the API serves.
	configMu sync.Mutex
	// CheckPlugins judges plugins' own tables in a file PUT to
	// /api/v1/config (nil: the router's keys alone).
	CheckPlugins config.PluginChecker
	Auth         *Auth
	Log          *slog.Logger
	StartedAt    time.Time
}

// Status is the document at GET /api/v1/status.
type Status struct {
	Node     NodeStatus     `json:"node"`
	Peers    int            `json:"peers"`
	PeerList []PeerStatus   `json:"peer_list"`
	Config   ConfigState    `json:"config"`
	System   SystemStatus   `json:"system"`
	Plugins  []PluginStatus `json:"plugins"`
}

type NodeStatus struct {
	ID      string   `json:"id"`
	Name    string   `json:"name"`
	Version string   `json:"version"`
	Addrs   []string `json:"addrs"`
	UptimeS int64    `json:"uptime_s"`
	DHT     bool     `json:"dht"`
	// DHTPeers is the size of each DHT's routing table: "wan", the public
	// IPFS DHT, and "lan", the peers on private networks.
	DHTPeers map[string]int `json:"dht_peers,omitempty"`
}

type PeerStatus struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
}

type PluginStatus struct {
	Name      string `json:"name"`
	State     string `json:"state"`
	Restarts  int    `json:"restarts"`
	PID       int    `json:"pid"`
	UptimeS   int64  `json:"uptime_s"`
	LastError string `json:"last_error"`
	Version   string `json:"version,omitempty"`
	Summary   string `json:"summary,omitempty"`
	// Page is where the plugin's own page is, if it has one.
	Page    string         `json:"page,omitempty"`
	Details map[string]any `json:"details,omitempty"`
	Network NetworkUse     `json:"network"`
	Logs    []string       `json:"logs"`
}

// NetworkUse is what a plugin did through the router.
type NetworkUse struct {
	BytesIn     uint64 `json:"bytes_in"`
	BytesOut    uint64 `json:"bytes_out"`
	StreamsIn   uint64 `json:"streams_in"`
	StreamsOut  uint64 `json:"streams_out"`
	MessagesIn  uint64 `json:"messages_in"`
	MessagesOut uint64 `json:"messages_out"`
	Refused     uint64 `json:"refused"`
}

// Handler returns the API's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(statusPage)
	})
	mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, r *http.Request) {
		httpjson.Write(w, http.StatusOK, s.Status(r.Context()))
	})
	mux.Handle("GET /metrics", s.metricsHandler())
	mux.HandleFunc("GET /api/v1/config", s.getConfig)
	mux.HandleFunc("PUT /api/v1/config", s.putConfig)
	mux.HandleFunc("POST /api/v1/restart/{plugin}", s.restart)
	mux.HandleFunc("/api/v1/plugins/{plugin}/{path...}", s.proxy)
	// Transmission's clients look for its RPC at /transmission/rpc, and
	// many cannot be told another path: it is the torrent plugin's.
	mux.HandleFunc("/transmission/rpc", s.transmissionRPC)
	mux.HandleFunc("/transmission/rpc/", s.transmissionRPC)
	// Web clients made for that RPC live at /transmission/web/ and find
	// it at ../rpc (the plugin's web_home).
	mux.HandleFunc("GET /transmission/web/{rest...}", func(w http.ResponseWriter, r *http.Request) {
		s.proxyTo(w, r, "torrent", "transmission/web/"+r.PathValue("rest"))
	})
	mux.Handle("GET /transmission/web", http.RedirectHandler("/transmission/web/", http.StatusMovedPermanently))
	// And /ipfs/ is where browsers and IPFS tools look for a gateway:
	// the store plugin's.
	mux.HandleFunc("GET /ipfs/{rest...}", func(w http.ResponseWriter, r *http.Request) {
		s.proxyTo(w, r, "store", "ipfs/"+r.PathValue("rest"))
	})
	return s.Auth.Guard(profiles.Handler(mux, s.Auth.Check), s.publicPluginPath)
}

// transmissionRPC hands /transmission/rpc to the torrent plugin's
// .../transmission/rpc.
func (s *Server) transmissionRPC(w http.ResponseWriter, r *http.Request) {
	s.proxyTo(w, r, "torrent", "transmission/rpc")
}

// proxyTo hands r to plugin's path, for the paths other software looks
// for a plugin's service at.
func (s *Server) proxyTo(w http.ResponseWriter, r *http.Request, plugin, path string) {
	r.SetPathValue("plugin", plugin)
	r.SetPathValue("path", path)
	s.proxy(w, r)
}

// publicPluginPath lets through, without the secret, writes to the paths a
// plugin declared public (it checks their signatures itself).
func (s *Server) publicPluginPath(r *http.Request) bool {
	rest, ok := strings.CutPrefix(r.URL.Path, "/api/v1/plugins/")
	if !ok {
		return false
	}
	name, path, _ := strings.Cut(rest, "/")
	p := s.Plugins.Plugin(name)
	return p != nil && !strings.Contains(path, "..") && p.PublicPath("/"+path)
}

// Status gathers the node's status, asking each running plugin for its own.
func (s *Server) Status(ctx context.Context) Status {
	h := s.Node.Host
	st := Status{
		Node: NodeStatus{
			ID: h.ID().String(), Name: s.Name, Version: s.Version,
			UptimeS: int64(time.Since(s.StartedAt).Seconds()), DHT: s.Node.DHT != nil,
			DHTPeers: s.Node.DHTPeers(),
		},
		Config:   s.configState(),
		System:   readSystem(),
		PeerList: []PeerStatus{},
		Plugins:  []PluginStatus{},
	}
	for _, a := range h.Addrs() {
		st.Node.Addrs = append(st.Node.Addrs, a.String()+"/p2p/"+h.ID().String())
	}
	for _, c := range h.Network().Conns() {
		st.PeerList = append(st.PeerList, PeerStatus{ID: c.RemotePeer().String(), Addr: c.RemoteMultiaddr().String()})
	}
	sort.Slice(st.PeerList, func(i, j int) bool { return st.PeerList[i].ID < st.PeerList[j].ID })
	st.Peers = len(h.Network().Peers())
	for _, p := range s.Plugins.Plugins() {
		st.Plugins = append(st.Plugins, s.pluginStatus(ctx, p))
	}
	return st
}

func (s *Server) pluginStatus(ctx context.Context, p *supervisor.Plugin) PluginStatus {
	snap := p.Snapshot()
	ps := PluginStatus{
		Name: snap.Name, State: string(snap.State), Restarts: snap.Restarts, PID: snap.PID,
		LastError: snap.LastError, Version: snap.Version, Logs: snap.Logs,
	}
	if ps.Logs == nil {
		ps.Logs = []string{}
	}
	if !snap.StartedAt.IsZero() {
		ps.UptimeS = int64(time.Since(snap.StartedAt).Seconds())
	}
	if c := s.Counters[snap.Name]; c != nil {
		ps.Network = NetworkUse{
			BytesIn: c.BytesIn.Load(), BytesOut: c.BytesOut.Load(),
			StreamsIn: c.StreamsIn.Load(), StreamsOut: c.StreamsOut.Load(),
			MessagesIn: c.MessagesIn.Load(), MessagesOut: c.MessagesOut.Load(),
			Refused: c.Refused.Load(),
		}
	}
	if client := p.Client(); client != nil {
		if p.Info().GetPage() {
			ps.Page = "/api/v1/plugins/" + snap.Name + "/"
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if r, err := client.Status(cctx, &pluginv1.StatusRequest{}); err == nil {
			ps.Summary = r.Summary
			ps.Details = r.Details.AsMap()
		} else {
			ps.Summary = "status unavailable: " + err.Error()
		}
	}
	return ps
}

func (s *Server) restart(w http.ResponseWriter, r *http.Request) {
	p := s.Plugins.Plugin(r.PathValue("plugin"))
	if p == nil {
		httpjson.Error(w, http.StatusNotFound, fmt.Errorf("no plugin %q", r.PathValue("plugin")))
		return
	}
	if p.Snapshot().State == supervisor.Disabled {
		httpjson.Error(w, http.StatusConflict, fmt.Errorf("plugin %q is disabled in the configuration", r.PathValue("plugin")))
		return
	}
	p.Restart()
	httpjson.Write(w, http.StatusAccepted, map[string]string{"plugin": r.PathValue("plugin"), "action": "restart"})
}

func (s *Server) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), &collector{s: s})
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
