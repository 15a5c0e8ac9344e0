// Package integration tests Vecino the way users meet it: real router and
// plugin processes on loopback, driven through the HTTP API.
package integration
