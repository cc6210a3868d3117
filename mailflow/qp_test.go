package mailflow

import (
	"bytes"
	"math/rand/v2"
	"mime/quotedprintable"
	"strings"
	"testing"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// stdQP is what go-mail writes for a part: mime/quotedprintable's Writer.
func stdQP(t testing.TB, s string) []byte {
	var b bytes.Buffer
	w := quotedprintable.NewWriter(&b)
	if _, err := w.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// appendQP must encode exactly as the standard library's Writer: the
// bytes of every mail depend on it.
func TestAppendQPMatchesStandardLibrary(t *testing.T) {
	cases := []string{
		"", " ", "\t", "a ", "a\t\r\nb", "=", "Grüße\r\n", "Gr\xfc\xdfe", "\r", "\n", "\r\n", "\n\r", "\r\r\n\n",
		"a \nb\t\r\nc  ", "\r\xc3\n", "x\r\xa4\ny",
		strings.Repeat("x", 75), strings.Repeat("x", 76), strings.Repeat("x", 77), strings.Repeat("x", 151),
		strings.Repeat("x", 72) + "ä", strings.Repeat("x", 73) + "€", strings.Repeat("x", 74) + " \r\n",
		strings.Repeat("x", 75) + " ", strings.Repeat("x", 74) + "\t", strings.Repeat("x", 75) + "\tz",
		strings.Repeat("Summe: 1.234,56 € = netto\r\n", 40),
		`<tr valign="top"><td>2026-000123</td><td align="right">19 %: 19,00 €</td></tr>` + "\n",
	}
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("ab= \t\r\n\xc3\xa4\x00~!.")
	for range 20000 {
		b := make([]byte, r.IntN(300))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		want := stdQP(t, s)
		got := appendQP([]byte("prefix"), s)
		if !bytes.Equal(got[6:], want) || string(got[:6]) != "prefix" {
			t.Fatalf("appendQP(%q)\n got  %q\n want %q", s, got[6:], want)
		}
	}
}

func FuzzAppendQP(f *testing.F) {
	for _, s := range []string{"Grüße \r\nTschüß\t", "\r\xc3\n", strings.Repeat("é", 40)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := appendQP(nil, s), stdQP(t, s); !bytes.Equal(got, want) {
			t.Fatalf("appendQP(%q)\n got  %q\n want %q", s, got, want)
		}
	})
}

// A message whose bodies fillBodies put in is, byte for byte, the message
// go-mail writes with the bodies itself: with an attachment and header
// values that look like the parts' content.
func TestFillBodiesAsGoMail(t *testing.T) {
	text := "Guten Tag,  \r\nGrüße \t\n" + strings.Repeat("Summe 1.234,56 € = brutto; ", 12) + "\n-- \nmailflow\n"
	html := `<p style="color: red">Grüße</p>` + strings.Repeat(`<tr valign="top"><td>2026-000123</td></tr>`, 9)
	write := func(plain, alt string) []byte {
		m := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
		m.SetBoundary("grenze")
		if err := m.From("bestellungen@example.org"); err != nil {
			t.Fatal(err)
		}
		if err := m.To("Stadt Grüße <it@musterstadt.example>"); err != nil {
			t.Fatal(err)
		}
		m.Subject("Grüße " + text[:20])
		m.SetMessageIDWithValue("1@example.org")
		m.SetDateWithValue(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC))
		m.SetBodyString(gomail.TypeTextPlain, plain)
		m.AddAlternativeString(gomail.TypeTextHTML, alt)
		if err := m.AttachReader("agb.txt", strings.NewReader(text)); err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if _, err := m.WriteTo(&b); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	want := write(text, html)
	got, err := fillBodies(write(bodyMark[0], bodyMark[1]), text, html)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("filled message differs from go-mail's:\n got  %q\n want %q", got, want)
	}
	if _, err := fillBodies(write("no mark", bodyMark[1]), text, html); err == nil {
		t.Error("a message without the text mark was filled")
	}
}

func BenchmarkAppendQP(b *testing.B) {
	s := strings.Repeat("  Rechnung an:  Stadt Musterstadt, Markt 1, 12345 Musterstadt\n  Netto 100,00 €, USt 19 % 19,00 €\n", 2000)
	b.SetBytes(int64(len(s)))
	dst := make([]byte, 0, len(s)*5/4)
	for b.Loop() {
		dst = appendQP(dst[:0], s)
	}
}
