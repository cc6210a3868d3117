package web

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestPagePhrases: every phrase a template asks for with {{t "…"}} has an
// English entry, and every entry takes the same verbs in both languages.
func TestPagePhrases(t *testing.T) {
	re := regexp.MustCompile(`\{\{-?\s*t\s+"((?:[^"\\]|\\.)*)"`)
	files, err := fs.Glob(assets, "assets/*.html")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		b, err := fs.ReadFile(assets, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			n++
			if _, ok := english[m[1]]; !ok {
				t.Errorf("%s: no English for %q", f, m[1])
			}
		}
	}
	if n < 50 {
		t.Errorf("found only %d phrases in the templates", n)
	}
	verbs := regexp.MustCompile(`%[dsvq]`)
	for de, en := range english {
		if strings.Join(verbs.FindAllString(de, -1), "") != strings.Join(verbs.FindAllString(en, -1), "") {
			t.Errorf("%q and %q take different arguments", de, en)
		}
	}
	if _, err := tr(langEN, "Gibt es nicht"); err == nil {
		t.Error("an unknown phrase is not an error")
	}
}

func TestLangFrom(t *testing.T) {
	for _, tc := range []struct{ cookie, accept, want string }{
		{"", "", langDE},
		{"", "en-US,en;q=0.9", langEN},
		{"", "de-AT,de;q=0.9,en;q=0.5", langDE},
		{"", "fr-FR,fr;q=0.9,en;q=0.8", langEN},
		{"", "fr-FR", langDE},
		{"", "en;q=0.2,de;q=0.8", langDE},
		{"de", "en-US", langDE},
		{"en", "de-DE", langEN},
		{"xx", "en", langEN},
	} {
		r := httptestRequest(tc.cookie, tc.accept)
		if got := langFrom(r); got != tc.want {
			t.Errorf("cookie %q Accept-Language %q: %s, want %s", tc.cookie, tc.accept, got, tc.want)
		}
	}
}

func httptestRequest(cookie, accept string) *http.Request {
	r := httptest.NewRequest("GET", "/bestellungen", nil)
	if cookie != "" {
		r.AddCookie(&http.Cookie{Name: langCookie, Value: cookie})
	}
	if accept != "" {
		r.Header.Set("Accept-Language", accept)
	}
	return r
}

// TestGoPhrases: every phrase Go code shows through the table is in it,
// and no error page is given German text that bypasses it.
func TestGoPhrases(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	uses := regexp.MustCompile(`(?s)(?:errorKey\(w, r, [^,]+, |msgf?\([^,()]+, |layoutFor\(r, )"((?:[^"\\]|\\.)*)"(?:,\s*"((?:[^"\\]|\\.)*)")?`)
	bypass := regexp.MustCompile(`errorPage\(w, r, [^,]+, "`)
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src := string(b)
		for _, m := range uses.FindAllStringSubmatch(src, -1) {
			for _, phrase := range m[1:] {
				if phrase == "" {
					continue
				}
				n++
				if _, ok := english[phrase]; !ok {
					t.Errorf("%s: no English for %q", f, phrase)
				}
			}
		}
		if loc := bypass.FindStringIndex(src); loc != nil {
			t.Errorf("%s: an error page with a fixed text that bypasses the phrase table: %s", f, src[loc[0]:min(len(src), loc[1]+40)])
		}
	}
	if n < 30 {
		t.Errorf("found only %d phrases in the Go code", n)
	}
}
