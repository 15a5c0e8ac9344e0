// Command vecino talks to a running Vecino node over its HTTP API: the
// node's status, and each plugin's work: torrents, chat and storage.
//
//	vecino [-api URL] [-token T | -token-file F | -password P] COMMAND ...
//
// The API address comes from -api, else $VECINO_API, else
// http://127.0.0.1:8734 (the default [api] listen). The secret for requests
// that change state comes from -token, -token-file or -password, else
// $VECINO_TOKEN or $VECINO_PASSWORD, else the token file a node started by
// `make run` writes (vecino-state/api-token).
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

const usage = `usage: vecino [flags] COMMAND

commands:
  status                              the node, its peers and plugins
  torrent ls                          every torrent: state, progress, rates, peers, ratio
  torrent add [-wait] FILE|MAGNET...  add .torrent files or magnet links
  torrent show INFOHASH               one torrent, as JSON
  torrent wait INFOHASH               show progress until it is complete
  torrent rm [-delete-data] INFOHASH  remove a torrent (and its data)
  torrent peer INFOHASH IP:PORT       connect to a peer you know of (tried again,
                                      while not connected, for an hour)
  torrent create [-tracker URL]... NAME
                                      make a torrent of NAME in the data folder,
                                      seed it and print its magnet link
  chat id                             your chat address (makes your key on first use)
  chat send ROOM TEXT...              sign and send a message to a room
  chat read [-follow] [-json] ROOM    the room's history (and, with -follow, what comes)
  chat private ROOM                   make ROOM private: what you send there is sealed
                                      with a key you share; prints its invite
  chat private -new ROOM              a new key for ROOM (after someone left); prints its invite
  chat join INVITE                    join a private room (ROOM#KEY, or a page link)
  chat leave ROOM                     forget a private room's key
  chat dm ADDRESS TEXT...             seal a direct message and leave it on the node
  chat inbox [-keep] [-json]          fetch, open and delete your direct messages
  (chat commands take -key FILE; default $VECINO_CHAT_KEY or ~/.config/vecino/chat.key;
   private rooms' keys are beside it, in chat.rooms, or -rooms FILE)
  store add [-r N] [-hidden] FILE|DIR store and pin a file or folder; prints its CID
                                      (the same CID as ipfs add --cid-version=1)
  store get [-o PATH] CID             fetch a file or folder, from here or a neighbour
  store cat CID                       a file's bytes on stdout
  store pin [-r N] CID                fetch and pin, replicated on N nodes
  store unpin CID                     drop a pin (and the replicas it asked for)
  store ls                            pins, with the nodes holding each
  store stat CID                      type, size, blocks here, holders
  store gc                            delete blocks no pin needs
  store verify                        read back and check every block held here

flags:
`

