package reply

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// maxReason caps a rejection reason (in runes): it is forwarded to the
// customer and stored; a whole pasted document is not a reason.
const maxReason = 2000

// keyword is one docs/design.md §3 keyword, upper case and NFC, as it is reported.
type keyword struct {
	word   string
	intent Intent
}

// keywords lists docs/design.md §3 longest first within each shared prefix, so
// "CONFIRMED" is reported as such and not as "CONFIRM".
var keywords = []keyword{
	{"IN BEARBEITUNG", IntentWorking},
	{"IN PROGRESS", IntentWorking},
	{"ACKNOWLEDGED", IntentWorking},
	{"IN PRÜFUNG", IntentReview},
	{"IN PRUEFUNG", IntentReview},
	{"IN REVIEW", IntentReview},
	{"REVIEW", IntentReview},
	{"BESTÄTIGT", IntentAccept},
	{"BESTAETIGT", IntentAccept},
	{"ANGENOMMEN", IntentAccept},
	{"CONFIRMED", IntentAccept},
	{"CONFIRM", IntentAccept},
	{"ACCEPTED", IntentAccept},
	{"ACCEPT", IntentAccept},
	{"ABGELEHNT", IntentReject},
	{"ABLEHNUNG", IntentReject},
	{"REJECTED", IntentReject},
	{"REJECT", IntentReject},
	{"DECLINED", IntentReject},
}

var (
	// A salutation that precedes the declaration; docs/design.md §3 looks at the
	// first meaningful line, and "Hallo," is not meaningful.
	greetingRe = regexp.MustCompile(`(?i)^(hallo|hello|hi|hey|dear|moin|servus|grüß gott|grüss gott|grüezi|guten (tag|morgen|abend)|good (morning|afternoon|evening|day)|sehr geehrte[rs]?|liebe[rs]?|greetings|to whom it may concern)\b`)
	// A closing line ends a reason taken from the following lines.
	valedictionRe = regexp.MustCompile(`(?i)^((mit |viele |beste |liebe |herzliche |freundliche |schöne )?(freundlichen |besten |herzlichen |lieben |vielen )?(grüßen|grüssen|grüße|grüsse|gruß|gruss)( aus .{1,40})?|mfg|vg|lg|best regards|kind regards|warm regards|regards|best wishes|best|cheers|thanks|thank you|many thanks|sincerely|yours sincerely|yours faithfully|i\. ?a\.|i\. ?v\.)[,.!]?$`)
)

// ExtractIntent finds the intent declared on the first meaningful line of
// the sender's own text (docs/design.md §3, §4 "Inbound" step 5): quotes and
// signatures are removed with StripQuoted, greeting lines ("Hallo,", "Sehr
// geehrte Damen und Herren,", "Dear …,") are skipped, and a keyword must
// start that line as a whole word, in any case and Unicode normalisation
// (NFC and NFD umlauts, ASCII "AE"/"UE" spellings). The subject is never
// used: it is quoted from our own notification.
//
// ok is true only when the caller may act on the intent without a person:
// it is false for IntentNone, for a reject without reason (docs/design.md §3 demands
// one; explanation "reject without reason"), and for a non-reject keyword on
// a line that asks a question ("Angenommen, wir liefern im Januar – geht
// das?"), which is no declaration. For a reject, reason is the text after
// the keyword on its line (with the rest of that paragraph, for wrapped
// lines), else the following own-text lines up to a closing formula,
// trimmed and capped at 2000 characters. explanation says in English why.
func ExtractIntent(text string) (intent Intent, reason string, ok bool, explanation string) {
	// The reason is stored and mailed on; it must be valid UTF-8 even when
	// a caller passes raw bytes.
	text = strings.ToValidUTF8(text, "\uFFFD")
	lines := strings.Split(StripQuoted(text), "\n")
	first := -1
	greeted := false
	for i, l := range lines {
		t := normLine(l)
		if t == "" {
			continue
		}
		if isGreeting(t) {
			greeted = true
			continue
		}
		first = i
		break
	}
	if first < 0 {
		if greeted {
			return IntentNone, "", false, "no own text after the greeting"
		}
		return IntentNone, "", false, "no own text after removing quotes and signature"
	}
	line := keywordLine(lines[first])
	kw, n, found := matchKeyword(line)
	if !found {
		return IntentNone, "", false, fmt.Sprintf("no keyword on first meaningful line %q", preview(line))
	}
	rest := line[n:]
	if kw.intent != IntentReject {
		if strings.Contains(rest, "?") {
			return kw.intent, "", false, fmt.Sprintf("keyword %q on first line, but the line is a question", kw.word)
		}
		return kw.intent, "", true, fmt.Sprintf("keyword %q on first line", kw.word)
	}

	if same := strings.TrimSpace(strings.TrimLeft(rest, " :-–—.,;!)")); same != "" {
		// The rest of the paragraph belongs to it: clients hard-wrap long
		// lines.
		parts := []string{same}
		for _, l := range lines[first+1:] {
			t := normLine(l)
			if t == "" || valedictionRe.MatchString(t) {
				break
			}
			parts = append(parts, t)
		}
		return IntentReject, capReason(strings.Join(parts, " ")), true,
			fmt.Sprintf("keyword %q on first line, reason on the same line", kw.word)
	}
	var paras []string
	var cur []string
	for _, l := range lines[first+1:] {
		t := normLine(l)
		if valedictionRe.MatchString(t) {
			break
		}
		if t == "" {
			if len(cur) > 0 {
				paras = append(paras, strings.Join(cur, " "))
				cur = nil
			}
			continue
		}
		cur = append(cur, t)
	}
	if len(cur) > 0 {
		paras = append(paras, strings.Join(cur, " "))
	}
	if len(paras) == 0 {
		return IntentReject, "", false, "reject without reason"
	}
	return IntentReject, capReason(strings.Join(paras, "\n")), true,
		fmt.Sprintf("keyword %q on first line, reason on the following lines", kw.word)
}

