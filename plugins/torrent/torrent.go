package torrent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	g "github.com/anacrolix/generics"
	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
	"golang.org/x/time/rate"

	"github.com/vecino/vecino/internal/damaged"
	"github.com/vecino/vecino/sdk"
)

// settings is [plugins.torrent].
type settings struct {
	DataDir       string  `toml:"data_dir"`
	WatchDir      string  `toml:"watch_dir"`
	ListenPort    int     `toml:"listen_port"`
	ListenHost    string  `toml:"listen_host"`
	UploadKiBps   int64   `toml:"upload_kib_per_s"`
	DownloadKiBps int64   `toml:"download_kib_per_s"`
	RatioLimit    float64 `toml:"ratio_limit"`
	IdleLimit     string  `toml:"idle_limit"`
	idle          time.Duration
	MaxActive     int `toml:"max_active"`
	// Quiet hours: these limits instead of the two above during AltHours
	// on AltDays, or when switched on by hand (altspeed.go).
	AltUploadKiBps   int64    `toml:"alt_upload_kib_per_s"`
	AltDownloadKiBps int64    `toml:"alt_download_kib_per_s"`
	AltHours         string   `toml:"alt_hours"`
	AltDays          []string `toml:"alt_days"`
	altSched         altSchedule
	// IncompleteDir, a folder in the data folder, holds downloads until
	// they are whole; "" keeps them in their own folder (move.go).
	IncompleteDir     string `toml:"incomplete_dir"`
	DHT               bool   `toml:"dht"`
	PEX               bool   `toml:"pex"`
	UTP               bool   `toml:"utp"`
	Encryption        string `toml:"encryption"`
	Trackers          bool   `toml:"trackers"`
	LocalPeerDiscover bool   `toml:"local_peer_discovery"`
	PortMapping       bool   `toml:"port_mapping"`
	// WebHome is a folder holding a web client made for Transmission's
	// RPC (Transmission's own, or another), served at /transmission/web/
	// as Transmission serves $TRANSMISSION_WEB_HOME; "" serves none.
	WebHome string `toml:"web_home"`
	// BlocklistURL is where a blocklist is downloaded from, again every
	// BlocklistUpdate ("0": by hand); blocklist.go.
	BlocklistURL    string `toml:"blocklist_url"`
	BlocklistUpdate string `toml:"blocklist_update"`
	blocklistEvery  time.Duration
	// Feeds are read every FeedInterval; feeds.go.
	FeedInterval string `toml:"feed_interval"`
	feedEvery    time.Duration
	Feeds        []feedConf `toml:"feeds"`
}

func defaults() settings {
	return settings{
		DataDir: "data", WatchDir: "watch", ListenPort: 51413, MaxActive: 20,
		DHT: true, PEX: true, UTP: true, Encryption: "prefer", Trackers: true, PortMapping: true,
		FeedInterval: "30m", feedEvery: 30 * time.Minute,
		BlocklistUpdate: "168h", blocklistEvery: 168 * time.Hour,
	}
}

func (s *settings) validate() sdk.ConfigErrors {
	var errs sdk.ConfigErrors
	bad := func(key, format string, a ...any) {
		errs = append(errs, sdk.KeyError{Key: key, Message: fmt.Sprintf(format, a...)})
	}
	if s.ListenPort < 0 || s.ListenPort > 65535 {
		bad("listen_port", "must be from 0 to 65535, not %d", s.ListenPort)
	}
	if s.UploadKiBps < 0 {
		bad("upload_kib_per_s", "must be 0 (no limit) or more, not %d", s.UploadKiBps)
	}
	if s.DownloadKiBps < 0 {
		bad("download_kib_per_s", "must be 0 (no limit) or more, not %d", s.DownloadKiBps)
	}
	if s.RatioLimit < 0 {
		bad("ratio_limit", "must be 0 (seed for ever) or more, not %g", s.RatioLimit)
	}
	if s.IdleLimit != "" {
		d, err := time.ParseDuration(s.IdleLimit)
		switch {
		case err != nil:
			bad("idle_limit", "%q is not a duration like \"30m\" or \"2h\"", s.IdleLimit)
		case d < 0:
			bad("idle_limit", "must be 0 (no limit) or more, not %s", d)
		}
		s.idle = d
	}
	if dir, err := cleanDir(s.IncompleteDir); err != nil {
		bad("incomplete_dir", "%v", err)
	} else {
		s.IncompleteDir = dir
	}
	s.checkAlt(bad)
	if s.MaxActive < 1 {
		bad("max_active", "must be at least 1, not %d", s.MaxActive)
	}
	switch s.Encryption {
	case "prefer", "require", "off":
	default:
		bad("encryption", "%q is not one of prefer, require, off", s.Encryption)
	}
	if d, err := time.ParseDuration(s.FeedInterval); err != nil || d < time.Second {
		bad("feed_interval", "%q is not a duration of 1s or more, like \"30m\"", s.FeedInterval)
	} else {
		s.feedEvery = d
	}
	for i := range s.Feeds {
		s.Feeds[i].check(i, bad)
	}
	if s.BlocklistURL != "" && !httpURL(s.BlocklistURL) {
		bad("blocklist_url", "%q is not an http(s) URL", s.BlocklistURL)
	}
	if d, err := time.ParseDuration(s.BlocklistUpdate); err != nil || (d != 0 && d < time.Minute) {
		bad("blocklist_update", "%q is not \"0\" (by hand only) or a duration of 1m or more, like \"168h\" (a week)", s.BlocklistUpdate)
	} else {
		s.blocklistEvery = d
	}
	if ip := net.ParseIP(s.ListenHost); s.LocalPeerDiscover && ip != nil && ip.IsLoopback() {
		bad("local_peer_discovery", "peers on the local network cannot reach listen_host %s; listen on their network or set it to false", s.ListenHost)
	}
	return errs
}

