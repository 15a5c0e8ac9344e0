package sdk

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	pluginv1 "github.com/vecino/vecino/pluginapi/v1"
)

// frames records what a streamWriter sends.
type frames struct {
	pluginv1.Plugin_HTTPStreamServer
	got []*pluginv1.HTTPFrame
}

func (f *frames) Send(fr *pluginv1.HTTPFrame) error {
	f.got = append(f.got, fr)
	return nil
}

// A small answer is one frame, head and body, marked complete; a response
// the handler flushes goes in pieces, the first with the head, none
// marked complete; a long one in frames of at most streamFrameN bytes.
func TestStreamWriterFrames(t *testing.T) {
	for _, c := range []struct {
		name    string
		handler func(w http.ResponseWriter)
		want    []string // per frame: "head N complete", "head N", "body N"
	}{
		{"small", func(w http.ResponseWriter) { w.Write([]byte(`{"ok":true}`)) }, []string{"head 11 complete"}},
		{"no body", func(w http.ResponseWriter) { w.WriteHeader(http.StatusNoContent) }, []string{"head 0 complete"}},
		{"flushed", func(w http.ResponseWriter) {
			w.Write([]byte("line 1\n"))
			w.(http.Flusher).Flush()
			w.Write([]byte("line 2\n"))
		}, []string{"head 7", "body 7"}},
		{"large", func(w http.ResponseWriter) { w.Write(make([]byte, streamFrameN+5)) }, []string{"head 262144", "body 5"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := &frames{}
			w := &streamWriter{rpc: f, header: http.Header{}}
			c.handler(w)
			w.flush(true)
			var got []string
			for _, fr := range f.got {
				switch {
				case fr.GetResponse() != nil:
					s := "head " + itoa(len(fr.GetResponse().Body))
					if fr.GetResponse().Complete {
						s += " complete"
					}
					got = append(got, s)
				default:
					got = append(got, "body "+itoa(len(fr.GetBody())))
				}
			}
			if strings.Join(got, ", ") != strings.Join(c.want, ", ") {
				t.Errorf("frames %v, want %v", got, c.want)
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
