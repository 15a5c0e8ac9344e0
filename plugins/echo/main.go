// Command echo is the example Vecino plugin: a page of code that handles a
// libp2p protocol through the router, opens streams to peers, and serves a
// small HTTP API. Tests and benchmarks use it to exercise the plugin API.
package main

import "github.com/vecino/vecino/sdk"

func main() { sdk.Serve(&echo{}) }
