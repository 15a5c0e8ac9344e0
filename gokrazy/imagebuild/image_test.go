package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vecino/vecino/internal/testnet"
)

// vmConfig is the node's configuration inside the test VM: nothing but the
// VM's own user-mode network, which QEMU restricts (restrict=on) so that no
// packet leaves it; every discovery mechanism off.
const vmConfig = `[node]
name = "vecino-vm"
state_dir = "/perm/vecino"

[network]
listen = ["/ip4/0.0.0.0/tcp/4001"]
bootstrap = []
public_bootstrap = false
dht = "off"
reachability = "private"
relay_service = false
hole_punching = false
port_mapping = false
mdns = false

[api]
listen = ":8734"
password = "vm-test-password"

[plugins.torrent]
dht = false
pex = false
port_mapping = false
[plugins.chat]
rooms = ["lobby"]
[plugins.store]
`

const vmPassword = "vm-test-password"

// buildVM builds the vm-amd64 variant of the instance in gokrazy/vecino
// with the test configuration in place of the shipped one.
func buildVM(t testing.TB) (image string, res *Result) {
	t.Helper()
	testnet.NeedTools(t, "mksquashfs", "mkfs.fat", "mcopy", "sfdisk", "mkfs.ext4", "qemu-system-x86_64")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "vecino.toml")
	pw := filepath.Join(dir, "pw.txt")
	if err := os.WriteFile(cfg, []byte(vmConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pw, []byte("gokrazy-test-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	image = filepath.Join(dir, "vm.img")
	res, err := Build(context.Background(), Options{
		InstanceDir: "../vecino", Output: image, Target: "vm-amd64", SizeMiB: 1200,
		PasswordFile: pw, WorkDir: filepath.Join(dir, "work"),
		ExtraFiles: map[string]string{"/etc/vecino/vecino.toml": cfg},
		// ntp would look for the internet's time servers.
		Drop: []string{"github.com/gokrazy/gokrazy/cmd/ntp"},
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return image, res
}

// vm is one QEMU process booting an image.
type vm struct {
	t         testing.TB
	api, web  string // base URLs of the forwards to the router and gokrazy
	console   string
	cmd       *exec.Cmd
	done      chan struct{}
	startedAt time.Time
}

// bootVM starts QEMU on the image under software emulation (KVM does not
// work on these machines). The kernel and its command line are read out of
// the image's own boot partition; QEMU loads them directly, as the VM has
// no Raspberry Pi firmware.
func bootVM(t testing.TB, image string) *vm {
	t.Helper()
	dir := t.TempDir()
	kernel := filepath.Join(dir, "vmlinuz")
	boot := image + "@@" + fmt.Sprint(bootStart*sector)
	if out, err := exec.Command("mcopy", "-o", "-i", boot, "::vmlinuz", kernel).CombinedOutput(); err != nil {
		t.Fatalf("read kernel from the image: %v\n%s", err, out)
	}
	cmdline, err := exec.Command("mtype", "-i", boot, "::cmdline.txt").Output()
	if err != nil {
		t.Fatalf("read cmdline.txt from the image: %v", err)
	}
	apiPort, webPort := testnet.FreePort(t), testnet.FreePort(t)
	v := &vm{
		t: t, console: filepath.Join(dir, "console.log"), done: make(chan struct{}),
		api: fmt.Sprintf("http://127.0.0.1:%d", apiPort), web: fmt.Sprintf("http://127.0.0.1:%d", webPort),
	}
	v.cmd = exec.Command("qemu-system-x86_64",
		"-M", "q35", "-accel", "tcg", "-m", "1024", "-smp", "2",
		"-display", "none", "-monitor", "none", "-serial", "file:"+v.console,
		"-kernel", kernel, "-append", strings.TrimSpace(string(cmdline)),
		"-drive", "file="+image+",format=raw,if=virtio",
		"-netdev", fmt.Sprintf("user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:%d-:8734,hostfwd=tcp:127.0.0.1:%d-:80", apiPort, webPort),
		"-device", "virtio-net-pci,netdev=n0",
	)
	v.cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	var stderr bytes.Buffer
	v.cmd.Stderr = &stderr
	v.startedAt = time.Now()
	if err := v.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { v.cmd.Wait(); close(v.done) }()
	t.Cleanup(func() {
		select {
		case <-v.done:
		default:
			v.cmd.Process.Kill()
			<-v.done
		}
		if t.Failed() {
			t.Logf("qemu stderr: %s\nconsole (tail):\n%s", stderr.String(), v.consoleTail())
		}
	})
	return v
}

func (v *vm) consoleTail() string {
	b, _ := os.ReadFile(v.console)
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}

type vmStatus struct {
	Node struct {
		ID, Name string
	}
	Config struct {
		File string
	}
	System struct {
		MemTotalBytes     int64 `json:"mem_total_bytes"`
		MemAvailableBytes int64 `json:"mem_available_bytes"`
	}
	Plugins []struct {
		Name, State string
		PID         int
	}
}

func (v *vm) status() (vmStatus, error) {
	var st vmStatus
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(v.api + "/api/v1/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("status %d", resp.StatusCode)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// waitRunning polls the router's status through the forward until all
// three plugins run, and returns that status.
func (v *vm) waitRunning(timeout time.Duration) vmStatus {
	v.t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		select {
		case <-v.done:
			v.t.Fatalf("QEMU exited while waiting for the node")
		default:
		}
		st, err := v.status()
		if err == nil {
			running := 0
			for _, p := range st.Plugins {
				if p.State == "running" && p.PID != 0 {
					running++
				}
			}
			if running == 3 && len(st.Plugins) == 3 {
				return st
			}
			last = fmt.Sprintf("%+v", st.Plugins)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			v.t.Fatalf("plugins not all running %s after boot: %s", timeout, last)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (v *vm) do(method, url, user, pass string, body []byte) (int, []byte) {
	v.t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		v.t.Fatal(err)
	}
	req.SetBasicAuth(user, pass)
	c := http.Client{Timeout: 60 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		v.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// gokrazyPost asks gokrazy's web UI for a power action. Its port is up only
// once DHCP gave the VM its address; until then QEMU's forward accepts and
// drops the connection, so retry for a while.
func (v *vm) gokrazyPost(path string) {
	v.t.Helper()
	var last string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		req, _ := http.NewRequest("POST", v.web+path, nil)
		req.SetBasicAuth("gokrazy", "gokrazy-test-password")
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			last = err.Error()
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return
		}
		last = fmt.Sprintf("%d %s", resp.StatusCode, body)
		if resp.StatusCode == http.StatusUnauthorized {
			break
		}
	}
	v.t.Fatalf("gokrazy POST %s: %s", path, last)
}

// waitExit waits for QEMU to end by itself.
func (v *vm) waitExit(timeout time.Duration) bool {
	select {
	case <-v.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// TestImageBootsInQEMU boots the image, checks the node and its three
// plugins, saves a configuration to /perm through the node's API, reboots
// with gokrazy's own endpoint, finds the saved configuration and the same
// identity, and powers off.
func TestImageBootsInQEMU(t *testing.T) {
	image, _ := buildVM(t)
	v := bootVM(t, image)
	st := v.waitRunning(5 * time.Minute)
	t.Logf("all plugins running %.1f s after QEMU started (TCG)", time.Since(v.startedAt).Seconds())
	if st.Node.Name != "vecino-vm" || st.Config.File != "/etc/vecino/vecino.toml" {
		t.Fatalf("first boot should run on the shipped file: name %q, file %q", st.Node.Name, st.Config.File)
	}

	code, cfg := v.do("GET", v.api+"/api/v1/config", "", vmPassword, nil)
	if code != http.StatusOK || !strings.Contains(string(cfg), `name = "vecino-vm"`) {
		t.Fatalf("GET config: %d %s", code, cfg)
	}
	edited := strings.Replace(string(cfg), `name = "vecino-vm"`, `name = "kept-on-perm"`, 1)
	if code, body := v.do("PUT", v.api+"/api/v1/config", "", vmPassword, []byte(edited)); code != http.StatusOK {
		t.Fatalf("PUT config: %d %s", code, body)
	}

	v.gokrazyPost("/reboot?kexec=off")
	// Wait for the old router to go away before polling for the new one.
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if _, err := v.status(); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("node still answering 2 min after reboot")
		}
	}
	after := v.waitRunning(5 * time.Minute)
	if after.Node.Name != "kept-on-perm" || after.Config.File != "/perm/vecino/vecino.toml" {
		t.Errorf("after reboot: name %q from %q, want the saved file on /perm", after.Node.Name, after.Config.File)
	}
	if after.Node.ID != st.Node.ID {
		t.Errorf("identity changed across reboot: %s then %s (the key on /perm was lost)", st.Node.ID, after.Node.ID)
	}

	v.gokrazyPost("/poweroff")
	if !v.waitExit(2 * time.Minute) {
		t.Error("QEMU still running 2 min after poweroff")
	}
}
