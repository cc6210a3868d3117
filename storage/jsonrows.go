package storage

import (
	"encoding/json"
	"strconv"
)

// jsonRows builds a JSON array of rows (arrays of values) that one SQLite
// statement reads with json_each: a batch of thousands of rows costs one
// statement with one parameter. A multi-row VALUES list with a parameter
// per value cost SQLite's parser more than executing it, and a statement
// per row the call overhead per row. Values are int64 and string.
type jsonRows struct {
	b   []byte
	row int
	col int
}

func newJSONRows(rows, width int) *jsonRows {
	j := &jsonRows{b: make([]byte, 0, rows*width*16+2)}
	j.b = append(j.b, '[')
	return j
}

// next starts a row.
func (j *jsonRows) next() *jsonRows {
	if j.row > 0 {
		j.b = append(j.b, "],"...)
	}
	j.b = append(j.b, '[')
	j.row++
	j.col = 0
	return j
}

func (j *jsonRows) sep() {
	if j.col > 0 {
		j.b = append(j.b, ',')
	}
	j.col++
}

func (j *jsonRows) int(v int64) *jsonRows {
	j.sep()
	j.b = strconv.AppendInt(j.b, v, 10)
	return j
}

func (j *jsonRows) str(s string) *jsonRows {
	j.sep()
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			q, _ := json.Marshal(s) // a string always marshals
			j.b = append(j.b, q...)
			return j
		}
	}
	j.b = append(j.b, '"')
	j.b = append(j.b, s...)
	j.b = append(j.b, '"')
	return j
}

// String ends the array.
func (j *jsonRows) String() string {
	if j.row > 0 {
		j.b = append(j.b, ']')
	}
	return string(append(j.b, ']'))
}

// jsonInts is a JSON array of integers, for SQLite's json_each.
func jsonInts(ids []int64) string {
	b := make([]byte, 0, len(ids)*8+2)
	b = append(b, '[')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, id, 10)
	}
	return string(append(b, ']'))
}
