// Package chat is Vecino's chat relay plugin: rooms carried as gossipsub
// topics through the router, with a bounded history per room, and sealed
// mailboxes. It runs built into the router binary (`router plugin chat`)
// or as its own binary (cmd/chat).
package chat

import "github.com/vecino/vecino/sdk"

// New returns the plugin, for sdk.Serve.
func New() sdk.Plugin { return newChat() }
