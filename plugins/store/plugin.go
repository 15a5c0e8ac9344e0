// Package store is Vecino's storage plugin: the node's share of the
// neighbourhood's content-addressed storage. It runs built into the router
// binary (`router plugin store`) or as its own binary (cmd/store).
package store

import "github.com/vecino/vecino/sdk"

// New returns the plugin, for sdk.Serve.
func New() sdk.Plugin { return &store{} }
