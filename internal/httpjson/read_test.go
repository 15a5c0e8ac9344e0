package httpjson

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestReadSaysWhatIsWrong(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{`{"dir": "tv"}`, ""},
		{`{"dri": "tv"}`, `body: want {"dir": "..."}: json: unknown field "dri"`},
		{`{}`, `body: want {"dir": "..."}: "dir" is missing`},
		{`{"dir": `, `body: want {"dir": "..."}: unexpected EOF`},
	} {
		var req struct {
			Dir *string `json:"dir"`
		}
		w := httptest.NewRecorder()
		ok := Read(w, httptest.NewRequest("POST", "/", strings.NewReader(c.body)), 4096, &req, `{"dir": "..."}`, func() error {
			if req.Dir == nil {
				return errors.New(`"dir" is missing`)
			}
			return nil
		})
		var answer struct{ Error string }
		json.Unmarshal(w.Body.Bytes(), &answer)
		switch {
		case c.want == "" && (!ok || *req.Dir != "tv"):
			t.Errorf("%s: refused: %s", c.body, w.Body)
		case c.want != "" && (ok || w.Code != http.StatusBadRequest || answer.Error != c.want):
			t.Errorf("%s: %v %d %q, want 400 saying %q", c.body, ok, w.Code, answer.Error, c.want)
		}
	}
}
