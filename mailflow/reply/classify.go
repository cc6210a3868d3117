package reply

import (
	"fmt"
	"strings"
)

// Classify decides whether m is a bounce, an auto-reply or a reply (DESIGN
// §4 "Inbound" step 2) and says why. Parse calls it; it is exported so a
// caller can classify a Message it built or adjusted itself. It reads
// m.Header, m.NullSender, m.From and m.Subject.
//
// The checks run from the most to the least certain signal:
//
//  1. a delivery status notification (RFC 3464) is a bounce;
//  2. mail from MAILER-DAEMON/postmaster with a bounce subject is a bounce
//     (non-DSN bounces of old MTAs, which also carry Auto-Submitted);
//  3. RFC 3834 Auto-Submitted other than "no", X-Autoreply, X-Autorespond,
//     Precedence bulk/junk/list/auto_reply are auto-replies;
//  4. an out-of-office subject is an auto-reply;
//  5. any other null sender is a bounce;
//  6. everything else is a reply.
//
// Step 3 runs before the null-sender check on purpose: RFC 3834 §3.3 asks
// responders (e.g. Sieve vacation, RFC 5230 §5.1) to use the null sender,
// and a vacation notice must not mark our notification as undeliverable.
func Classify(m *Message) (Kind, string) {
	if m == nil {
		return KindReply, "no message"
	}
	h := m.Header
	mt, params := contentType(h.Get("Content-Type"))
	if mt == "multipart/report" && strings.EqualFold(params["report-type"], "delivery-status") {
		return KindBounce, "DSN (multipart/report; report-type=delivery-status)"
	}
	if m.deliveryStatus {
		return KindBounce, "DSN (message/delivery-status part)"
	}
	if kw := bounceSubject(m.Subject); kw != "" && (isDaemon(m) || m.NullSender) {
		who := "null sender"
		if isDaemon(m) {
			who = "From MAILER-DAEMON/postmaster"
		}
		return KindBounce, fmt.Sprintf("%s with bounce subject (%q)", who, kw)
	}

	// RFC 3834 §5: any Auto-Submitted value but "no" is automatic.
	for _, v := range h.Values("Auto-Submitted") {
		if tok := firstToken(v); tok != "" && tok != "no" {
			return KindAutoReply, "Auto-Submitted: " + tok
		}
	}
	for _, k := range []string{"X-Autoreply", "X-Autorespond"} {
		if v, ok := h[k]; ok {
			tok := firstToken(strings.Join(v, " "))
			if tok != "no" && tok != "false" && tok != "0" {
				return KindAutoReply, k + ": " + strings.TrimSpace(strings.Join(v, " "))
			}
		}
	}
	switch p := firstToken(h.Get("Precedence")); p {
	case "bulk", "junk", "list", "auto_reply":
		return KindAutoReply, "Precedence: " + p
	}
	if kw := outOfOfficeSubject(m.Subject); kw != "" {
		return KindAutoReply, fmt.Sprintf("out-of-office subject (%q)", kw)
	}
	if m.NullSender {
		return KindBounce, "null sender (Return-Path: <>)"
	}
	return KindReply, "no bounce or auto-reply indicator"
}

// firstToken returns the lowercased first token of a structured value,
// ignoring parameters and comments ("auto-replied (vacation)" → "auto-replied").
func firstToken(v string) string {
	v = strings.TrimSpace(v)
	if i := strings.IndexAny(v, ";( \t,"); i >= 0 {
		v = v[:i]
	}
	return strings.ToLower(v)
}

// isDaemon reports whether the message comes from a mail system rather than
// a person.
func isDaemon(m *Message) bool {
	local, _, _ := strings.Cut(m.From, "@")
	switch {
	case local == "mailer-daemon", local == "mailerdaemon", local == "mail-daemon",
		local == "postmaster", strings.HasPrefix(local, "microsoftexchange"):
		return true
	}
	raw := strings.ToLower(m.Header.Get("From"))
	return m.From == "" && (strings.Contains(raw, "mailer-daemon") || strings.Contains(raw, "postmaster"))
}

// bounceSubjects are the subjects of common MTAs' failure notices: Postfix,
// Exim, Sendmail, qmail, Exchange (en/de), Gmail, Domino.
var bounceSubjects = []string{
	"undelivered mail", "undeliverable", "unzustellbar", "nicht zustellbar",
	"mail delivery failed", "delivery status notification", "delivery failure",
	"delivery has failed", "returned mail", "failure notice", "returned to sender",
	"zustellung fehlgeschlagen", "non-delivery", "mail system error",
	"delivery notification", "unzustellbare nachricht", "warning: could not send message",
}

