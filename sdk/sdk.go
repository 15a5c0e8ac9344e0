// Package sdk is the Vecino plugin SDK. A plugin implements Plugin and calls
// Serve from its main; the router uses the same package to launch it. The
// wire protocol is pluginapi/v1; APIVersion is part of the go-plugin
// handshake, so a plugin built against another version is refused before any
// call is made.
package sdk

import (
	"context"
	"net/http"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pluginv1 "github.com/vecino/vecino/pluginapi/v1"
)

// APIVersion is the plugin API version this SDK speaks.
const APIVersion = 1

// PluginKey names the one plugin each binary serves in go-plugin's plugin set.
const PluginKey = "vecino"

// Handshake returns the go-plugin handshake for version v. Plugins and the
// router use HandshakeFor(APIVersion); the version is a parameter so that
// tests can build a plugin that speaks another one.
func HandshakeFor(v uint) plugin.HandshakeConfig {
	return plugin.HandshakeConfig{
		ProtocolVersion:  v,
		MagicCookieKey:   "VECINO_PLUGIN",
		MagicCookieValue: "a9f1c0d2-vecino-neighbourhood-node",
	}
}

// Handshake is the handshake for APIVersion.
var Handshake = HandshakeFor(APIVersion)

// Large gRPC windows: streams of bulk data (torrent pieces, store blocks)
// cross the plugin boundary, and the defaults (64 KiB) halve throughput.
const (
	grpcWindow   = 4 << 20
	grpcMaxMsg   = 64 << 20
	grpcSockBuf  = 256 << 10
	streamFrameN = 256 << 10
)

func serverOptions(opts []grpc.ServerOption) []grpc.ServerOption {
	return append(opts,
		grpc.InitialWindowSize(grpcWindow),
		grpc.InitialConnWindowSize(grpcWindow),
		grpc.WriteBufferSize(grpcSockBuf),
		grpc.ReadBufferSize(grpcSockBuf),
		grpc.MaxRecvMsgSize(grpcMaxMsg),
		grpc.MaxSendMsgSize(grpcMaxMsg),
	)
}

// DialOptions are the gRPC options both sides use when they dial each other.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithInitialWindowSize(grpcWindow),
		grpc.WithInitialConnWindowSize(grpcWindow),
		grpc.WithWriteBufferSize(grpcSockBuf),
		grpc.WithReadBufferSize(grpcSockBuf),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(grpcMaxMsg), grpc.MaxCallSendMsgSize(grpcMaxMsg)),
	}
}

// Info describes a plugin to the router.
type Info struct {
	Name        string
	Version     string
	Description string
	// Protocols and Topics the plugin will use; a trailing "*" is a prefix.
	Protocols []string
	Topics    []string
	// PublicPaths take state-changing HTTP requests without the API secret;
	// the plugin authenticates them itself. A trailing "*" is a prefix.
	PublicPaths []string
	// Page says the HTTP handler serves a page for people at "/"; the
	// router's status page links to it.
	Page bool
}

// Env is what the router hands a plugin at Configure.
type Env struct {
	Host    *Host
	DataDir string
	NodeID  string
}

// Status is what a plugin shows on the router's status page.
type Status struct {
	Summary string
	Details map[string]any
}

// Plugin is what a plugin binary implements. The router calls Info, then
// Configure, then Start; Health and Status while it runs; Stop at the end.
// Configure may be called before Start only.
type Plugin interface {
	Info() Info
	// Configure validates the plugin's TOML table and keeps env. Return
	// ConfigErrors to name the keys that are wrong.
	Configure(ctx context.Context, settings []byte, env Env) error
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	Health(ctx context.Context) error
	Status(ctx context.Context) (Status, error)
}

// HTTPPlugin is implemented by plugins that serve part of the router's HTTP
// API, at /api/v1/plugins/NAME/. Requests that change state arrive only after
// the router has checked the caller's token.
type HTTPPlugin interface {
	Plugin
	HTTPHandler() http.Handler
}

// grpcPlugin binds pluginv1 to go-plugin's GRPCPlugin interface. On the
// plugin side impl is set; on the router side it is nil.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	impl Plugin
	stop *stopper
}

func (p *grpcPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	pluginv1.RegisterPluginServer(s, &pluginServer{impl: p.impl, stop: p.stop, broker: broker})
	return nil
}

func (p *grpcPlugin) GRPCClient(_ context.Context, broker *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return &Client{PluginClient: pluginv1.NewPluginClient(conn), broker: broker}, nil
}

// PluginSet is the plugin set the router launches plugins with.
func PluginSet() plugin.PluginSet {
	return plugin.PluginSet{PluginKey: &grpcPlugin{}}
}
