package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

const torrentAPI = "/api/v1/plugins/torrent"

// torrentView is the torrent plugin's View.
type torrentView struct {
	InfoHash string  `json:"info_hash"`
	Name     string  `json:"name"`
	State    string  `json:"state"`
	Size     int64   `json:"size"`
	Done     int64   `json:"done"`
	Progress float64 `json:"progress"`
	UpRate   float64 `json:"up_rate"`
	DownRate float64 `json:"down_rate"`
	Ratio    float64 `json:"ratio"`
	Peers    int     `json:"peers"`
	Seeders  int     `json:"seeders"`
	Magnet   string  `json:"magnet"`
	Verified float64 `json:"verified"`
	Error    string  `json:"error"`
	Note     string  `json:"note"`
	Dir      string  `json:"dir"`
	Queue    int     `json:"queue"`
	Moving   *struct {
		To       string  `json:"to"`
		Progress float64 `json:"progress"`
	} `json:"moving"`
	MoveError string `json:"move_error"`
	Limits    struct {
		Ratio    float64 `json:"ratio"`
		RatioOwn bool    `json:"ratio_own"`
		Idle     string  `json:"idle"`
		IdleOwn  bool    `json:"idle_own"`
	} `json:"limits"`
}

func (c *client) torrent(args []string) error {
	if len(args) == 0 {
		return errors.New("torrent: say ls, add, show, files, get, skip, want, wait, verify, start, stop, limit, move, queue, quiet, blocklist, tracker, peer, high, normal, rm or create")
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "ls", "list":
		return c.torrentList()
	case "add":
		return c.torrentAdd(rest)
	case "show":
		if len(rest) != 1 {
			return errors.New("torrent show INFOHASH")
		}
		var raw map[string]any
		if err := c.getJSON(torrentAPI+"/torrents/"+rest[0], &raw); err != nil {
			return err
		}
		return printJSON(raw)
	case "wait":
		if len(rest) != 1 {
			return errors.New("torrent wait INFOHASH")
		}
		return c.torrentWait(rest[0])
	case "verify":
		fs := flag.NewFlagSet("torrent verify", flag.ExitOnError)
		wait := fs.Bool("wait", false, "show progress until the verify is done, then what it found")
		fs.Parse(rest)
		if fs.NArg() != 1 {
			return errors.New("torrent verify [-wait] INFOHASH")
		}
		var v torrentView
		if _, err := c.do("POST", torrentAPI+"/torrents/"+fs.Arg(0)+"/verify", nil, "", &v); err != nil {
			return err
		}
		fmt.Printf("verifying %s %s\n", v.InfoHash, v.Name)
		if *wait {
			return c.torrentVerifyWait(v.InfoHash)
		}
		return nil
	case "files":
		if len(rest) != 1 {
			return errors.New("torrent files INFOHASH")
		}
		var out struct{ Files []torrentFile }
		if err := c.getJSON(torrentAPI+"/torrents/"+rest[0]+"/files", &out); err != nil {
			return err
		}
		return printFiles(out.Files)
	case "skip", "want", "high", "normal":
		if len(rest) < 2 {
			return fmt.Errorf("torrent %s INFOHASH PATH... (paths as 'torrent files' lists them; skip leaves files out, want takes them back, high fetches them first, normal as the rest)", cmd)
		}
		var out struct{ Files []torrentFile }
		if _, err := c.postJSON(torrentAPI+"/torrents/"+rest[0]+"/files", map[string][]string{cmd: rest[1:]}, &out); err != nil {
			return err
		}
		return printFiles(out.Files)
	case "start", "stop":
		if len(rest) != 1 {
			return fmt.Errorf("torrent %s INFOHASH (stop pauses a torrent; start resumes it, has one a ratio or idle limit finished seed again, or downloads anew one whose data went missing)", cmd)
		}
		var v torrentView
		if _, err := c.do("POST", torrentAPI+"/torrents/"+rest[0]+"/"+cmd, nil, "", &v); err != nil {
			return err
		}
		fmt.Printf("%s %s: %s\n", v.InfoHash, v.Name, v.State)
		return nil
	case "limit":
		return c.torrentLimit(rest)
	case "move":
		return c.torrentMove(rest)
	case "quiet":
		return c.torrentQuiet(rest)
	case "blocklist":
		return c.torrentBlocklist(rest)
	case "queue":
		if len(rest) != 2 {
			return errors.New("torrent queue INFOHASH top|up|down|bottom|POSITION (max_active torrents transfer at once, the first in the queue)")
		}
		var v torrentView
		if _, err := c.postJSON(torrentAPI+"/torrents/"+rest[0]+"/queue", map[string]string{"to": rest[1]}, &v); err != nil {
			return err
		}
		fmt.Printf("%s %s: %d in the queue, %s\n", v.InfoHash, v.Name, v.Queue+1, v.State)
		return nil
	case "get":
		fs := flag.NewFlagSet("torrent get", flag.ExitOnError)
		out := fs.String("o", "", "where to save it (default: the file's name, here)")
		fs.Parse(rest)
		if fs.NArg() != 2 {
			return errors.New("torrent get [-o FILE] INFOHASH PATH (PATH as 'torrent files' lists it; one still downloading comes as it does)")
		}
		return c.torrentGet(fs.Arg(0), fs.Arg(1), *out)
	case "rm", "remove":
		fs := flag.NewFlagSet("torrent rm", flag.ExitOnError)
		del := fs.Bool("delete-data", false, "delete the downloaded files too")
		fs.Parse(rest)
		if fs.NArg() != 1 {
			return errors.New("torrent rm [-delete-data] INFOHASH")
		}
		path := torrentAPI + "/torrents/" + fs.Arg(0)
		if *del {
			path += "?delete_data=true"
		}
		if _, err := c.do("DELETE", path, nil, "", nil); err != nil {
			return err
		}
		fmt.Println("removed", fs.Arg(0))
		return nil
	case "peer":
		if len(rest) != 2 {
			return errors.New("torrent peer INFOHASH IP:PORT (a peer to connect to; tried again while not connected, for an hour)")
		}
		if _, err := c.postJSON(torrentAPI+"/torrents/"+rest[0]+"/peers", map[string]string{"addr": rest[1]}, nil); err != nil {
			return err
		}
		fmt.Printf("%s: connecting to %s\n", rest[0], rest[1])
		return nil
	case "tracker":
		if len(rest) < 2 {
			return errors.New("torrent tracker INFOHASH URL... (announce URLs to announce it to as well, from now on)")
		}
		var out struct {
			Added []string `json:"added"`
		}
		if _, err := c.postJSON(torrentAPI+"/torrents/"+rest[0]+"/trackers", map[string][]string{"add": rest[1:]}, &out); err != nil {
			return err
		}
		if len(out.Added) == 0 {
			fmt.Printf("%s announces to all of these already\n", rest[0])
		}
		for _, u := range out.Added {
			fmt.Printf("%s: announcing to %s\n", rest[0], u)
		}
		return nil
	case "create":
		var trackers multiFlag
		fs := flag.NewFlagSet("torrent create", flag.ExitOnError)
		fs.Var(&trackers, "tracker", "announce URL (repeat for more)")
		fs.Parse(rest)
		if fs.NArg() != 1 {
			return errors.New("torrent create [-tracker URL]... NAME (a file or folder in the plugin's data folder)")
		}
		var m making
		if _, err := c.postJSON(torrentAPI+"/create", map[string]any{"path": fs.Arg(0), "trackers": trackers}, &m); err != nil {
			return err
		}
		return c.createWait(m.ID)
	default:
		return fmt.Errorf("torrent: unknown command %q (say ls, add, show, files, skip, want, wait, verify, start, stop, rm, peer or create)", cmd)
	}
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func (c *client) torrentList() error {
	var out struct {
		Torrents []torrentView
	}
	if err := c.getJSON(torrentAPI+"/torrents", &out); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "INFOHASH\tNAME\tSTATE\tDONE\tSIZE\tDOWN/s\tUP/s\tPEERS\tRATIO")
	for _, v := range out.Torrents {
		state := v.State
		if v.Error != "" {
			state += ": " + v.Error
		} else if v.Note != "" {
			state += " (" + v.Note + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f%%\t%s\t%s\t%s\t%d\t%.2f\n", v.InfoHash, v.Name, state, v.Progress*100,
			humanBytes(float64(v.Size)), humanBytes(v.DownRate), humanBytes(v.UpRate), v.Peers, v.Ratio)
	}
	return tw.Flush()
}

