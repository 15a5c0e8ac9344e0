package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// Instance is the part of gok's instance config.json (gokrazy/NAME/config.json)
// that this builder understands. Decoding refuses any other field, so a
// config.json that asks for something this builder would silently ignore
// fails the build instead of producing an image gok would not.
type Instance struct {
	Hostname        string
	Update          Update
	Packages        []string
	PackageConfig   map[string]PackageConfig
	SerialConsole   string
	GokrazyPackages []string
	KernelPackage   string
	FirmwarePackage string
	EEPROMPackage   string

	dir string // the instance folder; relative ExtraFilePaths start here
}

// Update is config.json's Update table.
type Update struct {
	HTTPPort     string
	HTTPPassword string
}

// PackageConfig is one package's entry in PackageConfig.
type PackageConfig struct {
	GoBuildFlags     []string
	GoBuildTags      []string
	Environment      []string
	CommandLineFlags []string
	DontStart        bool
	WaitForClock     bool
	ExtraFilePaths   map[string]string
}

// LoadInstance reads dir/config.json.
func LoadInstance(dir string) (*Instance, error) {
	path := filepath.Join(dir, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load instance: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var in Instance
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("%s: %w (this builder reads only the fields listed in gokrazy/imagebuild/instance.go)", path, err)
	}
	in.dir = dir
	if in.Hostname == "" {
		return nil, fmt.Errorf("%s: Hostname is empty", path)
	}
	if len(in.Packages) == 0 {
		return nil, fmt.Errorf("%s: Packages is empty", path)
	}
	for pkg := range in.PackageConfig {
		if !in.isPackage(pkg) {
			return nil, fmt.Errorf("%s: PackageConfig names %s, which is not in Packages or GokrazyPackages", path, pkg)
		}
	}
	return &in, nil
}

func (in *Instance) isPackage(pkg string) bool {
	for _, p := range append(append([]string{}, in.Packages...), in.GokrazyPackages...) {
		if p == pkg {
			return true
		}
	}
	return false
}

// ExtraFiles maps each destination in the root file system to its source
// on this machine, for every package.
func (in *Instance) ExtraFiles() (map[string]string, error) {
	out := map[string]string{}
	pkgs := make([]string, 0, len(in.PackageConfig))
	for p := range in.PackageConfig {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	for _, p := range pkgs {
		for dst, src := range in.PackageConfig[p].ExtraFilePaths {
			if !filepath.IsAbs(dst) {
				return nil, fmt.Errorf("PackageConfig %s: ExtraFilePaths destination %q must be absolute", p, dst)
			}
			if filepath.Clean(dst) == "/perm" || len(dst) > 5 && dst[:6] == "/perm/" {
				return nil, fmt.Errorf("PackageConfig %s: ExtraFilePaths cannot target %s: /perm is written on the device, not at build time", p, dst)
			}
			if !filepath.IsAbs(src) {
				src = filepath.Join(in.dir, src)
			}
			if prev, ok := out[dst]; ok && prev != src {
				return nil, fmt.Errorf("ExtraFilePaths: %s comes from both %s and %s", dst, prev, src)
			}
			out[dst] = src
		}
	}
	return out, nil
}
