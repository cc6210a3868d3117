package templates

import (
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

func TestNewParsesEveryMail(t *testing.T) {
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ack", "alert", "billing", "confirmation", "conflict", "digest", "escalation", "notification", "rejection", "reminder"}
	for _, name := range want {
		if !slices.Contains(s.Names(), name) {
			t.Errorf("mail %q missing; have %v", name, s.Names())
		}
		for _, lang := range Languages {
			if s.mails[name+"."+lang] == nil {
				t.Errorf("mail %q has no %s version", name, lang)
			}
		}
	}
}

func TestParseRejectsIncompleteMail(t *testing.T) {
	base := fstest.MapFS{
		"base.text.tmpl": {Data: []byte(`{{define "base"}}{{template "body" .}}{{end}}`)},
		"base.html.tmpl": {Data: []byte(`{{define "base"}}{{template "body" .}}{{end}}`)},
	}
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"no html part", map[string]string{"x.text.tmpl": `{{define "subject.de"}}s{{end}}{{define "body.de"}}b{{end}}{{define "subject.en"}}s{{end}}{{define "body.en"}}b{{end}}`}, "no HTML part"},
		{"no english subject", map[string]string{
			"x.text.tmpl": `{{define "subject.de"}}s{{end}}{{define "body.de"}}b{{end}}{{define "body.en"}}b{{end}}`,
			"x.html.tmpl": `{{define "body.de"}}b{{end}}{{define "body.en"}}b{{end}}`}, `subject.en`},
		{"syntax error", map[string]string{
			"x.text.tmpl": `{{define "subject.de"}}{{.X{{end}}`,
			"x.html.tmpl": `{{define "body.de"}}b{{end}}{{define "body.en"}}b{{end}}`}, "x.text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for k, v := range base {
				fsys[k] = v
			}
			for k, v := range tt.files {
				fsys[k] = &fstest.MapFile{Data: []byte(v)}
			}
			_, err := Parse(fsys)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse: err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestRenderEscapesHTMLAndBindsLanguage(t *testing.T) {
	fsys := fstest.MapFS{
		"base.text.tmpl": {Data: []byte(`{{define "base"}}{{template "body" .}}{{end}}`)},
		"base.html.tmpl": {Data: []byte(`{{define "base"}}<p>{{template "body" .}}</p>{{end}}`)},
		"m.text.tmpl": {Data: []byte(`{{define "subject.de"}}Betreff {{.Name}}{{end}}{{define "body.de"}}{{.Name}} {{money .Cents "EUR"}}{{end}}` +
			`{{define "subject.en"}}Subject {{.Name}}{{end}}{{define "body.en"}}{{.Name}} {{money .Cents "EUR"}}{{end}}`)},
		"m.html.tmpl": {Data: []byte(`{{define "body.de"}}{{.Name}} {{money .Cents "EUR"}}{{end}}{{define "body.en"}}{{.Name}} {{money .Cents "EUR"}}{{end}}`)},
	}
	s, err := Parse(fsys)
	if err != nil {
		t.Fatal(err)
	}
	data := struct {
		Name  string
		Cents int64
	}{"<b>Müller & Söhne</b>\r\nBcc: evil@example.org", 120000}
	de, err := s.Render("m", "de", data)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(de.HTML, "<b>") || !strings.Contains(de.HTML, "&lt;b&gt;Müller &amp; Söhne&lt;/b&gt;") {
		t.Errorf("HTML not escaped: %q", de.HTML)
	}
	if !strings.Contains(de.Text, "1.200,00 EUR") || !strings.Contains(de.HTML, "1.200,00 EUR") {
		t.Errorf("German money missing: %q / %q", de.Text, de.HTML)
	}
	if strings.ContainsAny(de.Subject, "\r\n") || de.Subject != "Betreff <b>Müller & Söhne</b> Bcc: evil@example.org" {
		t.Errorf("subject = %q, want one line", de.Subject)
	}
	en, err := s.Render("m", "en", data)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(en.Text, "EUR 1,200.00") || !strings.HasPrefix(en.Subject, "Subject ") {
		t.Errorf("English render: %+v", en)
	}
	fr, err := s.Render("m", "fr", data)
	if err != nil || fr.Subject != de.Subject {
		t.Errorf("unknown language should fall back to German: %+v, %v", fr, err)
	}
	if _, err := s.Render("nope", "de", data); err == nil {
		t.Error("Render of an unknown mail succeeded")
	}
}

func TestMoney(t *testing.T) {
	tests := []struct {
		lang     string
		cents    int64
		currency string
		want     string
	}{
		{"de", 120000, "EUR", "1.200,00 EUR"},
		{"en", 120000, "EUR", "EUR 1,200.00"},
		{"de", 5, "", "0,05 EUR"},
		{"de", 1320000, "EUR", "13.200,00 EUR"},
		{"en", 123456789, "USD", "USD 1,234,567.89"},
		{"de", -4550, "EUR", "-45,50 EUR"},
		{"de", 99900, "EUR", "999,00 EUR"},
	}
	for _, tt := range tests {
		if got := Money(tt.lang, tt.cents, tt.currency); got != tt.want {
			t.Errorf("Money(%s, %d, %s) = %q, want %q", tt.lang, tt.cents, tt.currency, got, tt.want)
		}
	}
}

func TestOneLine(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a\r\nBcc: x@y", "a Bcc: x@y"},
		{"  lead  and\ttrail \n", "lead and trail"},
		{"a\u2028b\u0085c", "a b c"},
		{"ok", "ok"},
		{"\r\n", ""},
	}
	for _, tt := range tests {
		if got := OneLine(tt.in); got != tt.want {
			t.Errorf("OneLine(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestTidy(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"\n\nHallo  \n\n\n\nText\n-- \nFooter\n\n", "Hallo\n\nText\n-- \nFooter\n"},
		{"Hallo\r\n\r\n\r\nText \t\r\n", "Hallo\n\nText\n"},
		{"Text\n\n--\nFooter", "Text\n\n-- \nFooter\n"},
		{"a\rb\n", "a\rb\n"},
		{"", "\n"},
		{" \n\t\n", "\n"},
	} {
		if got := tidy(tt.in); got != tt.want {
			t.Errorf("tidy(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
