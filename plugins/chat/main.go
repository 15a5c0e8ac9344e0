// Command chat is Vecino's chat relay plugin: rooms carried as gossipsub
// topics through the router, with a bounded history per room.
package main

import "github.com/vecino/vecino/sdk"

func main() { sdk.Serve(newChat()) }
