package torrent

// Feeds: RSS and Atom feeds whose items link to torrents (a podcast, a
// community radio's archive, a tracker's new uploads). The node reads
// each every feed_interval and adds what is new, optionally only items
// whose title matches, into a folder of the data folder. What it has seen
// of each feed is kept, so that a torrent the owner removed is not added
// again, across restarts too.

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vecino/vecino/internal/atomicfile"
	"github.com/vecino/vecino/internal/damaged"
	"github.com/vecino/vecino/sdk"
)

const (
	maxFeedBytes = 8 << 20
	// feedFirst is how many of a feed's items are added when the node
	// first reads it (the newest): a podcast's whole archive is not.
	feedFirst = 20
	// feedSeenKept bounds what is kept of a feed's items seen.
	feedSeenKept = 2000
	// feedTries is how often an item's .torrent is fetched before it
	// is passed over.
	feedTries = 3
)

// feedConf is one [[plugins.torrent.feeds]].
type feedConf struct {
	URL   string `toml:"url"`
	Match string `toml:"match"` // a regular expression on item titles
	Dir   string `toml:"dir"`   // a folder in the data folder
	match *regexp.Regexp
}

func (f *feedConf) check(i int, bad func(key, format string, a ...any)) {
	if !httpURL(f.URL) {
		bad("feeds.url", "feed %d: %q is not an http(s) URL", i+1, f.URL)
	}
	if f.Match != "" {
		re, err := regexp.Compile(f.Match)
		if err != nil {
			bad("feeds.match", "feed %d: not a regular expression: %v", i+1, err)
		}
		f.match = re
	}
	if dir, err := cleanDir(f.Dir); err != nil {
		bad("feeds.dir", "feed %d: %v", i+1, err)
	} else {
		f.Dir = dir
	}
}

// feedItem is an item of a feed that links to a torrent.
type feedItem struct {
	Key, Title, Link string // Link: a magnet link or the URL of a .torrent
}

// parseFeed reads an RSS 2.0, RSS 1.0 or Atom feed and returns its items
// that link to a torrent, in the feed's order (newest first, as feeds
// are written). Relative links are resolved against base.
func parseFeed(data []byte, base *url.URL) ([]feedItem, error) {
	type link struct {
		Href string `xml:"href,attr"`
		Rel  string `xml:"rel,attr"`
		Type string `xml:"type,attr"`
		Text string `xml:",chardata"`
	}
	type enclosure struct {
		URL  string `xml:"url,attr"`
		Type string `xml:"type,attr"`
	}
	type entry struct {
		Title      string      `xml:"title"`
		GUID       string      `xml:"guid"`
		ID         string      `xml:"id"`
		Links      []link      `xml:"link"`
		Enclosures []enclosure `xml:"enclosure"`
	}
	var doc struct {
		XMLName xml.Name
		Channel struct {
			Items []entry `xml:"item"`
		} `xml:"channel"`
		Items   []entry `xml:"item"`  // RSS 1.0
		Entries []entry `xml:"entry"` // Atom
	}
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = false // feeds in the wild: HTML entities, stray ampersands
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("not an RSS or Atom feed: %w", err)
	}
	switch strings.ToLower(doc.XMLName.Local) {
	case "rss", "rdf", "feed":
	default:
		return nil, fmt.Errorf("not an RSS or Atom feed: the document is <%s>", doc.XMLName.Local)
	}
	var out []feedItem
	for _, e := range append(append(doc.Channel.Items, doc.Items...), doc.Entries...) {
		var cands []string
		typed := map[string]bool{} // enclosures that say they are torrents
		for _, enc := range e.Enclosures {
			cands = append(cands, enc.URL)
			typed[enc.URL] = strings.HasPrefix(enc.Type, "application/x-bittorrent")
		}
		for _, l := range e.Links {
			cands = append(cands, strings.TrimSpace(l.Href), strings.TrimSpace(l.Text))
		}
		var found string
		for _, c := range cands {
			if strings.HasPrefix(c, "magnet:") {
				found = c
				break
			}
			u, err := base.Parse(c)
			if c == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") {
				continue
			}
			if typed[c] || strings.HasSuffix(strings.ToLower(u.Path), ".torrent") {
				found = u.String()
				break
			}
		}
		if found == "" {
			continue
		}
		key := strings.TrimSpace(e.GUID)
		if key == "" {
			key = strings.TrimSpace(e.ID)
		}
		if key == "" {
			key = found
		}
		out = append(out, feedItem{Key: key, Title: strings.TrimSpace(e.Title), Link: found})
	}
	return out, nil
}

// feedRecord is what the node keeps of one feed.
type feedRecord struct {
	Seen map[string]int64 `json:"seen"` // item key -> when seen, Unix s
}

// feeds reads the feeds and remembers what it saw of them.
type feeds struct {
	path string
	mu   sync.Mutex
	Recs map[string]*feedRecord `json:"feeds"`
	// Status, per feed URL, for the status page.
	status map[string]*FeedStatus
	tries  map[string]int // item link -> failed fetches
}

// FeedStatus is how a feed went at its last reading.
type FeedStatus struct {
	URL    string `json:"url"`
	Polled string `json:"polled,omitempty"`
	Items  int    `json:"items"`
	Added  int    `json:"added"` // since the plugin started
	Error  string `json:"error,omitempty"`
}

