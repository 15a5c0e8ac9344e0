package torrent

import (
	"strings"
	"testing"
	"time"
)

func TestParseLimit(t *testing.T) {
	for _, c := range []struct {
		what, raw string
		want      limitSetting
		err       string
	}{
		{"ratio", `2.5`, limitSetting{mode: limitOwn, ratio: 2.5}, ""},
		{"ratio", `"1.5"`, limitSetting{mode: limitOwn, ratio: 1.5}, ""},
		{"ratio", `"none"`, limitSetting{mode: limitNone}, ""},
		{"ratio", `"node"`, limitSetting{mode: limitNode}, ""},
		{"idle", `"90m"`, limitSetting{mode: limitOwn, idle: 90 * time.Minute}, ""},
		{"idle", `"none"`, limitSetting{mode: limitNone}, ""},
		{"ratio", `0`, limitSetting{}, "ratio above 0"},
		{"ratio", `-1`, limitSetting{}, "ratio above 0"},
		{"ratio", `"NaN"`, limitSetting{}, "ratio above 0"},
		{"ratio", `"lots"`, limitSetting{}, "ratio above 0"},
		{"ratio", `[1]`, limitSetting{}, "ratio above 0"},
		{"idle", `90`, limitSetting{}, "duration"},
		{"idle", `"500ms"`, limitSetting{}, "duration"},
		{"idle", `"-5m"`, limitSetting{}, "duration"},
	} {
		got, err := parseLimit(c.what, []byte(c.raw))
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), c.what) {
				t.Errorf("%s %s: %v, want an error naming %q and saying %q", c.what, c.raw, err, c.what, c.err)
			}
		case err != nil:
			t.Errorf("%s %s: %v", c.what, c.raw, err)
		case got != c.want:
			t.Errorf("%s %s: %+v, want %+v", c.what, c.raw, got, c.want)
		}
	}
}

func TestOwnLimitsOverrideTheNodes(t *testing.T) {
	cfg := settings{RatioLimit: 1, idle: time.Hour}
	for _, c := range []struct {
		rec   record
		ratio float64
		idle  time.Duration
	}{
		{record{}, 1, time.Hour},
		{record{RatioMode: limitOwn, RatioLimit: 3}, 3, time.Hour},
		{record{RatioMode: limitNone, IdleMode: limitOwn, IdleSeconds: 120}, 0, 2 * time.Minute},
		{record{RatioMode: limitOwn, RatioLimit: 3, IdleMode: limitNone}, 3, 0},
	} {
		it := &item{rec: &c.rec, cfg: &cfg}
		if r, i := it.limits(); r != c.ratio || i != c.idle {
			t.Errorf("%+v: ratio %g idle %s, want %g %s", c.rec, r, i, c.ratio, c.idle)
		}
	}
}
