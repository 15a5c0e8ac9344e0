// Package httpjson writes the JSON answers of the router's API and of the
// plugins' APIs, so that they all look alike: indented JSON, and errors as
// {"error": "..."}.
package httpjson

import (
	"encoding/json"
	"net/http"
)

// Write answers with code and v as indented JSON.
func Write(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// Error answers with code and {"error": err's text}.
func Error(w http.ResponseWriter, code int, err error) {
	Write(w, code, map[string]string{"error": err.Error()})
}