func loadFeeds(dir string) (*feeds, error) {
	f := &feeds{path: filepath.Join(dir, "feeds.json"), Recs: map[string]*feedRecord{}, status: map[string]*FeedStatus{}, tries: map[string]int{}}
	data, err := os.ReadFile(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return f, nil
	}
	if err == nil {
		err = json.Unmarshal(data, f)
	}
	if err != nil {
		// Set aside whole: a fresh start adds each feed's newest items
		// again, at most feedFirst, which are refused as already there.
		err = fmt.Errorf("read %s: %w", f.path, err)
		if aside, rerr := damaged.SetAside(f.path); rerr == nil {
			err = fmt.Errorf("%w (kept as %s)", err, filepath.Base(aside))
		}
		f.Recs = map[string]*feedRecord{}
		return f, err
	}
	if f.Recs == nil {
		f.Recs = map[string]*feedRecord{}
	}
	return f, nil
}

func (f *feeds) saveLocked() error {
	data, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return atomicfile.Write(f.path, data, 0o644)
}

// watchFeeds reads every feed now and then each interval, until ctx ends.
func (s *seedbox) watchFeeds(ctx context.Context) {
	s.pollFeeds(ctx, time.Now())
	sdk.Every(ctx, s.cfg.feedEvery, func(now time.Time) { s.pollFeeds(ctx, now) })
}

func (s *seedbox) pollFeeds(ctx context.Context, now time.Time) {
	for i := range s.cfg.Feeds {
		if ctx.Err() != nil {
			return
		}
		s.pollFeed(ctx, &s.cfg.Feeds[i], now)
	}
}

// pollFeed reads one feed and adds what is new in it.
func (s *seedbox) pollFeed(ctx context.Context, fc *feedConf, now time.Time) {
	f := s.feeds
	f.mu.Lock()
	st := f.status[fc.URL]
	if st == nil {
		st = &FeedStatus{URL: fc.URL}
		f.status[fc.URL] = st
	}
	f.mu.Unlock()
	items, err := fetchFeed(ctx, fc.URL)
	f.mu.Lock()
	st.Polled, st.Error = now.UTC().Format(time.RFC3339), ""
	if err != nil {
		st.Error = err.Error()
		f.mu.Unlock()
		s.log.Warn("feed not read", "feed", fc.URL, "err", err)
		return
	}
	st.Items = len(items)
	rec, known := f.Recs[fc.URL]
	if !known {
		rec = &feedRecord{Seen: map[string]int64{}}
		f.Recs[fc.URL] = rec
	}
	var todo []feedItem
	for i, it := range items {
		if _, seen := rec.Seen[it.Key]; seen {
			continue
		}
		if fc.match != nil && !fc.match.MatchString(it.Title) {
			rec.Seen[it.Key] = now.Unix()
			continue
		}
		if !known && i >= feedFirst {
			rec.Seen[it.Key] = now.Unix() // the archive, when first read
			continue
		}
		todo = append(todo, it)
	}
	f.mu.Unlock()

	added := 0
	for _, it := range todo {
		done, err := s.addFeedItem(ctx, fc, it)
		f.mu.Lock()
		if done {
			rec.Seen[it.Key] = now.Unix()
			delete(f.tries, it.Link)
		} else if f.tries[it.Link]++; f.tries[it.Link] >= feedTries {
			rec.Seen[it.Key] = now.Unix()
			delete(f.tries, it.Link)
		}
		f.mu.Unlock()
		switch {
		case err == nil:
			added++
			s.log.Info("feed: added", "feed", fc.URL, "item", it.Title)
		case done:
			s.log.Info("feed: item not added", "feed", fc.URL, "item", it.Title, "err", err)
		default:
			s.log.Warn("feed: item's torrent not fetched; tried again at the next reading", "feed", fc.URL, "item", it.Title, "err", err)
		}
	}
	f.mu.Lock()
	st.Added += added
	trimSeen(rec)
	if err := f.saveLocked(); err != nil {
		s.log.Error("feeds: save what was seen", "err", err)
	}
	f.mu.Unlock()
}

// addFeedItem adds an item's torrent; done says the item is dealt with
// (added, there already, or refused for good) rather than to be tried
// again (its .torrent could not be fetched).
func (s *seedbox) addFeedItem(ctx context.Context, fc *feedConf, it feedItem) (done bool, err error) {
	if strings.HasPrefix(it.Link, "magnet:") {
		_, err = s.addMagnet(it.Link, fc.Dir)
	} else {
		data, ferr := fetchTorrent(ctx, it.Link, "")
		if ferr != nil {
			return false, ferr
		}
		_, err = s.addMetainfo(data, fc.Dir)
	}
	return true, err // added, there already (errExists), or refused for good
}

// fetchFeed GETs a feed and parses it.
func fetchFeed(ctx context.Context, raw string) ([]feedItem, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	data, err := getBounded(ctx, raw, "", maxFeedBytes)
	switch {
	case errors.Is(err, errOverLimit):
		return nil, fmt.Errorf("over %d MiB: not a feed", maxFeedBytes>>20)
	case err != nil:
		return nil, err
	}
	return parseFeed(data, u)
}

// trimSeen keeps the feedSeenKept items seen last.
func trimSeen(rec *feedRecord) {
	if len(rec.Seen) <= feedSeenKept {
		return
	}
	keys := make([]string, 0, len(rec.Seen))
	for k := range rec.Seen {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return rec.Seen[keys[i]] > rec.Seen[keys[j]] })
	for _, k := range keys[feedSeenKept:] {
		delete(rec.Seen, k)
	}
}

// feedStatus is the feeds as the status page shows them.
func (s *seedbox) feedStatus() []FeedStatus {
	if s.feeds == nil {
		return nil
	}
	s.feeds.mu.Lock()
	defer s.feeds.mu.Unlock()
	var out []FeedStatus
	for _, fc := range s.cfg.Feeds {
		if st := s.feeds.status[fc.URL]; st != nil {
			out = append(out, *st)
		} else {
			out = append(out, FeedStatus{URL: fc.URL})
		}
	}
	return out
}
