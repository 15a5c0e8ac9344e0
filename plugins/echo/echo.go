package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/vecino/vecino/sdk"
)

const (
	echoProto = "/vecino/echo/1.0.0"
	sinkProto = "/vecino/echo/sink/1.0.0"
)

type echo struct {
	env     sdk.Env
	cancel  context.CancelFunc
	echoed  atomic.Uint64
	sunk    atomic.Uint64
	streams atomic.Uint64
}

func (e *echo) Info() sdk.Info {
	return sdk.Info{
		Name: "echo", Version: "1.0.0", Description: "echoes streams; the example plugin",
		Protocols: []string{"/vecino/echo/*"},
	}
}

func (e *echo) Configure(_ context.Context, settings []byte, env sdk.Env) error {
	var none struct{}
	if errs := sdk.DecodeSettings(settings, &none); len(errs) > 0 {
		return errs
	}
	e.env = env
	return nil
}

func (e *echo) Start(context.Context) error {
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	err := e.env.Host.Handle(ctx, echoProto, func(s *sdk.Stream) {
		defer s.Close()
		e.streams.Add(1)
		n, _ := io.Copy(s, s)
		e.echoed.Add(uint64(n))
	})
	if err != nil {
		return err
	}
	// The sink reads everything and answers with how much it read.
	return e.env.Host.Handle(ctx, sinkProto, func(s *sdk.Stream) {
		defer s.Close()
		e.streams.Add(1)
		n, _ := io.Copy(io.Discard, s)
		e.sunk.Add(uint64(n))
		fmt.Fprintf(s, "%d", n)
	})
}

func (e *echo) Stop(context.Context) error {
	if e.cancel != nil {
		e.cancel()
	}
	return nil
}

func (e *echo) Health(context.Context) error { return nil }

func (e *echo) Status(context.Context) (sdk.Status, error) {
	return sdk.Status{
		Summary: fmt.Sprintf("%d streams, %d bytes echoed", e.streams.Load(), e.echoed.Load()),
		Details: map[string]any{"streams": e.streams.Load(), "echoed_bytes": e.echoed.Load(), "sunk_bytes": e.sunk.Load()},
	}, nil
}

func (e *echo) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	// POST /echo?peer=ID sends the body to peer's echo and returns the reply.
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		s, err := e.env.Host.OpenStream(r.Context(), r.URL.Query().Get("peer"), echoProto)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer s.Close()
		body, _ := io.ReadAll(r.Body)
		// Write and read at once: the peer echoes as it reads, so a body
		// larger than the buffers on the way would otherwise deadlock.
		werr := make(chan error, 1)
		go func() {
			_, err := s.Write(body)
			if err == nil {
				err = s.CloseWrite()
			}
			werr <- err
		}()
		reply, err := io.ReadAll(s)
		if err == nil {
			err = <-werr
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.Write(reply)
	})
	// POST /send?peer=ID&bytes=N streams N bytes to peer's sink and reports
	// the throughput.
	mux.HandleFunc("POST /send", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.URL.Query().Get("bytes"), 10, 64)
		if err != nil || n <= 0 || n > 16<<30 {
			http.Error(w, "bytes must be a number from 1 to 16 GiB", http.StatusBadRequest)
			return
		}
		res, err := e.send(r.Context(), r.URL.Query().Get("peer"), n)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		json.NewEncoder(w).Encode(res)
	})
	return mux
}

type sendResult struct {
	Bytes    int64   `json:"bytes"`
	Seconds  float64 `json:"seconds"`
	MBPerSec float64 `json:"mb_per_s"`
}

func (e *echo) send(ctx context.Context, peerID string, n int64) (sendResult, error) {
	start := time.Now()
	s, err := e.env.Host.OpenStream(ctx, peerID, sinkProto)
	if err != nil {
		return sendResult{}, err
	}
	defer s.Close()
	buf := make([]byte, 256<<10)
	for left := n; left > 0; {
		k := min(left, int64(len(buf)))
		if _, err := s.Write(buf[:k]); err != nil {
			return sendResult{}, err
		}
		left -= k
	}
	s.CloseWrite()
	reply, err := io.ReadAll(s)
	if err != nil {
		return sendResult{}, err
	}
	if got, _ := strconv.ParseInt(string(reply), 10, 64); got != n {
		return sendResult{}, fmt.Errorf("peer received %s bytes of %d", reply, n)
	}
	secs := time.Since(start).Seconds()
	return sendResult{Bytes: n, Seconds: secs, MBPerSec: float64(n) / secs / 1e6}, nil
}
