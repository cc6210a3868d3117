package storage

import (
	"context"
	"path/filepath"
	"testing"
)

// Ids passed as one parameter (idIn, idsArg) select exactly those rows in
// SQLite, whose json_each reads the array jsonInts writes.
func TestIDsAsOneParameter(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, "sqlite", filepath.Join(t.TempDir(), "ids.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := jsonInts([]int64{3, -1, 10}); got != "[3,-1,10]" {
		t.Errorf("jsonInts: %s", got)
	}
	var got []int64
	err = s.DB().SelectContext(ctx, &got, `WITH t(id) AS (VALUES (1), (3), (-1), (7), (10)) SELECT id FROM t WHERE `+
		s.d.idIn("id")+` ORDER BY id`, s.d.idsArg([]int64{3, -1, 10, 99}))
	if err != nil || len(got) != 3 || got[0] != -1 || got[1] != 3 || got[2] != 10 {
		t.Errorf("selected %v, %v; want [-1 3 10]", got, err)
	}
}
