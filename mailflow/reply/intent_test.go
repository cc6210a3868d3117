package reply

import (
	"net/textproto"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestStripQuoted(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"top-posted with > quote",
			"BESTÄTIGT\n\nAm 20.11.2026 um 10:00 schrieb DVC Bestellservice:\n> ABGELEHNT: x\n> y\n",
			"BESTÄTIGT"},
		{"bottom-posted",
			"Am 20.11.2026 um 10:00 schrieb DVC Bestellservice:\n> BESTÄTIGT – …\n> IN PRÜFUNG – …\n\nABGELEHNT\nGrund\n",
			"ABGELEHNT\nGrund"},
		{"interleaved keeps every own part",
			"> Frage 1?\nAntwort 1\n> Frage 2?\nAntwort 2\n",
			"Antwort 1\nAntwort 2"},
		{"attribution wrapped over two lines (Gmail)",
			"Confirmed.\n\nOn Fri, Nov 20, 2026 at 10:00\u202fAM DVC order service <\nbestellungen+v1k1x@example.org> wrote:\n\n> REJECTED: <reason>\n",
			"Confirmed."},
		{"attribution wrapped before schrieb",
			"Danke\n\nAm Fr., 20. Nov. 2026 um 10:00 Uhr\nschrieb DVC Bestellservice <b@example.org>:\n> BESTÄTIGT\n",
			"Danke"},
		{"attribution without > quote ends the own text",
			"IN PRÜFUNG\nAm 20.11.2026 um 10:00 schrieb DVC Bestellservice:\nBESTÄTIGT – die Bestellung wird verbindlich angenommen\n",
			"IN PRÜFUNG"},
		{"weak attribution without quote is own text",
			"Mein Kollege schrieb:\nDas passt so.\n",
			"Mein Kollege schrieb:\nDas passt so."},
		{"Ursprüngliche Nachricht",
			"ABGELEHNT: Grund\n\n-----Ursprüngliche Nachricht-----\nVon: x\nBESTÄTIGT\n",
			"ABGELEHNT: Grund"},
		{"Original Message",
			"Declined\nToo expensive\n-----Original Message-----\nFrom: x\nCONFIRMED\n",
			"Declined\nToo expensive"},
		{"Outlook header block, German",
			"BESTÄTIGT\n\nVon: DVC Bestellservice <b@example.org>\nGesendet: Freitag, 20. November 2026 10:00\nAn: x\nBetreff: y\n\nABGELEHNT: …\n",
			"BESTÄTIGT"},
		{"Outlook header block, English, bold markers",
			"CONFIRMED\n\n*From:* DVC <b@example.org>\n*Sent:* Friday\n*To:* x\n\nREJECTED\n",
			"CONFIRMED"},
		{"GMX header block starting with Gesendet",
			"BESTÄTIGT\n\nGesendet: Freitag, 20. November 2026 um 10:00 Uhr\nVon: \"DVC\" <b@example.org>\nAn: x\n",
			"BESTÄTIGT"},
		{"a lone Von: line is own text",
			"IN BEARBEITUNG\nVon: Montag an sind wir erreichbar.\n\nDanke\n",
			"IN BEARBEITUNG\nVon: Montag an sind wir erreichbar.\n\nDanke"},
		{"Outlook separator",
			"In Bearbeitung\n________________________________\nVon: x\nGesendet: y\n",
			"In Bearbeitung"},
		{"signature with trailing space",
			"ABGELEHNT\n-- \nACCEPTED Partner GmbH\n",
			"ABGELEHNT"},
		{"signature without trailing space",
			"Hallo,\n--\nBestätigt durch Referat 3\n",
			"Hallo,"},
		{"mobile signature",
			"Bestätigt\n\nVon meinem iPhone gesendet\n\n> Am 20.11.2026 um 10:00 schrieb x:\n",
			"Bestätigt"},
		{"CRLF and NBSP quote markers",
			"CONFIRMED\r\n\r\n\u00a0> REJECTED\r\n",
			"CONFIRMED"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := StripQuoted(tt.in); got != tt.want {
				t.Errorf("StripQuoted() =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestExtractIntent(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		intent Intent
		ok     bool
		reason string // exact
		expl   string // substring
	}{
		{"upper", "BESTÄTIGT", IntentAccept, true, "", `keyword "BESTÄTIGT" on first line`},
		{"lower", "bestätigt", IntentAccept, true, "", `"BESTÄTIGT"`},
		{"title case with full stop", "Bestätigt.", IntentAccept, true, "", `"BESTÄTIGT"`},
		{"NFD umlaut", "BESTA\u0308TIGT", IntentAccept, true, "", `"BESTÄTIGT"`},
		{"NFD lower umlaut", "besta\u0308tigt – danke", IntentAccept, true, "", `"BESTÄTIGT"`},
		{"ASCII spelling", "Bestaetigt", IntentAccept, true, "", `"BESTAETIGT"`},
		{"bold in plain text", "*BESTÄTIGT*", IntentAccept, true, "", `"BESTÄTIGT"`},
		{"leading BOM and spaces", "\ufeff   Angenommen", IntentAccept, true, "", `"ANGENOMMEN"`},
		{"CONFIRMED not CONFIRM", "Confirmed, thanks", IntentAccept, true, "", `"CONFIRMED"`},
		{"CONFIRM", "confirm", IntentAccept, true, "", `"CONFIRM"`},
		{"ACCEPT", "Accept.", IntentAccept, true, "", `"ACCEPT"`},
		{"IN PRÜFUNG with two spaces", "In  Prüfung", IntentReview, true, "", `"IN PRÜFUNG"`},
		{"IN PRUEFUNG", "in pruefung", IntentReview, true, "", `"IN PRUEFUNG"`},
		{"IN REVIEW", "In Review", IntentReview, true, "", `"IN REVIEW"`},
		{"REVIEW", "review pending", IntentReview, true, "", `"REVIEW"`},
		{"IN BEARBEITUNG", "IN BEARBEITUNG", IntentWorking, true, "", `"IN BEARBEITUNG"`},
		{"IN PROGRESS", "In progress", IntentWorking, true, "", `"IN PROGRESS"`},
		{"ACKNOWLEDGED", "Acknowledged", IntentWorking, true, "", `"ACKNOWLEDGED"`},
		{"greeting skipped", "Hallo,\n\nBESTÄTIGT", IntentAccept, true, "", `"BESTÄTIGT"`},
		{"formal greeting skipped", "Sehr geehrte Damen und Herren,\nIN PRÜFUNG", IntentReview, true, "", `"IN PRÜFUNG"`},
		{"greeting with name, no comma", "Guten Tag Frau Schmidt\n\nAngenommen", IntentAccept, true, "", `"ANGENOMMEN"`},
		{"Dear skipped", "Dear Ms Smith,\nConfirmed", IntentAccept, true, "", `"CONFIRMED"`},
		{"Hi skipped", "Hi,\nDeclined: no budget", IntentReject, true, "no budget", "same line"},

		{"reject after colon", "ABGELEHNT: Kein Rahmenvertrag.", IntentReject, true, "Kein Rahmenvertrag.", "same line"},
		{"reject after dash", "Rejected - no capacity", IntentReject, true, "no capacity", "same line"},
		{"reject after en dash", "Abgelehnt – keine Kapazität", IntentReject, true, "keine Kapazität", "same line"},
		{"reject reason wraps", "ABGELEHNT: Die Region süd ist\nnicht verfügbar.\n\nMit freundlichen Grüßen\nX", IntentReject, true, "Die Region süd ist nicht verfügbar.", "same line"},
		{"reject reason on next line", "ABGELEHNT\nDie Region süd ist nicht verfügbar.", IntentReject, true, "Die Region süd ist nicht verfügbar.", "following lines"},
		{"reject reason paragraphs, closing dropped",
			"Declined\n\nFirst, the price\nis too high.\n\nSecond, the region.\n\nBest regards\nJohn",
			IntentReject, true, "First, the price is too high.\nSecond, the region.", "following lines"},
		{"reject without reason", "ABGELEHNT", IntentReject, false, "", "reject without reason"},
		{"reject with only punctuation", "ABGELEHNT.\n\nViele Grüße\nAnna", IntentReject, false, "", "reject without reason"},
		{"reject reason only in signature", "REJECTED\n-- \nReason: none", IntentReject, false, "", "reject without reason"},
		{"reject reason only in quote", "ABLEHNUNG\n\nAm 20.11.2026 um 10:00 schrieb x:\n> Begründung", IntentReject, false, "", "reject without reason"},

		{"keyword not at start", "Hiermit BESTÄTIGT", IntentNone, false, "", `no keyword on first meaningful line "Hiermit BESTÄTIGT"`},
		{"negation", "Nicht bestätigt", IntentNone, false, "", "no keyword"},
		{"part of a longer word", "Bestätigte Bestellung folgt", IntentNone, false, "", "no keyword"},
		{"REJECTION is no keyword", "Rejection: too late", IntentNone, false, "", "no keyword"},
		{"keyword on second line only", "Danke für die Bestellung.\nBESTÄTIGT", IntentNone, false, "", `"Danke für die Bestellung."`},
		{"keyword only in quote", "Danke\n> BESTÄTIGT", IntentNone, false, "", "no keyword"},
		{"question", "Bestätigt? Wir haben noch Fragen.", IntentAccept, false, "", "question"},
		{"Angenommen as conjunction", "Angenommen, wir liefern erst im Januar – geht das?", IntentAccept, false, "", "question"},
		{"only greeting", "Hallo,\n", IntentNone, false, "", "no own text after the greeting"},
		{"empty", "", IntentNone, false, "", "no own text"},
		{"only quote", "> BESTÄTIGT\n", IntentNone, false, "", "no own text"},
		{"long line previewed", "Vielen Dank für Ihre Bestellung, wir melden uns in Kürze bei Ihnen", IntentNone, false, "",
			`"Vielen Dank für Ihre Bestellung, wir mel…"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			intent, reason, ok, expl := ExtractIntent(tt.in)
			if intent != tt.intent || ok != tt.ok || reason != tt.reason {
				t.Errorf("ExtractIntent(%q) = %q, %q, %v, %q; want %q, %q, %v",
					tt.in, intent, reason, ok, expl, tt.intent, tt.reason, tt.ok)
			}
			if !strings.Contains(expl, tt.expl) {
				t.Errorf("explanation %q does not contain %q", expl, tt.expl)
			}
		})
	}
}

func TestExtractIntentReasonCap(t *testing.T) {
	long := strings.Repeat("ä", 5000)
	_, reason, ok, _ := ExtractIntent("ABGELEHNT: " + long)
	if !ok || utf8.RuneCountInString(reason) != maxReason || !strings.HasSuffix(reason, "…") {
		t.Errorf("reason has %d runes, ok=%v", utf8.RuneCountInString(reason), ok)
	}
}

func TestSubjectOrderNumber(t *testing.T) {
	tests := []struct{ subject, want string }{
		{"[Bestellung 2026-000123] Neue Bestellung", "2026-000123"},
		{"AW: [Bestellung 2026-000123] Neue Bestellung", "2026-000123"},
		{"Re: AW: WG: Fwd: [Bestellung 2026-000123]", "2026-000123"},
		{"RE: [Order 2026-000124] New order", "2026-000124"},
		{"[EXTERN] AW: [bestellung 2026-000125]", "2026-000125"},
		{"AW: [Bestellung Nr. 2026-000126] x", "2026-000126"},
		{"AW: [ Bestellung  2026-000127 ]", "2026-000127"},
		{"AW: [Bestellung\u00a02026-000128]", "2026-000128"},
		{"AW: [Bestellung 2026-1234567] grows past six digits", "2026-1234567"},
		{"Bestellung 2026-000123 without tag", ""},
		{"[Bestellung 26-000123]", ""},
		{"[Ticket#2026112010000123] Eingang", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := SubjectOrderNumber(tt.subject); got != tt.want {
			t.Errorf("SubjectOrderNumber(%q) = %q, want %q", tt.subject, got, tt.want)
		}
	}
}

func TestClassify(t *testing.T) {
	hdr := func(kv ...string) textproto.MIMEHeader {
		h := textproto.MIMEHeader{}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Add(kv[i], kv[i+1])
		}
		return h
	}
	tests := []struct {
		name   string
		m      *Message
		kind   Kind
		reason string
	}{
		{"plain reply", &Message{Subject: "AW: [Bestellung 2026-000123] x", Header: hdr()}, KindReply, "no bounce"},
		{"Auto-Submitted: no is a person", &Message{Header: hdr("Auto-Submitted", "no")}, KindReply, ""},
		{"Auto-Submitted with comment", &Message{Header: hdr("Auto-Submitted", "auto-replied (vacation)")}, KindAutoReply, "Auto-Submitted: auto-replied"},
		{"Auto-Submitted case", &Message{Header: hdr("Auto-Submitted", "Auto-Generated")}, KindAutoReply, "auto-generated"},
		{"X-Autorespond", &Message{Header: hdr("X-Autorespond", "Yes")}, KindAutoReply, "X-Autorespond"},
		{"X-Autoreply: no", &Message{Header: hdr("X-Autoreply", "no")}, KindReply, ""},
		{"Precedence junk", &Message{Header: hdr("Precedence", "junk")}, KindAutoReply, "Precedence: junk"},
		{"Precedence list", &Message{Header: hdr("Precedence", "list")}, KindAutoReply, "Precedence: list"},
		{"Precedence auto_reply", &Message{Header: hdr("Precedence", "auto_reply")}, KindAutoReply, "Precedence: auto_reply"},
		{"Precedence first-class", &Message{Header: hdr("Precedence", "first-class")}, KindReply, ""},
		{"X-Auto-Response-Suppress is ours", &Message{Header: hdr("X-Auto-Response-Suppress", "All")}, KindReply, ""},
		{"Außer Haus", &Message{Subject: "Außer Haus bis 30.11.", Header: hdr()}, KindAutoReply, "außer haus"},
		{"AUSSER HAUS", &Message{Subject: "AUSSER HAUS: AW: [Bestellung 2026-000123]", Header: hdr()}, KindAutoReply, "ausser haus"},
		{"Urlaub", &Message{Subject: "Urlaub - Re: [Bestellung 2026-000123]", Header: hdr()}, KindAutoReply, "urlaub"},
		{"Abwesend", &Message{Subject: "Abwesend: [Order 2026-000124] New order", Header: hdr()}, KindAutoReply, "abwesend"},
		{"Autoreply", &Message{Subject: "Autoreply: [Order 2026-000124]", Header: hdr()}, KindAutoReply, "autoreply"},
		{"OOO words in the original subject do not count", &Message{Subject: "AW: [Bestellung 2026-000123] Urlaubsplaner außer Haus", Header: hdr()}, KindReply, ""},
		{"Urlaubsplaner is not Urlaub", &Message{Subject: "Urlaubsplaner", Header: hdr()}, KindReply, ""},
		{"null sender", &Message{NullSender: true, Header: hdr()}, KindBounce, "null sender"},
		{"null sender with bounce subject", &Message{NullSender: true, Subject: "Delivery Status Notification (Failure)", Header: hdr("Auto-Submitted", "auto-replied")}, KindBounce, "bounce subject"},
		{"mailer-daemon without address", &Message{Subject: "failure notice", Header: hdr("From", "MAILER-DAEMON")}, KindBounce, "MAILER-DAEMON"},
		{"mailer-daemon without bounce subject is not a bounce by itself", &Message{From: "mailer-daemon@x.example", Subject: "Hello", Header: hdr()}, KindReply, ""},
		{"bounce subject from a person is a reply", &Message{From: "anna@x.example", Subject: "AW: Undeliverable: x", Header: hdr()}, KindReply, ""},
		{"DSN content type", &Message{Header: hdr("Content-Type", `multipart/report; report-type="delivery-status"; boundary=x`)}, KindBounce, "DSN"},
		{"MDN is an auto-reply, not a bounce", &Message{Header: hdr("Content-Type", "multipart/report; report-type=disposition-notification; boundary=x")}, KindAutoReply, "MDN"},
		{"nil", nil, KindReply, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kind, reason := Classify(tt.m)
			if kind != tt.kind || !strings.Contains(reason, tt.reason) {
				t.Errorf("Classify() = %q, %q; want %q, %q", kind, reason, tt.kind, tt.reason)
			}
		})
	}
}

func TestParseAuthResults(t *testing.T) {
	tests := []struct {
		in   string
		want AuthResult
		ok   bool
	}{
		{"mx.example.org; dkim=pass header.d=a.example; dmarc=pass header.from=a.example",
			AuthResult{AuthServID: "mx.example.org", DMARC: "pass", DMARCFrom: "a.example", DKIM: []DKIMResult{{"pass", "a.example"}}}, true},
		{"MX.Example.ORG 1; dkim = fail (bad sig; x=y) header.i=@Sub.A.example; dkim=pass header.d=B.example; dmarc=FAIL (p=reject) header.from=A.example",
			AuthResult{AuthServID: "mx.example.org", DMARC: "fail", DMARCFrom: "a.example", DKIM: []DKIMResult{{"fail", "sub.a.example"}, {"pass", "b.example"}}}, true},
		{`mx.example.org; dkim=pass reason="good; signature" header.d="q.example"`,
			AuthResult{AuthServID: "mx.example.org", DKIM: []DKIMResult{{"pass", "q.example"}}}, true},
		{"mx.example.org; none", AuthResult{AuthServID: "mx.example.org"}, true},
		{"mx.example.org; spf=pass smtp.mailfrom=Bounce@Mail.A.example; spf=fail smtp.mailfrom=b.example",
			AuthResult{AuthServID: "mx.example.org", SPF: "pass", SPFDomain: "mail.a.example"}, true},
		{"mx.example.org; spf=pass smtp.mailfrom=a.example", AuthResult{AuthServID: "mx.example.org", SPF: "pass", SPFDomain: "a.example"}, true},
		{"mx.example.org; spf=pass smtp.helo=mx.a.example", AuthResult{AuthServID: "mx.example.org", SPF: "pass"}, true},
		{"(only a comment)", AuthResult{}, false},
		{"", AuthResult{}, false},
	}
	for _, tt := range tests {
		got, ok := parseAuthResults(tt.in)
		if ok != tt.ok || got.AuthServID != tt.want.AuthServID || got.DMARC != tt.want.DMARC ||
			got.DMARCFrom != tt.want.DMARCFrom || len(got.DKIM) != len(tt.want.DKIM) ||
			got.SPF != tt.want.SPF || got.SPFDomain != tt.want.SPFDomain {
			t.Errorf("parseAuthResults(%q) = %+v, %v; want %+v, %v", tt.in, got, ok, tt.want, tt.ok)
			continue
		}
		for i := range got.DKIM {
			if got.DKIM[i] != tt.want.DKIM[i] {
				t.Errorf("parseAuthResults(%q).DKIM[%d] = %+v, want %+v", tt.in, i, got.DKIM[i], tt.want.DKIM[i])
			}
		}
	}
}

func TestHTMLToText(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"paragraphs and br", "<p>BEST&Auml;TIGT</p><p>Zeile 1<br>Zeile 2</p>", "BESTÄTIGT\nZeile 1\nZeile 2"},
		{"blockquote is quoted", "<div>IN PR&Uuml;FUNG</div><blockquote>ABGELEHNT<br>x<blockquote>y</blockquote></blockquote><div>after</div>",
			"IN PRÜFUNG\n> ABGELEHNT\n> x\n> > y\nafter"},
		{"head, style, script and comments dropped",
			"<html><head><title>t</title><style>p{x:1}</style></head><body><!--[if mso]>CONFIRMED<![endif]--><script>var a='<p>';</script><p>ok</p></body></html>",
			"ok"},
		{"whitespace collapsed, pre kept", "<p>a\n   b</p><pre>x\n  y</pre>", "a b\nx\n  y"},
		{"hr becomes the Outlook separator", "<p>Danke</p><hr><p><b>Von:</b> x</p>", "Danke\n________________________________\nVon: x"},
		{"entities and nbsp", "<p>&nbsp;&lt;b&gt; &amp; &#8211; &euro;</p>", "<b> & – €"},
		{"lone < and attribute with >", `a < b <a title="x>y" href="#">link</a>`, "a < b link"},
		{"empty paragraphs collapse", "<p>a</p><p>&nbsp;</p><p>&nbsp;</p><p>b</p>", "a\n\nb"},
		{"unterminated comment", "<p>a</p><!-- never closed", "a"},
		{"stray < inside script and upper-case STYLE", "<SCRIPT>if(a<b){x()}</SCRIPT><STYLE>p>a{}</Style><p>ok</p>", "ok"},
		{"unclosed tag at the end is dropped", "<p>ok</p><a href", "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := htmlToText(tt.in); got != tt.want {
				t.Errorf("htmlToText() =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestDecodeCharset(t *testing.T) {
	tests := []struct {
		label string
		in    string
		want  string
	}{
		{"utf-8", "Grüße", "Grüße"},
		{"utf-8", "Gr\xfc\xdfe", "Grüße"}, // mislabelled latin1
		{"ISO-8859-1", "Gr\xfc\xdfe \x80", "Grüße €"},
		{"iso-8859-15", "\xa4", "€"},
		{"windows-1252", "\x84x\x93", "„x“"},
		{"ansi", "\xc4", "Ä"},            // unknown label
		{"\"UTF-8\"", "ok", "ok"},        // quoted label
		{"utf-16le", "o\x00k\x00", "ok"}, // known, non-ASCII-compatible
	}
	for _, tt := range tests {
		if got := decodeCharset(tt.label, []byte(tt.in)); got != tt.want {
			t.Errorf("decodeCharset(%q, %q) = %q, want %q", tt.label, tt.in, got, tt.want)
		}
	}
}

func TestUnflow(t *testing.T) {
	in := "Ein langer \nSatz.\n> zitiert \n> weiter\n-- \nSig"
	want := "Ein langer Satz.\n> zitiert weiter\n-- \nSig"
	if got := unflow(in, false); got != want {
		t.Errorf("unflow() = %q, want %q", got, want)
	}
	if got := unflow("Ab \ncd", true); got != "Abcd" {
		t.Errorf("unflow(delsp) = %q", got)
	}
}