// bounceSubject returns the bounce phrase found in subject, or "".
func bounceSubject(subject string) string {
	s := strings.ToLower(subject)
	for _, kw := range bounceSubjects {
		if strings.Contains(s, kw) {
			return kw
		}
	}
	return ""
}

// outOfOfficeMarkers are the words autoresponders put in front of the
// original subject (Exchange, Domino, GMX/web.de, Gmail vacation).
var outOfOfficeMarkers = []string{
	"abwesenheitsnotiz", "abwesenheitsmeldung", "abwesenheit", "automatische antwort",
	"out of office", "out of the office", "autoreply", "auto-reply", "auto reply",
	"automatic reply", "abwesend", "außer haus", "ausser haus", "urlaub",
}

// outOfOfficeSubject returns the out-of-office marker in subject, or "".
// Only the part before the original subject counts (before the first reply
// prefix or order tag): a genuine reply about, say, a "Urlaubsplaner"
// service or an order placed "außer Haus" must not be dropped as an
// auto-reply; and markers must be whole words.
func outOfOfficeSubject(subject string) string {
	s := strings.ToLower(subject)
	cut := len(s)
	for _, p := range []string{"re:", "aw:", "wg:", "fw:", "fwd:", "[bestellung", "[order"} {
		if i := indexWord(s, p); i >= 0 && i < cut {
			cut = i
		}
	}
	s = s[:cut]
	for _, kw := range outOfOfficeMarkers {
		if indexWord(s, kw) >= 0 {
			return kw
		}
	}
	return ""
}

// indexWord finds w in s where it is not part of a longer word.
func indexWord(s, w string) int {
	for off := 0; off < len(s); {
		i := strings.Index(s[off:], w)
		if i < 0 {
			return -1
		}
		i += off
		end := i + len(w)
		if (i == 0 || !isWordByte(s[i-1])) && (end >= len(s) || !isWordByte(s[end]) || !isWordByte(w[len(w)-1])) {
			return i
		}
		off = i + 1
	}
	return -1
}

// isWordByte is true for ASCII letters and digits and any byte of a
// multi-byte UTF-8 sequence (umlauts are letters).
func isWordByte(c byte) bool {
	return c >= 0x80 || c == '_' || ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

// deliveryStatus reads a message/delivery-status body (RFC 3464 §2): a
// per-message block, then one block per recipient. The first recipient
// whose delivery failed is reported, else the first recipient.
func (w *walker) deliveryStatus(body string) {
	w.m.deliveryStatus = true
	blocks := strings.Split(normalizeNewlines(body), "\n\n")
	if len(blocks) == 0 {
		return
	}
	if id := readHeader(blocks[0]).Get("Original-Envelope-Id"); id != "" {
		w.envID = xtextDecode(strings.TrimSpace(id))
	}
	var chosen map[string][]string
	for i, b := range blocks {
		h := readHeader(b)
		if h.Get("Final-Recipient") == "" && h.Get("Original-Recipient") == "" && h.Get("Action") == "" {
			continue
		}
		if i == 0 && h.Get("Action") == "" {
			continue
		}
		if chosen == nil {
			chosen = h
		}
		if strings.EqualFold(firstToken(h.Get("Action")), "failed") {
			chosen = h
			break
		}
	}
	if chosen == nil {
		return
	}
	get := func(k string) string {
		if v := chosen[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	rcpt := dsnAddress(get("Original-Recipient"))
	if rcpt == "" {
		rcpt = dsnAddress(get("Final-Recipient"))
	}
	w.m.BounceRecipient = rcpt
	w.m.BounceAction = firstToken(get("Action"))
	w.m.BounceStatus = firstToken(get("Status"))
	diag := get("Diagnostic-Code")
	if _, after, ok := strings.Cut(diag, ";"); ok {
		diag = after
	}
	w.m.BounceDiagnostic = strings.TrimSpace(diag)
}

// dsnAddress returns the address of an RFC 3464 §2.3.1/§2.3.2 recipient
// field ("rfc822; user@example.org"), lowercased. It is not xtext-decoded:
// MTAs write it decoded, and decoding would corrupt plus-addresses.
func dsnAddress(v string) string {
	if _, after, ok := strings.Cut(v, ";"); ok {
		v = after
	}
	return strings.ToLower(strings.Trim(strings.TrimSpace(v), "<>"))
}

// xtextDecode undoes RFC 3461 §4 xtext ("+2B" is "+"), which DSNs use for
// envelope ids and original recipients.
func xtextDecode(s string) string {
	if !strings.Contains(s, "+") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '+' && i+2 < len(s) && unhex(s[i+1]) >= 0 && unhex(s[i+2]) >= 0 {
			b.WriteByte(byte(unhex(s[i+1])<<4 | unhex(s[i+2])))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return clean(b.String())
}
