package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"text/template"
	"time"
)

// Options says what to build.
type Options struct {
	InstanceDir  string
	Output       string
	Target       string // "rpi" or "vm-amd64"
	SizeMiB      int64
	PasswordFile string
	WorkDir      string
	ExtraFiles   map[string]string // over config.json's ExtraFilePaths
	Drop         []string
}

// target is what differs between the Raspberry Pi and the virtual machine:
// the same instance, another kernel and architecture.
type target struct {
	goarch   string
	kernel   string // module; "" means the instance's KernelPackage
	firmware bool   // Raspberry Pi firmware and EEPROM in the boot partition
	console  string // kernel console=; "" means from SerialConsole
}

var targets = map[string]target{
	"rpi":      {goarch: "arm64", firmware: true},
	"vm-amd64": {goarch: "amd64", kernel: "github.com/gokrazy/kernel.amd64", console: "ttyS0,115200"},
}

// Partition layout, in 512-byte sectors, as gok writes it.
const (
	sector      = 512
	bootStart   = 8192    // 4 MiB
	bootSectors = 204800  // 100 MiB
	rootSectors = 1024000 // 500 MiB each
)

// Result is what was built, with the sizes issue 3 asks to record.
type Result struct {
	Image     string
	ImageSize int64
	RootSize  int64
	Binaries  map[string]int64 // path in the root file system -> bytes
	Cmdline   string
	// InitSource is the generated init program.
	InitSource string
}

