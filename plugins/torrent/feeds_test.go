package torrent

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/vecino/vecino/sdk"
)

func TestParseFeed(t *testing.T) {
	base, _ := url.Parse("https://radio.example/feeds/archive.rss")
	const ih = "magnet:?xt=urn:btih:89abcdef0123456789abcdef0123456789abcdef"
	for _, c := range []struct {
		name, doc string
		want      []feedItem
		err       string
	}{
		{"rss 2.0", `<?xml version="1.0"?><rss version="2.0"><channel><title>Radio</title>
<item><title>Show 2</title><guid>show-2</guid><enclosure url="https://radio.example/t/2" type="application/x-bittorrent" length="1"/></item>
<item><title>Show 1 &amp; friends</title><link>../t/show1.torrent</link></item>
<item><title>Notes</title><link>https://radio.example/notes.html</link></item>
<item><title>Show 0</title><link>` + ih + `&amp;dn=zero</link></item>
</channel></rss>`, []feedItem{
			{"show-2", "Show 2", "https://radio.example/t/2"},
			{"https://radio.example/t/show1.torrent", "Show 1 & friends", "https://radio.example/t/show1.torrent"},
			{ih + "&dn=zero", "Show 0", ih + "&dn=zero"},
		}, ""},
		{"atom", `<feed xmlns="http://www.w3.org/2005/Atom"><entry><title>Ep</title><id>urn:ep</id>
<link rel="alternate" href="https://radio.example/ep.html"/><link rel="enclosure" type="application/x-bittorrent" href="/ep.torrent"/></entry></feed>`,
			[]feedItem{{"urn:ep", "Ep", "https://radio.example/ep.torrent"}}, ""},
		{"rss 1.0", `<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><item><title>Old</title><link>https://x.example/old.torrent</link></item></rdf:RDF>`,
			[]feedItem{{"https://x.example/old.torrent", "Old", "https://x.example/old.torrent"}}, ""},
		{"not a feed", `<html><body>hi</body></html>`, nil, "document is <html>"},
		{"not xml", `{"items": []}`, nil, "not an RSS or Atom feed"},
		{"file scheme", `<rss><channel><item><link>file:///etc/x.torrent</link></item></channel></rss>`, nil, ""},
	} {
		got, err := parseFeed([]byte(c.doc), base)
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: %v, want an error saying %q", c.name, err, c.err)
			}
		case err != nil:
			t.Errorf("%s: %v", c.name, err)
		case len(got) != len(c.want):
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		default:
			for i := range got {
				if got[i] != c.want[i] {
					t.Errorf("%s: item %d %+v, want %+v", c.name, i, got[i], c.want[i])
				}
			}
		}
	}
}

func TestBadSettingsNameTheirKey(t *testing.T) {
	for _, c := range []struct{ table, key string }{
		{"[[feeds]]\nurl = \"ftp://x.example/f\"", "feeds.url"},
		{"[[feeds]]\nurl = \"https://x.example/f\"\nmatch = \"(\"", "feeds.match"},
		{"[[feeds]]\nurl = \"https://x.example/f\"\ndir = \"../up\"", "feeds.dir"},
		{"feed_interval = \"0s\"", "feed_interval"},
		{"incomplete_dir = \"../partial\"", "incomplete_dir"},
		{"incomplete_dir = \"/srv/partial\"", "incomplete_dir"},
	} {
		err := New().Configure(context.Background(), []byte(c.table), sdk.Env{DataDir: t.TempDir()})
		if err == nil || !strings.Contains(err.Error(), c.key) {
			t.Errorf("%s: %v, want an error naming %s", c.table, err, c.key)
		}
	}
}

func FuzzParseFeed(f *testing.F) {
	f.Add([]byte(`<rss><channel><item><title>a</title><guid>g</guid><enclosure url="/a.torrent" type="application/x-bittorrent"/></item></channel></rss>`))
	f.Add([]byte(`<feed><entry><id>x</id><link href="magnet:?xt=urn:btih:89abcdef0123456789abcdef0123456789abcdef"/></entry></feed>`))
	base, _ := url.Parse("https://radio.example/feed")
	f.Fuzz(func(t *testing.T, doc []byte) {
		items, err := parseFeed(doc, base)
		if err != nil {
			return
		}
		for _, it := range items {
			if it.Key == "" || !strings.HasPrefix(it.Link, "magnet:") && !strings.HasPrefix(it.Link, "http://") && !strings.HasPrefix(it.Link, "https://") {
				t.Errorf("item %+v", it)
			}
		}
	})
}