// isGreeting reports whether t is a salutation line: it starts with a
// greeting word and ends like one (comma, "!") or is too short to be a
// sentence.
func isGreeting(t string) bool {
	if !greetingRe.MatchString(t) {
		return false
	}
	if strings.HasSuffix(t, ",") || strings.HasSuffix(t, "!") || strings.HasSuffix(t, ":") || strings.HasSuffix(t, ";") {
		return true
	}
	return len(strings.Fields(t)) <= 6 && !strings.ContainsAny(t, ".?")
}

// keywordLine prepares the first line for matching: NFC (macOS and some web
// mailers send decomposed umlauts), one space between words, and emphasis
// marks that plain-text conversions put around bold text removed.
func keywordLine(l string) string {
	l = norm.NFC.String(normLine(l))
	l = strings.Join(strings.Fields(l), " ")
	return strings.TrimLeft(l, "*_\"'„“”»«‚‘ ")
}

// matchKeyword reports the keyword l starts with as a whole word, and how
// many bytes of l it covers. Matching is rune by rune with simple upper
// casing, so the byte offset stays right even where case mapping changes
// the UTF-8 length.
func matchKeyword(l string) (keyword, int, bool) {
	for _, kw := range keywords {
		if n, ok := hasWordPrefixFold(l, kw.word); ok {
			return kw, n, true
		}
	}
	return keyword{}, 0, false
}

func hasWordPrefixFold(l, word string) (int, bool) {
	i := 0
	for _, kr := range word {
		if i >= len(l) {
			return 0, false
		}
		r, size := utf8.DecodeRuneInString(l[i:])
		if unicode.ToUpper(r) != kr {
			return 0, false
		}
		i += size
	}
	if i < len(l) {
		r, _ := utf8.DecodeRuneInString(l[i:])
		if unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r) {
			return 0, false
		}
	}
	return i, true
}

// capReason trims and limits a reason to maxReason runes.
func capReason(s string) string {
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) <= maxReason {
		return s
	}
	r := []rune(s)
	return strings.TrimSpace(string(r[:maxReason-1])) + "…"
}

// preview shortens a line for an explanation.
func preview(s string) string {
	const max = 40
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	return string([]rune(s)[:max]) + "…"
}

// orderTagRe matches the subject tag our notifications carry ("[Bestellung
// 2026-000123]", English "[Order 2026-000123]"). Reply prefixes ("AW:",
// "Re:", "WG:", "Fwd:") and gateway tags around it do not matter.
var orderTagRe = regexp.MustCompile(`(?i)\[\s*(?:bestellung|order)(?:\s*(?:nr\.?|no\.?|#))?\s*(\d{4}-\d{3,9})\s*\]`)

// SubjectOrderNumber returns the order number from the subject tag, or "" if
// there is none. It is the last resort of matching (docs/design.md §4 step 3), after
// the token and the message references.
func SubjectOrderNumber(subject string) string {
	subject = strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return ' '
		}
		return r
	}, subject)
	if m := orderTagRe.FindStringSubmatch(subject); m != nil {
		return m[1]
	}
	return ""
}