// Print writes the sizes.
func (r *Result) Print(w io.Writer) {
	fmt.Fprintf(w, "image %s: %.1f MiB (sparse file; partitions: boot 100 MiB, root A/B 500 MiB each, /perm the rest)\n", r.Image, mib(r.ImageSize))
	fmt.Fprintf(w, "root file system (squashfs, gzip): %.1f MiB\n", mib(r.RootSize))
	names := make([]string, 0, len(r.Binaries))
	for n := range r.Binaries {
		names = append(names, n)
	}
	sort.Strings(names)
	var total int64
	for _, n := range names {
		fmt.Fprintf(w, "  %-20s %6.1f MiB\n", n, mib(r.Binaries[n]))
		total += r.Binaries[n]
	}
	fmt.Fprintf(w, "  %-20s %6.1f MiB\n", "binaries in all", mib(total))
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// Build writes the image.
func Build(ctx context.Context, o Options, log *slog.Logger) (*Result, error) {
	t, ok := targets[o.Target]
	if !ok {
		return nil, fmt.Errorf("unknown -target %q: want rpi or vm-amd64", o.Target)
	}
	in, err := LoadInstance(o.InstanceDir)
	if err != nil {
		return nil, err
	}
	for _, p := range o.Drop {
		in.Packages = remove(in.Packages, p)
		in.GokrazyPackages = remove(in.GokrazyPackages, p)
	}
	if t.kernel != "" {
		in.KernelPackage = t.kernel
	}
	if !t.firmware {
		in.FirmwarePackage, in.EEPROMPackage = "", ""
	}
	work := o.WorkDir
	if work == "" {
		if work, err = os.MkdirTemp("", "vecino-image-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(work)
	}
	root := filepath.Join(work, "root")
	if err := os.RemoveAll(root); err != nil {
		return nil, err
	}
	res := &Result{Image: o.Output, Binaries: map[string]int64{}}

	log.Info("compiling", "packages", len(in.Packages)+len(in.GokrazyPackages)+1, "goarch", t.goarch)
	if err := buildPackages(ctx, in, t, root, res); err != nil {
		return nil, err
	}
	if err := buildInit(ctx, in, t, work, root, res); err != nil {
		return nil, err
	}
	password, err := loadPassword(in, o.PasswordFile)
	if err != nil {
		return nil, err
	}
	kernelDir, err := moduleDir(ctx, in.KernelPackage)
	if err != nil {
		return nil, err
	}
	if err := populateRoot(in, o, root, kernelDir, password); err != nil {
		return nil, err
	}

	log.Info("writing root file system")
	rootImg := filepath.Join(work, "root.squashfs")
	os.Remove(rootImg)
	if err := run(ctx, "mksquashfs", root, rootImg, "-noappend", "-comp", "gzip", "-all-root",
		"-no-xattrs", "-mkfs-time", "0", "-all-time", "0", "-quiet"); err != nil {
		return nil, err
	}
	st, err := os.Stat(rootImg)
	if err != nil {
		return nil, err
	}
	res.RootSize = st.Size()
	if res.RootSize > rootSectors*sector {
		return nil, fmt.Errorf("root file system is %.1f MiB, more than its 500 MiB partition", mib(res.RootSize))
	}

	diskID := diskIdentifier(in.Hostname)
	console := t.console
	if console == "" && in.SerialConsole != "" && in.SerialConsole != "disabled" {
		console = in.SerialConsole
	}
	res.Cmdline = cmdline(diskID, console)

	log.Info("writing boot partition")
	bootImg := filepath.Join(work, "boot.fat")
	if err := writeBoot(ctx, in, t, bootImg, kernelDir, res.Cmdline); err != nil {
		return nil, err
	}

	log.Info("writing image", "file", o.Output)
	if err := writeDisk(ctx, o, diskID, bootImg, rootImg); err != nil {
		return nil, err
	}
	if st, err = os.Stat(o.Output); err != nil {
		return nil, err
	}
	res.ImageSize = st.Size()
	return res, nil
}

func remove(list []string, s string) []string {
	out := list[:0:0]
	for _, v := range list {
		if v != s {
			out = append(out, v)
		}
	}
	return out
}

// buildPackages cross-compiles user packages into /user and gokrazy's own
// into /gokrazy, as gok does.
func buildPackages(ctx context.Context, in *Instance, t target, root string, res *Result) error {
	for _, set := range []struct {
		dir  string
		pkgs []string
	}{{"user", in.Packages}, {"gokrazy", in.GokrazyPackages}} {
		for _, pkg := range set.pkgs {
			pc := in.PackageConfig[pkg]
			out := filepath.Join(root, set.dir, path.Base(pkg))
			args := append([]string{"build", "-o", out}, pc.GoBuildFlags...)
			args = append(args, "-tags", strings.Join(append([]string{"gokrazy"}, pc.GoBuildTags...), ","), pkg)
			if err := goCmd(ctx, t, args...); err != nil {
				return fmt.Errorf("build %s: %w", pkg, err)
			}
			st, err := os.Stat(out)
			if err != nil {
				return err
			}
			res.Binaries["/"+set.dir+"/"+path.Base(pkg)] = st.Size()
		}
	}
	return nil
}

func goCmd(ctx context.Context, t target, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+t.goarch, "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// service is one entry of the generated init.
type service struct {
	Path, Kind string
	Args, Env  []string
}

var initTemplate = template.Must(template.New("init").Parse(`// Code generated by gokrazy/imagebuild from {{.Instance}}/config.json. DO NOT EDIT.

package main

import (
	"log"
	"os"
	"os/exec"

	"github.com/gokrazy/gokrazy"
)

const buildTimestamp = {{printf "%q" .Timestamp}}

func cmd(path string, env []string, args ...string) *exec.Cmd {
	c := exec.Command(path, args...)
	c.Env = append(os.Environ(), env...)
	return c
}

func main() {
	if err := gokrazy.Boot(buildTimestamp); err != nil {
		log.Fatal(err)
	}
	services := []*gokrazy.Service{
{{- range .Services}}
		gokrazy.{{.Kind}}(cmd({{printf "%q" .Path}}, {{printf "%#v" .Env}}{{range .Args}}, {{printf "%q" .}}{{end}})),
{{- end}}
	}
	if err := gokrazy.SuperviseServices(services); err != nil {
		log.Fatal(err)
	}
	select {}
}
`))

// buildInit generates gokrazy's init for this instance and compiles it in
// this module, so it uses the gokrazy version pinned in go.mod.
func buildInit(ctx context.Context, in *Instance, t target, work, root string, res *Result) error {
	var svcs []service
	add := func(dir string, pkgs []string) {
		for _, pkg := range pkgs {
			pc := in.PackageConfig[pkg]
			kind := "NewService"
			switch {
			case pc.DontStart:
				kind = "NewStoppedService"
			case pc.WaitForClock:
				kind = "NewWaitForClockService"
			}
			env := pc.Environment
			if env == nil {
				env = []string{}
			}
			svcs = append(svcs, service{Path: "/" + dir + "/" + path.Base(pkg), Kind: kind, Args: pc.CommandLineFlags, Env: env})
		}
	}
	add("gokrazy", in.GokrazyPackages)
	add("user", in.Packages)
	modRoot, err := goEnv(ctx, "GOMOD")
	if err != nil {
		return err
	}
	// A folder whose name starts with "_" is skipped by ./... patterns, so
	// the generated program never joins the module's own build or tests.
	dir := filepath.Join(filepath.Dir(modRoot), "gokrazy", "_init-"+filepath.Base(work))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var src strings.Builder
	if err := initTemplate.Execute(&src, map[string]any{
		"Instance": in.dir, "Timestamp": time.Now().UTC().Format(time.RFC3339), "Services": svcs,
	}); err != nil {
		return fmt.Errorf("generate init: %w", err)
	}
	res.InitSource = src.String()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(res.InitSource), 0o644); err != nil {
		return fmt.Errorf("generate init: %w", err)
	}
	out := filepath.Join(root, "gokrazy", "init")
	if err := goCmd(ctx, t, "build", "-trimpath", "-tags", "gokrazy", "-o", out, dir); err != nil {
		return err
	}
	st, err := os.Stat(out)
	if err != nil {
		return err
	}
	res.Binaries["/gokrazy/init"] = st.Size()
	return nil
}

func goEnv(ctx context.Context, name string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", name).Output()
	if err != nil {
		return "", fmt.Errorf("go env %s: %w", name, err)
	}
	v := strings.TrimSpace(string(out))
	if v == "" || v == os.DevNull {
		return "", fmt.Errorf("go env %s is empty: run imagebuild inside the vecino module", name)
	}
	return v, nil
}

// moduleDir finds a module pinned in go.mod in the module cache,
// downloading it through the module proxy when needed.
func moduleDir(ctx context.Context, mod string) (string, error) {
	if mod == "" {
		return "", nil
	}
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", mod)
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go mod download %s (it must be required in go.mod): %w\n%s", mod, err, out)
	}
	var m struct{ Dir, Error string }
	if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
		return "", fmt.Errorf("go mod download %s: %s %v", mod, m.Error, err)
	}
	return m.Dir, nil
}

