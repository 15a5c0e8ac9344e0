package torrent

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

func TestParseRPCSaysWhatIsWrong(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{``, "not a JSON object"},
		{`[1,2]`, "not a JSON object"},
		{`{"arguments":{}}`, `no "method"`},
		{`{"method":7}`, "not a JSON object"},
		{`{"method":"torrent-get","arguments":[1]}`, `"arguments" must be an object`},
		{`{"method":"torrent-get","tag":"x"}`, `"tag" must be a number`},
		{`{"method":"session-get"} {"method":"session-get"}`, "more than one JSON value"},
	} {
		_, err := parseRPC([]byte(c.body))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.body, err, c.want)
		}
	}
}

func TestRPCIDs(t *testing.T) {
	h := strings.Repeat("ab", 20)
	for _, c := range []struct {
		args string
		want rpcIDs
		err  string
	}{
		{`{}`, rpcIDs{all: true}, ""},
		{`{"ids":null}`, rpcIDs{all: true}, ""},
		{`{"ids":3}`, rpcIDs{nums: []int{3}}, ""},
		{`{"ids":"recently-active"}`, rpcIDs{recent: true}, ""},
		{`{"ids":"` + strings.ToUpper(h) + `"}`, rpcIDs{hashes: []string{h}}, ""},
		{`{"ids":[1,"` + h + `",2]}`, rpcIDs{nums: []int{1, 2}, hashes: []string{h}}, ""},
		{`{"ids":1.5}`, rpcIDs{}, "not a torrent id"},
		{`{"ids":0}`, rpcIDs{}, "not a torrent id"},
		{`{"ids":[1,"abc"]}`, rpcIDs{}, `"ids"[1]`},
		{`{"ids":{"a":1}}`, rpcIDs{}, "neither a torrent id nor an info hash"},
		{`{"ids":[true]}`, rpcIDs{}, "neither a torrent id nor an info hash"},
	} {
		req, err := parseRPC([]byte(`{"method":"torrent-get","arguments":` + c.args + `}`))
		if err != nil {
			t.Fatal(err)
		}
		got, err := req.ids()
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: %v, want an error saying %q", c.args, err, c.err)
			}
		case err != nil:
			t.Errorf("%s: %v", c.args, err)
		case got.all != c.want.all || got.recent != c.want.recent || !slices.Equal(got.nums, c.want.nums) || !slices.Equal(got.hashes, c.want.hashes):
			t.Errorf("%s: %+v, want %+v", c.args, got, c.want)
		}
	}
}

// rpcPost posts body to the RPC handler with the session id given.
func rpcPost(s *seedbox, session, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", "/transmission/rpc", strings.NewReader(body))
	if session != "" {
		r.Header.Set(rpcSessionHdr, session)
	}
	w := httptest.NewRecorder()
	s.rpcHandler(w, r)
	return w
}

func TestRPCSessionHandshakeAndRefusals(t *testing.T) {
	s := &seedbox{rpc: newRPCState(), log: slog.New(slog.DiscardHandler), torrents: map[string]*item{}}
	w := rpcPost(s, "", `{"method":"session-get"}`)
	if w.Code != http.StatusConflict || w.Header().Get(rpcSessionHdr) != s.rpc.session {
		t.Fatalf("without the session id: %d %q, want 409 with the id", w.Code, w.Header().Get(rpcSessionHdr))
	}
	if w := rpcPost(s, "stale", `{"method":"session-get"}`); w.Code != http.StatusConflict {
		t.Errorf("with a stale session id: %d, want 409", w.Code)
	}
	answer := func(body string) (int, map[string]any) {
		t.Helper()
		w := rpcPost(s, s.rpc.session, body)
		var out map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s: answer %q: %v", body, w.Body.String(), err)
		}
		return w.Code, out
	}
	code, out := answer(`{"method":"session-get","tag":12}`)
	args, _ := out["arguments"].(map[string]any)
	if code != http.StatusOK || out["result"] != "success" || out["tag"] != 12.0 || args["rpc-version"] != float64(rpcVersion) {
		t.Errorf("session-get: %d %v", code, out)
	}
	for _, c := range []struct{ body, want string }{
		{`{"method":"no-such-thing"}`, "method name not recognized"},
		{`{"method":"torrent-set","arguments":{"ids":[1],"uploadLimit":5}}`, "uploadLimit"},
		{`{"method":"torrent-stop","arguments":{"ids":[4]}}`, "no torrent with id 4"},
		{`{"method":"torrent-get","arguments":{}}`, `no "fields"`},
		{`{"method":"torrent-add","arguments":{"filename":"/etc/passwd"}}`, "neither a magnet link nor an http(s) URL"},
		{`{"method":"torrent-add","arguments":{"metainfo":"%%%"}}`, "not base64"},
		{`{"method":"torrent-add","arguments":{"paused":"yes","filename":"magnet:?"}}`, `argument "paused"`},
		{`{"method":"session-set","arguments":{"speed-limit-up":5}}`, "TOML"},
		{`{"method":"torrent-set","arguments":{"ids":[1],"priority-low":[0]}}`, "two priorities"},
		{`{"method":"torrent-set","arguments":{"ids":[1],"priority-high":"all"}}`, `argument "priority-high"`},
		{`{"method":"torrent-set-location","arguments":{"ids":[1],"move":true}}`, "location is required"},
		{`{"method":"torrent-set-location","arguments":{"ids":[1],"location":"/etc","move":true}}`, "not in this node's data folder"},
		{`{"method":"torrent-set-location","arguments":{"ids":[1],"location":"tv","move":"yes"}}`, `argument "move"`},
		{`{"method":"torrent-set-location","arguments":{"ids":[1],"location":"tv","rename":true}}`, "rename"},
	} {
		code, out := answer(c.body)
		if res, _ := out["result"].(string); code != http.StatusOK || !strings.Contains(res, c.want) {
			t.Errorf("%s: %d %q, want a result saying %q", c.body, code, res, c.want)
		}
	}
	if code, out := answer(`{"method":`); code != http.StatusBadRequest || !strings.Contains(out["result"].(string), "not a JSON object") {
		t.Errorf("a broken request: %d %v", code, out)
	}
}

func FuzzParseRPC(f *testing.F) {
	for _, s := range []string{
		`{"method":"torrent-get","arguments":{"ids":[1,"abababababababababababababababababababab"],"fields":["id","name"]},"tag":3}`,
		`{"method":"torrent-add","arguments":{"filename":"magnet:?xt=urn:btih:89abcdef0123456789abcdef0123456789abcdef","paused":true,"files-unwanted":[0]}}`,
		`{"method":"torrent-remove","arguments":{"ids":"recently-active","delete-local-data":true}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := parseRPC(body)
		if err != nil {
			return
		}
		sel, err := req.ids()
		if err == nil && !sel.all && !sel.recent && len(sel.nums)+len(sel.hashes) == 0 {
			if raw := string(req.Args["ids"]); raw != "[]" && !strings.HasPrefix(strings.TrimSpace(raw), "[") {
				t.Errorf("ids %s selects nothing without an error", raw)
			}
		}
		for _, n := range sel.nums {
			if n < 1 {
				t.Errorf("id %d taken", n)
			}
		}
		for _, h := range sel.hashes {
			if len(h) != 40 {
				t.Errorf("hash %q taken", h)
			}
		}
		var fields []string
		req.arg("fields", &fields)
		req.only("ids", "fields")
	})
}