// torrentFile is one file of a torrent as the API shows it.
type torrentFile struct {
	Path     string `json:"path"`
	Size     int64  `json:"size"`
	Done     int64  `json:"done"`
	Wanted   bool   `json:"wanted"`
	Priority string `json:"priority"`
}

func printFiles(files []torrentFile) error {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WANTED\tDONE\tSIZE\tPATH")
	for _, f := range files {
		wanted := "yes"
		switch {
		case !f.Wanted:
			wanted = "skip"
		case f.Priority == "high":
			wanted = "first"
		}
		done := 100.0
		if f.Size > 0 {
			done = float64(f.Done) / float64(f.Size) * 100
		}
		fmt.Fprintf(tw, "%s\t%.1f%%\t%s\t%s\n", wanted, done, humanBytes(float64(f.Size)), f.Path)
	}
	return tw.Flush()
}

// torrentAdd sends each argument, a .torrent file or a magnet link, and
// reports each alone: one bad file does not stop the others.
func (c *client) torrentAdd(args []string) error {
	fs := flag.NewFlagSet("torrent add", flag.ExitOnError)
	wait := fs.Bool("wait", false, "show progress until every torrent added is complete")
	dir := fs.String("dir", "", "a folder in the node's data folder for the data (made if need be)")
	fs.Parse(args)
	if fs.NArg() == 0 {
		return errors.New("torrent add [-wait] [-dir FOLDER] FILE.torrent|MAGNET...")
	}
	path := torrentAPI + "/torrents"
	if *dir != "" {
		path += "?dir=" + url.QueryEscape(*dir)
	}
	var failed int
	var added []string
	for _, arg := range fs.Args() {
		var body []byte
		if strings.HasPrefix(arg, "magnet:") {
			body = []byte(arg)
		} else {
			data, err := os.ReadFile(arg)
			if err != nil {
				fmt.Fprintf(os.Stderr, "vecino: %v\n", err)
				failed++
				continue
			}
			body = data
		}
		var v torrentView
		code, err := c.do("POST", path, bytes.NewReader(body), "application/x-bittorrent", &v)
		if err != nil {
			fmt.Fprintf(os.Stderr, "vecino: %s: %v\n", arg, err)
			failed++
			continue
		}
		what := "added"
		if code == http.StatusOK {
			what = "already there"
		}
		fmt.Printf("%s %s %s\n", what, v.InfoHash, v.Name)
		added = append(added, v.InfoHash)
	}
	if *wait {
		for _, ih := range added {
			if err := c.torrentWait(ih); err != nil {
				return err
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d not added", failed, fs.NArg())
	}
	return nil
}

// torrentWait redraws one progress line until the torrent is complete or
// stops with an error.
func (c *client) torrentWait(ih string) error {
	p := newProgress()
	for {
		var v torrentView
		if err := c.getJSON(torrentAPI+"/torrents/"+ih, &v); err != nil {
			return err
		}
		p.show(fmt.Sprintf("%s: %s %5.1f%% of %s, %s/s down, %s/s up, %d peers", v.Name, v.State, v.Progress*100,
			humanBytes(float64(v.Size)), humanBytes(v.DownRate), humanBytes(v.UpRate), v.Peers))
		switch {
		case v.Error != "":
			p.done()
			return fmt.Errorf("%s: %s", v.Name, v.Error)
		case v.State == "seeding" || v.State == "finished":
			p.done()
			fmt.Printf("complete %s %s\n", v.InfoHash, v.Name)
			return nil
		}
		time.Sleep(time.Second)
	}
}

// making is a torrent the node is making, as GET /creates/{id} shows it.
type making struct {
	ID       string  `json:"id"`
	Name     string  `json:"name"`
	State    string  `json:"state"`
	Size     int64   `json:"size"`
	Hashed   int64   `json:"hashed"`
	Progress float64 `json:"progress"`
	Rate     float64 `json:"rate"`
	Error    string  `json:"error"`
	InfoHash string  `json:"info_hash"`
	Magnet   string  `json:"magnet"`
	Already  bool    `json:"already"`
}

// createWait shows a making's progress while the node hashes the data
// (minutes for a large folder on a Pi's USB disk), then the torrent made
// and its magnet link. A restarting plugin (502, 503) is waited out for a
// minute: the next one takes the making up again. Ctrl-C calls it off.
func (c *client) createWait(id string) error {
	interrupt, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p := newProgress()
	var down time.Time // since when the plugin does not answer
	name := "making " + id
	for {
		var m making
		err := c.getJSON(torrentAPI+"/creates/"+id, &m)
		var ae *apiError
		switch {
		case err == nil && m.State != "queued" && m.State != "hashing":
			p.done()
			return madeOrNot(m)
		case err == nil:
			down, name = time.Time{}, m.Name
			p.show(makingLine(m))
		case errors.As(err, &ae) && ae.code == http.StatusNotFound:
			p.done()
			return fmt.Errorf("the node no longer knows making %s (lost with its state, or ended long ago): run the create again", id)
		case errors.As(err, &ae) && (ae.code == http.StatusServiceUnavailable || ae.code == http.StatusBadGateway) &&
			(down.IsZero() || time.Since(down) < time.Minute):
			if down.IsZero() {
				down = time.Now()
			}
			p.show("the torrent plugin is restarting: " + ae.msg)
		default:
			p.done()
			return err
		}
		select {
		case <-interrupt.Done():
			p.done()
			stop() // a second Ctrl-C ends the command at once
			if _, err := c.do("DELETE", torrentAPI+"/creates/"+id, nil, "", nil); err != nil {
				return fmt.Errorf("interrupted, but making %s could not be called off: %w", id, err)
			}
			return fmt.Errorf("interrupted: the making of %s is called off", name)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// makingLine is a making under way, as its progress line shows it.
func makingLine(m making) string {
	if m.State == "queued" {
		return m.Name + ": waiting for another torrent to be made first"
	}
	return fmt.Sprintf("%s: hashing, %5.1f%% of %s, %s/s", m.Name, m.Progress*100, humanBytes(float64(m.Size)), humanBytes(m.Rate))
}

// madeOrNot prints the torrent an ended making made, or says why it made
// none.
func madeOrNot(m making) error {
	switch m.State {
	case "done":
		if m.Already {
			fmt.Printf("already there ")
		}
		fmt.Printf("%s %s (%s)\n%s\n", m.InfoHash, m.Name, humanBytes(float64(m.Size)), m.Magnet)
		return nil
	case "cancelled":
		return fmt.Errorf("the making of %s was cancelled", m.Name)
	}
	return errors.New(m.Error)
}

// torrentVerifyWait shows a verify's progress until it is done, then says
// whether all the data was good.
func (c *client) torrentVerifyWait(ih string) error {
	p := newProgress()
	for {
		var v torrentView
		if err := c.getJSON(torrentAPI+"/torrents/"+ih, &v); err != nil {
			return err
		}
		if v.State == "verifying" {
			p.show(fmt.Sprintf("%s: verifying, %5.1f%% of %s hashed", v.Name, v.Verified*100, humanBytes(float64(v.Size))))
			time.Sleep(time.Second)
			continue
		}
		p.done()
		if v.Progress == 1 {
			fmt.Printf("all good %s %s: every piece matches\n", v.InfoHash, v.Name)
			return nil
		}
		return fmt.Errorf("%s: only %.1f%% of the data is good; the rest will be fetched again from peers", v.Name, v.Progress*100)
	}
}

// torrentLimit gives a torrent its own seeding limits, or the node's back.
func (c *client) torrentLimit(args []string) error {
	fs := flag.NewFlagSet("torrent limit", flag.ExitOnError)
	ratio := fs.String("ratio", "", `stop seeding at this ratio; "none" seeds for ever, "node" takes [plugins.torrent]'s ratio_limit again`)
	idle := fs.String("idle", "", `stop seeding after nobody downloaded for this long ("90m"); "none", or "node" for idle_limit`)
	usage := errors.New("torrent limit INFOHASH [-ratio N|none|node] [-idle DURATION|none|node]")
	var ih string // before the flags or after them
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		ih, args = args[0], args[1:]
	}
	fs.Parse(args)
	switch {
	case ih == "" && fs.NArg() == 1:
		ih = fs.Arg(0)
	case ih == "" || fs.NArg() != 0:
		return usage
	}
	body := map[string]any{}
	if *ratio != "" {
		body["ratio"] = *ratio
	}
	if *idle != "" {
		body["idle"] = *idle
	}
	var v torrentView
	if _, err := c.postJSON(torrentAPI+"/torrents/"+ih+"/limits", body, &v); err != nil {
		return err
	}
	fmt.Printf("%s %s: %s\n", v.InfoHash, v.Name, limitsText(v))
	return nil
}

// quietView is the torrent plugin's AltView.
type quietView struct {
	On        bool   `json:"on"`
	Why       string `json:"why"`
	UpKiBps   int64  `json:"up_kib_per_s"`
	DownKiBps int64  `json:"down_kib_per_s"`
	Hours     string `json:"hours"`
	Days      string `json:"days"`
}

// torrentQuiet shows the quiet hours' limits, or switches them on or off
// by hand, or back to their schedule.
func (c *client) torrentQuiet(args []string) error {
	var q quietView
	switch {
	case len(args) == 0:
		var all struct {
			Quiet quietView `json:"quiet_hours"`
		}
		if err := c.getJSON(torrentAPI+"/torrents", &all); err != nil {
			return err
		}
		q = all.Quiet
	case len(args) == 1 && (args[0] == "on" || args[0] == "off" || args[0] == "auto"):
		var on *bool
		if args[0] != "auto" {
			b := args[0] == "on"
			on = &b
		}
		if _, err := c.postJSON(torrentAPI+"/quiet-hours", map[string]*bool{"on": on}, &q); err != nil {
			return err
		}
	default:
		return errors.New("torrent quiet [on|off|auto] (the quiet hours' limits, alt_* in [plugins.torrent]: on or off by hand until the schedule next changes, or back to the schedule)")
	}
	kib := func(n int64) string {
		if n <= 0 {
			return "unlimited"
		}
		return fmt.Sprintf("%d KiB/s", n)
	}
	state := "off"
	if q.On {
		state = "on (" + q.Why + ")"
	}
	fmt.Printf("quiet hours %s: up %s, down %s", state, kib(q.UpKiBps), kib(q.DownKiBps))
	if q.Hours != "" {
		days := q.Days
		if days == "" {
			days = "every day"
		}
		fmt.Printf("; scheduled %s, %s", q.Hours, days)
	}
	fmt.Println()
	if q.UpKiBps <= 0 && q.DownKiBps <= 0 {
		fmt.Println("(no alt_upload_kib_per_s or alt_download_kib_per_s in [plugins.torrent]: quiet hours change nothing)")
	}
	return nil
}

// blocklistView is the torrent plugin's BlocklistView.
type blocklistView struct {
	Ranges  int   `json:"ranges"`
	Refused int64 `json:"refused"`
	Files   map[string]struct {
		Ranges       int    `json:"ranges"`
		Skipped      int    `json:"skipped"`
		FirstSkipped string `json:"first_skipped"`
		Error        string `json:"error"`
	} `json:"files"`
	Folder      string     `json:"folder"`
	URL         string     `json:"url"`
	Fetched     *time.Time `json:"fetched"`
	UpdateError string     `json:"update_error"`
	Dropped     int        `json:"dropped"`
}

// torrentBlocklist shows the blocklists in force or, with "update",
// downloads blocklist_url's list again first.
func (c *client) torrentBlocklist(args []string) error {
	var b blocklistView
	switch {
	case len(args) == 0:
		if err := c.getJSON(torrentAPI+"/blocklist", &b); err != nil {
			return err
		}
	case len(args) == 1 && args[0] == "update":
		if _, err := c.postJSON(torrentAPI+"/blocklist/update", nil, &b); err != nil {
			return err
		}
	default:
		return errors.New("torrent blocklist [update] (the addresses the node neither accepts nor dials: the lists in its blocklists folder and from blocklist_url in [plugins.torrent]; update fetches that URL again)")
	}
	fmt.Printf("blocklist: %d ranges in force, %d refusals since the plugin started\n", b.Ranges, b.Refused)
	names := make([]string, 0, len(b.Files))
	for name := range b.Files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		f := b.Files[name]
		fmt.Printf("  %s: %d ranges", name, f.Ranges)
		if f.Skipped > 0 {
			fmt.Printf(", %d lines skipped (first: %s)", f.Skipped, f.FirstSkipped)
		}
		if f.Error != "" {
			fmt.Printf(", unreadable: %s", f.Error)
		}
		fmt.Println()
	}
	if b.URL != "" {
		fetched := "not yet fetched"
		if b.Fetched != nil {
			fetched = "fetched " + b.Fetched.Local().Format("2006-01-02 15:04")
		}
		fmt.Printf("from-url is %s, %s\n", b.URL, fetched)
	}
	if b.UpdateError != "" {
		fmt.Printf("last update refused: %s\n", b.UpdateError)
	}
	if b.Dropped > 0 {
		fmt.Printf("%d connections closed when the list last changed\n", b.Dropped)
	}
	fmt.Printf("lists are read from %s (P2P, DAT or CIDR lines; plain, gzip or zip)\n", b.Folder)
	return nil
}

// torrentMove moves a torrent's data to a folder of the node's data
// folder, showing a copy to another disk until it is done.
func (c *client) torrentMove(args []string) error {
	fs := flag.NewFlagSet("torrent move", flag.ExitOnError)
	find := fs.Bool("find", false, "the data is in that folder already (copied by hand): point the torrent at it and verify it")
	usage := errors.New(`torrent move [-find] INFOHASH FOLDER (a folder in the node's data folder; "" for the data folder itself)`)
	fs.Parse(args)
	if fs.NArg() != 2 {
		return usage
	}
	ih := fs.Arg(0)
	var v torrentView
	if _, err := c.postJSON(torrentAPI+"/torrents/"+ih+"/move", map[string]any{"dir": fs.Arg(1), "find": *find}, &v); err != nil {
		return err
	}
	p := newProgress()
	for v.Moving != nil {
		p.show(fmt.Sprintf("%s: moving to %s/, %5.1f%% of %s copied", v.Name, v.Moving.To, v.Moving.Progress*100, humanBytes(float64(v.Size))))
		time.Sleep(time.Second)
		v = torrentView{} // a field the answer leaves out is not kept
		if err := c.getJSON(torrentAPI+"/torrents/"+ih, &v); err != nil {
			return err
		}
	}
	p.done()
	if v.MoveError != "" {
		return errors.New(v.MoveError)
	}
	where := v.Dir + "/"
	if v.Dir == "" {
		where = "the data folder"
	}
	fmt.Printf("%s %s: in %s, %s\n", v.InfoHash, v.Name, where, v.State)
	return nil
}

// limitsText says a torrent's seeding limits and whose they are.
func limitsText(v torrentView) string {
	whose := func(own bool) string {
		if own {
			return "its own"
		}
		return "the node's"
	}
	ratio, idle := "none", "none"
	if v.Limits.Ratio > 0 {
		ratio = fmt.Sprintf("%.2f", v.Limits.Ratio)
	}
	if v.Limits.Idle != "" {
		idle = v.Limits.Idle
	}
	return fmt.Sprintf("ratio limit %s (%s), idle limit %s (%s)", ratio, whose(v.Limits.RatioOwn), idle, whose(v.Limits.IdleOwn))
}

// torrentGet saves a file of a torrent from the node, showing progress;
// it is written aside and renamed once whole.
func (c *client) torrentGet(ih, path, out string) error {
	if out == "" {
		out = filepath.Base(filepath.FromSlash(path))
	}
	var parts []string
	for _, p := range strings.Split(path, "/") {
		parts = append(parts, url.PathEscape(p))
	}
	resp, err := c.send("GET", torrentAPI+"/torrents/"+ih+"/data/"+strings.Join(parts, "/"), nil, "", 0)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	tmp := out + ".part"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	m := newMeter("received", resp.ContentLength)
	_, err = io.Copy(io.MultiWriter(f, m), resp.Body)
	m.done()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && resp.ContentLength >= 0 && m.n.Load() != resp.ContentLength {
		err = fmt.Errorf("got %d of %d bytes", m.n.Load(), resp.ContentLength)
	}
	if err != nil {
		return fmt.Errorf("get %s: %w (what came is in %s)", path, err, tmp)
	}
	if err := os.Rename(tmp, out); err != nil {
		return err
	}
	fmt.Printf("saved %s to %s\n", path, out)
	return nil
}
