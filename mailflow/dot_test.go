package mailflow

import (
	"bufio"
	"bytes"
	"math/rand/v2"
	"net/textproto"
	"strings"
	"testing"
)

// dotWriter is what the standard library writes for raw as DATA.
func dotWriter(t testing.TB, raw []byte) []byte {
	var b bytes.Buffer
	w := textproto.NewWriter(bufio.NewWriter(&b))
	dw := w.DotWriter()
	if _, err := dw.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := dw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// appendDotStuffed writes what the DotWriter writes for every message
// with CRLF line breaks, and declines every other.
func TestAppendDotStuffedMatchesDotWriter(t *testing.T) {
	cases := []string{"", ".", "..", "\r\n", ".\r\n", "a", "a\r\n", "a\r\n.", "a\r\n.\r\n", "a\r\n..b\r\n.\r\n.",
		".a\r\nb\r\n", "a\n", "a\r", "a\rb\r\n", "a\nb", "\r\n\r\n.\r\n",
		"Subject: x\r\n\r\n.Zeile mit Punkt\r\n=2E\r\n" + strings.Repeat("x", 5000) + "\r\n.\r\n"}
	r := rand.New(rand.NewPCG(3, 4))
	tokens := []string{"a", ".", "..", "\r\n", "\r\n", "\r\n.", "\r", "\n"}
	for range 20000 {
		var b strings.Builder
		bare := r.IntN(4) == 0 // one case in four may have a bare CR or LF
		for range r.IntN(30) {
			tok := tokens[r.IntN(len(tokens))]
			if !bare && (tok == "\r" || tok == "\n") {
				continue
			}
			b.WriteString(tok)
		}
		cases = append(cases, b.String())
	}
	wellFormed := 0
	for _, s := range cases {
		got, ok := appendDotStuffed([]byte("pre\r\n"), []byte(s))
		crlfOnly := strings.Count(s, "\r") == strings.Count(s, "\r\n") && strings.Count(s, "\n") == strings.Count(s, "\r\n")
		if ok != crlfOnly {
			t.Fatalf("appendDotStuffed(%q): ok %v", s, ok)
		}
		if !ok {
			if string(got) != "pre\r\n" {
				t.Fatalf("appendDotStuffed(%q) declined but wrote %q", s, got)
			}
			continue
		}
		wellFormed++
		if want := dotWriter(t, []byte(s)); !bytes.Equal(got[5:], want) || string(got[:5]) != "pre\r\n" {
			t.Fatalf("appendDotStuffed(%q)\n got  %q\n want %q", s, got[5:], want)
		}
	}
	if wellFormed < 1000 {
		t.Fatalf("only %d cases with CRLF line breaks", wellFormed)
	}
}
