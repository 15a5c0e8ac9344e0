// Command store runs Vecino's store plugin as a binary of its own, for a
// [plugins.store] path; by default the router runs the one built into it.
package main

import (
	"github.com/vecino/vecino/plugins/store"
	"github.com/vecino/vecino/sdk"
)

func main() { sdk.Serve(store.New()) }
