// Package supervisor runs the node's plugins as child processes through
// hashicorp/go-plugin: it starts each one, configures it, checks its health,
// and restarts it with capped exponential backoff when it exits or stops
// answering, while the rest of the node keeps serving. Like gokrazy's
// service supervisor it keeps each plugin's state, restart count, last error
// and last lines of log for the status page.
package supervisor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"

	pluginv1 "github.com/vecino/vecino/pluginapi/v1"
	"github.com/vecino/vecino/sdk"
)

// State is where a plugin is in its life.
type State string

const (
	Starting   State = "starting"
	Running    State = "running"
	Restarting State = "restarting"
	// Failed plugins are not retried until restarted by hand: their binary,
	// API version or configuration is wrong and retrying cannot help.
	Failed   State = "failed"
	Disabled State = "disabled"
	Stopped  State = "stopped"
)

// Spec says how to run one plugin.
type Spec struct {
	Name string
	Path string
	// Args and Env are added to the plugin's command line and environment
	// (a plugin built into the router runs as `router plugin NAME`).
	Args     []string
	Env      []string
	SHA256   string // hex; empty to skip the check
	Settings string // the plugin's own TOML table
	DataDir  string
	Enabled  bool
}

// HostFactory builds the Host service one plugin instance talks to.
type HostFactory func(name string, info *pluginv1.InfoResponse) pluginv1.HostServer

// Options tune the supervisor; zero values take defaults.
type Options struct {
	NodeID string
	Host   HostFactory
	// StreamSocket is offered to plugins for stream bytes (hostapi.Direct).
	StreamSocket   string
	Log            *slog.Logger
	HealthInterval time.Duration // default 2s
	MaxBackoff     time.Duration // default 30s
	// StableAfter is how long a plugin must run before a failure restarts it
	// at once again rather than after the current backoff. Default 1 minute.
	StableAfter time.Duration
}

// Supervisor owns every plugin process.
type Supervisor struct {
	opts    Options
	plugins []*Plugin
}

// New prepares plugins; Run starts them.
func New(specs []Spec, opts Options) *Supervisor {
	if opts.HealthInterval == 0 {
		opts.HealthInterval = 2 * time.Second
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	if opts.StableAfter == 0 {
		opts.StableAfter = time.Minute
	}
	s := &Supervisor{opts: opts}
	for _, spec := range specs {
		p := &Plugin{
			spec: spec, opts: &s.opts, restart: make(chan struct{}, 1),
			log:  opts.Log.With("plugin", spec.Name),
			logs: newRing(50), state: Disabled,
		}
		if spec.Enabled {
			p.state = Starting
		}
		s.plugins = append(s.plugins, p)
	}
	return s
}

// Plugins lists the supervised plugins in configuration order.
func (s *Supervisor) Plugins() []*Plugin { return s.plugins }

// Plugin finds a plugin by name.
func (s *Supervisor) Plugin(name string) *Plugin {
	for _, p := range s.plugins {
		if p.spec.Name == name {
			return p
		}
	}
	return nil
}

// Run supervises every enabled plugin until ctx ends, then stops them all
// and returns.
func (s *Supervisor) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, p := range s.plugins {
		if !p.spec.Enabled {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.supervise(ctx)
		}()
	}
	wg.Wait()
}

// Plugin is one supervised plugin.
type Plugin struct {
	spec    Spec
	opts    *Options
	log     *slog.Logger
	logs    *ring
	restart chan struct{}

	mu        sync.Mutex
	state     State
	restarts  int
	pid       int
	startedAt time.Time
	lastErr   string
	info      *pluginv1.InfoResponse
	client    *sdk.Client
}

// Snapshot is a plugin's state at one moment.
type Snapshot struct {
	Name      string
	State     State
	Restarts  int
	PID       int
	StartedAt time.Time
	LastError string
	Version   string
	Logs      []string
}

// PublicPath reports whether the running plugin declared path (below its
// mount point) public: it takes writes without the API secret.
func (p *Plugin) PublicPath(path string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.info == nil {
		return false
	}
	for _, pat := range p.info.PublicPaths {
		if prefix, ok := strings.CutSuffix(pat, "*"); ok && strings.HasPrefix(path, prefix) || pat == path {
			return true
		}
	}
	return false
}

// Info is what the running plugin said of itself, or nil before it ran.
func (p *Plugin) Info() *pluginv1.InfoResponse {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.info
}

// Snapshot returns the plugin's current state.
func (p *Plugin) Snapshot() Snapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Snapshot{
		Name: p.spec.Name, State: p.state, Restarts: p.restarts, PID: p.pid,
		LastError: p.lastErr, Logs: p.logs.lines(),
	}
	if p.state == Running {
		s.StartedAt = p.startedAt
	}
	if p.info != nil {
		s.Version = p.info.Version
	}
	return s
}

