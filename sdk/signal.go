package sdk

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// termGrace is how long a plugin that got SIGTERM waits for the router to
// stop it before it stops itself.
const termGrace = 10 * time.Second

// stopper runs a plugin's Stop once, whoever asks first: the router, or
// the plugin itself after a SIGTERM the router did not follow up.
type stopper struct {
	impl    Plugin
	once    sync.Once
	err     error
	stopped chan struct{}
}

func newStopper(p Plugin) *stopper { return &stopper{impl: p, stopped: make(chan struct{})} }

func (s *stopper) stop(ctx context.Context) error {
	s.once.Do(func() {
		s.err = s.impl.Stop(ctx)
		close(s.stopped)
	})
	return s.err
}

// handleSIGTERM keeps a SIGTERM sent to the whole process group (by
// systemd, timeout(1), a supervisor that signals the group) from ending
// the plugin under the router's feet: the router got it too and stops its
// plugins in order. If the router has not stopped this one within
// termGrace (it is gone, say), or a second SIGTERM comes, the plugin stops
// itself and exits. go-plugin already ignores SIGINT the same way.
func handleSIGTERM(s *stopper) {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGTERM)
	go func() {
		<-ch
		slog.Info("SIGTERM: waiting for the router to stop this plugin", "grace", termGrace)
		select {
		case <-s.stopped:
			return // the router stopped it; it ends the process next
		case <-ch:
		case <-time.After(termGrace):
		}
		slog.Warn("stopping without the router")
		ctx, cancel := context.WithTimeout(context.Background(), termGrace)
		defer cancel()
		if err := s.stop(ctx); err != nil {
			slog.Error("stop", "err", err)
		}
		os.Exit(0)
	}()
}
