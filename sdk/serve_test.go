package sdk

import (
	"testing"

	"google.golang.org/protobuf/types/known/structpb"
)

// A plugin's status details may hold any value JSON can show: the status
// must not fail because one is a struct or a typed slice.
func TestStatusDetailsTakeAnyJSONValue(t *testing.T) {
	type counters struct {
		Sent  int64    `json:"sent"`
		Names []string `json:"names"`
	}
	in := map[string]any{
		"n": 3, "big": int64(1 << 40), "names": []string{"a"}, "ok": true,
		"counters": counters{Sent: 7, Names: []string{"eth0"}},
		"list":     []counters{{Sent: 1}},
		"nested":   map[string]any{"u": uint32(5)},
	}
	st, err := structpb.NewStruct(jsonSafe(in))
	if err != nil {
		t.Fatalf("details refused: %v", err)
	}
	got := st.AsMap()
	c, _ := got["counters"].(map[string]any)
	if c["sent"] != 7.0 || got["big"] != float64(1<<40) || got["nested"].(map[string]any)["u"] != 5.0 {
		t.Errorf("details came out as %v", got)
	}
	if l, _ := got["list"].([]any); len(l) != 1 {
		t.Errorf("list came out as %v", got["list"])
	}
}
