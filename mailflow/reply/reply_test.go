package reply

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func parseFixture(t testing.TB, name string) *Message {
	t.Helper()
	m, err := Parse(readFixture(t, name))
	if err != nil {
		t.Fatalf("Parse(%s): %v", name, err)
	}
	return m
}

// TestFixtures runs every realistic message through the inbound steps this
// package owns (classify, then for replies: extract the intent) and checks
// what the order flow would act on.
func TestFixtures(t *testing.T) {
	tests := []struct {
		file       string
		kind       Kind
		kindReason string // substring
		intent     Intent
		ok         bool
		reason     string // substring of the reject reason
		order      string // SubjectOrderNumber
	}{
		// Outlook / Exchange
		{"outlook_de_accept.eml", KindReply, "", IntentAccept, true, "", "2026-000123"},
		{"outlook_de_original_message_reject.eml", KindReply, "", IntentReject, true, `Die Region "süd" kann`, "2026-000123"},
		{"outlook_en_confirmed.eml", KindReply, "", IntentAccept, true, "", "2026-000124"},
		{"outlook_en_original_message_declined.eml", KindReply, "", IntentReject, true, "we can’t accept this order: the requested 250 users exceed", "2026-000124"},
		{"outlook_en_order_tag_confirm.eml", KindReply, "", IntentAccept, true, "", "2026-000124"},
		{"outlook_mac_lowercase_accepted.eml", KindReply, "", IntentAccept, true, "", "2026-000124"},
		{"owa_html_only_working.eml", KindReply, "", IntentWorking, true, "", "2026-000123"},
		{"greeting_bestaetigt_outlook.eml", KindReply, "", IntentAccept, true, "", "2026-000123"},
		{"greeting_no_keyword.eml", KindReply, "", IntentNone, false, "", "2026-000123"},
		{"mixed_attachments_reject.eml", KindReply, "", IntentReject, true, "keine gültige Leitweg-ID", "2026-000123"},
		{"base64_utf8_reject.eml", KindReply, "", IntentReject, true, "Die Leistung ist in Ihrer Region nicht verfügbar.", "2026-000123"},
		{"windows1252_8bit_review.eml", KindReply, "", IntentReview, true, "", "2026-000123"},
		{"reject_dash_en.eml", KindReply, "", IntentReject, true, "budget for 2026 not approved", "2026-000124"},
		// Thunderbird, Mutt, Evolution, Roundcube
		{"thunderbird_de_top_accept.eml", KindReply, "", IntentAccept, true, "", "2026-000123"},
		{"thunderbird_de_bottom_reject_nextline.eml", KindReply, "", IntentReject, true, "keinen gültigen Rahmenvertrag für Verwaltungs-Mail. Bitte wenden", "2026-000123"},
		{"thunderbird_signature_keyword.eml", KindReply, "", IntentNone, false, "", "2026-000124"},
		{"reject_no_reason_signature.eml", KindReply, "", IntentReject, false, "", "2026-000124"},
		{"reject_no_reason.eml", KindReply, "", IntentReject, false, "", "2026-000123"},
		{"reject_colon.eml", KindReply, "", IntentReject, true, "Kein Rahmenvertrag mit dem Kunden vorhanden.", "2026-000123"},
		{"ablehnung_thunderbird.eml", KindReply, "", IntentReject, true, "Kapazitätsgrenze im Rechenzentrum", "2026-000123"},
		{"greeting_in_bearbeitung.eml", KindReply, "", IntentWorking, true, "", "2026-000123"},
		{"angenommen_question.eml", KindReply, "", IntentAccept, false, "", "2026-000123"},
		{"latin1_qp_accept.eml", KindReply, "", IntentAccept, true, "", "2026-000123"},
		{"iso8859_15_reject_euro.eml", KindReply, "", IntentReject, true, "1.200,00 € monatlich", "2026-000123"},
		{"mutt_bestaetigt_ascii.eml", KindReply, "", IntentAccept, true, "", "2026-000123"},
		{"in_pruefung_ascii.eml", KindReply, "", IntentReview, true, "", "2026-000123"},
		{"in_review_en.eml", KindReply, "", IntentReview, true, "", "2026-000124"},
		{"review_en_colon.eml", KindReply, "", IntentReview, true, "", "2026-000124"},
		{"acknowledged_en.eml", KindReply, "", IntentWorking, true, "", "2026-000124"},
		{"in_progress_en.eml", KindReply, "", IntentWorking, true, "", "2026-000124"},
		{"html_only_review_blockquote.eml", KindReply, "", IntentReview, true, "", "2026-000123"},
		{"html_only_keyword_in_blockquote.eml", KindReply, "", IntentNone, false, "", "2026-000123"},
		{"unknown_charset.eml", KindReply, "", IntentAccept, true, "", "2026-000123"},
		// Gmail, Apple Mail, iOS, GMX
		{"gmail_en_wrapped_confirmed.eml", KindReply, "", IntentAccept, true, "", "2026-000124"},
		{"gmail_de_wrapped_review.eml", KindReply, "", IntentReview, true, "", "2026-000123"},
		{"gmail_keyword_only_in_quote.eml", KindReply, "", IntentNone, false, "", "2026-000123"},
		{"apple_mail_de_angenommen.eml", KindReply, "", IntentAccept, true, "", "2026-000123"},
		{"nfd_umlaut_accept.eml", KindReply, "", IntentAccept, true, "", "2026-000123"},
		{"ios_de_accept.eml", KindReply, "", IntentAccept, true, "", "2026-000123"},
		{"ios_en_reject_nextline.eml", KindReply, "", IntentReject, true, "We cannot provide the service in region süd before 2027.", "2026-000124"},
		{"qp_utf8_gmx_accept.eml", KindReply, "", IntentAccept, true, "", "2026-000123"},
		// structure and encoding oddities
		{"no_message_id.eml", KindReply, "", IntentAccept, true, "", "2026-000123"},
		{"raw_8bit_headers.eml", KindReply, "", IntentAccept, true, "", "2026-000127"},
		{"broken_multipart_no_close.eml", KindReply, "", IntentAccept, true, "", "2026-000124"},
		// auto-replies
		{"ooo_de_domino_subject.eml", KindAutoReply, `out-of-office subject ("abwesenheitsnotiz")`, IntentNone, false, "", "2026-000123"},
		{"ooo_de_exchange_auto_submitted.eml", KindAutoReply, "Auto-Submitted: auto-generated", IntentNone, false, "", "2026-000123"},
		{"ooo_en_subject.eml", KindAutoReply, `out-of-office subject ("out of office")`, IntentNone, false, "", "2026-000124"},
		{"ooo_en_automatic_reply.eml", KindAutoReply, `out-of-office subject ("automatic reply")`, IntentNone, false, "", "2026-000124"},
		{"vacation_null_sender.eml", KindAutoReply, "Auto-Submitted: auto-replied", IntentNone, false, "", "2026-000123"},
		{"precedence_bulk_ticket.eml", KindAutoReply, "Precedence: bulk", IntentNone, false, "", "2026-000123"},
		{"x_autoreply_webde.eml", KindAutoReply, "X-Autoreply: yes", IntentNone, false, "", "2026-000123"},
		// bounces
		{"dsn_postfix_rfc822_headers.eml", KindBounce, "DSN (multipart/report; report-type=delivery-status)", IntentNone, false, "", ""},
		{"dsn_exchange_unzustellbar.eml", KindBounce, "DSN (multipart/report; report-type=delivery-status)", IntentNone, false, "", "2026-000123"},
		{"exim_plain_bounce.eml", KindBounce, "From MAILER-DAEMON/postmaster with bounce subject", IntentNone, false, "", ""},
		{"postmaster_undeliverable.eml", KindBounce, "From MAILER-DAEMON/postmaster with bounce subject", IntentNone, false, "", "2026-000126"},
		{"null_sender_only.eml", KindBounce, "null sender", IntentNone, false, "", ""},
		{"dsn_postfix_delayed.eml", KindBounce, "DSN", IntentNone, false, "", ""},
		{"mdn_read_receipt.eml", KindAutoReply, "MDN", IntentNone, false, "", "2026-000123"},
	}

	// Every fixture must be in the table, so a new one cannot go untested.
	files, err := filepath.Glob(filepath.Join("testdata", "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	inTable := map[string]bool{}
	for _, tt := range tests {
		inTable[tt.file] = true
	}
	for _, f := range files {
		if !inTable[filepath.Base(f)] {
			t.Errorf("fixture %s has no row in the table", filepath.Base(f))
		}
	}
	if len(files) < 40 {
		t.Errorf("only %d fixtures", len(files))
	}

	for _, tt := range tests {
		t.Run(strings.TrimSuffix(tt.file, ".eml"), func(t *testing.T) {
			m := parseFixture(t, tt.file)
			if !utf8.ValidString(m.Text) || !utf8.ValidString(m.Subject) || !utf8.ValidString(m.FromName) {
				t.Errorf("invalid UTF-8 in Text/Subject/FromName")
			}
			if m.Kind != tt.kind {
				t.Fatalf("Kind = %q (%s), want %q", m.Kind, m.KindReason, tt.kind)
			}
			if !strings.Contains(m.KindReason, tt.kindReason) {
				t.Errorf("KindReason = %q, want it to contain %q", m.KindReason, tt.kindReason)
			}
			if got := SubjectOrderNumber(m.Subject); got != tt.order {
				t.Errorf("SubjectOrderNumber(%q) = %q, want %q", m.Subject, got, tt.order)
			}
			if m.Kind != KindReply {
				return // docs/design.md §4: bounces and auto-replies carry no intent
			}
			intent, reason, ok, expl := ExtractIntent(m.Text)
			if intent != tt.intent || ok != tt.ok {
				t.Fatalf("ExtractIntent = %q ok=%v (%s), want %q ok=%v\nown text:\n%s",
					intent, ok, expl, tt.intent, tt.ok, StripQuoted(m.Text))
			}
			if expl == "" {
				t.Error("empty explanation")
			}
			if tt.reason != "" && !strings.Contains(reason, tt.reason) {
				t.Errorf("reason = %q, want it to contain %q", reason, tt.reason)
			}
			if tt.intent != IntentReject && reason != "" {
				t.Errorf("reason %q for a non-reject", reason)
			}
			if tt.intent == IntentReject && !tt.ok && expl != "reject without reason" {
				t.Errorf("explanation = %q, want %q", expl, "reject without reason")
			}
		})
	}
}

func TestParseHeaderFacts(t *testing.T) {
	m := parseFixture(t, "outlook_de_accept.eml")
	raw := readFixture(t, "outlook_de_accept.eml")
	checks := []struct{ name, got, want string }{
		{"MessageID", m.MessageID, "FR2P281MB1234A5B6C7D8E9F0A1B2C3D4E5F6A7B8C9D0@FR2P281MB1234.DEUP281.PROD.OUTLOOK.COM"},
		{"From", m.From, "j.mueller@dataport.example"},
		{"FromName", m.FromName, "Müller, Jürgen"},
		{"ReturnPath", m.ReturnPath, "j.mueller@dataport.example"},
		{"Subject", m.Subject, "AW: [Bestellung 2026-000123] Neue Bestellung: Verwaltungs-Mail für Stadt Musterstadt"},
		{"InReplyTo", strings.Join(m.InReplyTo, ","), "2026-000123.n1.abcdef@mailflow.example"},
		{"References", strings.Join(m.References, ","), "2026-000123.n1.abcdef@mailflow.example"},
		{"Recipients", strings.Join(m.Recipients, ","), "bestellungen+v1k1mzxw6ytboi4dqnrrgq2tsnbv@example.org,bestellungen@example.org"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if m.NullSender {
		t.Error("NullSender on a normal reply")
	}
	if want := time.Date(2026, 11, 20, 9, 42, 17, 0, time.UTC); !m.Date.Equal(want) {
		t.Errorf("Date = %v, want %v", m.Date, want)
	}
	if m.Size != int64(len(raw)) || len(m.SHA256) != 64 {
		t.Errorf("Size = %d, SHA256 = %q", m.Size, m.SHA256)
	}
	if len(m.AuthResults) != 1 {
		t.Fatalf("AuthResults = %+v", m.AuthResults)
	}
	ar := m.AuthResults[0]
	if ar.AuthServID != "mx.example.org" || ar.DMARC != "pass" || ar.DMARCFrom != "dataport.example" ||
		len(ar.DKIM) != 1 || ar.DKIM[0] != (DKIMResult{Result: "pass", Domain: "dataport.example"}) {
		t.Errorf("AuthResults[0] = %+v", ar)
	}
	// text/plain is preferred over the HTML alternative.
	if !strings.HasPrefix(m.Text, "BESTÄTIGT\n\nMit freundlichen Grüßen") {
		t.Errorf("Text starts %q", m.Text[:min(60, len(m.Text))])
	}

	if m := parseFixture(t, "no_message_id.eml"); m.MessageID != "" {
		t.Errorf("MessageID = %q, want empty", m.MessageID)
	}

	m = parseFixture(t, "raw_8bit_headers.eml")
	if m.Subject != "AW: [Bestellung 2026-000127] Bestätigung – Verwaltungs-Mail" {
		t.Errorf("raw 8-bit Subject = %q", m.Subject)
	}
	if m.FromName != "Jürgen Müller" || m.From != "j.mueller@kreis-ost.example" {
		t.Errorf("raw 8-bit From = %q <%s>", m.FromName, m.From)
	}

	m = parseFixture(t, "mixed_attachments_reject.eml")
	if strings.Contains(m.Text, "Vorlage") || strings.Contains(m.Text, "%PDF") {
		t.Errorf("attachment text leaked into Text:\n%s", m.Text)
	}
	if !strings.Contains(strings.Join(m.Recipients, ","), "koordinierung@example.org") {
		t.Errorf("Cc missing from Recipients %v", m.Recipients)
	}

	m = parseFixture(t, "gmail_en_wrapped_confirmed.eml")
	if len(m.AuthResults) != 1 || m.AuthResults[0].DKIM[0].Domain != "gmail.com" || m.AuthResults[0].DMARCFrom != "gmail.com" {
		t.Errorf("Gmail AuthResults = %+v", m.AuthResults)
	}
}

func TestParseCharsets(t *testing.T) {
	tests := []struct{ file, want string }{
		{"latin1_qp_accept.eml", "Bestätigt, Bereitstellung bis 04.12.2026."},
		{"windows1252_8bit_review.eml", "IN PRÜFUNG – Rückfrage zur Nutzerzahl folgt.\n\nWir prüfen die „Verwaltungs-Mail“ Konfiguration"},
		{"iso8859_15_reject_euro.eml", "1.200,00 € monatlich"},
		{"unknown_charset.eml", "BESTÄTIGT – Lieferung gemäß Angebot."},
		{"outlook_en_original_message_declined.eml", "we can’t accept"},
		{"qp_utf8_gmx_accept.eml", "BESTÄTIGT\n\nMit freundlichen Grüßen"},
		{"base64_utf8_reject.eml", "ABGELEHNT – Die Leistung ist in Ihrer Region nicht verfügbar."},
		{"owa_html_only_working.eml", "In Bearbeitung – wir melden uns bis Mittwoch"},
		{"thunderbird_de_bottom_reject_nextline.eml", "keinen gültigen Rahmenvertrag für Verwaltungs-Mail. Bitte"}, // format=flowed joined
		{"broken_multipart_no_close.eml", "ACCEPTED\n\nCloud Partner order desk"},
	}
	for _, tt := range tests {
		m := parseFixture(t, tt.file)
		if !strings.Contains(m.Text, tt.want) {
			t.Errorf("%s: Text does not contain %q:\n%s", tt.file, tt.want, m.Text)
		}
	}
}

func TestParseBounces(t *testing.T) {
	tests := []struct {
		file      string
		ids       []string
		rcpt      string
		action    string
		status    string
		diagnosis string
	}{
		{"dsn_postfix_rfc822_headers.eml",
			[]string{"2026-000123.n1.abcdef@mailflow.example", "mf-outbox-42"},
			"bestellungen@dataport.example", "failed", "5.1.1", "Recipient address rejected: User unknown"},
		{"dsn_exchange_unzustellbar.eml",
			[]string{"2026-000123.n2.abcdef@mailflow.example", "2026-000123.n1.abcdef@mailflow.example"},
			"it-service@kreis-beispiel.example", "failed", "5.1.10", "RESOLVER.ADR.RecipientNotFound"},
		{"dsn_postfix_delayed.eml",
			[]string{"2026-000128.n1.abcdef@mailflow.example"},
			"bestellungen@amt-nord.example", "delayed", "4.4.1", "Connection timed out"},
		{"exim_plain_bounce.eml", []string{"2026-000125.n1.abcdef@mailflow.example"}, "", "", "", ""},
		{"postmaster_undeliverable.eml", []string{"2026-000126.n1.abcdef@mailflow.example"}, "", "", "", ""},
		{"null_sender_only.eml", nil, "", "", "", ""},
	}
	for _, tt := range tests {
		m := parseFixture(t, tt.file)
		if m.Kind != KindBounce {
			t.Errorf("%s: Kind = %q", tt.file, m.Kind)
			continue
		}
		if strings.Join(m.BounceMessageIDs, " ") != strings.Join(tt.ids, " ") {
			t.Errorf("%s: BounceMessageIDs = %q, want %q", tt.file, m.BounceMessageIDs, tt.ids)
		}
		if m.BounceRecipient != tt.rcpt || m.BounceAction != tt.action || m.BounceStatus != tt.status {
			t.Errorf("%s: recipient/action/status = %q/%q/%q, want %q/%q/%q", tt.file,
				m.BounceRecipient, m.BounceAction, m.BounceStatus, tt.rcpt, tt.action, tt.status)
		}
		if !strings.Contains(m.BounceDiagnostic, tt.diagnosis) {
			t.Errorf("%s: BounceDiagnostic = %q, want %q", tt.file, m.BounceDiagnostic, tt.diagnosis)
		}
		if !m.NullSender && tt.file != "postmaster_undeliverable.eml" {
			t.Errorf("%s: NullSender false", tt.file)
		}
	}
	// A reply carries no bounce facts even when it quotes a Message-ID.
	m := parseFixture(t, "outlook_de_accept.eml")
	if m.BounceMessageIDs != nil || m.BounceRecipient != "" {
		t.Errorf("bounce facts on a reply: %v %q", m.BounceMessageIDs, m.BounceRecipient)
	}
}

func TestParseMalformed(t *testing.T) {
	tests := []struct {
		name     string
		raw      string
		wantErr  bool
		wantText string // substring
		check    func(t *testing.T, m *Message)
	}{
		{name: "empty", raw: "", wantErr: true},
		{name: "no header", raw: "\r\nBESTÄTIGT\r\n", wantErr: true},
		{name: "binary", raw: "\x00\x01\x02\xff\xfe", wantErr: true},
		{name: "header only, no newline", raw: "Subject: BESTÄTIGT", check: func(t *testing.T, m *Message) {
			if m.Subject != "BESTÄTIGT" || m.Text != "" {
				t.Errorf("Subject %q Text %q", m.Subject, m.Text)
			}
		}},
		{name: "mbox From_ line and garbage header line",
			raw:      "From j@x.example Fri Nov 20 10:00:00 2026\nFrom: J <j@x.example>\nthis is not a header\nSubject: Re\n\nACCEPTED\n",
			wantText: "ACCEPTED",
			check: func(t *testing.T, m *Message) {
				if m.From != "j@x.example" {
					t.Errorf("From = %q", m.From)
				}
			}},
		{name: "unknown transfer encoding keeps bytes",
			raw:      "From: a@b.example\nContent-Type: text/plain\nContent-Transfer-Encoding: x-uuencode-ish\n\nBESTÄTIGT\n",
			wantText: "BESTÄTIGT"},
		{name: "broken quoted-printable",
			raw:      "From: a@b.example\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\nBEST=C3=84TIGT =ZZ \x0c ok=\n joined=3D=\n",
			wantText: "BESTÄTIGT =ZZ \x0c ok joined="},
		{name: "base64 with garbage and missing padding",
			raw:      "From: a@b.example\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\nQkVTVMOEVElHVA\n!!\n",
			wantText: "BESTÄTIGT"},
		{name: "multipart without boundary read as text",
			raw:      "From: a@b.example\nContent-Type: multipart/mixed\n\nACCEPTED\n",
			wantText: "ACCEPTED"},
		{name: "content-type with trailing semicolon",
			raw:      "From: a@b.example\nContent-Type: multipart/alternative; boundary=\"b1\";\n\n--b1\nContent-Type: text/plain; charset=\"utf-8\";\n\nCONFIRMED\n--b1--\n",
			wantText: "CONFIRMED"},
		{name: "malformed part header keeps earlier parts",
			raw:      "From: a@b.example\nContent-Type: multipart/mixed; boundary=b1\n\n--b1\nContent-Type: text/plain\n\nACCEPTED\n--b1\n bad continuation first\n\nlost\n--b1--\n",
			wantText: "ACCEPTED"},
		{name: "mixed line endings",
			raw:      "From: a@b.example\r\nContent-Type: multipart/alternative; boundary=b1\n\r\n--b1\r\nContent-Type: text/plain\n\nACCEPTED\r\n--b1--\n",
			wantText: "ACCEPTED"},
		{name: "iso-8859-1 label with windows-1252 bytes",
			raw:      "From: a@b.example\nContent-Type: text/plain; charset=iso-8859-1\n\n\x84Preis\x93 80 \x80\n",
			wantText: "„Preis“ 80 €"},
		{name: "unknown charset in encoded word",
			raw: "From: =?x-bogus?Q?J=FCrgen?= <j@x.example>\nSubject: =?x-bogus?Q?Best=E4tigung?=\n\nx\n",
			check: func(t *testing.T, m *Message) {
				if m.Subject != "Bestätigung" || m.FromName != "Jürgen" {
					t.Errorf("Subject %q FromName %q", m.Subject, m.FromName)
				}
			}},
		{name: "sloppy address lists",
			raw: "From: Müller, Jürgen <J.Mueller@Example.ORG>\nTo: undisclosed-recipients:;\nCc: a@b.example, \"x\" <C@D.example>\nDelivered-To: bestellungen+v1k1abc@example.org\n\nx\n",
			check: func(t *testing.T, m *Message) {
				if m.From != "j.mueller@example.org" {
					t.Errorf("From = %q", m.From)
				}
				if got := strings.Join(m.Recipients, ","); got != "a@b.example,c@d.example,bestellungen+v1k1abc@example.org" {
					t.Errorf("Recipients = %q", got)
				}
			}},
		{name: "deep nesting is cut off, not recursed forever",
			raw: "From: a@b.example\nContent-Type: multipart/mixed; boundary=b\n\n" + strings.Repeat("--b\nContent-Type: multipart/mixed; boundary=b\n\n", 200) + "ACCEPTED\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse([]byte(tt.raw))
			if tt.wantErr {
				if !errors.Is(err, ErrNoHeader) {
					t.Fatalf("err = %v, want ErrNoHeader", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !utf8.ValidString(m.Text) {
				t.Errorf("Text not valid UTF-8: %q", m.Text)
			}
			if !strings.Contains(m.Text, tt.wantText) {
				t.Errorf("Text = %q, want it to contain %q", m.Text, tt.wantText)
			}
			if tt.check != nil {
				tt.check(t, m)
			}
		})
	}
}

// adversarialInputs are each a few hundred KB built to hit one scanner's
// worst case. Linear code needs milliseconds; the HTML tag scanner once
// needed 14 s for the first one.
func adversarialInputs() map[string]string {
	return map[string]string{
		"unclosed tags":      "From: a@b.example\nContent-Type: text/html\n\n" + strings.Repeat("<a", 100000),
		"unclosed quotes":    "From: a@b.example\nContent-Type: text/html\n\n" + strings.Repeat("<a \"", 100000),
		"attribution starts": "From: a@b.example\n\n" + strings.Repeat("Am "+strings.Repeat("x", 390)+"\n", 1000),
		"many parts":         "From: a@b.example\nContent-Type: multipart/mixed; boundary=b\n\n" + strings.Repeat("--b\n\nx\n", 50000),
		"header blocks":      "From: a@b.example\n\n" + strings.Repeat("Von: x\n", 20000) + strings.Repeat("\n", 20000),
	}
}

// TestParseAdversarialSize parses the worst-case inputs: they must parse
// and yield no intent. Their speed is measured by BenchmarkParseAdversarial
// (a wall-clock limit here would flake on a loaded machine).
func TestParseAdversarialSize(t *testing.T) {
	for name, in := range adversarialInputs() {
		m, err := Parse([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if intent, _, _, _ := ExtractIntent(m.Text); intent != IntentNone {
			t.Errorf("%s: intent %q from garbage", name, intent)
		}
	}
}

// The same message with CRLF, LF and lone-CR line ends parses alike: the
// body of a message without lone CRs is read in place, not normalised
// first.
func TestParseLineEnds(t *testing.T) {
	lf := "From: Anna <anna@dataport.example>\nSubject: AW: [Bestellung 2026-000001]\n" +
		"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain; charset=utf-8\n" +
		"Content-Transfer-Encoding: quoted-printable\n\nBEST=C3=84TIGT, mit einer langen Zeile, die weich umbro=\nchen ist.\n\n" +
		"Am 20.11.2026 schrieb DVC:\n> ABGELEHNT\n--b\nContent-Type: text/plain; name=log.txt\n\nABGELEHNT\n--b--\n"
	want, err := Parse([]byte(lf))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(want.Text, "umbrochen ist.") || strings.Contains(want.Text, "log.txt") {
		t.Fatalf("LF text %q", want.Text)
	}
	for name, in := range map[string]string{
		"crlf":    strings.ReplaceAll(lf, "\n", "\r\n"),
		"lone cr": strings.ReplaceAll(lf, "\n", "\r"),
		"mixed":   strings.Replace(strings.ReplaceAll(lf, "\n", "\r\n"), "\r\n", "\n", 3),
	} {
		m, err := Parse([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if m.Text != want.Text || m.Subject != want.Subject || m.From != want.From {
			t.Errorf("%s: text %q subject %q from %q, want %q %q %q", name, m.Text, m.Subject, m.From, want.Text, want.Subject, want.From)
		}
	}
}

// An attachment is neither copied nor decoded: a reply with a large PDF
// costs little more memory than the message itself (docs/benchmarks.md,
// the 10,000-reply memory run).
func TestParseLargeAttachmentAllocations(t *testing.T) {
	att := strings.Repeat(strings.Repeat("QUJD", 19)+"\r\n", 60000) // 4.7 MB of base64
	raw := []byte("From: anna@dataport.example\r\nSubject: AW: [Bestellung 2026-000001]\r\n" +
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nBestätigt.\r\n" +
		"--b\r\nContent-Type: application/pdf; name=x.pdf\r\nContent-Disposition: attachment\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		att + "--b--\r\n")
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	m, err := Parse(raw)
	runtime.ReadMemStats(&after)
	if err != nil || !strings.HasPrefix(m.Text, "Bestätigt.") {
		t.Fatalf("text %q, err %v", m.Text, err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > uint64(len(raw))/4 {
		t.Errorf("Parse allocated %d bytes for a %d-byte message", n, len(raw))
	}
}

// BenchmarkParseAdversarial: go test -bench ParseAdversarial ./mailflow/reply/
// — each case should take milliseconds, not seconds.
func BenchmarkParseAdversarial(b *testing.B) {
	for name, in := range adversarialInputs() {
		b.Run(strings.ReplaceAll(name, " ", "_"), func(b *testing.B) {
			for b.Loop() {
				m, _ := Parse([]byte(in))
				ExtractIntent(m.Text)
			}
		})
	}
}

// TestParseAuthResultsOrder: AuthResults keep the header order, topmost
// first, because only the topmost result of the trusted server counts
// (RFC 8601 §5): anyone can add one further down before the message
// reaches that server.
func TestParseAuthResultsOrder(t *testing.T) {
	raw := "Authentication-Results: mx.example.org; dmarc=fail header.from=a.example\r\n" +
		"Received: from evil.example\r\n" +
		"Authentication-Results: mx.example.org; dmarc=pass header.from=a.example\r\n" +
		"Authentication-Results: other.example; dmarc=pass header.from=a.example\r\n" +
		"From: x@a.example\r\nSubject: s\r\n\r\nbody\r\n"
	m, err := Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ar := range m.AuthResults {
		got = append(got, ar.AuthServID+" "+ar.DMARC)
	}
	want := []string{"mx.example.org fail", "mx.example.org pass", "other.example pass"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("AuthResults = %q, want %q", got, want)
	}
}
