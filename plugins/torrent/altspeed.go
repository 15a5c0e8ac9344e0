package torrent

// Quiet hours: other upload and download limits for the hours a household
// needs its line (Transmission's "alternative speed limits", the turtle).
// They are in effect during alt_hours on alt_days, or when switched on or
// off by hand (vecino torrent quiet, POST /quiet-hours, a Transmission
// client's turtle button); a switch by hand holds until the schedule next
// changes, as Transmission's does. The engine's two rate limiters are
// changed in place, so connections carry on at the new rate.

import (
	"fmt"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// altSchedule is alt_hours and alt_days, read.
type altSchedule struct {
	set      bool
	from, to int      // minutes after midnight, local time; to may be before from (past midnight)
	days     [7]bool  // by time.Weekday; the day the hours begin on
	anyDay   bool     // alt_days empty
	dayNames []string // as given
}

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// parseAltSchedule reads alt_hours ("18:00-23:30") and alt_days
// (["mon", "tue", ...], empty for every day), reporting what is wrong
// with each through bad.
func parseAltSchedule(hours string, days []string, bad func(key, format string, a ...any)) altSchedule {
	var s altSchedule
	if hours == "" {
		if len(days) > 0 {
			bad("alt_days", "has no effect without alt_hours")
		}
		return s
	}
	from, to, ok := strings.Cut(hours, "-")
	var err error
	if ok {
		if s.from, err = clockMinutes(from); err == nil {
			s.to, err = clockMinutes(to)
		}
	}
	switch {
	case !ok || err != nil:
		bad("alt_hours", "%q is not a span of the day like \"18:00-23:30\" (local time)", hours)
	case s.from == s.to:
		bad("alt_hours", "%q begins where it ends", hours)
	}
	s.set, s.anyDay, s.dayNames = true, len(days) == 0, days
	for _, d := range days {
		wd, ok := weekdays[strings.ToLower(strings.TrimSpace(d))]
		if !ok {
			bad("alt_days", "%q is not a day: say mon, tue, wed, thu, fri, sat or sun", d)
			continue
		}
		s.days[wd] = true
	}
	return s
}

// clockMinutes reads "HH:MM" as minutes after midnight.
func clockMinutes(s string) (int, error) {
	t, err := time.Parse("15:04", strings.TrimSpace(s))
	if err != nil {
		return 0, err
	}
	return t.Hour()*60 + t.Minute(), nil
}

// in reports whether the quiet hours hold at now (its own time zone).
// Hours past midnight belong to the day they began on.
func (s altSchedule) in(now time.Time) bool {
	if !s.set {
		return false
	}
	m := now.Hour()*60 + now.Minute()
	day := now.Weekday()
	switch {
	case s.from < s.to:
		if m < s.from || m >= s.to {
			return false
		}
	case m >= s.from: // the evening part of a span past midnight
	case m < s.to: // its morning part, begun the day before
		day = (day + 6) % 7
	default:
		return false
	}
	return s.anyDay || s.days[day]
}

// trDays is the days as Transmission's alt-speed-time-day bit mask
// (Sunday 1, Monday 2 ... Saturday 64).
func (s altSchedule) trDays() int {
	mask := 0
	for d := range 7 {
		if s.anyDay || s.days[d] {
			mask |= 1 << d
		}
	}
	return mask
}

// altState is whether the quiet limits are in effect and why.
type altState struct {
	on     bool
	manual *bool // switched by hand; until the schedule next changes
	sched  bool  // what the schedule said at the last look
	looked bool
}

// AltView is the quiet hours' state, for the API.
type AltView struct {
	On bool `json:"on"`
	// Why is "by hand" while a switch by hand holds (on or off),
	// "schedule" while the schedule has them on, else "".
	Why       string `json:"why,omitempty"`
	UpKiBps   int64  `json:"up_kib_per_s"`
	DownKiBps int64  `json:"down_kib_per_s"`
	Hours     string `json:"hours,omitempty"`
	Days      string `json:"days,omitempty"`
}

// setLimiter has l allow kibps KiB/s, or anything for 0.
func setLimiter(l *rate.Limiter, kibps int64) {
	if kibps <= 0 {
		l.SetLimit(rate.Inf)
		return
	}
	b := kibps << 10
	l.SetBurst(int(max(b, 256<<10))) // before the limit: the engine waits for more than 0
	l.SetLimit(rate.Limit(b))
}

// applyAltLocked puts the limits the schedule, or a switch by hand, asks
// for now in effect.
func (s *seedbox) applyAltLocked(now time.Time) {
	a := &s.alt
	sched := s.cfg.altSched.in(now)
	if a.looked && sched != a.sched {
		a.manual = nil // the schedule changed: it decides again
	}
	a.sched, a.looked = sched, true
	want := sched
	if a.manual != nil {
		want = *a.manual
	}
	if want == a.on {
		return
	}
	a.on = want
	up, down := s.cfg.UploadKiBps, s.cfg.DownloadKiBps
	if want {
		up, down = s.cfg.AltUploadKiBps, s.cfg.AltDownloadKiBps
	}
	setLimiter(s.upLimit, up)
	setLimiter(s.downLimit, down)
	s.log.Info("speed limits", "alternative", want, "why", s.altWhyLocked(), "up_kib_per_s", up, "down_kib_per_s", down)
}

func (s *seedbox) altWhyLocked() string {
	switch {
	case s.alt.manual != nil:
		return "by hand"
	case s.alt.on:
		return "schedule"
	}
	return ""
}

// setAlt switches the quiet limits on or off by hand, or (nil) back to
// the schedule.
func (s *seedbox) setAlt(on *bool) AltView {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.alt.manual = on
	s.applyAltLocked(time.Now())
	return s.altViewLocked()
}

func (s *seedbox) altView() AltView {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.altViewLocked()
}

func (s *seedbox) altViewLocked() AltView {
	v := AltView{On: s.alt.on, Why: s.altWhyLocked(), UpKiBps: s.cfg.AltUploadKiBps, DownKiBps: s.cfg.AltDownloadKiBps}
	if sc := s.cfg.altSched; sc.set {
		v.Hours, v.Days = s.cfg.AltHours, strings.Join(sc.dayNames, ", ")
	}
	return v
}

// altStatus is a line for the plugin's summary while the quiet limits
// hold.
func (s *seedbox) altStatus() string {
	v := s.altView()
	if !v.On {
		return ""
	}
	return fmt.Sprintf("; quiet hours (%s): up %s, down %s", v.Why, kibText(v.UpKiBps), kibText(v.DownKiBps))
}

func kibText(kib int64) string {
	if kib <= 0 {
		return "unlimited"
	}
	return fmt.Sprintf("%d KiB/s", kib)
}

// checkAlt is the quiet hours' part of validate.
func (st *settings) checkAlt(bad func(key, format string, a ...any)) {
	if st.AltUploadKiBps < 0 {
		bad("alt_upload_kib_per_s", "must be 0 (no limit) or more, not %d", st.AltUploadKiBps)
	}
	if st.AltDownloadKiBps < 0 {
		bad("alt_download_kib_per_s", "must be 0 (no limit) or more, not %d", st.AltDownloadKiBps)
	}
	st.altSched = parseAltSchedule(st.AltHours, st.AltDays, bad)
}
