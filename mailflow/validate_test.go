package mailflow

import (
	"fmt"
	"testing"
)

func TestValidLeitwegID(t *testing.T) {
	valid := []string{"04011000-12345-03", "991-33333TEST-33", "992-90009-96", "09564000-NUE0001-49", "04011000-900X999-08"}
	for _, id := range valid {
		if err := ValidLeitwegID(id); err != nil {
			t.Errorf("%s: %v", id, err)
		}
		// Any single changed check digit must be caught.
		for pos := len(id) - 2; pos < len(id); pos++ {
			for d := byte('0'); d <= '9'; d++ {
				if d == id[pos] {
					continue
				}
				bad := id[:pos] + string(d) + id[pos+1:]
				if ValidLeitwegID(bad) == nil {
					t.Errorf("%s accepted (from %s)", bad, id)
				}
			}
		}
	}
	for _, id := range []string{"", "1-2-3", "04011000", "04011000-12345-3", "0401100012345-03", "04011000-123_45-03", "04011000-12345-03 ", fmt.Sprintf("0401-%040d-00", 1)} {
		if ValidLeitwegID(id) == nil {
			t.Errorf("%q accepted", id)
		}
	}
}
