package torrent

// Seeding limits of a torrent's own. [plugins.torrent]'s ratio_limit and
// idle_limit hold for every torrent unless one is given its own, or none:
// a private tracker's torrent seeded for ever beside others that stop at
// a ratio of 1.

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Limit modes, as a record keeps them ("" is the node's limit).
const (
	limitNode = ""
	limitOwn  = "own"
	limitNone = "none"
)

// LimitsView is a torrent's seeding limits in effect: Ratio 0 and Idle ""
// are none; the Own flags say the torrent has its own, not the node's.
type LimitsView struct {
	Ratio    float64 `json:"ratio"`
	RatioOwn bool    `json:"ratio_own,omitempty"`
	Idle     string  `json:"idle"`
	IdleOwn  bool    `json:"idle_own,omitempty"`
}

// limits returns the ratio and idle limits in effect (0: none).
func (it *item) limits() (ratio float64, idle time.Duration) {
	ratio, idle = it.cfg.RatioLimit, it.cfg.idle
	switch it.rec.RatioMode {
	case limitOwn:
		ratio = it.rec.RatioLimit
	case limitNone:
		ratio = 0
	}
	switch it.rec.IdleMode {
	case limitOwn:
		idle = time.Duration(it.rec.IdleSeconds) * time.Second
	case limitNone:
		idle = 0
	}
	return ratio, idle
}

func (it *item) limitsView() LimitsView {
	ratio, idle := it.limits()
	v := LimitsView{Ratio: ratio, RatioOwn: it.rec.RatioMode != limitNode, IdleOwn: it.rec.IdleMode != limitNode}
	if idle > 0 {
		v.Idle = idle.String()
	}
	return v
}

// limitSetting is one limit as asked for: the node's, none, or a value.
type limitSetting struct {
	mode  string
	ratio float64
	idle  time.Duration
}

// parseLimit reads a limit from the API: "node", "none", or a ratio (a
// number) or an idle time (a duration like "90m"), by what.
func parseLimit(what string, raw json.RawMessage) (limitSetting, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		if what == "ratio" {
			var f float64
			if json.Unmarshal(raw, &f) == nil {
				s = strconv.FormatFloat(f, 'g', -1, 64)
			}
		}
		if s == "" {
			return limitSetting{}, fmt.Errorf("%q: want \"node\", \"none\" or a %s", what, limitKind(what))
		}
	}
	switch s {
	case "node":
		return limitSetting{mode: limitNode}, nil
	case "none":
		return limitSetting{mode: limitNone}, nil
	}
	if what == "ratio" {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || !(f > 0) || f > 1e6 {
			return limitSetting{}, fmt.Errorf("%q: %s is not \"node\", \"none\" or a %s", what, s, limitKind(what))
		}
		return limitSetting{mode: limitOwn, ratio: f}, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < time.Second {
		return limitSetting{}, fmt.Errorf("%q: %s is not \"node\", \"none\" or a %s", what, s, limitKind(what))
	}
	return limitSetting{mode: limitOwn, idle: d.Round(time.Second)}, nil
}

func limitKind(what string) string {
	if what == "ratio" {
		return "ratio above 0 (a number)"
	}
	return "duration of 1s or more (\"90m\", \"2h\")"
}

// setLimits gives torrent ih its own seeding limits, or the node's back
// (nil leaves one as it is). A torrent a limit finished stays finished:
// start has it seed again.
func (s *seedbox) setLimits(ih string, ratio, idle *limitSetting) (View, error) {
	return s.change(ih, func(it *item) error {
		if ratio != nil {
			it.rec.RatioMode, it.rec.RatioLimit = ratio.mode, ratio.ratio
		}
		if idle != nil {
			it.rec.IdleMode, it.rec.IdleSeconds = idle.mode, int64(idle.idle/time.Second)
		}
		s.log.Info("seeding limits set", "torrent", it.rec.Name, "limits", fmt.Sprintf("%+v", it.limitsView()))
		return nil
	})
}
