// Command chat runs Vecino's chat plugin as a binary of its own, for a
// [plugins.chat] path; by default the router runs the one built into it.
package main

import (
	"github.com/vecino/vecino/plugins/chat"
	"github.com/vecino/vecino/sdk"
)

func main() { sdk.Serve(chat.New()) }
