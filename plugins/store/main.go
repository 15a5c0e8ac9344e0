// Command store is Vecino's storage plugin: the node's share of the
// neighbourhood's content-addressed storage.
package main

import "github.com/vecino/vecino/sdk"

func main() { sdk.Serve(&store{}) }
