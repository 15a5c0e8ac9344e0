package torrent

import _ "embed"

// page lists the torrents with their progress, refreshed every 2 s.
//
//go:embed page.html
var page []byte
