package torrent

import (
	"strings"
	"testing"
)

func TestCheckTrackerURL(t *testing.T) {
	for u, want := range map[string]string{
		"http://127.0.0.1:6969/announce":      "",
		"https://tracker.example/announce":    "",
		"udp://tracker.example:1337/announce": "",
		"ftp://tracker.example/announce":      "not ftp://",
		"tracker.example/announce":            "is not a tracker's announce URL",
		"http:///announce":                    "is not a tracker's announce URL",
		"":                                    "is not a tracker's announce URL",
	} {
		err := checkTrackerURL(u)
		switch {
		case want == "" && err != nil:
			t.Errorf("%q: %v", u, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%q: %v, want an error saying %q", u, err, want)
		}
	}
}
