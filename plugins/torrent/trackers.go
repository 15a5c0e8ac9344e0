package torrent

// Trackers added to a torrent by its owner: a magnet link that came with
// none, a tracker that moved. Each is announced to at once, in a tier of
// its own after the torrent's, and kept in list.json, so that it is there
// after a restart too. Trackers cannot be taken away while the plugin
// runs: anacrolix/torrent v1.61 goes on announcing to a tracker once it
// has started to.

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// maxAddedTrackers bounds the trackers added to one torrent.
const maxAddedTrackers = 32

// checkTrackerURL says why u is no tracker's announce URL, if it is not:
// for a tracker added here and for one a torrent made here names
// (checkTrackers).
func checkTrackerURL(u string) error {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return fmt.Errorf("%.100q is not a tracker's announce URL (http://, https:// or udp://HOST:PORT/...)", u)
	}
	switch p.Scheme {
	case "http", "https", "udp":
		return nil
	}
	return fmt.Errorf("%.100q: a tracker's announce URL is http://, https:// or udp://, not %s://", u, p.Scheme)
}

// addTrackers adds announce URLs to torrent ih; those it has already are
// passed over. It returns the ones added.
func (s *seedbox) addTrackers(ih string, urls []string) ([]string, error) {
	if !s.cfg.Trackers {
		return nil, errors.New("trackers are off on this node (trackers = false in [plugins.torrent]): it announces to none")
	}
	if len(urls) == 0 {
		return nil, errors.New("no tracker to add")
	}
	for _, u := range urls {
		if err := checkTrackerURL(u); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.torrents[ih]
	if !ok {
		return nil, fmt.Errorf("%w %s", errNoTorrent, ih)
	}
	added, tiers := missingTrackers(it, urls)
	if len(added) == 0 {
		return []string{}, nil
	}
	if len(it.rec.Trackers)+len(added) > maxAddedTrackers {
		return nil, fmt.Errorf("%d trackers are added to this torrent already; at most %d may be", len(it.rec.Trackers), maxAddedTrackers)
	}
	announceTo(it, tiers, added)
	it.rec.Trackers = append(it.rec.Trackers, added...)
	s.saveListLocked()
	s.log.Info("trackers added", "torrent", it.rec.Name, "trackers", strings.Join(added, " "))
	return added, nil
}

// addMissingTrackers hands the engine those of urls the torrent does not
// announce to yet (after a restart: the ones its owner added).
func addMissingTrackers(it *item, urls []string) {
	if added, tiers := missingTrackers(it, urls); len(added) > 0 {
		announceTo(it, tiers, added)
	}
}

// missingTrackers returns those of urls the torrent does not announce to
// yet, and how many tiers of trackers it has.
func missingTrackers(it *item, urls []string) ([]string, int) {
	mi := it.t.Metainfo()
	tiers := mi.UpvertedAnnounceList()
	have := map[string]bool{}
	for _, tier := range tiers {
		for _, u := range tier {
			have[u] = true
		}
	}
	var missing []string
	for _, u := range urls {
		if !have[u] {
			have[u] = true
			missing = append(missing, u)
		}
	}
	return missing, len(tiers)
}

// announceTo hands the engine urls, each in a tier of its own after the
// n the torrent has: the engine merges an announce list tier by tier.
func announceTo(it *item, n int, urls []string) {
	list := make([][]string, n+len(urls))
	for i, u := range urls {
		list[n+i] = []string{u}
	}
	it.t.AddTrackers(list)
}
