package reply

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"net/mail"
	"net/textproto"
	"strings"

	gmtextproto "github.com/emersion/go-message/textproto"
)

// Limits that keep a hostile message from costing more than a big one.
const (
	maxDepth = 16   // nesting of multiparts
	maxParts = 1000 // MIME parts visited
)

// ErrNoHeader is returned by Parse when not a single header field could be
// read, i.e. the input is not an email at all.
var ErrNoHeader = errors.New("reply: parse: no header field found")

// Parse reads a whole raw RFC 5322 message. It never panics and degrades
// instead of failing: unknown charsets and transfer encodings, raw 8-bit
// headers, malformed parts and a missing closing boundary all still yield a
// Message with whatever could be read, because the message may be a
// provider's binding declaration. The only error is ErrNoHeader.
func Parse(raw []byte) (*Message, error) {
	sum := sha256.Sum256(raw)
	m := &Message{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(raw))}

	// One line-ending convention for the header; bare-LF and mixed
	// messages are common after a pass through Unix tools. The body is
	// read in place: the MIME reader takes CRLF and LF alike and each text
	// part is normalised once decoded, so a message with a large
	// attachment is not copied whole. Only lone CRs (old Mac line ends)
	// need the whole message normalised first.
	var hdrBlock string
	var body io.Reader
	if hasLoneCR(raw) {
		var b string
		hdrBlock, b = splitHeader(normalizeNewlines(string(raw)))
		body = strings.NewReader(b)
	} else {
		var b []byte
		hdrBlock, b = splitRawHeader(raw)
		body = bytes.NewReader(b)
	}
	h := readHeader(hdrBlock)
	if len(h) == 0 {
		return nil, ErrNoHeader
	}
	m.Header = h

	if ids := msgIDs(h.Get("Message-Id")); len(ids) > 0 {
		m.MessageID = ids[0]
	}
	m.InReplyTo = msgIDs(strings.Join(h.Values("In-Reply-To"), " "))
	m.References = msgIDs(strings.Join(h.Values("References"), " "))
	if from := parseAddressList(h.Get("From")); len(from) > 0 {
		m.From = from[0].Address
		m.FromName = from[0].Name
	}
	if rp := h.Values("Return-Path"); len(rp) > 0 {
		// The topmost Return-Path is the one the final MTA added.
		m.ReturnPath, m.NullSender = pathAddr(rp[0])
	}
	m.Recipients = recipients(h)
	m.Subject = strings.Join(strings.Fields(decodeWords(h.Get("Subject"))), " ")
	if d, err := mail.ParseDate(strings.TrimSpace(h.Get("Date"))); err == nil {
		m.Date = d
	}
	for _, v := range h.Values("Authentication-Results") {
		if ar, ok := parseAuthResults(v); ok {
			m.AuthResults = append(m.AuthResults, ar)
		}
	}

	w := &walker{m: m}
	w.walk(h, body, 0)
	m.Text = w.text()

	m.Kind, m.KindReason = Classify(m)
	if m.Kind == KindBounce {
		ids := w.returnedIDs
		if len(ids) == 0 {
			// A bounce without a structured copy of the message (old Exim,
			// qmail) quotes the original header in its text.
			ids = textMessageIDs(m.Text)
		}
		if w.envID != "" {
			ids = append(ids, w.envID)
		}
		m.BounceMessageIDs = dedupe(ids)
	} else {
		m.BounceRecipient, m.BounceAction, m.BounceStatus, m.BounceDiagnostic = "", "", "", ""
	}
	return m, nil
}

// hasLoneCR reports a CR that is not followed by LF.
func hasLoneCR(b []byte) bool {
	for {
		i := bytes.IndexByte(b, '\r')
		if i < 0 {
			return false
		}
		if i+1 == len(b) || b[i+1] != '\n' {
			return true
		}
		b = b[i+2:]
	}
}

// splitRawHeader is splitHeader on a message without lone CRs: the header
// block normalised to LF, the body as the bytes after the empty line.
func splitRawHeader(raw []byte) (header string, body []byte) {
	switch {
	case bytes.HasPrefix(raw, []byte("\n")):
		return "", raw[1:]
	case bytes.HasPrefix(raw, []byte("\r\n")):
		return "", raw[2:]
	}
	for i := 0; ; {
		j := bytes.IndexByte(raw[i:], '\n')
		if j < 0 {
			return normalizeNewlines(string(raw)), nil
		}
		i += j + 1 // start of the next line
		switch {
		case bytes.HasPrefix(raw[i:], []byte("\n")):
			return normalizeNewlines(string(raw[:i])), raw[i+1:]
		case bytes.HasPrefix(raw[i:], []byte("\r\n")):
			return normalizeNewlines(string(raw[:i])), raw[i+2:]
		}
	}
}

