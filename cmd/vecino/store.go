package main

import (
	"archive/tar"
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

const storeAPI = "/api/v1/plugins/store"

type storePin struct {
	CID         string    `json:"cid"`
	Name        string    `json:"name"`
	Replication int       `json:"replication"`
	Origin      string    `json:"origin"`
	Size        int64     `json:"size"`
	Blocks      int       `json:"blocks"`
	Added       time.Time `json:"added"`
	Holders     []string  `json:"holders"`
}

func (c *client) store(args []string) error {
	if len(args) == 0 {
		return errors.New("store: say add, get, cat, pin, unpin, ls, stat, gc or verify")
	}
	cmd, rest := args[0], args[1:]
	fs := flag.NewFlagSet("store "+cmd, flag.ExitOnError)
	factor := fs.Int("r", 0, "replication: how many nodes hold it (default: the node's setting)")
	hidden := fs.Bool("hidden", false, "add: include files whose names start with a dot (ipfs add leaves them out too)")
	out := fs.String("o", "", "get: where to write (default: the CID, in this folder)")
	fs.Parse(rest)
	one := func() (string, error) {
		if fs.NArg() != 1 {
			return "", fmt.Errorf("store %s takes one argument", cmd)
		}
		return fs.Arg(0), nil
	}
	arg, err := one()
	switch cmd {
	case "ls", "list":
		return c.storeList()
	case "verify":
		return c.storeVerify()
	case "gc":
		var res map[string]int64
		if _, err := c.do("POST", storeAPI+"/gc", nil, "", &res); err != nil {
			return err
		}
		fmt.Printf("removed %d blocks, %s\n", res["blocks"], humanBytes(float64(res["bytes"])))
		return nil
	}
	if err != nil {
		return err
	}
	switch cmd {
	case "add":
		return c.storeAdd(arg, *factor, *hidden)
	case "get":
		return c.storeGet(arg, *out)
	case "cat":
		resp, err := c.send("GET", storeAPI+"/cat/"+url.PathEscape(arg), nil, "", 0)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = io.Copy(os.Stdout, resp.Body)
		return err
	case "pin":
		return c.storePin(arg, *factor)
	case "unpin":
		_, err := c.do("DELETE", storeAPI+"/pin/"+url.PathEscape(arg), nil, "", nil)
		if err == nil {
			fmt.Println("unpinned", arg)
		}
		return err
	case "stat":
		var raw map[string]any
		if err := c.getJSON(storeAPI+"/stat/"+url.PathEscape(arg), &raw); err != nil {
			return err
		}
		return printJSON(raw)
	case "providers":
		var out struct {
			Providers []struct {
				ID    string
				Addrs []string
			}
		}
		if err := c.getJSON(storeAPI+"/providers/"+url.PathEscape(arg), &out); err != nil {
			return err
		}
		if len(out.Providers) == 0 {
			fmt.Println("no node announces", arg, "on the DHT")
		}
		for _, p := range out.Providers {
			fmt.Println(p.ID, strings.Join(p.Addrs, " "))
		}
		return nil
	}
	return fmt.Errorf("store: unknown command %q", cmd)
}

// meter counts bytes and, while long work runs, reports them on stderr.
type meter struct {
	what  string
	total int64
	n     atomic.Int64
	stop  chan struct{}
	start time.Time
}

func newMeter(what string, total int64) *meter {
	m := &meter{what: what, total: total, stop: make(chan struct{}), start: time.Now()}
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		p := newProgress()
		for {
			select {
			case <-m.stop:
				p.done()
				return
			case <-t.C:
				n := m.n.Load()
				line := fmt.Sprintf("%s %s", m.what, humanBytes(float64(n)))
				if m.total > 0 {
					line += fmt.Sprintf(" of %s (%.0f%%)", humanBytes(float64(m.total)), 100*float64(n)/float64(m.total))
				}
				line += fmt.Sprintf(", %s/s", humanBytes(float64(n)/time.Since(m.start).Seconds()))
				p.show(line)
			}
		}
	}()
	return m
}

func (m *meter) Write(p []byte) (int, error) { m.n.Add(int64(len(p))); return len(p), nil }
func (m *meter) done()                       { close(m.stop) }

func (c *client) storeAdd(path string, factor int, hidden bool) error {
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	q := url.Values{"name": {filepath.Base(path)}}
	if factor > 0 {
		q.Set("replication", fmt.Sprint(factor))
	}
	var body io.Reader
	ctype := "application/octet-stream"
	var total int64
	if info.IsDir() {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(tarDir(pw, path, hidden)) }()
		body, ctype = pr, "application/x-tar"
	} else {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		body, total = f, info.Size()
	}
	m := newMeter("sent", total)
	resp, err := c.send("POST", storeAPI+"/add?"+q.Encode(), io.TeeReader(body, m), ctype, 0)
	m.done()
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var p storePin
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		return fmt.Errorf("add %s: bad answer: %w", path, err)
	}
	fmt.Printf("added %s %s\n", p.CID, filepath.Base(path))
	return nil
}