// Client returns the running plugin's API, or nil when it is not running.
func (p *Plugin) Client() *sdk.Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state != Running {
		return nil
	}
	return p.client
}

// Restart asks for the plugin to be stopped and started again, also out of
// the failed state.
func (p *Plugin) Restart() {
	select {
	case p.restart <- struct{}{}:
	default:
	}
}

// Reconfigure gives an enabled plugin a new table of its own, which it
// takes at a restart, done at once; it reports whether the table changed.
func (p *Plugin) Reconfigure(settings string) bool {
	p.mu.Lock()
	changed := p.spec.Enabled && p.spec.Settings != settings
	if changed {
		p.spec.Settings = settings
	}
	p.mu.Unlock()
	if changed {
		p.log.Info("new settings: restarting to apply them")
		p.Restart()
	}
	return changed
}

func (p *Plugin) set(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f()
}

// permanent marks errors that retrying cannot fix.
type permanent struct{ error }

func (e permanent) Unwrap() error { return e.error }

var errRestartRequested = errors.New("restart requested")

// unhealthy marks a plugin that failed its health checks: it may not
// answer anything, so it is killed, not asked to stop.
type unhealthy struct{ error }

func (e unhealthy) Unwrap() error { return e.error }

// killGrace bounds a plugin's clean exit. go-plugin's Kill first asks the
// plugin to shut down and waits for the answer with no deadline; a hung
// plugin never answers, and the supervisor would hang with it.
const killGrace = 5 * time.Second

// kill ends the plugin process: cleanly through go-plugin, unless it is
// unhealthy or does not go within killGrace, when it gets SIGKILL.
func kill(client *plugin.Client, cmd *exec.Cmd, err error) {
	done := make(chan struct{})
	go func() {
		client.Kill()
		close(done)
	}()
	grace := killGrace
	if errors.As(err, new(unhealthy)) {
		grace = 0
	}
	select {
	case <-done:
	case <-time.After(grace):
		if cmd.Process != nil {
			cmd.Process.Kill()
		}
		<-done
	}
}

func (p *Plugin) supervise(ctx context.Context) {
	var backoff time.Duration
	for {
		started := time.Now()
		err := p.runOnce(ctx)
		if ctx.Err() != nil {
			p.set(func() { p.state, p.pid, p.client = Stopped, 0, nil })
			return
		}
		wait := backoff
		var perm permanent
		switch {
		case errors.Is(err, errRestartRequested):
			p.log.Info("restarting on request")
			wait, backoff = 0, 0
		case errors.As(err, &perm):
			p.log.Error("plugin failed; not retrying until restarted", "err", err)
			p.set(func() { p.state, p.pid, p.client, p.lastErr = Failed, 0, nil, err.Error() })
			select {
			case <-ctx.Done():
				p.set(func() { p.state = Stopped })
				return
			case <-p.restart:
			}
			wait, backoff = 0, 0
		default:
			if time.Since(started) > p.opts.StableAfter {
				wait, backoff = 0, 0
			}
			p.log.Warn("plugin stopped; restarting", "err", err, "in", wait)
			p.set(func() { p.state, p.pid, p.client, p.lastErr = Restarting, 0, nil, err.Error() })
			backoff = min(max(2*backoff, 250*time.Millisecond), p.opts.MaxBackoff)
		}
		p.set(func() { p.restarts++ })
		select {
		case <-ctx.Done():
			p.set(func() { p.state = Stopped })
			return
		case <-time.After(wait):
		case <-p.restart:
		}
	}
}

// runOnce starts the plugin and watches it until it fails, a restart is
// asked for, or ctx ends (then it stops the plugin and returns nil).
func (p *Plugin) runOnce(ctx context.Context) (err error) {
	p.set(func() { p.state = Starting })
	if err := p.checkBinary(); err != nil {
		return permanent{err}
	}
	cmd := exec.Command(p.spec.Path, p.spec.Args...)
	cmd.Env = append(append(os.Environ(), "VECINO_PLUGIN_NAME="+p.spec.Name), p.spec.Env...)
	logw := &logWriter{log: p.log, ring: p.logs}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		Plugins:          sdk.PluginSet(),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		GRPCDialOptions:  sdk.DialOptions(),
		StartTimeout:     30 * time.Second,
		Logger:           newHCLogger(logw),
		Stderr:           io.Discard,
		SyncStdout:       logw.stream("stdout"),
		SyncStderr:       logw.stream("stderr"),
	})
	defer func() { kill(client, cmd, err) }()

	rpc, err := client.Client()
	if err != nil {
		if strings.Contains(strings.ToLower(err.Error()), "incompatible api version") {
			return permanent{fmt.Errorf("%s speaks another plugin API version: %w (this router speaks %d)", p.spec.Path, err, sdk.APIVersion)}
		}
		return fmt.Errorf("launch %s: %w", p.spec.Path, err)
	}
	raw, err := rpc.Dispense(sdk.PluginKey)
	if err != nil {
		return fmt.Errorf("dispense: %w", err)
	}
	api, ok := raw.(*sdk.Client)
	if !ok {
		return permanent{fmt.Errorf("%s served %T, not a Vecino plugin", p.spec.Path, raw)}
	}
	if err := p.setUp(ctx, api); err != nil {
		return err
	}
	p.set(func() {
		p.state, p.client, p.startedAt = Running, api, time.Now()
		if cmd.Process != nil {
			p.pid = cmd.Process.Pid
		}
	})
	p.log.Info("plugin running", "pid", cmd.Process.Pid)
	return p.watch(ctx, client, api)
}

