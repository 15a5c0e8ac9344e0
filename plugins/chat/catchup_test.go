package chat

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/vecino/vecino/plugins/chat/wire"
)

// A neighbour's catch-up answer is read frame by frame: a frame longer
// than a bundle may be, empty, or cut short is an error, not a wait or an
// allocation of what the length claims.
func TestReadFrame(t *testing.T) {
	frame := func(n uint64, body []byte) []byte { return append(binary.AppendUvarint(nil, n), body...) }
	bundle := wire.Bundle([][]byte{[]byte(`{"a":1}`)})
	for _, c := range []struct {
		name string
		in   []byte
		want []byte
		err  string
	}{
		{"whole", frame(uint64(len(bundle)), bundle), bundle, ""},
		{"end", nil, nil, "EOF"},
		{"too long", frame(wire.MaxBundle+1, nil), nil, "frame of 524289 bytes; at most 524288"},
		{"huge", frame(1<<62, nil), nil, "at most 524288"},
		{"empty", frame(0, nil), nil, "frame of 0 bytes"},
		{"cut short", frame(10, []byte("abc")), nil, "unexpected EOF"},
		{"length cut short", []byte{0x80}, nil, "unexpected EOF"},
	} {
		got, err := readFrame(bufio.NewReader(bytes.NewReader(c.in)), wire.MaxBundle)
		switch {
		case c.err == "" && (err != nil || !bytes.Equal(got, c.want)):
			t.Errorf("%s: %q, %v", c.name, got, err)
		case c.err != "" && (err == nil || !bytes.Contains([]byte(err.Error()), []byte(c.err))):
			t.Errorf("%s: error %v, want one saying %q", c.name, err, c.err)
		}
	}
}

// FuzzCatchUpAnswer: whatever a neighbour answers, reading it ends, with
// frames no longer than a bundle, each split or refused by wire.SplitRoom.
func FuzzCatchUpAnswer(f *testing.F) {
	b := wire.Bundle([][]byte{[]byte(`{"body":"x","sig":"y"}`), []byte(`{}`)})
	f.Add(append(binary.AppendUvarint(nil, uint64(len(b))), b...))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{3, '[', ']', 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		in := bufio.NewReader(bytes.NewReader(data))
		for range len(data) + 1 {
			fr, err := readFrame(in, wire.MaxBundle)
			if err != nil {
				if errors.Is(err, io.EOF) && in.Buffered() != 0 {
					t.Fatalf("EOF with %d bytes unread", in.Buffered())
				}
				return
			}
			if len(fr) == 0 || len(fr) > wire.MaxBundle {
				t.Fatalf("frame of %d bytes", len(fr))
			}
			if envs, err := wire.SplitRoom(fr); err == nil && len(envs) > wire.MaxBundleMessages {
				t.Fatalf("%d messages in one bundle", len(envs))
			}
		}
		t.Fatal("more frames than bytes")
	})
}

// What a catch-up brings is oldest first, so an author's messages missed
// while away are all taken even when a newer one came by gossipsub first:
// each late one is newer than the oldest the room still keeps.
func TestCatchUpAfterANewerMessage(t *testing.T) {
	var s seen
	for seq := uint64(1000); seq <= 1010; seq++ { // before the node went away
		s = s.with(seq, 0)
	}
	s = s.with(9000, 0) // said after it came back, by gossipsub
	for seq := uint64(2000); seq < 2050; seq++ {
		if !s.fresh(seq) {
			t.Fatalf("missed seq %d refused as a replay: %+v", seq, s)
		}
		s = s.with(seq, 0)
	}
	for _, seq := range []uint64{1010, 2049, 9000} {
		if s.fresh(seq) {
			t.Errorf("seq %d taken twice", seq)
		}
	}
}