// seedbox is the plugin: one anacrolix client and the torrents it carries.
type seedbox struct {
	cfg   settings
	env   sdk.Env
	log   *slog.Logger
	state string // folder for .torrent files and the torrent list

	cl      *torrent.Client
	storage storage.ClientImplCloser
	pc      storage.PieceCompletion // which pieces are verified, kept in bbolt
	pcPath  string                  // where
	bg      context.Context         // ends at Stop: background work
	stop    context.CancelFunc
	wg      sync.WaitGroup

	// lpd is local peer discovery, when local_peer_discovery is on;
	// lpdErr says why it could not start.
	lpd    *lpd
	lpdErr string
	// listErr says why list.json could not be read at start; pieceErr
	// why the engine's piece record could not.
	listErr, pieceErr string

	mu       sync.Mutex
	torrents map[string]*item // by info hash, hex
	list     *torrentList
	// fileLooks is how many more files missingFile may look at this tick.
	fileLooks int
	// making lists the torrents being made and the last ones made;
	// hashing is held by the one whose data is being hashed.
	making  []*making
	hashing chan struct{}

	// rpc is what Transmission's RPC keeps for its clients (rpc.go);
	// started is when the engine started.
	rpc     *rpcState
	started time.Time
	// feeds is what the node saw of its feeds (feeds.go).
	feeds *feeds
	// upLimit and downLimit are the engine's rate limiters, changed in
	// place by the quiet hours; alt is their state (altspeed.go).
	upLimit, downLimit *rate.Limiter
	alt                altState
	// blocks is the blocklist in force, which the engine consults;
	// blockState what was read and fetched (blocklist.go).
	blocks     blocklist
	blockState blockState
	// dirs holds, by info hash, the folder in the data folder of each
	// torrent whose data is not in the data folder itself (torrentDir).
	dirs sync.Map
}

func (s *seedbox) Info() sdk.Info {
	return sdk.Info{Name: "torrent", Version: "0.2.0", Description: "BitTorrent seedbox (anacrolix/torrent)", Page: true}
}

func (s *seedbox) Configure(_ context.Context, raw []byte, env sdk.Env) error {
	cfg := defaults()
	errs := sdk.DecodeSettings(raw, &cfg)
	errs = append(errs, cfg.validate()...)
	if len(errs) > 0 {
		return errs
	}
	for _, d := range []*string{&cfg.DataDir, &cfg.WatchDir, &cfg.WebHome} {
		if *d != "" && !filepath.IsAbs(*d) {
			*d = filepath.Join(env.DataDir, *d)
		}
	}
	s.cfg, s.env = cfg, env
	s.state = filepath.Join(env.DataDir, "torrents")
	s.log = slog.Default()
	return nil
}

