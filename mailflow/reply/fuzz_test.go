package reply

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParse checks what Parse promises for any input: no panic, only
// ErrNoHeader as an error, valid UTF-8 wherever text comes out, and a
// classification.
func FuzzParse(f *testing.F) {
	for _, name := range []string{
		"outlook_de_accept.eml",
		"dsn_postfix_rfc822_headers.eml",
		"dsn_exchange_unzustellbar.eml",
		"broken_multipart_no_close.eml",
		"raw_8bit_headers.eml",
		"html_only_review_blockquote.eml",
		"mixed_attachments_reject.eml",
		"thunderbird_de_bottom_reject_nextline.eml",
	} {
		f.Add(readFixture(f, name))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := Parse(raw)
		if err != nil {
			if !errors.Is(err, ErrNoHeader) {
				t.Fatalf("Parse error %v, want only ErrNoHeader", err)
			}
			return
		}
		for name, s := range map[string]string{
			"Text": m.Text, "Subject": m.Subject, "FromName": m.FromName,
			"KindReason": m.KindReason, "BounceDiagnostic": m.BounceDiagnostic,
		} {
			if !utf8.ValidString(s) {
				t.Fatalf("%s is not valid UTF-8: %q", name, s)
			}
		}
		switch m.Kind {
		case KindReply, KindBounce, KindAutoReply:
		default:
			t.Fatalf("Kind = %q", m.Kind)
		}
		if m.Size != int64(len(raw)) {
			t.Fatalf("Size = %d, want %d", m.Size, len(raw))
		}
		ExtractIntent(m.Text)
	})
}

// FuzzExtractIntent checks the invariants the order flow relies on: only a
// reject carries a reason, an acted-on reject always has one, ok never comes
// without an intent, there is always an explanation, and no quoted line
// survives StripQuoted.
func FuzzExtractIntent(f *testing.F) {
	for _, s := range []string{
		"BESTÄTIGT",
		"Hallo,\n\nABGELEHNT: Kein Rahmenvertrag.\n\nMit freundlichen Grüßen\nAnna",
		"Declined\n\nFirst reason\nwraps.\n\nBest regards",
		"Danke\n\nAm 20.11.2026 um 10:00 schrieb DVC Bestellservice:\n> BESTÄTIGT",
		"On Fri, Nov 20, 2026 at 10:00\u202fAM DVC <\nb@example.org> wrote:\n> x\n\nIN PRU\u0308FUNG",
		"CONFIRMED\n-- \nREJECTED",
		"\ufeff*Angenommen*, geht das?",
		"Rejected\n\nVon meinem iPhone gesendet",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		intent, reason, ok, expl := ExtractIntent(text)
		if expl == "" {
			t.Fatal("empty explanation")
		}
		if intent == IntentNone && ok {
			t.Fatal("ok without intent")
		}
		if intent != IntentReject && reason != "" {
			t.Fatalf("reason %q for intent %q", reason, intent)
		}
		if intent == IntentReject && ok && strings.TrimSpace(reason) == "" {
			t.Fatal("reject accepted without reason")
		}
		if intent == IntentReject && !ok && expl != "reject without reason" {
			t.Fatalf("reject not ok: %q", expl)
		}
		if !utf8.ValidString(reason) || utf8.RuneCountInString(reason) > maxReason {
			t.Fatalf("bad reason %q", reason)
		}
		for _, l := range strings.Split(StripQuoted(text), "\n") {
			if isQuoteLine(l) {
				t.Fatalf("quoted line %q survived StripQuoted", l)
			}
		}
	})
}

// BenchmarkParse measures a typical Outlook reply: multipart/alternative,
// quoted-printable latin1, a quoted original, Authentication-Results.
func BenchmarkParse(b *testing.B) {
	raw := readFixture(b, "outlook_de_accept.eml")
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		m, err := Parse(raw)
		if err != nil || m.Kind != KindReply {
			b.Fatal(err, m.Kind)
		}
	}
}

// BenchmarkParseAndExtract adds the intent extraction, the whole per-message
// cost of this package in the inbound path.
func BenchmarkParseAndExtract(b *testing.B) {
	raw := readFixture(b, "outlook_de_accept.eml")
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		m, _ := Parse(raw)
		if intent, _, _, _ := ExtractIntent(m.Text); intent != IntentAccept {
			b.Fatal(intent)
		}
	}
}
