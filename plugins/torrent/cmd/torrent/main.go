// Command torrent runs Vecino's torrent plugin as a binary of its own, for
// a [plugins.torrent] path; by default the router runs the one built into it.
package main

import "github.com/vecino/vecino/plugins/torrent"

func main() { torrent.Main() }
