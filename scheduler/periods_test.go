package scheduler

import (
	"errors"
	"mailflow/mailflow"
	"math"
	"math/big"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the tests must not depend on the host's zoneinfo
)

func berlin(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// at is a wall-clock time in loc.
func at(loc *time.Location, y int, m time.Month, d, hh, mm int) time.Time {
	return time.Date(y, m, d, hh, mm, 0, 0, loc)
}

// want is the part of a Period a table row checks; Start and End are local
// dates, amounts are checked separately where they matter.
type want struct {
	key        string
	start, end string // "2006-01-02" local midnight
	days, full int
}

func checkPeriods(t *testing.T, loc *time.Location, got []mailflow.Period, wants []want) {
	t.Helper()
	if len(got) != len(wants) {
		t.Fatalf("got %d periods %v, want %d", len(got), keys(got), len(wants))
	}
	for i, w := range wants {
		p := got[i]
		if p.Key != w.key || p.Days != w.days || p.FullDays != w.full {
			t.Errorf("period %d: got %s %d/%d days, want %s %d/%d", i, p.Key, p.Days, p.FullDays, w.key, w.days, w.full)
		}
		checkMidnight(t, loc, "Start", p.Start, w.start)
		checkMidnight(t, loc, "End", p.End, w.end)
	}
}

func checkMidnight(t *testing.T, loc *time.Location, name string, got time.Time, date string) {
	t.Helper()
	want, err := time.ParseInLocation("2006-01-02", date, loc)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(want) || got.Location() != loc {
		t.Errorf("%s = %v, want local midnight %v", name, got, want)
	}
}

func keys(ps []mailflow.Period) []string {
	var ks []string
	for _, p := range ps {
		ks = append(ks, p.Key)
	}
	return ks
}

func TestDuePeriods(t *testing.T) {
	loc := berlin(t)
	utc := time.UTC
	tests := []struct {
		name     string
		binding  time.Time
		interval string
		from     time.Time
		now      time.Time
		want     []want
	}{
		{
			name:     "mid-month binding prorates the first month",
			binding:  at(loc, 2026, 1, 15, 10, 0),
			interval: "monthly",
			now:      at(loc, 2026, 3, 1, 6, 0),
			want: []want{
				{"2026-01", "2026-01-15", "2026-02-01", 17, 31},
				{"2026-02", "2026-02-01", "2026-03-01", 28, 28},
			},
		},
		{
			name:     "binding on the first bills the full month",
			binding:  at(loc, 2026, 4, 1, 0, 0),
			interval: "monthly",
			now:      at(loc, 2026, 5, 1, 0, 0),
			want:     []want{{"2026-04", "2026-04-01", "2026-05-01", 30, 30}},
		},
		{
			name:     "binding on the 31st bills one day, then full months",
			binding:  at(loc, 2026, 1, 31, 23, 59),
			interval: "monthly",
			now:      at(loc, 2026, 5, 1, 0, 0),
			want: []want{
				{"2026-01", "2026-01-31", "2026-02-01", 1, 31},
				{"2026-02", "2026-02-01", "2026-03-01", 28, 28},
				{"2026-03", "2026-03-01", "2026-04-01", 31, 31},
				{"2026-04", "2026-04-01", "2026-05-01", 30, 30},
			},
		},
		{
			name:     "month end across the year boundary",
			binding:  at(loc, 2026, 12, 31, 12, 0),
			interval: "monthly",
			now:      at(loc, 2027, 2, 1, 0, 0),
			want: []want{
				{"2026-12", "2026-12-31", "2027-01-01", 1, 31},
				{"2027-01", "2027-01-01", "2027-02-01", 31, 31},
			},
		},
		{
			name:     "leap February 2028 has 29 days",
			binding:  at(loc, 2028, 2, 1, 9, 0),
			interval: "monthly",
			now:      at(loc, 2028, 3, 1, 0, 0),
			want:     []want{{"2028-02", "2028-02-01", "2028-03-01", 29, 29}},
		},
		{
			name:     "binding on Feb 29 bills one day of 29",
			binding:  at(loc, 2028, 2, 29, 9, 0),
			interval: "monthly",
			now:      at(loc, 2028, 3, 1, 0, 0),
			want:     []want{{"2028-02", "2028-02-29", "2028-03-01", 1, 29}},
		},
		{
			name:     "leap year 2028 has 366 days",
			binding:  at(loc, 2028, 1, 1, 0, 0),
			interval: "yearly",
			now:      at(loc, 2029, 1, 1, 0, 0),
			want:     []want{{"2028", "2028-01-01", "2029-01-01", 366, 366}},
		},
		{
			name:     "yearly prorated in a leap year",
			binding:  at(loc, 2028, 3, 1, 0, 0),
			interval: "yearly",
			now:      at(loc, 2030, 1, 1, 0, 0),
			want: []want{
				{"2028", "2028-03-01", "2029-01-01", 306, 366},
				{"2029", "2029-01-01", "2030-01-01", 365, 365},
			},
		},
		{
			name:     "yearly prorated from July",
			binding:  at(loc, 2026, 7, 1, 12, 0),
			interval: "yearly",
			now:      at(loc, 2027, 1, 1, 6, 0),
			want:     []want{{"2026", "2026-07-01", "2027-01-01", 184, 365}},
		},
		{
			name:     "quarters prorated and calendar-aligned",
			binding:  at(loc, 2026, 2, 15, 8, 0),
			interval: "quarterly",
			now:      at(loc, 2027, 1, 1, 6, 0),
			want: []want{
				{"2026-Q1", "2026-02-15", "2026-04-01", 45, 90},
				{"2026-Q2", "2026-04-01", "2026-07-01", 91, 91},
				{"2026-Q3", "2026-07-01", "2026-10-01", 92, 92},
				{"2026-Q4", "2026-10-01", "2027-01-01", 92, 92},
			},
		},
		{
			name:     "leap first quarter",
			binding:  at(loc, 2028, 1, 1, 0, 0),
			interval: "quarterly",
			now:      at(loc, 2028, 4, 1, 0, 0),
			want:     []want{{"2028-Q1", "2028-01-01", "2028-04-01", 91, 91}},
		},
		{
			name:     "binding on the last day of a quarter",
			binding:  at(loc, 2026, 9, 30, 18, 0),
			interval: "quarterly",
			now:      at(loc, 2026, 10, 1, 0, 0),
			want:     []want{{"2026-Q3", "2026-09-30", "2026-10-01", 1, 92}},
		},
		{
			name:     "catch-up after three missed months, each once in order",
			binding:  at(loc, 2026, 1, 1, 0, 0),
			interval: "monthly",
			now:      at(loc, 2026, 4, 1, 6, 0),
			want: []want{
				{"2026-01", "2026-01-01", "2026-02-01", 31, 31},
				{"2026-02", "2026-02-01", "2026-03-01", 28, 28},
				{"2026-03", "2026-03-01", "2026-04-01", 31, 31},
			},
		},
		{
			name:     "a period is due exactly at its End",
			binding:  at(loc, 2026, 1, 1, 0, 0),
			interval: "monthly",
			now:      at(loc, 2026, 2, 1, 0, 0),
			want:     []want{{"2026-01", "2026-01-01", "2026-02-01", 31, 31}},
		},
		{
			name:     "a period one nanosecond before its End is not due",
			binding:  at(loc, 2026, 1, 1, 0, 0),
			interval: "monthly",
			now:      at(loc, 2026, 2, 1, 0, 0).Add(-time.Nanosecond),
			want:     nil,
		},
		{
			name:     "now before binding",
			binding:  at(loc, 2026, 6, 1, 0, 0),
			interval: "monthly",
			now:      at(loc, 2026, 1, 1, 0, 0),
			want:     nil,
		},
		{
			name:     "UTC binding late on Jan 31 is Feb 1 in Berlin",
			binding:  time.Date(2026, 1, 31, 23, 30, 0, 0, utc),
			interval: "monthly",
			now:      at(loc, 2026, 3, 1, 6, 0),
			want:     []want{{"2026-02", "2026-02-01", "2026-03-01", 28, 28}},
		},
		{
			name:     "UTC binding late on Jun 30 is Jul 1 in Berlin summer time",
			binding:  time.Date(2026, 6, 30, 22, 30, 0, 0, utc),
			interval: "quarterly",
			now:      at(loc, 2026, 10, 1, 0, 0),
			want:     []want{{"2026-Q3", "2026-07-01", "2026-10-01", 92, 92}},
		},
		{
			name:     "UTC binding late on Dec 31 is next year in Berlin",
			binding:  time.Date(2026, 12, 31, 23, 0, 0, 0, utc),
			interval: "yearly",
			now:      at(loc, 2028, 1, 1, 0, 0),
			want:     []want{{"2027", "2027-01-01", "2028-01-01", 365, 365}},
		},
		{
			name:     "from at a period start keeps that period",
			binding:  at(loc, 2026, 1, 15, 10, 0),
			interval: "monthly",
			from:     at(loc, 2026, 4, 1, 0, 0),
			now:      at(loc, 2026, 7, 1, 6, 0),
			want: []want{
				{"2026-04", "2026-04-01", "2026-05-01", 30, 30},
				{"2026-05", "2026-05-01", "2026-06-01", 31, 31},
				{"2026-06", "2026-06-01", "2026-07-01", 30, 30},
			},
		},
		{
			name:     "from just after a period start skips it",
			binding:  at(loc, 2026, 1, 15, 10, 0),
			interval: "monthly",
			from:     at(loc, 2026, 4, 1, 0, 0).Add(time.Second),
			now:      at(loc, 2026, 7, 1, 6, 0),
			want: []want{
				{"2026-05", "2026-05-01", "2026-06-01", 31, 31},
				{"2026-06", "2026-06-01", "2026-07-01", 30, 30},
			},
		},
		{
			name:     "from in another zone is compared as an instant",
			binding:  at(loc, 2026, 1, 15, 10, 0),
			interval: "monthly",
			from:     time.Date(2026, 5, 31, 22, 0, 0, 0, utc), // June 1 00:00 CEST
			now:      at(loc, 2026, 7, 1, 6, 0),
			want:     []want{{"2026-06", "2026-06-01", "2026-07-01", 30, 30}},
		},
		{
			name:     "from at the binding date keeps the prorated period",
			binding:  at(loc, 2026, 1, 15, 10, 0),
			interval: "monthly",
			from:     at(loc, 2026, 1, 15, 0, 0),
			now:      at(loc, 2026, 2, 1, 0, 0),
			want:     []want{{"2026-01", "2026-01-15", "2026-02-01", 17, 31}},
		},
		{
			name:     "from inside the prorated period skips it",
			binding:  at(loc, 2026, 1, 15, 10, 0),
			interval: "monthly",
			from:     at(loc, 2026, 1, 20, 0, 0),
			now:      at(loc, 2026, 3, 1, 0, 0),
			want:     []want{{"2026-02", "2026-02-01", "2026-03-01", 28, 28}},
		},
		{
			name:     "from before the binding returns all",
			binding:  at(loc, 2026, 11, 20, 10, 0),
			interval: "quarterly",
			from:     at(loc, 2020, 1, 1, 0, 0),
			now:      at(loc, 2027, 1, 1, 0, 0),
			want:     []want{{"2026-Q4", "2026-11-20", "2027-01-01", 42, 92}},
		},
		{
			name:     "from after now returns none",
			binding:  at(loc, 2026, 1, 1, 0, 0),
			interval: "yearly",
			from:     at(loc, 2030, 1, 1, 0, 0),
			now:      at(loc, 2029, 1, 1, 0, 0),
			want:     nil,
		},
		{
			name:     "from skips quarters",
			binding:  at(loc, 2026, 2, 15, 8, 0),
			interval: "quarterly",
			from:     at(loc, 2026, 8, 10, 0, 0),
			now:      at(loc, 2027, 1, 1, 6, 0),
			want:     []want{{"2026-Q4", "2026-10-01", "2027-01-01", 92, 92}},
		},
		{
			name:     "once is due at the midnight after binding",
			binding:  at(loc, 2026, 3, 10, 15, 0),
			interval: "once",
			now:      at(loc, 2026, 3, 11, 0, 0),
			want:     []want{{"once", "2026-03-10", "2026-03-11", 1, 1}},
		},
		{
			name:     "once is billed once however late the run",
			binding:  at(loc, 2026, 3, 10, 15, 0),
			interval: "once",
			now:      at(loc, 2029, 3, 11, 0, 0),
			want:     []want{{"once", "2026-03-10", "2026-03-11", 1, 1}},
		},
		{
			name:     "once not yet due on the binding day",
			binding:  at(loc, 2026, 3, 10, 15, 0),
			interval: "once",
			now:      at(loc, 2026, 3, 10, 23, 59),
			want:     nil,
		},
		{
			name:     "once skipped by from",
			binding:  at(loc, 2026, 3, 10, 15, 0),
			interval: "once",
			from:     at(loc, 2026, 3, 11, 0, 0),
			now:      at(loc, 2026, 4, 1, 0, 0),
			want:     nil,
		},
		{
			name:     "once across the spring DST change",
			binding:  time.Date(2026, 3, 28, 23, 30, 0, 0, utc), // Mar 29 00:30 CET
			interval: "once",
			now:      at(loc, 2026, 3, 30, 0, 0),
			want:     []want{{"once", "2026-03-29", "2026-03-30", 1, 1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DuePeriods(tt.binding, tt.interval, 120000, 19, loc, tt.from, tt.now)
			if err != nil {
				t.Fatal(err)
			}
			checkPeriods(t, loc, got, tt.want)
		})
	}
}

// The months containing Berlin's 2026 DST changes are 31 calendar days long
// although 31×24h is off by an hour: bounds stay at local midnight.
func TestDuePeriodsDST(t *testing.T) {
	loc := berlin(t)
	tests := []struct {
		name     string
		binding  time.Time
		key      string
		start    string
		end      string
		days     int
		duration time.Duration
		offStart int // UTC offset of Start in hours
		offEnd   int
	}{
		{"spring forward 2026-03-29", at(loc, 2026, 3, 1, 0, 0), "2026-03", "2026-03-01", "2026-04-01", 31, 31*24*time.Hour - time.Hour, 1, 2},
		{"fall back 2026-10-25", at(loc, 2026, 10, 1, 0, 0), "2026-10", "2026-10-01", "2026-11-01", 31, 31*24*time.Hour + time.Hour, 2, 1},
		{"bound on the spring DST day", at(loc, 2026, 3, 29, 12, 0), "2026-03", "2026-03-29", "2026-04-01", 3, 3*24*time.Hour - time.Hour, 1, 2},
		{"bound on the autumn DST day", at(loc, 2026, 10, 25, 12, 0), "2026-10", "2026-10-25", "2026-11-01", 7, 7*24*time.Hour + time.Hour, 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DuePeriods(tt.binding, "monthly", 3100, 19, loc, time.Time{}, at(loc, 2026, 12, 1, 0, 0))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) == 0 {
				t.Fatal("no periods")
			}
			p := got[0]
			checkPeriods(t, loc, got[:1], []want{{tt.key, tt.start, tt.end, tt.days, 31}})
			if d := p.End.Sub(p.Start); d != tt.duration {
				t.Errorf("End-Start = %v, want %v", d, tt.duration)
			}
			for _, c := range []struct {
				name string
				tm   time.Time
				off  int
			}{{"Start", p.Start, tt.offStart}, {"End", p.End, tt.offEnd}} {
				if h, m, s := c.tm.Clock(); h != 0 || m != 0 || s != 0 {
					t.Errorf("%s %v not at local midnight", c.name, c.tm)
				}
				if _, off := c.tm.Zone(); off != c.off*3600 {
					t.Errorf("%s offset %ds, want %dh", c.name, off, c.off)
				}
			}
			if want := int64(100 * tt.days); p.NetCents != want {
				t.Errorf("net = %d, want %d", p.NetCents, want)
			}
		})
	}
}

