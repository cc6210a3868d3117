package storage

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// A value passed through jsonRows and SQLite's json_each equals the value
// bound as a parameter, strings of any content included; and timeTexts
// writes a time as the driver stores a bound time.Time, to the byte, or a
// compare-and-set on a stored time would never match.
func TestJSONRowsAndTimeTexts(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, "sqlite", filepath.Join(t.TempDir(), "j.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	strs := []string{"", "plain", `quo"te\back`, "ümlaut Straße", "tab\tnew\nline\x1f", "emoji 🙂"}
	j := newJSONRows(len(strs), 2)
	for i, str := range strs {
		j.next().int(int64(i) - 3).str(str)
	}
	rows, err := s.DB().QueryContext(ctx, `SELECT value->>0, value->>1 FROM json_each(?) ORDER BY key`, j.String())
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var i int64
		var str string
		if err := rows.Scan(&i, &str); err != nil {
			t.Fatal(err)
		}
		if i != int64(n)-3 || str != strs[n] {
			t.Errorf("row %d: %d %q", n, i, str)
		}
		n++
	}
	if err := rows.Err(); err != nil || n != len(strs) {
		t.Fatalf("%d rows, %v", n, err)
	}
	if got := newJSONRows(0, 1).String(); got != "[]" {
		t.Errorf("empty: %s", got)
	}
	if got := jsonInts([]int64{3, -1, 10}); got != "[3,-1,10]" {
		t.Errorf("jsonInts: %s", got)
	}

	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	var ts timeTexts
	for _, tm := range []time.Time{
		time.Date(2026, 3, 29, 2, 30, 0, 120, berlin), // nanoseconds, DST day
		time.Date(2026, 11, 1, 0, 0, 0, 0, berlin),
		time.Date(2026, 10, 31, 23, 0, 0, 0, time.UTC),
	} {
		var same bool
		if err := s.DB().GetContext(ctx, &same, `SELECT ? IS ?`, tm.UTC(), ts.text(tm)); err != nil || !same {
			t.Errorf("%v: timeTexts %q differs from the driver's text (%v)", tm, ts.text(tm), err)
		}
	}
	if ts.ptr(nil) != nil {
		t.Error("ptr(nil) is not NULL")
	}
}
