// Command wrongversion is a plugin that speaks plugin API version 2, for the
// test that checks the router refuses it at handshake.
package main

import (
	"context"

	"github.com/vecino/vecino/sdk"
)

type plugin struct{}

func (plugin) Info() sdk.Info                                   { return sdk.Info{Name: "wrongversion", Version: "2.0.0"} }
func (plugin) Configure(context.Context, []byte, sdk.Env) error { return nil }
func (plugin) Start(context.Context) error                      { return nil }
func (plugin) Stop(context.Context) error                       { return nil }
func (plugin) Health(context.Context) error                     { return nil }
func (plugin) Status(context.Context) (sdk.Status, error)       { return sdk.Status{}, nil }

func main() { sdk.ServeVersion(plugin{}, sdk.APIVersion+1) }
