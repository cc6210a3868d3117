// Package templates holds mailflow's email templates, embedded in the
// binary: one mail per pair of files, <name>.text.tmpl and
// <name>.html.tmpl, each defining its German and English blocks over the
// shared base (base.text.tmpl, base.html.tmpl).
//
// A mail's text file defines "subject.de", "body.de", "subject.en" and
// "body.en"; its HTML file defines "body.de" and "body.en". The text parts
// use text/template, the HTML parts html/template, so everything a template
// prints into HTML is escaped for its context. Formatting functions (money,
// dates, labels) are bound to the language: {{money .Amount .Currency}}
// prints "1.200,00 EUR" in a German template and "EUR 1,200.00" in an
// English one.
//
// To add a mail, add its two files and a sample in the render test of the
// package that composes it; New parses every mail at start-up and fails on
// any error, so a broken template stops the daemon before it sends anything.
package templates

import (
	"bytes"
	"embed"
	"fmt"
	htemplate "html/template"
	"io/fs"
	"slices"
	"strings"
	ttemplate "text/template"
	"time"
)

//go:embed *.tmpl
var files embed.FS

// Languages are the languages every mail exists in; the first is the default.
var Languages = []string{"de", "en"}

// Set is every mail, parsed, in every language.
type Set struct {
	mails map[string]*mail // by name + "." + lang
	names []string
}

type mail struct {
	text *ttemplate.Template
	html *htemplate.Template
}

// Rendered is one mail in one language.
type Rendered struct {
	Subject string // one line, whitespace collapsed
	Text    string
	HTML    string
}

// New parses the embedded templates.
func New() (*Set, error) {
	return Parse(files)
}

// Must returns s or panics with err; for wiring code that cannot go on
// without templates.
func Must(s *Set, err error) *Set {
	if err != nil {
		panic(err)
	}
	return s
}

// Parse parses the templates in fsys: base.text.tmpl, base.html.tmpl and a
// text and an HTML file per mail.
func Parse(fsys fs.FS) (*Set, error) {
	baseText, err := fs.ReadFile(fsys, "base.text.tmpl")
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	baseHTML, err := fs.ReadFile(fsys, "base.html.tmpl")
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	textFiles, err := fs.Glob(fsys, "*.text.tmpl")
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	loc := berlin()
	s := &Set{mails: map[string]*mail{}}
	for _, f := range textFiles {
		name := strings.TrimSuffix(f, ".text.tmpl")
		if name == "base" {
			continue
		}
		textSrc, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, fmt.Errorf("templates: %w", err)
		}
		htmlSrc, err := fs.ReadFile(fsys, name+".html.tmpl")
		if err != nil {
			return nil, fmt.Errorf("templates: mail %s has no HTML part: %w", name, err)
		}
		for _, lang := range Languages {
			glue := fmt.Sprintf(`{{define "subject"}}{{template "subject.%[1]s" .}}{{end}}{{define "body"}}{{template "body.%[1]s" .}}{{end}}`, lang)
			fm := funcs(lang, loc)
			t := ttemplate.New("base").Funcs(fm)
			for _, src := range []string{string(baseText), string(textSrc), glue} {
				if t, err = t.Parse(src); err != nil {
					return nil, fmt.Errorf("templates: %s.text (%s): %w", name, lang, err)
				}
			}
			h := htemplate.New("base").Funcs(htemplate.FuncMap(fm))
			for _, src := range []string{string(baseHTML), string(htmlSrc), glue[strings.Index(glue, `{{define "body"}}`):]} {
				if h, err = h.Parse(src); err != nil {
					return nil, fmt.Errorf("templates: %s.html (%s): %w", name, lang, err)
				}
			}
			for _, block := range []string{"subject." + lang, "body." + lang} {
				if t.Lookup(block) == nil {
					return nil, fmt.Errorf("templates: %s.text.tmpl does not define %q", name, block)
				}
			}
			if h.Lookup("body."+lang) == nil {
				return nil, fmt.Errorf("templates: %s.html.tmpl does not define %q", name, "body."+lang)
			}
			s.mails[name+"."+lang] = &mail{text: t, html: h}
		}
		s.names = append(s.names, name)
	}
	if len(s.names) == 0 {
		return nil, fmt.Errorf("templates: no mail templates")
	}
	slices.Sort(s.names)
	return s, nil
}

// Names lists the mails of the set.
func (s *Set) Names() []string { return slices.Clone(s.names) }

// Has reports whether the set has a mail of that name.
func (s *Set) Has(name string) bool { return s.mails[name+"."+Languages[0]] != nil }

// Lang returns lang if the set has it, else the default language.
func Lang(lang string) string {
	lang = strings.ToLower(strings.TrimSpace(lang))
	if slices.Contains(Languages, lang) {
		return lang
	}
	return Languages[0]
}

// Render renders a mail in a language (unknown languages fall back to the
// default) with data.
func (s *Set) Render(name, lang string, data any) (Rendered, error) {
	lang = Lang(lang)
	m := s.mails[name+"."+lang]
	if m == nil {
		return Rendered{}, fmt.Errorf("templates: no mail %q", name)
	}
	var subj, text, html bytes.Buffer
	text.Grow(8 << 10)
	html.Grow(16 << 10)
	if err := m.text.ExecuteTemplate(&subj, "subject", data); err != nil {
		return Rendered{}, fmt.Errorf("templates: %s.%s subject: %w", name, lang, err)
	}
	if err := m.text.ExecuteTemplate(&text, "base", data); err != nil {
		return Rendered{}, fmt.Errorf("templates: %s.%s text: %w", name, lang, err)
	}
	if err := m.html.ExecuteTemplate(&html, "base", data); err != nil {
		return Rendered{}, fmt.Errorf("templates: %s.%s html: %w", name, lang, err)
	}
	return Rendered{Subject: OneLine(subj.String()), Text: tidy(text.String()), HTML: html.String()}, nil
}

// OneLine collapses every run of whitespace and control characters
// (CR and LF included) into one space, so a value can never start a new
// header line.
func OneLine(s string) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == ' ' || r == '\u0085' || r == '\u2028' || r == '\u2029' {
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	return b.String()
}

// tidy trims trailing blanks from every line, collapses runs of blank
// lines to one and ends the text with one newline, so templates can be
// written readably.
func tidy(s string) string {
	// One pass into one buffer: a billing reminder's text is 150 KB.
	var b strings.Builder
	b.Grow(len(s) + 1)
	blank := true // at the start or after a blank line: drop blank lines
	held := false // a blank line kept, written before the next line, so trailing ones vanish
	for line := range strings.Lines(s) {
		if strings.HasSuffix(line, "\n") {
			line = strings.TrimSuffix(line[:len(line)-1], "\r")
		}
		line = strings.TrimRight(line, " \t")
		switch line {
		case "":
			if !blank {
				blank, held = true, true
			}
			continue
		case "--":
			line = "-- " // the signature separator keeps its space (RFC 3676 §4.3)
		}
		if held {
			b.WriteByte('\n')
			held = false
		}
		blank = false
		b.WriteString(line)
		b.WriteByte('\n')
	}
	if b.Len() == 0 {
		return "\n"
	}
	return b.String()
}

func berlin() *time.Location {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		// Without tzdata on the host; cmd/mailflow embeds time/tzdata.
		return time.UTC
	}
	return loc
}
