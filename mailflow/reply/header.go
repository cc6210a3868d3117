package reply

import (
	"mime"
	"net/mail"
	"net/textproto"
	"regexp"
	"strings"
)

// splitHeader splits a message (with LF line endings) at the first empty
// line (RFC 5322 §2.1). A message without an empty line is all header.
func splitHeader(s string) (header, body string) {
	if strings.HasPrefix(s, "\n") {
		return "", s[1:]
	}
	if i := strings.Index(s, "\n\n"); i >= 0 {
		return s[:i+1], s[i+2:]
	}
	return s, ""
}

// readHeader parses a header block leniently: folded lines are unfolded
// (RFC 5322 §2.2.3), lines that are not fields (an mbox "From " line, stray
// garbage) are skipped instead of failing the message, and every value is
// made valid UTF-8. Keys are canonicalised so lookups are case-insensitive.
func readHeader(block string) textproto.MIMEHeader {
	h := textproto.MIMEHeader{}
	var key string
	var val strings.Builder
	have := false
	flush := func() {
		if have {
			h[key] = append(h[key], clean(strings.TrimSpace(val.String())))
		}
		have = false
		val.Reset()
	}
	for block != "" {
		line := block
		if i := strings.IndexByte(block, '\n'); i >= 0 {
			line, block = block[:i], block[i+1:]
		} else {
			block = ""
		}
		line = strings.TrimSuffix(line, "\r")
		if line == "" {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if have {
				val.WriteByte(' ')
				val.WriteString(strings.TrimSpace(line))
			}
			continue
		}
		flush()
		i := strings.IndexByte(line, ':')
		if i <= 0 {
			continue
		}
		k := strings.TrimRight(line[:i], " \t")
		if !validKey(k) {
			continue
		}
		key = textproto.CanonicalMIMEHeaderKey(k)
		val.WriteString(line[i+1:])
		have = true
	}
	flush()
	return h
}

// validKey reports whether k is a field name (RFC 5322 §3.6.8: printable
// US-ASCII except colon).
func validKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 33 || k[i] > 126 {
			return false
		}
	}
	return true
}

// contentType parses a Content-Type value. A missing or unparseable value is
// text/plain (RFC 2045 §5.2); parameters mime.ParseMediaType rejects (a
// trailing semicolon, an unquoted special) are recovered one by one, because
// losing the boundary would lose the whole body.
func contentType(v string) (string, map[string]string) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "text/plain", map[string]string{}
	}
	mt, params, err := mime.ParseMediaType(v)
	if err == nil {
		return mt, params
	}
	parts := strings.Split(v, ";")
	mt = strings.ToLower(strings.TrimSpace(parts[0]))
	if !strings.Contains(mt, "/") {
		mt = "text/plain"
	}
	params = map[string]string{}
	for _, p := range parts[1:] {
		k, val, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		val = strings.Trim(strings.TrimSpace(val), `"`)
		if k != "" && params[k] == "" {
			params[k] = val
		}
	}
	return mt, params
}

// isAttachment reports whether a part is an attachment rather than body
// text: an explicit disposition, or a file name, which clients only give to
// files.
func isAttachment(h textproto.MIMEHeader) bool {
	disp, dparams, err := mime.ParseMediaType(h.Get("Content-Disposition"))
	if err == nil && disp == "attachment" {
		return true
	}
	if err != nil && strings.HasPrefix(strings.ToLower(strings.TrimSpace(h.Get("Content-Disposition"))), "attachment") {
		return true
	}
	if dparams["filename"] != "" {
		return true
	}
	_, cparams := contentType(h.Get("Content-Type"))
	return cparams["name"] != ""
}

var (
	msgIDRe     = regexp.MustCompile(`<([^<>]*)>`)
	bareAddrRe  = regexp.MustCompile(`[^\s<>(),;:"'\[\]]+@[^\s<>(),;:"'\[\]]+`)
	angleAddrRe = regexp.MustCompile(`<([^<>\s]+@[^<>\s]+)>`)
)

// msgIDs extracts msg-ids (RFC 5322 §3.6.4) without their angle brackets.
// Clients that drop the brackets are tolerated by splitting on white space.
func msgIDs(v string) []string {
	var ids []string
	if m := msgIDRe.FindAllStringSubmatch(v, -1); len(m) > 0 {
		for _, s := range m {
			if id := strings.Join(strings.Fields(s[1]), ""); id != "" {
				ids = append(ids, id)
			}
		}
		return ids
	}
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == '\t' || r == ',' }) {
		if strings.Contains(f, "@") {
			ids = append(ids, f)
		}
	}
	return ids
}

// addressParser decodes display names with the same charset fallbacks as
// the rest of the message.
func addressParser() *mail.AddressParser {
	return &mail.AddressParser{WordDecoder: &mime.WordDecoder{CharsetReader: wordCharsetReader}}
}

// parseAddressList returns the (name, lowercased addr-spec) pairs of an
// address list. When net/mail rejects the list (unquoted commas or dots in a
// name, "undisclosed-recipients:;", raw bytes) the addr-specs are dug out
// by pattern, because a recipient carrying the reply token must not be lost
// to a sloppy display name.
func parseAddressList(v string) []*mail.Address {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	list, err := addressParser().ParseList(v)
	if err == nil {
		for _, a := range list {
			a.Address = strings.ToLower(a.Address)
			a.Name = clean(a.Name)
		}
		return list
	}
	var out []*mail.Address
	rest := v
	for rest != "" {
		loc := angleAddrRe.FindStringSubmatchIndex(rest)
		if loc == nil {
			break
		}
		name := strings.TrimSpace(rest[:loc[0]])
		if i := strings.LastIndexAny(name, ",;"); i >= 0 && strings.Count(name[:i], `"`)%2 == 0 {
			name = strings.TrimSpace(name[i+1:])
		}
		name = strings.Trim(name, `" `)
		out = append(out, &mail.Address{Name: decodeWords(name), Address: strings.ToLower(rest[loc[2]:loc[3]])})
		rest = rest[loc[1]:]
	}
	if len(out) > 0 {
		return out
	}
	for _, a := range bareAddrRe.FindAllString(v, -1) {
		out = append(out, &mail.Address{Address: strings.ToLower(strings.TrimRight(a, "."))})
	}
	return out
}

// pathAddr returns the addr-spec of a Return-Path value and whether it is
// the null reverse-path "<>" (RFC 5321 §4.1.2), which marks delivery
// notifications.
func pathAddr(v string) (addr string, null bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", false
	}
	inner := strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(v, "<"), ">"))
	if inner == "" {
		return "", true
	}
	if m := angleAddrRe.FindStringSubmatch(v); m != nil {
		return strings.ToLower(m[1]), false
	}
	if f := strings.Fields(inner); len(f) > 0 {
		return strings.ToLower(f[0]), false
	}
	return "", false
}
