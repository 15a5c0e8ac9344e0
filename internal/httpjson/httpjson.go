// Package httpjson writes the JSON answers of the router's API and of the
// plugins' APIs, so that they all look alike: indented JSON (compact for
// answers of many items), and errors as {"error": "..."}.
package httpjson

import (
	"encoding/json"
	"fmt"
	"io"
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

// Bulk answers with code and v as compact JSON: for answers that carry many
// items, such as a page of chat messages read by every client of a room.
// Indenting a page of 200 1 KiB messages costs six times its encoding (1.65
// ms against 0.25) and a copy of it.
func Bulk(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// Error answers with code and {"error": err's text}.
func Error(w http.ResponseWriter, code int, err error) {
	Write(w, code, map[string]string{"error": err.Error()})
}

// Read decodes r's JSON body, at most limit bytes, into v, refusing a key
// v does not have; missing, if not nil, then says what the body lacks (nil
// if nothing). If anything is wrong it answers 400 with "body: want WANT:
// why" and returns false.
func Read(w http.ResponseWriter, r *http.Request, limit int64, v any, want string, missing func() error) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, limit))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && missing != nil {
		err = missing()
	}
	if err != nil {
		Error(w, http.StatusBadRequest, fmt.Errorf("body: want %s: %w", want, err))
		return false
	}
	return true
}
