package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vecino/vecino/internal/testnet"
)

// TestTransmissionRemoteDrivesTheSeedbox: Transmission's own command-line
// client, pointed at the node as at a transmission-daemon, lists, adds
// (a .torrent from its disk, one by URL, a magnet link), pauses, resumes,
// leaves files out and removes, and what it does is what the node's own
// API then shows. A download it asked for comes whole from aria2c. What
// the node does not do is refused with a reason, and a wrong password
// changes nothing.
func TestTransmissionRemoteDrivesTheSeedbox(t *testing.T) {
	testnet.NeedTools(t, "transmission-remote", "transmission-create", "aria2c")
	n := torrentNode(t)
	data := filepath.Join(n.State, "plugins", "torrent", "data")
	remoteAs := func(auth string, args ...string) (string, error) { return transmissionRemoteAs(n, auth, args...) }
	remote := func(args ...string) string { t.Helper(); return transmissionRemote(t, n, args...) }
	refused := func(want string, args ...string) { t.Helper(); transmissionRemoteRefused(t, n, want, args...) }

	if out := remote("-si"); !strings.Contains(out, "RPC version: 16") || !strings.Contains(out, "Download directory: "+data) {
		t.Errorf("session info does not show the RPC version and the data folder:\n%s", out)
	}

	// A .torrent on the client's disk: sent as metainfo; its data is here.
	makeFiles(t, data, album)
	alb := createTorrent(t, n, "album")
	tfile := filepath.Join(t.TempDir(), "album.torrent")
	if err := os.WriteFile(tfile, torrentFileOf(t, n, alb.InfoHash), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := n.Do("DELETE", "/api/v1/plugins/torrent/torrents/"+alb.InfoHash, nil, true); code != http.StatusNoContent {
		t.Fatalf("remove album: %d", code)
	}
	remote("-a", tfile)
	waitVecino(t, n, alb.InfoHash, "seeding", time.Minute)
	list := remote("-l")
	if !strings.Contains(list, "album") || !strings.Contains(list, "100%") {
		t.Errorf("list does not show album complete:\n%s", list)
	}
	id := listedID(t, list, "album")

	remote("-t", id, "-S")
	if v := vecinoTorrent(t, n, alb.InfoHash); v.State != "paused" {
		t.Errorf("after -S the node has album %s, want paused", v)
	}
	if out := remote("-l"); !strings.Contains(out, "Stopped") {
		t.Errorf("list after -S:\n%s", out)
	}
	remote("-t", id, "-s")
	waitVecino(t, n, alb.InfoHash, "seeding", 30*time.Second)

	// File 0 in the torrent's order is left out, then taken back.
	files := remote("-t", id, "-f")
	remote("-t", id, "-G", "0")
	if v := vecinoTorrent(t, n, alb.InfoHash); v.Skipped != 1 {
		t.Errorf("after -G 0 the node skips %d files, want 1\n%s", v.Skipped, files)
	}
	if out := remote("-t", id, "-f"); !strings.Contains(out, "No ") {
		t.Errorf("file list after -G 0 shows no file left out:\n%s", out)
	}
	remote("-t", id, "-g", "0")
	if v := vecinoTorrent(t, n, alb.InfoHash); v.Skipped != 0 {
		t.Errorf("after -g 0 the node skips %d files, want 0", v.Skipped)
	}

	// Its own ratio limit, then none, then the node's again.
	for _, c := range []struct {
		flag  string
		ratio float64
		own   bool
	}{{"-sr", 2, true}, {"-SR", 0, true}, {"-srd", 0, false}} {
		args := []string{"-t", id, c.flag}
		if c.flag == "-sr" {
			args = append(args, "2")
		}
		remote(args...)
		if l := vecinoLimits(t, n, alb.InfoHash); l.Ratio != c.ratio || l.RatioOwn != c.own {
			t.Errorf("after %s the node has album's ratio limit %+v, want %g (own: %v)", strings.Join(args, " "), l, c.ratio, c.own)
		}
	}

	// What the node does not do, and ids that name nothing: refused.
	refused("uploadLimit", "-t", id, "-u", "100")
	refused("no torrent with id 99", "-t", "99", "-S")
	refused("session-set", "-u", "100")
	if v := vecinoTorrent(t, n, alb.InfoHash); v.State != "seeding" {
		t.Errorf("after refused calls album is %s, want seeding", v)
	}
	// The API secret is the password; a wrong one changes nothing.
	if out, err := remoteAs("vecino:wrong", "-t", id, "-S"); err == nil {
		t.Errorf("a wrong password was taken: %s", out)
	}
	if v := vecinoTorrent(t, n, alb.InfoHash); v.State != "seeding" {
		t.Errorf("after a call with a wrong password album is %s, want seeding", v)
	}

	// A magnet link: every field asked of it, and the node's sampling of
	// its peers, while it has no metadata; then removed.
	const wanted = "89abcdef0123456789abcdef0123456789abcdef"
	remote("-a", "magnet:?xt=urn:btih:"+wanted+"&dn=wanted")
	if v := vecinoTorrent(t, n, wanted); v.State != "metadata" {
		t.Errorf("magnet added through the RPC: %s, want waiting for metadata", v)
	}
	time.Sleep(2 * time.Second) // a tick or two of sampling
	magnetID := listedID(t, remote("-l"), "wanted")
	for _, what := range []string{"-i", "-f", "-ip", "-it"} {
		remote("-t", magnetID, what)
	}
	if p := n.Status().Plugin("torrent"); p.Restarts != 0 {
		t.Fatalf("the torrent plugin restarted %d times while a magnet waited for metadata\n%s", p.Restarts, n.Log())
	}
	remote("-t", magnetID, "-r")
	for _, v := range vecinoTorrents(t, n) {
		if v.InfoHash == wanted {
			t.Errorf("the magnet is still on the node after -r: %s", v)
		}
	}

	// By URL, into a folder of the data folder as Sonarr asks for its
	// category: the node fetches the .torrent and downloads what aria2c
	// seeds; transmission-remote sees it done, and every file is whole.
	// After a restart it seeds from that folder still.
	sums, file, port := seedWithAria2(t, nil, "mixtape", map[string]int{"mixtape/a.ogg": 2<<20 + 5, "mixtape/b.ogg": 600 << 10})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/mixtape.torrent" {
			http.NotFound(w, r)
			return
		}
		w.Write(file)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	category := filepath.Join(data, "tv-sonarr")
	out := remote("-a", fmt.Sprintf("http://%s/mixtape.torrent", ln.Addr()), "-w", category)
	mixID := listedID(t, remote("-l"), "mixtape")
	var mix torrentView
	for _, v := range vecinoTorrents(t, n) {
		if v.Name == "mixtape" {
			mix = v
		}
	}
	if mix.InfoHash == "" {
		t.Fatalf("the torrent added by URL is not on the node:\n%s", out)
	}
	addPeer(t, n, mix.InfoHash, port)
	waitVecino(t, n, mix.InfoHash, "seeding", 2*time.Minute)
	checkFiles(t, "vecino", category, sums)
	if info := remote("-t", mixID, "-i"); !strings.Contains(info, "Percent Done: 100%") || !strings.Contains(info, "Hash: "+mix.InfoHash) ||
		!strings.Contains(info, "Location: "+category) {
		t.Errorf("details of the finished download:\n%s", info)
	}
	refused("not in this node's data folder", "-a", "magnet:?xt=urn:btih:"+wanted, "-w", "/etc")
	n.Stop()
	n.Restart()
	n.WaitPlugin("torrent", 30*time.Second, testnet.Running)
	if v := waitVecino(t, n, mix.InfoHash, "seeding", time.Minute); v.Done != v.Size {
		t.Errorf("after a restart mixtape is %s", v)
	}
	refused("404", "-a", fmt.Sprintf("http://%s/missing.torrent", ln.Addr()))
}