// normalizeNewlines turns CRLF and lone CR into LF.
func normalizeNewlines(s string) string {
	if !strings.Contains(s, "\r") {
		return s
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\r", "\n")
}

// recipients collects the addresses the message was sent or delivered to,
// since the reply token may survive in any of them.
func recipients(h textproto.MIMEHeader) []string {
	var out []string
	for _, k := range []string{"To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To"} {
		for _, v := range h.Values(k) {
			for _, a := range parseAddressList(v) {
				out = append(out, a.Address)
			}
		}
	}
	return dedupe(out)
}

// dedupe drops empty and repeated strings, keeping the first occurrence.
func dedupe(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	seen := make(map[string]bool, len(in))
	out := in[:0:0]
	for _, s := range in {
		if s == "" || seen[s] {
			continue
		}
		seen[s] = true
		out = append(out, s)
	}
	return out
}

// walker visits the MIME tree once and collects what Parse needs from the
// parts: body text candidates and what a DSN says about the returned
// message.
type walker struct {
	m           *Message
	plain, html []string
	parts       int
	returnedIDs []string
	envID       string
}

// walk handles one entity. Errors inside the tree end that branch only: a
// broken part must not cost the parts already read.
func (w *walker) walk(h textproto.MIMEHeader, body io.Reader, depth int) {
	if w.parts >= maxParts {
		return
	}
	w.parts++
	mt, params := contentType(h.Get("Content-Type"))

	// RFC 2046 §5.1: a multipart needs its boundary; without one the body
	// is better read as text than dropped.
	if strings.HasPrefix(mt, "multipart/") && params["boundary"] != "" {
		if depth >= maxDepth {
			return
		}
		mr := gmtextproto.NewMultipartReader(body, params["boundary"])
		for w.parts < maxParts {
			p, err := mr.NextPart()
			if err != nil {
				// io.EOF, or a missing closing boundary / malformed part
				// header: keep what was read.
				return
			}
			w.walk(partHeader(p.Header), p, depth+1)
		}
		return
	}
	if strings.HasPrefix(mt, "multipart/") {
		mt = "text/plain"
	}

	switch mt {
	case "message/delivery-status", "message/global-delivery-status",
		"message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers":
	case "text/plain", "text/html":
		if isAttachment(h) && depth > 0 {
			return
		}
	default:
		// Nothing else is used: leave it unread (the multipart reader
		// skips it), so a large attachment costs no copy and no decoding.
		return
	}
	data, _ := io.ReadAll(body) // a truncated part still yields its bytes
	data = decodeTransfer(h.Get("Content-Transfer-Encoding"), data)

	switch mt {
	case "message/delivery-status", "message/global-delivery-status":
		w.deliveryStatus(decodeCharset(params["charset"], data))
		return
	case "message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers":
		// RFC 3464 §2 / RFC 6522 §4: the returned message or its header.
		hb, _ := splitHeader(normalizeNewlines(clean(string(data))))
		rh := readHeader(hb)
		w.returnedIDs = append(w.returnedIDs, msgIDs(rh.Get("Message-Id"))...)
		w.returnedIDs = append(w.returnedIDs, msgIDs(strings.Join(rh.Values("References"), " "))...)
		return
	}
	switch mt {
	case "text/plain":
		t := normalizeNewlines(decodeCharset(params["charset"], data))
		if strings.EqualFold(params["format"], "flowed") {
			t = unflow(t, strings.EqualFold(params["delsp"], "yes"))
		}
		w.plain = append(w.plain, t)
	case "text/html":
		w.html = append(w.html, normalizeNewlines(decodeCharset(params["charset"], data)))
	}
}

// text picks the body text: the text/plain parts if they say anything,
// else the HTML parts converted (some clients send an empty plain
// alternative).
func (w *walker) text() string {
	plain := strings.Join(w.plain, "\n")
	if strings.TrimSpace(plain) != "" || len(w.html) == 0 {
		return strings.ToValidUTF8(plain, "\uFFFD")
	}
	var parts []string
	for _, h := range w.html {
		parts = append(parts, htmlToText(h))
	}
	return strings.ToValidUTF8(strings.Join(parts, "\n"), "\uFFFD")
}

// partHeader converts a go-message part header to the lenient form the rest
// of the package uses.
func partHeader(ph gmtextproto.Header) textproto.MIMEHeader {
	h := textproto.MIMEHeader{}
	for f := ph.Fields(); f.Next(); {
		k := textproto.CanonicalMIMEHeaderKey(f.Key())
		h[k] = append(h[k], clean(strings.TrimSpace(f.Value())))
	}
	return h
}

// decodeTransfer undoes a Content-Transfer-Encoding (RFC 2045 §6). Both
// decoders are lenient and never fail; an unknown encoding leaves the bytes
// as they are, which for text is the best guess.
func decodeTransfer(enc string, data []byte) []byte {
	switch strings.ToLower(strings.TrimSpace(enc)) {
	case "quoted-printable":
		return decodeQP(data)
	case "base64":
		return decodeBase64(data)
	}
	return data
}

// decodeQP decodes quoted-printable (RFC 2045 §6.7) without the strictness
// of mime/quotedprintable, which stops at the first control character or bad
// soft break: a malformed "=" is kept literally, trailing white space before
// a line break is dropped (rule 3).
func decodeQP(data []byte) []byte {
	out := make([]byte, 0, len(data))
	for len(data) > 0 {
		line := data
		nl := false
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
			nl = true
		} else {
			data = nil
		}
		line = bytes.TrimRight(line, " \t\r")
		soft := false
		if bytes.HasSuffix(line, []byte("=")) {
			line = line[:len(line)-1]
			soft = true
		}
		for i := 0; i < len(line); i++ {
			c := line[i]
			if c == '=' && i+2 < len(line) && unhex(line[i+1]) >= 0 && unhex(line[i+2]) >= 0 {
				out = append(out, byte(unhex(line[i+1])<<4|unhex(line[i+2])))
				i += 2
				continue
			}
			out = append(out, c)
		}
		if nl && !soft {
			out = append(out, '\n')
		}
	}
	return out
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// decodeBase64 decodes base64 (RFC 2045 §6.8) ignoring every character
// outside the alphabet, as the RFC asks, and decoding each padded segment on
// its own so concatenated blobs and a truncated tail still give their bytes.
func decodeBase64(data []byte) []byte {
	out := make([]byte, 0, len(data)*3/4)
	seg := make([]byte, 0, len(data))
	flush := func() {
		if len(seg)%4 == 1 {
			seg = seg[:len(seg)-1]
		}
		if len(seg) > 0 {
			buf := make([]byte, base64.RawStdEncoding.DecodedLen(len(seg)))
			n, _ := base64.RawStdEncoding.Decode(buf, seg)
			out = append(out, buf[:n]...)
		}
		seg = seg[:0]
	}
	for _, c := range data {
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '+', c == '/':
			seg = append(seg, c)
		case c == '=':
			flush()
		}
	}
	flush()
	return out
}

