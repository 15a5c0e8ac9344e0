package torrent

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestQuietHoursSchedule(t *testing.T) {
	at := func(day, clock string) time.Time {
		tm, err := time.ParseInLocation("Mon 2006-01-02 15:04", day+" "+clock, time.Local)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	// 2026-11-23 is a Monday.
	for _, c := range []struct {
		hours string
		days  []string
		when  time.Time
		want  bool
	}{
		{"18:00-23:30", nil, at("Mon 2026-11-23", "18:00"), true},
		{"18:00-23:30", nil, at("Mon 2026-11-23", "23:30"), false},
		{"18:00-23:30", nil, at("Mon 2026-11-23", "17:59"), false},
		{"22:00-06:00", nil, at("Tue 2026-11-24", "03:00"), true},
		{"22:00-06:00", nil, at("Tue 2026-11-24", "12:00"), false},
		{"22:00-06:00", []string{"fri", "sat"}, at("Sat 2026-11-28", "05:59"), true},  // begun on Friday
		{"22:00-06:00", []string{"fri", "sat"}, at("Fri 2026-11-27", "05:59"), false}, // begun on Thursday
		{"08:00-18:00", []string{"Mon", " tue "}, at("Tue 2026-11-24", "09:00"), true},
		{"08:00-18:00", []string{"mon", "tue"}, at("Wed 2026-11-25", "09:00"), false},
		{"", nil, at("Mon 2026-11-23", "09:00"), false},
	} {
		var errs []string
		s := parseAltSchedule(c.hours, c.days, func(key, format string, a ...any) { errs = append(errs, key) })
		if len(errs) > 0 {
			t.Fatalf("%q %v: errors %v", c.hours, c.days, errs)
		}
		if got := s.in(c.when); got != c.want {
			t.Errorf("%q %v at %s: %v, want %v", c.hours, c.days, c.when.Format("Mon 15:04"), got, c.want)
		}
	}
	s := parseAltSchedule("08:00-18:00", []string{"sun", "sat"}, func(string, string, ...any) {})
	if s.trDays() != 1|64 || s.from != 480 || s.to != 1080 {
		t.Errorf("Transmission's fields: days %d, %d-%d", s.trDays(), s.from, s.to)
	}
}

func TestBadQuietHoursNameTheirKey(t *testing.T) {
	for _, c := range []struct {
		hours string
		days  []string
		key   string
	}{
		{"18-23", nil, "alt_hours"},
		{"18:00-25:00", nil, "alt_hours"},
		{"18:00-18:00", nil, "alt_hours"},
		{"18:00-23:00", []string{"someday"}, "alt_days"},
		{"", []string{"mon"}, "alt_days"},
	} {
		var got []string
		parseAltSchedule(c.hours, c.days, func(key, format string, a ...any) { got = append(got, key+": "+fmt.Sprintf(format, a...)) })
		if len(got) != 1 || !strings.HasPrefix(got[0], c.key) {
			t.Errorf("%q %v: %v, want one error for %s", c.hours, c.days, got, c.key)
		}
	}
}
