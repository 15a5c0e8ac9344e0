// Package pluginv1 is the generated code for Vecino's plugin API, version 1
// (plugin.proto beside this file). Plugins and the router import it through
// package sdk; refresh it with `go generate ./pluginapi/...` (needs protoc,
// protoc-gen-go v1.36.12 and protoc-gen-go-grpc v1.6.2 on PATH).
package pluginv1

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative plugin.proto
