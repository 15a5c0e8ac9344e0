package main

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vecino/vecino/internal/testnet"
)

// TestLoadInstanceRefusesUnknownFields: a field this builder does not act on
// must stop the build, not be dropped silently.
func TestLoadInstanceRefusesUnknownFields(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"Hostname":"x","Packages":["a/b"],"BootloaderExtraLines":["x"]}`), 0o644)
	_, err := LoadInstance(dir)
	if err == nil || !strings.Contains(err.Error(), "BootloaderExtraLines") {
		t.Fatalf("err = %v, want it to name the unknown field", err)
	}
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"Hostname":"x","Packages":["a/b"],"PackageConfig":{"a/b":{"ExtraFilePaths":{"/perm/x":"y"}}}}`), 0o644)
	in, err := LoadInstance(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.ExtraFiles(); err == nil || !strings.Contains(err.Error(), "/perm") {
		t.Fatalf("ExtraFiles into /perm: err = %v, want a refusal", err)
	}
}

// TestRPiImageHonoursConfig builds the Raspberry Pi image from
// gokrazy/vecino/config.json, the file gok users build from too, and checks
// that every field it sets shows in the image. A field added to config.json
// without a check here fails the test.
func TestRPiImageHonoursConfig(t *testing.T) {
	testnet.NeedTools(t, "mksquashfs", "unsquashfs", "mkfs.fat", "mcopy", "mdir", "sfdisk", "mkfs.ext4")
	const instance = "../vecino"
	raw, err := os.ReadFile(filepath.Join(instance, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatal(err)
	}
	checked := map[string]bool{"Hostname": true, "Update": true, "Packages": true, "PackageConfig": true,
		"SerialConsole": true, "GokrazyPackages": true, "KernelPackage": true, "FirmwarePackage": true, "EEPROMPackage": true}
	for f := range fields {
		if !checked[f] {
			t.Errorf("config.json sets %s, which this test does not check", f)
		}
	}
	in, err := LoadInstance(instance)
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	pw := filepath.Join(dir, "pw.txt")
	os.WriteFile(pw, []byte("secret-from-a-file\n"), 0o600)
	image := filepath.Join(dir, "rpi.img")
	res, err := Build(context.Background(), Options{
		InstanceDir: instance, Output: image, Target: "rpi", SizeMiB: 1200,
		PasswordFile: pw, WorkDir: filepath.Join(dir, "work"),
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	res.Print(testWriter{t})

	// Boot partition: KernelPackage, FirmwarePackage, EEPROMPackage, SerialConsole.
	boot := image + "@@4194304"
	listing, err := exec.Command("mdir", "-b", "-i", boot, "::/").Output()
	if err != nil {
		t.Fatalf("mdir: %v", err)
	}
	for _, want := range []string{"vmlinuz", "bcm2711-rpi-4-b.dtb", "bcm2712-rpi-5-b.dtb", "bcm2710-rpi-3-b.dtb",
		"start4.elf", "bootcode.bin", "fixup4.dat", "pieeprom.upd", "pieeprom.sig", "recovery.bin", "config.txt", "cmdline.txt"} {
		if !strings.Contains(string(listing), "::/"+want+"\n") {
			t.Errorf("boot partition lacks %s", want)
		}
	}
	cat := func(file string) string {
		out, err := exec.Command("mtype", "-i", boot, "::"+file).Output()
		if err != nil {
			t.Fatalf("mtype %s: %v", file, err)
		}
		return string(out)
	}
	if c := cat("cmdline.txt"); !strings.Contains(c, "console="+in.SerialConsole) || !strings.Contains(c, "root=PARTUUID=") || !strings.Contains(c, "init=/gokrazy/init") {
		t.Errorf("cmdline.txt = %q", c)
	}
	if c := cat("config.txt"); !strings.Contains(c, "enable_uart=1") || !strings.Contains(c, "arm_64bit=1") {
		t.Errorf("config.txt = %q", c)
	}

	// Root file system: Hostname, Update, Packages, GokrazyPackages, ExtraFilePaths.
	squash := filepath.Join(dir, "work", "root.squashfs")
	rootCat := func(file string) []byte {
		out, err := exec.Command("unsquashfs", "-cat", squash, file).Output()
		if err != nil {
			t.Fatalf("unsquashfs -cat %s: %v", file, err)
		}
		return out
	}
	if h := string(rootCat("/etc/hostname")); h != in.Hostname {
		t.Errorf("/etc/hostname = %q, want %q", h, in.Hostname)
	}
	if p := string(rootCat("/etc/http-port.txt")); p != in.Update.HTTPPort {
		t.Errorf("/etc/http-port.txt = %q, want %q", p, in.Update.HTTPPort)
	}
	if host, err := os.ReadFile("/etc/localtime"); err == nil && !bytes.Equal(rootCat("/etc/localtime"), host) {
		t.Errorf("/etc/localtime is not the building machine's time zone")
	}
	if p := string(rootCat("/etc/gokr-pw.txt")); p != "secret-from-a-file" {
		t.Errorf("/etc/gokr-pw.txt = %q, want the password file's content", p)
	}
	for _, bin := range append(binaries("/user", in.Packages), binaries("/gokrazy", append(in.GokrazyPackages, "init"))...) {
		f := filepath.Join(dir, "bin-"+filepath.Base(bin))
		os.WriteFile(f, rootCat(bin), 0o644)
		e, err := elf.Open(f)
		if err != nil {
			t.Errorf("%s: %v", bin, err)
			continue
		}
		if e.Machine != elf.EM_AARCH64 {
			t.Errorf("%s is for %v, want arm64", bin, e.Machine)
		}
		e.Close()
	}
	extra, _ := in.ExtraFiles()
	for dst, src := range extra {
		want, _ := os.ReadFile(src)
		if got := rootCat(dst); string(got) != string(want) {
			t.Errorf("%s in the image differs from %s", dst, src)
		}
	}

	// PackageConfig: flags, environment and DontStart reach the generated init.
	for pkg, pc := range in.PackageConfig {
		bin := "/user/" + filepath.Base(pkg)
		kind := "NewService"
		if pc.DontStart {
			kind = "NewStoppedService"
		}
		if !strings.Contains(res.InitSource, "gokrazy."+kind+`(cmd("`+bin+`"`) {
			t.Errorf("init does not start %s as %s:\n%s", bin, kind, res.InitSource)
		}
		for _, f := range pc.CommandLineFlags {
			if !strings.Contains(res.InitSource, `"`+f+`"`) {
				t.Errorf("init lacks flag %s for %s", f, bin)
			}
		}
	}
}

func binaries(dir string, pkgs []string) []string {
	var out []string
	for _, p := range pkgs {
		out = append(out, dir+"/"+filepath.Base(p))
	}
	return out
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