func main() {
	fs := flag.NewFlagSet("vecino", flag.ExitOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	c := &client{}
	fs.StringVar(&c.base, "api", envOr("VECINO_API", "http://127.0.0.1:8734"), "the node's API (env VECINO_API)")
	fs.StringVar(&c.token, "token", os.Getenv("VECINO_TOKEN"), "API token (env VECINO_TOKEN)")
	tokenFile := fs.String("token-file", "", "file holding the API token (default vecino-state/api-token when it exists)")
	fs.StringVar(&c.password, "password", os.Getenv("VECINO_PASSWORD"), "API password (env VECINO_PASSWORD)")
	fs.Parse(os.Args[1:])
	if err := c.loadToken(*tokenFile); err != nil {
		fatal(err)
	}
	c.base = strings.TrimSuffix(c.base, "/")
	args := fs.Args()
	if len(args) == 0 {
		fs.Usage()
		os.Exit(2)
	}
	var err error
	switch args[0] {
	case "status":
		err = c.status()
	case "torrent", "torrents":
		err = c.torrent(args[1:])
	case "chat":
		err = c.chat(args[1:])
	case "store":
		err = c.store(args[1:])
	default:
		err = fmt.Errorf("unknown command %q (try: status, torrent, chat, store)", args[0])
	}
	if err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "vecino:", err)
	os.Exit(1)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// client is the node's HTTP API.
type client struct {
	base     string
	token    string
	password string
}

func (c *client) loadToken(file string) error {
	if c.token != "" || c.password != "" {
		return nil
	}
	explicit := file != ""
	if !explicit {
		file = "vecino-state/api-token"
	}
	data, err := os.ReadFile(file)
	switch {
	case err == nil:
		c.token = strings.TrimSpace(string(data))
	case explicit:
		return fmt.Errorf("read token: %w", err)
	}
	return nil
}

// apiError is a non-2xx answer, with the node's own error text.
type apiError struct {
	method, path string
	code         int
	msg          string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s %s: %d %s: %s", e.method, e.path, e.code, http.StatusText(e.code), e.msg)
}

// send sends a request and returns the answer for the caller to read and
// close; a non-2xx answer is turned into an apiError. Without a timeout:
// bulk transfers take as long as they take.
func (c *client) send(method, path string, body io.Reader, contentType string, timeout time.Duration) (*http.Response, error) {
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	switch {
	case c.password != "":
		req.SetBasicAuth("vecino", c.password)
	case c.token != "":
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("is the node running? %w", err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var e struct{ Error string }
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return nil, &apiError{method, path, resp.StatusCode, msg}
	}
	return resp, nil
}

// do sends a request and decodes a JSON answer into out (when not nil). It
// returns the status code.
func (c *client) do(method, path string, body io.Reader, contentType string, out any) (int, error) {
	resp, err := c.send(method, path, body, contentType, 2*time.Minute)
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			return ae.code, err
		}
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: answer is not the JSON expected: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

func (c *client) getJSON(path string, out any) error {
	_, err := c.do("GET", path, nil, "", out)
	return err
}

func (c *client) postJSON(path string, in, out any) (int, error) {
	b, err := json.Marshal(in)
	if err != nil {
		return 0, err
	}
	return c.do("POST", path, bytes.NewReader(b), "application/json", out)
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (c *client) status() error {
	var st struct {
		Node struct {
			ID, Name, Version string
			Addrs             []string
			UptimeS           int64          `json:"uptime_s"`
			DHTPeers          map[string]int `json:"dht_peers"`
		}
		Peers  int
		Config struct {
			File          string
			UsingLastGood bool   `json:"using_last_good"`
			Error         string `json:"error"`
		}
		Plugins []struct {
			Name, State, Summary string
			Restarts             int
			LastError            string `json:"last_error"`
		}
	}
	if err := c.getJSON("/api/v1/status", &st); err != nil {
		return err
	}
	fmt.Printf("node     %s (%s), up %s\n", st.Node.Name, st.Node.Version, time.Duration(st.Node.UptimeS)*time.Second)
	fmt.Printf("id       %s\n", st.Node.ID)
	for _, a := range st.Node.Addrs {
		fmt.Printf("address  %s\n", a)
	}
	fmt.Printf("peers    %d\n", st.Peers)
	if d := st.Node.DHTPeers; d != nil {
		fmt.Printf("dht      %d on the LAN DHT, %d on the public IPFS DHT\n", d["lan"], d["wan"])
	} else {
		fmt.Printf("dht      off\n")
	}
	fmt.Printf("config   %s\n", st.Config.File)
	if st.Config.UsingLastGood {
		fmt.Printf("         REFUSED, running on the last good copy: %s\n", st.Config.Error)
	}
	for _, p := range st.Plugins {
		line := fmt.Sprintf("plugin   %-8s %-10s %s", p.Name, p.State, p.Summary)
		if p.Restarts > 0 {
			line += fmt.Sprintf(" (restarted %d times; last error: %s)", p.Restarts, p.LastError)
		}
		fmt.Println(line)
	}
	return nil
}

// humanBytes writes n as B, KiB, MiB or GiB.
func humanBytes(n float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f %s", n, units[i])
	}
	return fmt.Sprintf("%.1f %s", n, units[i])
}
