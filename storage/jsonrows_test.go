package storage

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// A value passed through jsonRows and SQLite's json_each equals the value
// bound as a parameter: strings of any content, integers, booleans, nulls
// and times, which must match the driver's own text form to the byte, or
// a compare-and-set on a stored time would never match.
func TestJSONRowsRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, "sqlite", filepath.Join(t.TempDir(), "j.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	tm := time.Date(2026, 3, 29, 2, 30, 0, 120, berlin) // nanoseconds, DST day
	strs := []string{"", "plain", `quo"te\back`, "ümlaut Straße", "tab\tnew\nline\x1f", "emoji 🙂"}
	j := newJSONRows(len(strs), 5)
	for i, str := range strs {
		var tp *time.Time
		if i%2 == 0 {
			tp = &tm
		}
		j.next().int(int64(i) - 3).str(str).bool(i%3 == 0).timePtr(tp).time(tm)
	}
	rows, err := s.DB().QueryContext(ctx, `SELECT value->>0, value->>1, value->>2, value->>3 IS ?, value->>3 IS NULL, value->>4 = ?
		FROM json_each(?) ORDER BY key`, tm.UTC(), tm.UTC(), j.String())
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var i int64
		var str string
		var b, sameTime, null, sameTime2 bool
		if err := rows.Scan(&i, &str, &b, &sameTime, &null, &sameTime2); err != nil {
			t.Fatal(err)
		}
		if i != int64(n)-3 || str != strs[n] || b != (n%3 == 0) || sameTime != (n%2 == 0) || null != (n%2 == 1) || !sameTime2 {
			t.Errorf("row %d: %d %q %v %v %v %v", n, i, str, b, sameTime, null, sameTime2)
		}
		n++
	}
	if err := rows.Err(); err != nil || n != len(strs) {
		t.Fatalf("%d rows, %v", n, err)
	}
	if got := newJSONRows(0, 1).String(); got != "[]" {
		t.Errorf("empty: %s", got)
	}
}
