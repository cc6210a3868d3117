package mailflow

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCleanText(t *testing.T) {
	umlauts := strings.Repeat("a", 29) + strings.Repeat("ü", 600)
	tests := []struct {
		name string
		in   string
		max  int
		want string
	}{
		{"short ASCII unchanged", "Re: Bestellung", 500, "Re: Bestellung"},
		{"empty", "", 10, ""},
		{"no limit", "äöü", 0, "äöü"},
		{"exactly max characters", "äöü", 3, "äöü"},
		{"cut by characters, not bytes", "äöü", 2, "äö"},
		{"ASCII cut", "abcdef", 4, "abcd"},
		{"29 ASCII and 600 ü at 500", umlauts, 500, strings.Repeat("a", 29) + strings.Repeat("ü", 471)},
		{"four-byte character kept whole", "a😀b", 2, "a😀"},
		{"run of invalid bytes replaced once", "Gr\xfc\xdfe", 10, "Gr\uFFFDe"},
		{"truncated sequence at the end replaced", "abc\xc3", 10, "abc\uFFFD"},
		{"NUL dropped", "a\x00b\x00", 10, "ab"},
		{"NUL dropped before counting", "\x00\x00\x00abc", 3, "abc"},
		{"invalid and cut", "\xff\xfe\xfdabc", 2, "\uFFFDa"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := CleanText(tt.in, tt.max)
			if got != tt.want {
				t.Errorf("CleanText(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
			}
			if !utf8.ValidString(got) || strings.ContainsRune(got, 0) {
				t.Errorf("CleanText(%q, %d) = %q: not storable", tt.in, tt.max, got)
			}
			if tt.max > 0 && utf8.RuneCountInString(got) > tt.max {
				t.Errorf("CleanText(%q, %d) has %d characters", tt.in, tt.max, utf8.RuneCountInString(got))
			}
		})
	}
}

func FuzzCleanText(f *testing.F) {
	f.Add("Grüße\x00\xff", 3)
	f.Fuzz(func(t *testing.T, s string, max int) {
		max %= 1000
		got := CleanText(s, max)
		if !utf8.ValidString(got) || strings.ContainsRune(got, 0) {
			t.Fatalf("CleanText(%q, %d) = %q: not storable", s, max, got)
		}
		if max > 0 && utf8.RuneCountInString(got) > max {
			t.Fatalf("CleanText(%q, %d) = %q: longer than max", s, max, got)
		}
		if utf8.ValidString(s) && !strings.ContainsRune(s, 0) && !strings.HasPrefix(s, got) {
			t.Fatalf("CleanText(%q, %d) = %q: not a prefix of valid input", s, max, got)
		}
	})
}
