package store

import _ "embed"

// page lists the pins with their holders, adds files (with upload
// progress), pins by CID (with fetch progress) and unpins.
//
//go:embed page.html
var page []byte