// loadPassword reads the gokrazy HTTP password, or makes one and keeps it
// in a file outside git, as gok does.
func loadPassword(in *Instance, file string) (string, error) {
	if in.Update.HTTPPassword != "" {
		return in.Update.HTTPPassword, nil
	}
	if file == "" {
		file = filepath.Join(in.dir, "http-password.txt")
	}
	data, err := os.ReadFile(file)
	if err == nil && strings.TrimSpace(string(data)) != "" {
		return strings.TrimSpace(string(data)), nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read password: %w", err)
	}
	b := make([]byte, 15)
	rand.Read(b)
	pw := hex.EncodeToString(b)
	if err := os.WriteFile(file, []byte(pw+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("save new password: %w", err)
	}
	fmt.Fprintf(os.Stderr, "made a new gokrazy password in %s\n", file)
	return pw, nil
}

// populateRoot writes everything but the binaries: the files gokrazy reads
// at boot, mount points, kernel modules and extra files.
func populateRoot(in *Instance, o Options, root, kernelDir, password string) error {
	for _, d := range []string{"dev", "proc", "sys", "tmp", "perm", "run", "etc/ssl", "mnt"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	files := map[string]string{
		"etc/hostname":    in.Hostname,
		"etc/gokr-pw.txt": password,
		"etc/hosts":       "127.0.0.1 localhost\n::1 localhost\n",
		"etc/machine-id":  machineID(in.Hostname),
	}
	if in.Update.HTTPPort != "" {
		files["etc/http-port.txt"] = in.Update.HTTPPort
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	if err := os.Symlink("/tmp/resolv.conf", filepath.Join(root, "etc/resolv.conf")); err != nil {
		return err
	}
	if err := os.Symlink("/perm/var", filepath.Join(root, "var")); err != nil {
		return err
	}
	// The time zone of the machine that builds the image, as gok does:
	// the node's local time (the torrent plugin's quiet hours) is its
	// owner's. Without it, UTC.
	if tz, err := os.ReadFile("/etc/localtime"); err == nil {
		if err := os.WriteFile(filepath.Join(root, "etc/localtime"), tz, 0o644); err != nil {
			return err
		}
	}
	// TLS roots for programs that need them (the web of trust is the
	// host's Debian bundle at build time).
	if ca, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt"); err == nil {
		if err := os.WriteFile(filepath.Join(root, "etc/ssl/ca-bundle.pem"), ca, 0o644); err != nil {
			return err
		}
	}
	if kernelDir != "" {
		if err := copyTree(filepath.Join(kernelDir, "lib"), filepath.Join(root, "lib")); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("kernel modules: %w", err)
		}
	}
	extra, err := in.ExtraFiles()
	if err != nil {
		return err
	}
	for dst, src := range o.ExtraFiles {
		extra[dst] = src
	}
	for dst, src := range extra {
		data, err := os.ReadFile(src)
		if err != nil {
			return fmt.Errorf("extra file %s: %w", dst, err)
		}
		p := filepath.Join(root, dst)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func machineID(hostname string) string {
	h := fnv.New128a()
	h.Write([]byte("vecino machine " + hostname))
	return hex.EncodeToString(h.Sum(nil)) + "\n"
}

// copyTree copies a folder; the module cache is read-only, so modes are
// made writable.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
}

func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return fmt.Errorf("%s not found: install squashfs-tools, dosfstools, mtools, fdisk and e2fsprogs", name)
		}
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}