func (s *seedbox) clientConfig() *torrent.ClientConfig {
	c := torrent.NewDefaultClientConfig()
	c.DataDir = s.cfg.DataDir
	c.ListenPort = s.cfg.ListenPort
	if s.cfg.ListenHost != "" {
		host := s.cfg.ListenHost
		c.ListenHost = func(string) string { return host }
		if ip := net.ParseIP(host); ip != nil {
			// One address family: the engine would fail to bind the other.
			c.DisableIPv6 = ip.To4() != nil
			c.DisableIPv4 = ip.To4() == nil
		}
	}
	c.Seed = true
	c.NoDHT = !s.cfg.DHT
	c.DisablePEX = !s.cfg.PEX
	c.DisableUTP = !s.cfg.UTP
	c.DisableTrackers = !s.cfg.Trackers
	c.NoDefaultPortForwarding = !s.cfg.PortMapping
	c.DisableWebtorrent = true // would dial WebRTC trackers and STUN servers
	c.DisableWebseeds = !s.cfg.Trackers
	switch s.cfg.Encryption {
	case "require":
		c.HeaderObfuscationPolicy = torrent.HeaderObfuscationPolicy{Preferred: true, RequirePreferred: true}
	case "off":
		c.HeaderObfuscationPolicy = torrent.HeaderObfuscationPolicy{Preferred: false, RequirePreferred: true}
	default:
		c.HeaderObfuscationPolicy = torrent.HeaderObfuscationPolicy{Preferred: true}
	}
	// The limiters stay the engine's; the quiet hours change them in
	// place. The download one is given a burst: for an unlimited one
	// anacrolix v1.61 takes its limit as the burst, and +Inf made into
	// an int is negative, which broke every connection.
	s.upLimit, s.downLimit = rate.NewLimiter(rate.Inf, 0), rate.NewLimiter(rate.Inf, 1<<20)
	setLimiter(s.upLimit, s.cfg.UploadKiBps)
	setLimiter(s.downLimit, s.cfg.DownloadKiBps)
	c.UploadRateLimiter, c.DownloadRateLimiter = s.upLimit, s.downLimit
	c.IPBlocklist = &s.blocks
	c.Slogger = s.engineLog()
	return c
}

// engineLog is for anacrolix/torrent, whose debug output is a line per
// piece and per request, and some of whose warnings are about nothing
// (quietEngine).
func (s *seedbox) engineLog() *slog.Logger {
	return slog.New(quietEngine{sdk.LevelAtLeast(s.log.Handler(), slog.LevelInfo)}).With("component", "engine")
}

func (s *seedbox) Start(ctx context.Context) error {
	for _, d := range []string{s.cfg.DataDir, s.cfg.WatchDir, s.state} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	// Piece completion in bbolt (pure Go): what was verified once is not
	// hashed again after a restart. The engine writes it without syncing,
	// so a power cut can leave it unreadable: it is then set aside, and
	// every torrent's data is hashed again after the resume.
	path := filepath.Join(s.state, ".torrent.bolt.db") // where the engine keeps it
	pc, gone, err := damaged.Open(path, func() (storage.PieceCompletion, error) { return storage.NewBoltPieceCompletion(s.state) })
	if gone != nil {
		s.pieceErr = fmt.Sprintf("%s: %v; kept as %s, the data is hashed again", path, gone.Cause, filepath.Base(gone.Path))
		s.log.Error("piece record unreadable: set aside; verifying every torrent's data", "err", gone.Cause, "kept_as", gone.Path)
	}
	if err != nil {
		return fmt.Errorf("open piece completion in %s: %w", s.state, err)
	}
	s.pc, s.pcPath = pc, path
	// No .part files: with them the engine forgets, at start, every piece of
	// a file not yet complete, so a restart mid-download started over.
	s.storage = storage.NewFileOpts(storage.NewFileClientOpts{
		ClientBaseDir: s.cfg.DataDir, PieceCompletion: pc, UsePartFiles: g.Some(false),
		Logger: s.engineLog(), TorrentDirMaker: s.torrentDir,
	})
	if err := s.loadBlocklists(); err != nil {
		s.log.Error("blocklists not read", "err", err)
	}
	cc := s.clientConfig()
	cc.DefaultStorage = s.storage
	cl, err := torrent.NewClient(cc)
	if err != nil {
		s.storage.Close()
		return fmt.Errorf("start BitTorrent client on port %d: %w", s.cfg.ListenPort, err)
	}
	s.cl, s.started = cl, time.Now()
	s.alt = altState{}
	s.mu.Lock()
	s.applyAltLocked(s.started) // quiet hours from the first byte
	s.mu.Unlock()
	s.torrents = map[string]*item{}
	s.list, err = loadList(s.state)
	if err != nil {
		s.listErr = err.Error()
		s.log.Error("torrent list unreadable; starting from the .torrent files alone", "err", err)
	}
	s.list.Totals.Runs++
	if err := s.resume(); err != nil {
		s.log.Error("resume torrents", "err", err)
	}
	bg, cancel := context.WithCancel(context.Background())
	s.bg, s.stop = bg, cancel
	if gone != nil {
		s.recheckAll()
	}
	s.hashing = make(chan struct{}, 1)
	s.resumeMakings()
	if s.cfg.LocalPeerDiscover {
		if s.lpd, err = startLPD(s.port, s.localPeer, s.log); err != nil {
			s.lpdErr = err.Error()
			s.log.Error("local peer discovery off", "err", err)
		} else {
			s.cl.AddDialer(linkLocalDialer{&s.lpd.zones})
			s.wg.Add(1)
			go func() { defer s.wg.Done(); s.lpd.serve() }()
		}
	}
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.tick(bg) }()
	go func() { defer s.wg.Done(); s.watch(bg) }()
	if s.feeds, err = loadFeeds(s.state); err != nil {
		s.log.Error("what was seen of the feeds is unreadable; starting afresh", "err", err)
	}
	if len(s.cfg.Feeds) > 0 {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.watchFeeds(bg) }()
	}
	if s.cfg.BlocklistURL != "" {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.keepBlocklistFresh(bg) }()
	}
	return nil
}

