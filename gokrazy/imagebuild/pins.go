//go:build vecino_pins

package main

// The kernel, firmware and EEPROM modules hold files, not code, and the
// gokrazy runtime is imported only by the generated init. This file, never
// built (go mod tidy reads every build tag), keeps them all pinned in
// go.mod. gokrazy's own programs (dhcp, ntp, randomd) are pinned by the
// tool directives in go.mod.
import (
	_ "github.com/gokrazy/firmware"
	_ "github.com/gokrazy/gokrazy"
	_ "github.com/gokrazy/kernel.amd64"
	_ "github.com/gokrazy/kernel.rpi"
	_ "github.com/gokrazy/rpi-eeprom"
)