func (p *Plugin) setUp(ctx context.Context, api *sdk.Client) error {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	info, err := api.Info(cctx, &pluginv1.InfoRequest{})
	if err != nil {
		return fmt.Errorf("info: %w", err)
	}
	if info.ApiVersion != sdk.APIVersion {
		return permanent{fmt.Errorf("%s reports plugin API version %d; this router speaks %d", p.spec.Path, info.ApiVersion, sdk.APIVersion)}
	}
	if info.Name != p.spec.Name {
		return permanent{fmt.Errorf("%s is plugin %q, but it is configured as [plugins.%s]", p.spec.Path, info.Name, p.spec.Name)}
	}
	p.set(func() { p.info = info })
	if err := os.MkdirAll(p.spec.DataDir, 0o700); err != nil {
		return permanent{fmt.Errorf("create data dir: %w", err)}
	}
	id := api.ServeHost(p.opts.Host(p.spec.Name, info))
	p.mu.Lock()
	settings := p.spec.Settings // Reconfigure may change it
	p.mu.Unlock()
	resp, err := api.Configure(cctx, &pluginv1.ConfigureRequest{
		Toml: settings, DataDir: p.spec.DataDir, HostBrokerId: id, NodeId: p.opts.NodeID,
		StreamSocket: p.opts.StreamSocket,
	})
	if err != nil {
		return fmt.Errorf("configure: %w", err)
	}
	if len(resp.Errors) > 0 {
		msgs := make([]string, len(resp.Errors))
		for i, e := range resp.Errors {
			msgs[i] = fmt.Sprintf("key plugins.%s.%s: %s", p.spec.Name, e.Key, e.Message)
		}
		return permanent{fmt.Errorf("configuration refused: %s", strings.Join(msgs, "; "))}
	}
	if _, err := api.Start(cctx, &pluginv1.StartRequest{}); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	return nil
}

// exitPoll is how often the supervisor looks for a plugin that exited; it
// bounds how long a crash goes unnoticed.
const exitPoll = 50 * time.Millisecond

func (p *Plugin) watch(ctx context.Context, client *plugin.Client, api *sdk.Client) error {
	exit := time.NewTicker(exitPoll)
	defer exit.Stop()
	health := time.NewTicker(p.opts.HealthInterval)
	defer health.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			p.stop(api)
			return nil
		case <-p.restart:
			p.stop(api)
			return errRestartRequested
		case <-exit.C:
			if client.Exited() {
				return fmt.Errorf("plugin process exited%s", p.logs.lastLineSuffix())
			}
		case <-health.C:
			hctx, cancel := context.WithTimeout(ctx, p.opts.HealthInterval)
			resp, err := api.Health(hctx, &pluginv1.HealthRequest{})
			cancel()
			switch {
			case err != nil:
				failures++
				err = fmt.Errorf("health check: %w", err)
				if failures >= 3 {
					return unhealthy{err}
				}
				p.log.Warn("health check failed", "err", err, "failures", failures)
			case !resp.Ok:
				failures++
				if failures >= 3 {
					return unhealthy{fmt.Errorf("unhealthy: %s", resp.Message)}
				}
				p.log.Warn("plugin reports unhealthy", "message", resp.Message, "failures", failures)
			default:
				failures = 0
			}
		}
	}
}

func (p *Plugin) stop(api *sdk.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := api.Stop(ctx, &pluginv1.StopRequest{}); err != nil {
		p.log.Warn("stop", "err", err)
	}
}

func (p *Plugin) checkBinary() error {
	path := p.spec.Path
	if !filepath.IsAbs(path) {
		return fmt.Errorf("plugin path %q is not absolute", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("plugin binary: %w", err)
	}
	defer f.Close()
	if p.spec.SHA256 == "" {
		return nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("checksum %s: %w", path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != p.spec.SHA256 {
		return fmt.Errorf("%s has sha256 %s, but plugins.%s.sha256 says %s", path, got, p.spec.Name, p.spec.SHA256)
	}
	return nil
}
