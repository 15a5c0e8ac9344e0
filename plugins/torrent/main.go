// Command torrent is Vecino's seedbox plugin, on anacrolix/torrent. It owns
// the node's BitTorrent port; BitTorrent is not libp2p, so it is the one
// plugin with a socket of its own.
package main

import "github.com/vecino/vecino/sdk"

func main() { sdk.Serve(&seedbox{}) }