// unflow undoes format=flowed (RFC 3676 §4.2): soft line breaks (a
// trailing space) are joined, space-stuffing is removed, and quote depth is
// kept, so wrapped attribution lines and reasons come out as one line each.
func unflow(t string, delsp bool) string {
	lines := strings.Split(t, "\n")
	var out []string
	var cur strings.Builder
	curDepth := -1
	flush := func() {
		if curDepth < 0 {
			return
		}
		prefix := ""
		if curDepth > 0 {
			prefix = strings.Repeat(">", curDepth) + " "
		}
		out = append(out, prefix+cur.String())
		cur.Reset()
		curDepth = -1
	}
	for _, l := range lines {
		depth := 0
		for depth < len(l) && l[depth] == '>' {
			depth++
		}
		content := l[depth:]
		content = strings.TrimPrefix(content, " ") // §4.4 space-stuffing
		if curDepth >= 0 && depth != curDepth {
			flush() // §4.5: a quote depth change ends a paragraph
		}
		curDepth = depth
		// §4.3: the signature separator is never flowed.
		flowed := strings.HasSuffix(content, " ") && content != "-- "
		if flowed && delsp {
			content = content[:len(content)-1]
		}
		cur.WriteString(content)
		if !flowed {
			flush()
		}
	}
	flush()
	return strings.Join(out, "\n")
}

// textMessageIDs finds "Message-ID: <…>" lines in a plain-text bounce.
func textMessageIDs(t string) []string {
	var ids []string
	for _, l := range strings.Split(t, "\n") {
		l = strings.TrimLeft(l, " \t>")
		if len(l) > 11 && strings.EqualFold(l[:11], "message-id:") {
			ids = append(ids, msgIDs(l[11:])...)
		}
	}
	return ids
}