// tarDir writes dir's contents (not dir itself) as a tar stream, leaving
// out dot files unless hidden, as `ipfs add -r` does.
func tarDir(w io.Writer, dir string, hidden bool) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		if !hidden && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		h, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		h.Name = filepath.ToSlash(rel)
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

func (c *client) storeGet(id, out string) error {
	if out == "" {
		out = id
	}
	resp, err := c.send("GET", storeAPI+"/get/"+url.PathEscape(id), nil, "", 0)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	m := newMeter("received", 0)
	defer m.done()
	tr := tar.NewReader(io.TeeReader(resp.Body, m))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("get %s: %w", id, err)
		}
		rel, ok := strings.CutPrefix(h.Name, id)
		if !ok || strings.Contains(rel, "..") {
			return fmt.Errorf("get %s: unexpected entry %q", id, h.Name)
		}
		dst := filepath.Join(out, filepath.FromSlash(rel))
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(dst, 0o755)
		case tar.TypeSymlink:
			err = os.Symlink(h.Linkname, dst)
		case tar.TypeReg:
			err = writeFile(dst, tr)
		}
		if err != nil {
			return fmt.Errorf("get %s: %w", id, err)
		}
	}
	fmt.Printf("saved %s to %s\n", id, out)
	return nil
}

func writeFile(dst string, r io.Reader) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (c *client) storePin(id string, factor int) error {
	path := storeAPI + "/pin/" + url.PathEscape(id)
	if factor > 0 {
		path += fmt.Sprintf("?replication=%d", factor)
	}
	var last struct {
		Pin *storePin `json:"pin"`
	}
	if err := c.progressLines(path, "pin "+id, &last, func() bool { return last.Pin != nil }); err != nil {
		return err
	}
	p := last.Pin
	fmt.Printf("pinned %s (%d blocks, %s, replication %d)\n", p.CID, p.Blocks, humanBytes(float64(p.Size)), p.Replication)
	return nil
}

// storeVerify has the node read back and check every block it holds.
func (c *client) storeVerify() error {
	var last struct {
		Verified *struct {
			Blocks  int   `json:"blocks"`
			Bytes   int64 `json:"bytes"`
			Corrupt int   `json:"corrupt"`
		} `json:"verified"`
	}
	if err := c.progressLines(storeAPI+"/verify", "verify", &last, func() bool { return last.Verified != nil }); err != nil {
		return err
	}
	v := last.Verified
	fmt.Printf("verified %d blocks, %s: %d corrupt", v.Blocks, humanBytes(float64(v.Bytes)), v.Corrupt)
	if v.Corrupt > 0 {
		fmt.Print(" (kept aside and fetched again from neighbours; see repaired_blocks in vecino status)")
	}
	fmt.Println()
	return nil
}

// progressLines POSTs to path and reads its NDJSON answer: progress lines
// ({"blocks", "bytes"}) go to stderr, an error line ends it with that
// error, and every line is decoded into last too, until done says it held
// the answer.
func (c *client) progressLines(path, what string, last any, done func() bool) error {
	resp, err := c.send("POST", path, nil, "", 0)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var line struct {
			Blocks int    `json:"blocks"`
			Bytes  int64  `json:"bytes"`
			Error  string `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return fmt.Errorf("%s: bad answer: %w", what, err)
		}
		if line.Error != "" {
			return errors.New(line.Error)
		}
		if err := json.Unmarshal(sc.Bytes(), last); err != nil {
			return fmt.Errorf("%s: bad answer: %w", what, err)
		}
		if done() {
			return nil
		}
		fmt.Fprintf(os.Stderr, "%d blocks, %s\n", line.Blocks, humanBytes(float64(line.Bytes)))
	}
	return fmt.Errorf("%s: answer ended early: %v", what, sc.Err())
}

func (c *client) storeList() error {
	var pins []storePin
	if err := c.getJSON(storeAPI+"/pins", &pins); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CID\tNAME\tSIZE\tHOLDERS\tORIGIN")
	for _, p := range pins {
		origin := "here"
		if p.Origin != "" {
			origin = p.Origin
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\n", p.CID, p.Name, humanBytes(float64(p.Size)), len(p.Holders), p.Replication, origin)
	}
	return tw.Flush()
}
