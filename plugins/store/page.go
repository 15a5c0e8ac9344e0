package store

import (
	_ "embed"
	"net/http"
)

// page lists the pins with their holders, adds files (with upload
// progress), pins by CID (with fetch progress) and unpins.
//
//go:embed page.html
var page []byte

func servePage(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(page)
}