func (s *seedbox) Stop(context.Context) error {
	if s.stop != nil {
		s.stop()
		if s.lpd != nil {
			s.lpd.close()
		}
		s.wg.Wait()
	}
	s.mu.Lock()
	s.saveListLocked()
	s.mu.Unlock()
	var errs []error
	if s.cl != nil {
		errs = s.cl.Close()
	}
	if s.storage != nil {
		err := s.storage.Close() // and the piece record with it
		if err == nil {
			damaged.Closed(s.pcPath)
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (s *seedbox) Health(context.Context) error {
	if s.cl == nil {
		return errors.New("client not started")
	}
	return nil
}

func (s *seedbox) Status(context.Context) (sdk.Status, error) {
	views := s.views()
	var up, down float64
	n := map[string]int{}
	for _, v := range views {
		up += v.UpRate
		down += v.DownRate
		n[v.State]++
	}
	plural := "s"
	if len(views) == 1 {
		plural = ""
	}
	summary := fmt.Sprintf("%d torrent%s: %d downloading, %d seeding", len(views), plural, n["downloading"], n["seeding"])
	if n["error"] > 0 {
		summary += fmt.Sprintf(", %d with errors", n["error"])
	}
	for _, m := range s.makings() {
		if m.State == "hashing" {
			summary += fmt.Sprintf(", making %s (%.0f%% hashed)", m.Name, m.Progress*100)
		}
	}
	details := map[string]any{"data_dir": s.cfg.DataDir, "watch_dir": s.cfg.WatchDir, "listen_port": s.port(), "torrents": len(views)}
	switch {
	case s.lpd != nil:
		details["local_peer_discovery"] = s.lpd.status()
	case s.lpdErr != "":
		details["local_peer_discovery"] = s.lpdErr
	}
	if s.listErr != "" {
		details["list_unreadable"] = s.listErr
	}
	if fs := s.feedStatus(); len(fs) > 0 {
		details["feeds"] = fs
	}
	if s.pieceErr != "" {
		details["piece_record_unreadable"] = s.pieceErr
	}
	if b := s.blocklistView(); b.Ranges > 0 || b.URL != "" || len(b.Files) > 0 {
		details["blocklist"] = b
		summary += fmt.Sprintf(", blocklist of %d ranges", b.Ranges)
	}
	if alt := s.altView(); s.cfg.altSched.set || alt.On {
		details["quiet_hours"] = alt
	}
	return sdk.Status{
		Summary: fmt.Sprintf("%s; up %.1f KiB/s, down %.1f KiB/s%s", summary, up/1024, down/1024, s.altStatus()),
		Details: details,
	}, nil
}

// torrentDir is where the engine keeps a torrent's data: the data folder,
// or the folder in it the torrent was added with.
func (s *seedbox) torrentDir(base string, _ *metainfo.Info, ih metainfo.Hash) string {
	if dir, ok := s.dirs.Load(ih.HexString()); ok {
		return filepath.Join(base, dir.(string))
	}
	return base
}

// port is the BitTorrent port actually bound (listen_port 0 picks one).
func (s *seedbox) port() int {
	if s.cl == nil {
		return 0
	}
	return s.cl.LocalPort()
}

// tick samples rates and applies ratio, idle and active limits once a second.
func (s *seedbox) tick(ctx context.Context) {
	saved := time.Now()
	sdk.Every(ctx, time.Second, func(now time.Time) {
		if s.lpd != nil {
			s.lpd.announce(s.lpdDue(now), now)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.fileLooks = filesPerTick
		for _, it := range s.torrents {
			it.sample(now)
			s.applyLimits(it, now)
			s.unstall(it, now)
			it.retryNamed(now)
			s.watchData(it)
		}
		s.watchDisk(now)
		s.applyAltLocked(now)
		s.finishDownloadsLocked()
		s.schedule()
		if now.Sub(saved) > 30*time.Second {
			s.saveListLocked()
			saved = now
		}
	})
}
