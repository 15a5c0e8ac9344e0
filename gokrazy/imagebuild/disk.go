package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// diskIdentifier is the MBR disk signature. gokrazy finds its partitions by
// it (root=PARTUUID=SIGNATURE-02, and partition 4 of the same disk for
// /perm), so it is derived from the hostname: an update keeps it.
func diskIdentifier(hostname string) uint32 {
	h := fnv.New32a()
	h.Write([]byte("vecino disk " + hostname))
	return h.Sum32() | 1 // never zero
}

func cmdline(diskID uint32, console string) string {
	// The last console= is /dev/console, where init's output goes.
	parts := []string{"console=tty1"}
	if console != "" {
		parts = append(parts, "console="+console)
	}
	parts = append(parts,
		fmt.Sprintf("root=PARTUUID=%08x-02", diskID),
		"init=/gokrazy/init", "rootwait", "panic=10", "oops=panic")
	return strings.Join(parts, " ")
}

// writeBoot makes the FAT16 boot partition: kernel and cmdline.txt, and for
// the Raspberry Pi its firmware, device trees, config.txt and EEPROM update.
func writeBoot(ctx context.Context, in *Instance, t target, img, kernelDir, cmdlineTxt string) error {
	stage := img + ".d"
	os.RemoveAll(stage)
	defer os.RemoveAll(stage)
	if err := os.MkdirAll(stage, 0o755); err != nil {
		return err
	}
	put := func(name string, data []byte) error {
		return os.WriteFile(filepath.Join(stage, name), data, 0o644)
	}
	copyIn := func(dir string, match func(string) bool) error {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if !match(e.Name()) {
				continue
			}
			if e.IsDir() {
				if err := copyTree(filepath.Join(dir, e.Name()), filepath.Join(stage, e.Name())); err != nil {
					return err
				}
				continue
			}
			data, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				return err
			}
			if err := put(e.Name(), data); err != nil {
				return err
			}
		}
		return nil
	}
	if err := copyIn(kernelDir, func(n string) bool {
		return n == "vmlinuz" || strings.HasSuffix(n, ".dtb") || n == "overlays"
	}); err != nil {
		return fmt.Errorf("kernel %s: %w", in.KernelPackage, err)
	}
	if err := put("cmdline.txt", []byte(cmdlineTxt+"\n")); err != nil {
		return err
	}
	if t.firmware {
		fw, err := moduleDir(ctx, in.FirmwarePackage)
		if err != nil {
			return err
		}
		if err := copyIn(fw, func(n string) bool {
			return n == "bootcode.bin" || strings.HasSuffix(n, ".elf") || strings.HasSuffix(n, ".dat")
		}); err != nil {
			return fmt.Errorf("firmware %s: %w", in.FirmwarePackage, err)
		}
		cfg := "# Written by gokrazy/imagebuild.\narm_64bit=1\nkernel=vmlinuz\n"
		if in.SerialConsole != "" && in.SerialConsole != "disabled" {
			cfg += "enable_uart=1\n"
		}
		if err := put("config.txt", []byte(cfg)); err != nil {
			return err
		}
		if in.EEPROMPackage != "" {
			if err := putEEPROM(ctx, in.EEPROMPackage, put); err != nil {
				return err
			}
		}
	}
	if err := run(ctx, "mkfs.fat", "-F", "16", "-n", "GOKRAZY", "-C", img, fmt.Sprint(bootSectors*sector/1024)); err != nil {
		return err
	}
	entries, err := os.ReadDir(stage)
	if err != nil {
		return err
	}
	args := []string{"-i", img, "-s", "-o"}
	for _, e := range entries {
		args = append(args, filepath.Join(stage, e.Name()))
	}
	return run(ctx, "mcopy", append(args, "::/")...)
}

// putEEPROM stages the newest Raspberry Pi 4 bootloader as an update the
// firmware applies at boot, with its signature file.
func putEEPROM(ctx context.Context, mod string, put func(string, []byte) error) error {
	dir, err := moduleDir(ctx, mod)
	if err != nil {
		return err
	}
	all, _ := filepath.Glob(filepath.Join(dir, "pieeprom-*.bin"))
	if len(all) == 0 {
		return fmt.Errorf("eeprom %s: no pieeprom-*.bin", mod)
	}
	sort.Strings(all)
	data, err := os.ReadFile(all[len(all)-1])
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	if err := put("pieeprom.upd", data); err != nil {
		return err
	}
	if err := put("pieeprom.sig", fmt.Appendf(nil, "%x\nts: %d\n", sum, time.Now().Unix())); err != nil {
		return err
	}
	rec, err := os.ReadFile(filepath.Join(dir, "recovery.bin"))
	if err != nil {
		return fmt.Errorf("eeprom %s: %w", mod, err)
	}
	return put("recovery.bin", rec)
}

// writeDisk writes the partition table and the partitions into one sparse
// file: 1 boot, 2 root A, 3 root B (empty until the first update), 4 /perm.
func writeDisk(ctx context.Context, o Options, diskID uint32, bootImg, rootImg string) error {
	rootA := int64(bootStart + bootSectors)
	rootB := rootA + rootSectors
	perm := rootB + rootSectors
	size := o.SizeMiB << 20
	if size < (perm+65536)*sector {
		return fmt.Errorf("-size %d MiB leaves no room for /perm: want at least %d MiB", o.SizeMiB, (perm+65536)*sector>>20+1)
	}
	os.Remove(o.Output)
	f, err := os.Create(o.Output)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return err
	}
	script := fmt.Sprintf("label: dos\nlabel-id: 0x%08x\nunit: sectors\n\n"+
		"start=%d, size=%d, type=c, bootable\nstart=%d, size=%d, type=83\nstart=%d, size=%d, type=83\nstart=%d, type=83\n",
		diskID, bootStart, bootSectors, rootA, rootSectors, rootB, rootSectors, perm)
	cmd := exec.CommandContext(ctx, "sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", o.Output)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("sfdisk: %w\n%s", err, out)
	}
	for _, p := range []struct {
		src   string
		start int64
	}{{bootImg, bootStart}, {rootImg, rootA}} {
		if err := copyAt(f, p.src, p.start*sector); err != nil {
			return err
		}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	permKiB := (size - perm*sector) / 1024
	return run(ctx, "mkfs.ext4", "-F", "-q", "-L", "perm",
		"-E", fmt.Sprintf("offset=%d,nodiscard", perm*sector), o.Output, fmt.Sprintf("%dk", permKiB))
}

func copyAt(dst *os.File, src string, off int64) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.Copy(io.NewOffsetWriter(dst, off), f); err != nil {
		return fmt.Errorf("write %s into image: %w", src, err)
	}
	return nil
}