func TestDuePeriodsAmounts(t *testing.T) {
	loc := berlin(t)
	got, err := DuePeriods(at(loc, 2026, 1, 31, 12, 0), "monthly", 120000, 19, loc, time.Time{}, at(loc, 2026, 3, 1, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %v", keys(got))
	}
	// 120000/31 = 3870.97 → 3871; 3871 × 19 % = 735.49 → 735.
	if p := got[0]; p.NetCents != 3871 || p.VATCents != 735 || p.GrossCents != 4606 {
		t.Errorf("prorated: %d + %d = %d, want 3871 + 735 = 4606", p.NetCents, p.VATCents, p.GrossCents)
	}
	if p := got[1]; p.NetCents != 120000 || p.VATCents != 22800 || p.GrossCents != 142800 {
		t.Errorf("full: %d + %d = %d, want 120000 + 22800 = 142800", p.NetCents, p.VATCents, p.GrossCents)
	}

	once, err := DuePeriods(at(loc, 2026, 1, 31, 12, 0), "once", 9999, 7, loc, time.Time{}, at(loc, 2026, 3, 1, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	// 9999 × 7 % = 699.93 → 700.
	if len(once) != 1 || once[0].NetCents != 9999 || once[0].VATCents != 700 || once[0].GrossCents != 10699 {
		t.Errorf("once: %+v", once)
	}
}

// Whatever the binding, interval and run times, the periods a daemon bills
// over several runs — each asking only for periods after the last one it
// billed — tile the time from the binding date to the last End without gap
// or overlap, and equal what a single late run would bill.
func TestDuePeriodsInvariants(t *testing.T) {
	loc := berlin(t)
	for _, interval := range []string{"monthly", "quarterly", "yearly", "once"} {
		for b := at(loc, 2025, 12, 20, 0, 0); b.Before(at(loc, 2029, 1, 10, 0, 0)); b = b.AddDate(0, 0, 11) {
			binding := b.Add(13*time.Hour + 17*time.Minute)
			final := at(loc, 2031, 1, 1, 0, 0)
			all, err := DuePeriods(binding, interval, 100000, 19, loc, time.Time{}, final)
			if err != nil {
				t.Fatal(err)
			}
			if len(all) == 0 {
				t.Fatalf("%s %v: no periods", interval, binding)
			}
			by, bm, bd := binding.Date()
			if !all[0].Start.Equal(time.Date(by, bm, bd, 0, 0, 0, 0, loc)) {
				t.Errorf("%s %v: first Start %v", interval, binding, all[0].Start)
			}
			seen := map[string]bool{}
			for i, p := range all {
				if seen[p.Key] {
					t.Errorf("%s %v: duplicate key %s", interval, binding, p.Key)
				}
				seen[p.Key] = true
				if i > 0 && !p.Start.Equal(all[i-1].End) {
					t.Errorf("%s %v: gap before %s", interval, binding, p.Key)
				}
				sy, sm, sd := p.Start.Date()
				ey, em, ed := p.End.Date()
				if d := civilDays(sy, sm, sd, ey, em, ed); d != p.Days {
					t.Errorf("%s %v %s: Days %d, calendar says %d", interval, binding, p.Key, p.Days, d)
				}
				if p.Days < 1 || p.Days > p.FullDays || (i > 0 && p.Days != p.FullDays) {
					t.Errorf("%s %v %s: Days %d of %d", interval, binding, p.Key, p.Days, p.FullDays)
				}
				if p.NetCents+p.VATCents != p.GrossCents {
					t.Errorf("%s %v %s: amounts do not add up", interval, binding, p.Key)
				}
			}

			// Runs on the 1st of some months at 06:00, as the cron job does,
			// each passing the End of the last billed period as from.
			var runs []mailflow.Period
			var from time.Time
			for run := at(loc, 2026, 1, 1, 6, 0); !run.After(final); run = run.AddDate(0, 5, 0) {
				ps, err := DuePeriods(binding, interval, 100000, 19, loc, from, run)
				if err != nil {
					t.Fatal(err)
				}
				runs = append(runs, ps...)
				if len(ps) > 0 {
					from = ps[len(ps)-1].End
				}
			}
			ps, err := DuePeriods(binding, interval, 100000, 19, loc, from, final)
			if err != nil {
				t.Fatal(err)
			}
			runs = append(runs, ps...)
			if strings.Join(keys(runs), ",") != strings.Join(keys(all), ",") {
				t.Errorf("%s %v: incremental runs billed %v, one run %v", interval, binding, keys(runs), keys(all))
			}
		}
	}
}

func TestDuePeriodsErrors(t *testing.T) {
	loc := berlin(t)
	binding := at(loc, 2026, 1, 1, 0, 0)
	now := at(loc, 2027, 1, 1, 0, 0)
	tests := []struct {
		name     string
		binding  time.Time
		interval string
		vat      float64
		loc      *time.Location
		unknown  bool
	}{
		{"weekly is not a catalog interval", binding, "weekly", 19, loc, true},
		{"intervals are case-sensitive", binding, "Monthly", 19, loc, true},
		{"empty interval", binding, "", 19, loc, true},
		{"nil location", binding, "monthly", 19, nil, false},
		{"zero binding", time.Time{}, "monthly", 19, loc, false},
		{"negative VAT", binding, "monthly", -1, loc, false},
		{"VAT over 100", binding, "monthly", 101, loc, false},
		{"NaN VAT", binding, "monthly", math.NaN(), loc, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps, err := DuePeriods(tt.binding, tt.interval, 1000, tt.vat, tt.loc, time.Time{}, now)
			if err == nil {
				t.Fatalf("no error, got %v", keys(ps))
			}
			if errors.Is(err, ErrUnknownInterval) != tt.unknown {
				t.Errorf("err = %v, ErrUnknownInterval want %v", err, tt.unknown)
			}
		})
	}
}

func TestAmounts(t *testing.T) {
	tests := []struct {
		name             string
		amount           int64
		days, full       int
		vat              float64
		net, vatC, gross int64
	}{
		{"full period 19%", 120000, 31, 31, 19, 120000, 22800, 142800},
		{"prorated net rounds up at .97", 120000, 1, 31, 19, 3871, 735, 4606},
		{"net half cent rounds up", 155, 1, 10, 0, 16, 0, 16},
		{"net just below half rounds down", 154, 1, 10, 0, 15, 0, 15},
		{"net one cent, half a day", 1, 1, 2, 0, 1, 0, 1},
		{"VAT 19% half cent rounds up", 50, 1, 1, 19, 50, 10, 60},
		{"VAT 19% 28.5 rounds up", 150, 1, 1, 19, 150, 29, 179},
		{"VAT 19% below half rounds down", 1, 1, 1, 19, 1, 0, 1},
		{"VAT 7% half cent rounds up", 150, 1, 1, 7, 150, 11, 161},
		{"VAT 7% below half", 149, 1, 1, 7, 149, 10, 159},
		{"VAT 7% on a prorated net", 2900, 17, 29, 7, 1700, 119, 1819},
		{"VAT 0", 99999, 1, 1, 0, 99999, 0, 99999},
		// 500 × 7.7 % is exactly 38.5; in float64 500*7.7/100 is not.
		{"VAT 7.7% exact half", 500, 1, 1, 7.7, 500, 39, 539},
		{"float noise in the rate", 50, 1, 1, 19.000000000000004, 50, 10, 60},
		// 4.35*100 is 434.99999999999994 in float64; truncating would lose 1 ct.
		{"rate 4.35% is 435 basis points", 10000, 1, 1, 4.35, 10000, 435, 10435},
		{"zero days", 120000, 0, 31, 19, 0, 0, 0},
		{"credit rounds half away from zero", -155, 1, 10, 0, -16, 0, -16},
		{"credit VAT half away from zero", -50, 1, 1, 19, -50, -10, -60},
		{"leap-year day", 36600, 1, 366, 19, 100, 19, 119},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			net, vat, gross := Amounts(tt.amount, tt.days, tt.full, tt.vat)
			if net != tt.net || vat != tt.vatC || gross != tt.gross {
				t.Errorf("Amounts(%d, %d/%d, %v%%) = %d + %d = %d, want %d + %d = %d",
					tt.amount, tt.days, tt.full, tt.vat, net, vat, gross, tt.net, tt.vatC, tt.gross)
			}
		})
	}
}

