package api

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/vecino/vecino/config"
	"github.com/vecino/vecino/internal/atomicfile"
	"github.com/vecino/vecino/internal/httpjson"
)

// Auth checks the API secret: the configured password (HTTP basic auth, any
// user name) or the token (Authorization: Bearer TOKEN).
type Auth struct {
	secret string
}

// LoadAuth reads the secret from [api]: the password, the token file, or a
// token made once at stateDir/api-token.
func LoadAuth(c config.API, stateDir string) (*Auth, string, error) {
	if c.Password != "" {
		return &Auth{secret: c.Password}, "password from [api] password", nil
	}
	path := c.TokenFile
	if path == "" {
		path = filepath.Join(stateDir, "api-token")
	}
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		tok := strings.TrimSpace(string(data))
		if tok == "" {
			return nil, "", fmt.Errorf("api token file %s is empty", path)
		}
		return &Auth{secret: tok}, "token in " + path, nil
	case !errors.Is(err, fs.ErrNotExist) || c.TokenFile != "":
		return nil, "", fmt.Errorf("read api token: %w", err)
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return nil, "", fmt.Errorf("make api token: %w", err)
	}
	tok := hex.EncodeToString(b)
	if err := atomicfile.Write(path, []byte(tok+"\n"), 0o600); err != nil {
		return nil, "", fmt.Errorf("save api token: %w", err)
	}
	return &Auth{secret: tok}, "new token in " + path, nil
}

// Check reports whether r carries the secret.
func (a *Auth) Check(r *http.Request) bool {
	var got string
	if _, pass, ok := r.BasicAuth(); ok {
		got = pass
	} else if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		got = tok
	} else {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(a.secret)) == 1
}

// Guard lets reads, and requests public says are public, through and asks
// for the secret on everything else.
func (a *Auth) Guard(next http.Handler, public func(*http.Request) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			if public(r) {
				break
			}
			if !a.Check(r) {
				// A caller that sent a bearer token (a page's script) is
				// told so in kind: a Basic challenge would make the browser
				// put up its own password prompt over the page.
				challenge := `Basic realm="vecino"`
				if scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " "); strings.EqualFold(scheme, "Bearer") {
					challenge = `Bearer realm="vecino"`
				}
				w.Header().Set("WWW-Authenticate", challenge)
				httpjson.Error(w, http.StatusUnauthorized, errors.New("this request changes state: send the API password (basic auth) or token (Authorization: Bearer)"))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
