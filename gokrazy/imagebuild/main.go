// Command imagebuild builds a gokrazy disk image from a gok instance
// folder (gokrazy/vecino/config.json) without gok, which cannot be installed
// here (see DESIGN.md). It does what `gok overwrite --full` does for the
// fields the instance uses: cross-compiles the packages, generates gokrazy's
// init from gokrazy's public API, and writes the same disk layout (MBR;
// 1: FAT16 boot, 2 and 3: root A and B as squashfs, 4: ext4 /perm) with
// Debian's tools, as an ordinary user, with no loop devices.
//
//	go run ./gokrazy/imagebuild -o vecino.img                 # Raspberry Pi 3/4/5
//	go run ./gokrazy/imagebuild -target vm-amd64 -o vm.img    # QEMU q35
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
)

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var o Options
	var extra, drop stringList
	flag.StringVar(&o.InstanceDir, "instance", "gokrazy/vecino", "gok instance folder holding config.json")
	flag.StringVar(&o.Output, "o", "vecino.img", "image file to write")
	flag.StringVar(&o.Target, "target", "rpi", "rpi (Raspberry Pi 3/4/5, arm64) or vm-amd64 (QEMU q35, kernel.amd64)")
	flag.Int64Var(&o.SizeMiB, "size", 2048, "image size in MiB (the /perm partition takes what the others leave)")
	flag.StringVar(&o.PasswordFile, "password-file", "", "file holding the gokrazy HTTP password, made if missing (default: INSTANCE/http-password.txt, kept out of git)")
	flag.StringVar(&o.WorkDir, "work", "", "folder for intermediate files (default: a temporary folder, removed after)")
	flag.Var(&extra, "extra-file", "DEST=SRC: add or replace a file in the root file system, over config.json (repeatable; tests use it)")
	flag.Var(&drop, "drop-package", "leave this package out (repeatable; tests drop ntp, which would look for the internet)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	for _, e := range extra {
		dst, src, ok := strings.Cut(e, "=")
		if !ok {
			fmt.Fprintf(os.Stderr, "-extra-file %q: want DEST=SRC\n", e)
			os.Exit(2)
		}
		if o.ExtraFiles == nil {
			o.ExtraFiles = map[string]string{}
		}
		o.ExtraFiles[dst] = src
	}
	o.Drop = drop
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := Build(ctx, o, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "imagebuild:", err)
		os.Exit(1)
	}
	res.Print(os.Stdout)
}
