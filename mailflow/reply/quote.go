package reply

import (
	"regexp"
	"strings"
)

// StripQuoted returns only the sender's own text: the part a keyword may be
// taken from (docs/design.md §3: never from quoted text). It removes
//
//   - lines starting with ">" (wherever they are, so interleaved and
//     bottom-posted replies keep their own text below the quote),
//   - attribution lines ("Am … schrieb …:", "On … wrote:", also wrapped over
//     two lines) together with the quote they introduce; an attribution not
//     followed by ">" lines introduces an unmarked quote and ends the own text,
//   - everything from "-----Ursprüngliche Nachricht-----", "-----Original
//     Message-----", a "________________________________" Outlook separator,
//     an Outlook header block ("Von:"/"From:" followed within a few lines by
//     "Gesendet:"/"Sent:"/"An:"/"To:"/"Betreff:"/"Subject:"), a signature
//     separator "-- " (or "--") and a mobile signature ("Von meinem iPhone
//     gesendet") to the end.
//
// Leading and trailing empty lines are dropped.
func StripQuoted(text string) string {
	lines := strings.Split(normalizeNewlines(text), "\n")
	out := make([]string, 0, len(lines))
scan:
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if isQuoteLine(l) {
			continue
		}
		if n, strong := attribution(lines, i); n > 0 {
			j := i + n
			for j < len(lines) && isBlank(lines[j]) {
				j++
			}
			switch {
			case j < len(lines) && isQuoteLine(lines[j]):
				i = j - 1 // the quote lines are skipped above
				continue
			case strong:
				break scan
			}
		}
		t := normLine(l)
		if isSeparator(t) || isSignatureSep(l) || isMobileSignature(t) || outlookHeaderBlock(lines, i) {
			break
		}
		out = append(out, l)
	}
	for len(out) > 0 && isBlank(out[0]) {
		out = out[1:]
	}
	for len(out) > 0 && isBlank(out[len(out)-1]) {
		out = out[:len(out)-1]
	}
	return strings.Join(out, "\n")
}

// normLine trims a line and turns the no-break and invisible characters
// mail clients sprinkle into text (NBSP, narrow NBSP in Gmail's "10:00 AM",
// BOM, zero-width space) into plain spaces or nothing.
func normLine(l string) string {
	l = strings.Map(func(r rune) rune {
		switch r {
		case '\u00a0', '\u202f', '\u2007', '\u2009', '\t':
			return ' '
		case '\ufeff', '\u200b', '\u200c', '\u200d', '\u2060':
			return -1
		}
		return r
	}, l)
	return strings.TrimSpace(l)
}

func isBlank(l string) bool { return normLine(l) == "" }

// isQuoteLine reports whether l is quoted with ">" (RFC 3676 §4.5 and
// every client's plain-text convention).
func isQuoteLine(l string) bool {
	return strings.HasPrefix(normLine(l), ">")
}

var (
	// Attributions that always introduce a quote, even an unmarked one.
	attrStrongRe = []*regexp.Regexp{
		// Thunderbird, Gmail, Apple Mail, Roundcube (de)
		regexp.MustCompile(`(?i)^am\s.{3,}\sschrieb(\s.*)?:$`),
		// Gmail, Apple Mail, Thunderbird, Mutt (en)
		regexp.MustCompile(`(?i)^on\s.{3,}\s(wrote|writes):$`),
		// Domino, Outlook mobile (de)
		regexp.MustCompile(`(?i)^.{1,200}\sschrieb am\s.{3,}:$`),
		// Outlook mobile (en)
		regexp.MustCompile(`(?i)^.{1,200}\swrote on\s.{3,}:$`),
		// French clients
		regexp.MustCompile(`(?i)^le\s.{3,}\sa\s+écrit\s?:$`),
		// Horde
		regexp.MustCompile(`(?i)^zitat von\s.{1,200}:$`),
		// Apple Mail forwards
		regexp.MustCompile(`(?i)^(anfang der weitergeleiteten nachricht|begin forwarded message):$`),
	}
	// "X wrote:" only counts when a ">" quote follows: alone it could be
	// the sender's own sentence.
	attrWeakRe = regexp.MustCompile(`(?i)^.{1,200}\s(wrote|schrieb|writes|a écrit)\s?:$`)
	// The start of an attribution that clients wrap over two lines.
	attrStartRe = regexp.MustCompile(`(?i)^(am|on|le)\s`)
)

// attribution reports whether an attribution line starts at lines[i], how
// many lines it spans (1 or 2; 0 if none) and whether it is one of the
// unambiguous forms.
func attribution(lines []string, i int) (n int, strong bool) {
	l := normLine(lines[i])
	if l == "" || len(l) > 400 {
		return 0, false
	}
	if s, ok := matchAttribution(l); ok {
		return 1, s
	}
	if attrStartRe.MatchString(l) && i+1 < len(lines) {
		next := normLine(lines[i+1])
		if next != "" && !isQuoteLine(lines[i+1]) {
			if s, ok := matchAttribution(l + " " + next); ok {
				return 2, s
			}
		}
	}
	return 0, false
}

func matchAttribution(l string) (strong, ok bool) {
	for _, re := range attrStrongRe {
		if re.MatchString(l) {
			return true, true
		}
	}
	return false, attrWeakRe.MatchString(l)
}

var (
	separatorRe = regexp.MustCompile(`(?i)^-{2,}\s*(ursprüngliche nachricht|urspruengliche nachricht|original message|original-nachricht|originalnachricht|weitergeleitete nachricht|forwarded message|message d'origine)\s*-{2,}$`)
	underlineRe = regexp.MustCompile(`^_{10,}$`)
	mobileSigRe = regexp.MustCompile(`(?i)^(von meinem .{1,60} gesendet\.?|(gesendet|sent) (von|from|mit|with|via) .{1,60}|get outlook for .{1,30}|holen sie sich outlook für .{1,30})$`)
	hdrLabelRe  = regexp.MustCompile(`(?i)^\*?(von|from|gesendet|sent|an|to|cc|betreff|subject|datum|date)\s?:`)
	hdrStartRe  = regexp.MustCompile(`(?i)^\*?(von|from|gesendet|sent)\s?:`)
)

// isSeparator matches the lines Outlook, Thunderbird and Android put above
// an unmarked original or forwarded message.
func isSeparator(t string) bool {
	return separatorRe.MatchString(t) || underlineRe.MatchString(t)
}

// isSignatureSep matches the signature separator "-- " (RFC 3676 §4.3)
// and the common "--" without its trailing space.
func isSignatureSep(l string) bool {
	return strings.TrimRight(l, " \t") == "--"
}

// isMobileSignature matches the one-line signatures of mobile clients.
func isMobileSignature(t string) bool {
	return len(t) <= 80 && mobileSigRe.MatchString(t)
}

// outlookHeaderBlock reports whether lines[i] starts the header block that
// Outlook (and web mailers) put above an unmarked original: "Von:"/"From:"
// or "Gesendet:"/"Sent:" followed within five lines by another label.
func outlookHeaderBlock(lines []string, i int) bool {
	first := normLine(lines[i])
	m := hdrStartRe.FindStringSubmatch(first)
	if m == nil {
		return false
	}
	start := strings.ToLower(m[1])
	for j, seen := i+1, 0; j < len(lines) && seen < 5; j++ {
		t := normLine(lines[j])
		if t == "" {
			continue
		}
		seen++
		if lm := hdrLabelRe.FindStringSubmatch(t); lm != nil && strings.ToLower(lm[1]) != start {
			return true
		}
	}
	return false
}
