package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"sync"
	"time"

	"github.com/vecino/vecino/sdk"
)

// topicPrefix is the gossipsub topic prefix of rooms.
const topicPrefix = "vecino/chat/room/"

type settings struct {
	Rooms   []string `toml:"rooms"`
	History int      `toml:"history"`
}

// Message is a room message as it travels and as the API returns it.
type Message struct {
	Room   string    `json:"room"`
	Text   string    `json:"text"`
	From   string    `json:"from"`
	SentAt time.Time `json:"sent_at"`
}

type chat struct {
	cfg    settings
	env    sdk.Env
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	history map[string][]Message
	dropped int
}

func newChat() *chat { return &chat{history: map[string][]Message{}} }

func (c *chat) Info() sdk.Info {
	return sdk.Info{
		Name: "chat", Version: "0.1.0", Description: "rooms relayed over gossipsub, with history",
		Topics: []string{topicPrefix + "*"},
	}
}

var roomName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

func (c *chat) Configure(_ context.Context, raw []byte, env sdk.Env) error {
	cfg := settings{Rooms: []string{"lobby"}, History: 1000}
	errs := sdk.DecodeSettings(raw, &cfg)
	for _, r := range cfg.Rooms {
		if !roomName.MatchString(r) {
			errs = append(errs, sdk.KeyError{Key: "rooms", Message: fmt.Sprintf("room %q: use lower-case letters, digits, - and _ (at most 64)", r)})
		}
	}
	if cfg.History < 1 || cfg.History > 1_000_000 {
		errs = append(errs, sdk.KeyError{Key: "history", Message: fmt.Sprintf("must be from 1 to 1000000, not %d", cfg.History)})
	}
	if len(errs) > 0 {
		return errs
	}
	c.cfg, c.env = cfg, env
	return nil
}

func (c *chat) Start(context.Context) error {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	for _, room := range c.cfg.Rooms {
		sub, err := c.env.Host.Subscribe(ctx, topicPrefix+room)
		if err != nil {
			cancel()
			return err
		}
		c.wg.Add(1)
		go c.receive(room, sub)
	}
	return nil
}

func (c *chat) receive(room string, sub *sdk.Subscription) {
	defer c.wg.Done()
	for {
		m, err := sub.Next()
		if err != nil {
			return
		}
		var msg Message
		if err := json.Unmarshal(m.Data, &msg); err != nil || msg.Room != room {
			c.mu.Lock()
			c.dropped++
			c.mu.Unlock()
			slog.Warn("dropped malformed message", "room", room, "from", m.From)
			continue
		}
		msg.From = m.From // gossipsub signed it: trust that, not the body
		c.mu.Lock()
		h := append(c.history[room], msg)
		if len(h) > c.cfg.History {
			h = h[len(h)-c.cfg.History:]
		}
		c.history[room] = h
		c.mu.Unlock()
	}
}

func (c *chat) Stop(context.Context) error {
	if c.cancel != nil {
		c.cancel()
		c.wg.Wait()
	}
	return nil
}

func (c *chat) Health(context.Context) error { return nil }

func (c *chat) Status(context.Context) (sdk.Status, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rooms := map[string]any{}
	total := 0
	for _, r := range c.cfg.Rooms {
		rooms[r] = len(c.history[r])
		total += len(c.history[r])
	}
	return sdk.Status{
		Summary: fmt.Sprintf("%s, %s kept", plural(len(c.cfg.Rooms), "room"), plural(total, "message")),
		Details: map[string]any{"rooms": rooms, "dropped": c.dropped},
	}, nil
}

func (c *chat) carries(room string) bool {
	for _, r := range c.cfg.Rooms {
		if r == room {
			return true
		}
	}
	return false
}

func (c *chat) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /rooms", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(c.cfg.Rooms)
	})
	mux.HandleFunc("GET /rooms/{room}/messages", func(w http.ResponseWriter, r *http.Request) {
		room := r.PathValue("room")
		if !c.carries(room) {
			http.Error(w, fmt.Sprintf("this node does not carry room %q", room), http.StatusNotFound)
			return
		}
		c.mu.Lock()
		msgs := append([]Message{}, c.history[room]...)
		c.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(msgs)
	})
	mux.HandleFunc("POST /rooms/{room}/messages", func(w http.ResponseWriter, r *http.Request) {
		room := r.PathValue("room")
		if !c.carries(room) {
			http.Error(w, fmt.Sprintf("this node does not carry room %q", room), http.StatusNotFound)
			return
		}
		text, err := io.ReadAll(io.LimitReader(r.Body, 64<<10+1))
		if err != nil || len(text) == 0 || len(text) > 64<<10 {
			http.Error(w, "message must be 1 byte to 64 KiB of text", http.StatusBadRequest)
			return
		}
		data, _ := json.Marshal(Message{Room: room, Text: string(text), From: c.env.NodeID, SentAt: time.Now().UTC()})
		if err := c.env.Host.Publish(r.Context(), topicPrefix+room, data); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	return mux
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
