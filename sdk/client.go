package sdk

import (
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pluginv1 "github.com/vecino/vecino/pluginapi/v1"
)

// Client is the router's handle on one running plugin.
type Client struct {
	pluginv1.PluginClient
	broker *plugin.GRPCBroker
}

// ServeHost serves the Host service to the plugin through the go-plugin
// broker and returns the broker ID to pass in ConfigureRequest. It stops when
// the plugin's connection closes.
func (c *Client) ServeHost(host pluginv1.HostServer) uint32 {
	id := c.broker.NextId()
	go c.broker.AcceptAndServe(id, func(opts []grpc.ServerOption) *grpc.Server {
		s := grpc.NewServer(serverOptions(opts)...)
		pluginv1.RegisterHostServer(s, host)
		return s
	})
	return id
}