// Products beyond int64 must still round exactly, not wrap.
func TestAmountsLarge(t *testing.T) {
	amount := int64(math.MaxInt64 / 2)
	net, vat, gross := Amounts(amount, 365, 365, 19)
	if net != amount {
		t.Fatalf("net = %d, want %d", net, amount)
	}
	// round(amount × 1900 / 10000) with big integers.
	num := new(big.Int).Mul(big.NewInt(amount), big.NewInt(1900))
	q, r := new(big.Int).QuoRem(num, big.NewInt(10000), new(big.Int))
	if r.Cmp(big.NewInt(5000)) >= 0 {
		q.Add(q, big.NewInt(1))
	}
	if vat != q.Int64() || gross != net+vat {
		t.Errorf("vat = %d, want %d; gross %d", vat, q.Int64(), gross)
	}
}

func TestAmountsPanics(t *testing.T) {
	for _, tc := range []struct {
		name   string
		amount int64
		full   int
	}{
		{"zero full days", 100, 0},
		{"gross overflow", math.MaxInt64, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			Amounts(tc.amount, 1, tc.full, 19)
		})
	}
}

// BenchmarkDuePeriods measures a ten-year catch-up and a current order asking
// only for its newest period; the second must not grow with the order's age.
func BenchmarkDuePeriods(b *testing.B) {
	loc := berlin(b)
	binding := at(loc, 2016, 5, 17, 11, 0)
	now := at(loc, 2026, 5, 1, 6, 0)
	b.Run("catch-up-120-months", func(b *testing.B) {
		for b.Loop() {
			if _, err := DuePeriods(binding, "monthly", 120000, 19, loc, time.Time{}, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("newest-only", func(b *testing.B) {
		from := at(loc, 2026, 4, 1, 0, 0)
		for b.Loop() {
			ps, err := DuePeriods(binding, "monthly", 120000, 19, loc, from, now)
			if err != nil || len(ps) != 1 {
				b.Fatal(ps, err)
			}
		}
	})
}
