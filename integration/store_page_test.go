package integration

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStorePageInChromium: a person uses the storage page in a real
// browser: adds a file (asked for the API secret first), finds it listed
// with its CID, size and copies, downloads it whole by its link, unpins it,
// pins it again by CID, and reads the error for a CID that does not parse.
func TestStorePageInChromium(t *testing.T) {
	wd := startWebDriver(t)
	n := storeNode(t, "store-page", storeConf)
	path := filepath.Join(t.TempDir(), "holiday.bin")
	data := randomFile(t, path, 3<<20+5)

	wd.open(n.API + "/api/v1/plugins/store/")
	wd.waitText("#summary", "0 pins", 15*time.Second)
	wd.typeInto("#file", path)
	wd.click("#add button")
	wd.waitText("#result", "API password or token", 10*time.Second)
	wd.typeInto("#secret", n.Token)
	wd.click("#add button")
	wd.waitText("#result", "Added holiday.bin as ", 30*time.Second)

	_, body, err := n.Do("GET", "/api/v1/plugins/store/pins", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	var pins []struct {
		CID  string `json:"cid"`
		Name string `json:"name"`
	}
	json.Unmarshal(body, &pins)
	if len(pins) != 1 || pins[0].Name != "holiday.bin" {
		t.Fatalf("pins after the page's add: %s", body)
	}
	c := pins[0].CID
	if !strings.Contains(wd.text("#result"), c) {
		t.Errorf("the page said %q, not the CID %s", wd.text("#result"), c)
	}
	row := `tr[data-cid="` + c + `"]`
	wd.waitText(row, "holiday.bin", 10*time.Second)
	for _, want := range []string{c, "3.0 MiB", "1 / 3"} {
		if got := wd.text(row); !strings.Contains(got, want) {
			t.Errorf("the row %q lacks %q", got, want)
		}
	}
	// Both links, the download and the gateway's, give the file whole.
	for _, link := range []string{"a.download", "a.open"} {
		href := wd.attr(row+" "+link, "href")
		resp, err := http.Get(href)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !bytes.Equal(got, data) {
			t.Errorf("the %s link %s gave %d bytes, sha %s; want sha %s", link, href, len(got), sum(got), sum(data))
		}
	}

	wd.click(row + " button.unpin")
	wd.waitText("#result", "Unpinned holiday.bin", 10*time.Second)
	if _, body, _ := n.Do("GET", "/api/v1/plugins/store/pins", nil, false); strings.Contains(string(body), c) {
		t.Errorf("still pinned after Unpin: %s", body)
	}

	wd.typeInto("#cid", c)
	wd.click("#pin button")
	wd.waitText("#result", "Pinned "+c, 30*time.Second)
	wd.waitText(row, "3.0 MiB", 10*time.Second)

	wd.typeInto("#cid", "not-a-cid")
	wd.click("#pin button")
	wd.waitText("#result", `CID "not-a-cid"`, 10*time.Second)
	if cls := wd.attr("#result", "className"); cls != "err" {
		t.Errorf("the bad CID's error is shown as %q", cls)
	}
}