type limitsView struct {
	Ratio    float64
	RatioOwn bool `json:"ratio_own"`
	Idle     string
	IdleOwn  bool `json:"idle_own"`
}

// transmissionRemoteAs runs Debian's transmission-remote against n's
// router at /transmission/rpc, where Transmission's clients look for it,
// with auth (user:password).
func transmissionRemoteAs(n *testnet.Node, auth string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "transmission-remote", append([]string{n.API + "/transmission", "-n", auth}, args...)...).CombinedOutput()
	return string(out), err
}

// transmissionRemote runs transmission-remote with n's secret and
// returns what it printed; it fails the test if the command fails.
func transmissionRemote(t testing.TB, n *testnet.Node, args ...string) string {
	t.Helper()
	out, err := transmissionRemoteAs(n, "vecino:"+n.Token, args...)
	if err != nil {
		t.Fatalf("transmission-remote %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// transmissionRemoteRefused checks that the node refuses what
// transmission-remote asks, saying want.
func transmissionRemoteRefused(t testing.TB, n *testnet.Node, want string, args ...string) {
	t.Helper()
	out, err := transmissionRemoteAs(n, "vecino:"+n.Token, args...)
	if err == nil || !strings.Contains(out, want) {
		t.Errorf("transmission-remote %s: %v, %q; want it refused with %q", strings.Join(args, " "), err, out, want)
	}
}

// vecinoLimits is the seeding limits the node holds torrent ih to.
func vecinoLimits(t testing.TB, n *testnet.Node, ih string) limitsView {
	t.Helper()
	var v struct{ Limits limitsView }
	code, body, err := n.Do("GET", "/api/v1/plugins/torrent/torrents/"+ih, nil, false)
	if err != nil || code != http.StatusOK || json.Unmarshal(body, &v) != nil {
		t.Fatalf("GET torrent %s: %d %v %s", ih, code, err, body)
	}
	return v.Limits
}

// listedID is the id transmission-remote -l gives the torrent named name.
func listedID(t testing.TB, list, name string) string {
	t.Helper()
	for _, line := range strings.Split(list, "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && f[len(f)-1] == name {
			return strings.TrimSuffix(f[0], "*") // * marks a torrent in error
		}
	}
	t.Fatalf("%s not listed:\n%s", name, list)
	return ""
}

// TestAFileFetchedFirst: mid-download from Transmission (at 2 MiB/s), the
// owner has transmission-remote put the last episode of a season first:
// it is whole while the first two are not, the others follow, all whole;
// the files list says which is first. Low priority, which the engine does
// not have, is refused.
func TestAFileFetchedFirst(t *testing.T) {
	testnet.NeedTools(t, "transmission-remote")
	_, n, v, sums := slowDownload(t, "season", map[string]int{"season/e1.mkv": 8 << 20, "season/e2.mkv": 8 << 20, "season/e3.mkv": 4 << 20})
	id := listedID(t, transmissionRemote(t, n, "-l"), "season")
	transmissionRemote(t, n, "-t", id, "-ph", "2")
	if files := transmissionRemote(t, n, "-t", id, "-f"); !regexp.MustCompile(`(?m)High\s+Yes\s+.*e3\.mkv`).MatchString(files) {
		t.Errorf("transmission-remote -f does not show e3.mkv first:\n%s", files)
	}
	transmissionRemoteRefused(t, n, "two priorities", "-t", id, "-pl", "0")

	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		var list struct{ Files []FileStatus }
		code, body, err := n.Do("GET", "/api/v1/plugins/torrent/torrents/"+v.InfoHash+"/files", nil, false)
		if err != nil || code != http.StatusOK || json.Unmarshal(body, &list) != nil {
			t.Fatalf("files: %d %v %s", code, err, body)
		}
		var others int64
		whole := false
		for _, f := range list.Files {
			if f.Path == "e3.mkv" {
				whole = f.Done == f.Size
				if f.Priority != "high" {
					t.Errorf("e3.mkv has priority %q", f.Priority)
				}
			} else {
				others += f.Done
			}
		}
		if whole {
			// The others had what came before e3.mkv was put first (half
			// a second's worth), and pieces already asked for.
			if others > 6<<20 {
				t.Errorf("e3.mkv, first, was whole only once %d of the others' 16 MiB were", others)
			}
			t.Logf("e3.mkv whole with %.1f MiB of the others' 16 here", float64(others)/(1<<20))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("e3.mkv not whole in a minute: %s", body)
		}
	}
	waitVecino(t, n, v.InfoHash, "seeding", 2*time.Minute)
	checkFiles(t, "vecino", filepath.Join(n.State, "plugins", "torrent", "data"), sums)
}

// FileStatus is a file of a torrent as the node lists it.
type FileStatus struct {
	Path       string
	Size, Done int64
	Priority   string
}
