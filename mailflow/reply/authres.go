package reply

import "strings"

// parseAuthResults parses one Authentication-Results value (RFC 8601 §2.2):
//
//	authserv-id [version] ( *( ";" resinfo ) / ";" "none" )
//	resinfo = method "=" result [reason] *( ptype "." property "=" value )
//
// Comments are dropped first (they may contain ";" and "="). Only dmarc, dkim and
// spf results are kept, since those are what sender authentication
// checks. ok is false when not even an authserv-id is present.
func parseAuthResults(v string) (AuthResult, bool) {
	var ar AuthResult
	pieces := splitUnquoted(stripComments(v), ';')
	if len(pieces) == 0 {
		return ar, false
	}
	head := strings.Fields(pieces[0])
	if len(head) == 0 {
		return ar, false
	}
	ar.AuthServID = strings.ToLower(head[0])
	for _, p := range pieces[1:] {
		kvs := authPairs(p)
		if len(kvs) == 0 || kvs[0].val == "" {
			continue // "none" or garbage
		}
		method, _, _ := strings.Cut(strings.ToLower(kvs[0].key), "/") // §2.2 method version
		result := strings.ToLower(kvs[0].val)
		props := map[string]string{}
		for _, kv := range kvs[1:] {
			k := strings.ToLower(kv.key)
			if _, seen := props[k]; !seen {
				props[k] = kv.val
			}
		}
		switch method {
		case "dmarc":
			if ar.DMARC == "" {
				ar.DMARC = result
				ar.DMARCFrom = strings.ToLower(props["header.from"])
			}
		case "dkim":
			d := props["header.d"]
			if d == "" {
				// RFC 6376 §3.5: i= is d= or a subdomain, after the "@".
				if i := props["header.i"]; strings.Contains(i, "@") {
					d = i[strings.LastIndex(i, "@")+1:]
				}
			}
			ar.DKIM = append(ar.DKIM, DKIMResult{Result: result, Domain: strings.ToLower(d)})
		case "spf":
			if ar.SPF == "" {
				ar.SPF = result
				// smtp.mailfrom is a mailbox or, per RFC 8601 §2.7.2, just
				// its domain.
				mf := strings.ToLower(props["smtp.mailfrom"])
				ar.SPFDomain = mf[strings.LastIndexByte(mf, '@')+1:]
			}
		}
	}
	return ar, true
}

// stripComments replaces RFC 5322 comments (nested parentheses, outside
// quoted strings, honouring backslash escapes) by a space.
func stripComments(s string) string {
	var b strings.Builder
	depth := 0
	quoted := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && (quoted || depth > 0):
			if depth == 0 {
				b.WriteByte(c)
				if i+1 < len(s) {
					b.WriteByte(s[i+1])
				}
			}
			i++
		case depth == 0 && c == '"':
			quoted = !quoted
			b.WriteByte(c)
		case !quoted && c == '(':
			depth++
		case !quoted && c == ')' && depth > 0:
			depth--
			if depth == 0 {
				b.WriteByte(' ')
			}
		case depth == 0:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// splitUnquoted splits s at sep outside quoted strings.
func splitUnquoted(s string, sep byte) []string {
	var out []string
	quoted := false
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			quoted = !quoted
		case sep:
			if !quoted {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	if start <= len(s) {
		out = append(out, s[start:])
	}
	return out
}

type authPair struct{ key, val string }

// authPairs tokenises a resinfo into key=value pairs, allowing white space
// around "=" and quoted values.
func authPairs(s string) []authPair {
	var out []authPair
	i := 0
	skip := func() {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
	}
	for {
		skip()
		if i >= len(s) {
			return out
		}
		start := i
		for i < len(s) && s[i] != '=' && s[i] != ' ' && s[i] != '\t' {
			i++
		}
		key := s[start:i]
		skip()
		if i >= len(s) || s[i] != '=' {
			out = append(out, authPair{key: key})
			continue
		}
		i++ // '='
		skip()
		var val strings.Builder
		if i < len(s) && s[i] == '"' {
			i++
			for i < len(s) && s[i] != '"' {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				val.WriteByte(s[i])
				i++
			}
			i++ // closing quote
		} else {
			for i < len(s) && s[i] != ' ' && s[i] != '\t' {
				val.WriteByte(s[i])
				i++
			}
		}
		if key != "" {
			out = append(out, authPair{key: key, val: val.String()})
		}
	}
}
