package mailflow

// appendQP appends s, quoted-printable encoded, to dst: byte for byte what
// mime/quotedprintable's Writer writes for s followed by Close, which
// go-mail uses for text parts. It runs in one pass into one buffer; the
// Writer, which copies every line into its own buffer and then into the
// next writer, was half the time of composing a 500-line billing
// reminder.
//
// The rules, as the Writer applies them: printable ASCII but '=' passes,
// as do spaces and tabs unless they end a line; CR, LF and CRLF become
// CRLF; everything else becomes =XX; a line longer than 76 characters is
// broken with a soft line break ("=" CRLF).
func appendQP(dst []byte, s string) []byte {
	const lineMax = 76 - 1 // characters before a soft line break
	start := len(dst)      // of the current line
	cr := false            // the last literal byte was CR: a following LF is part of its line break
	for i := 0; i < len(s); i++ {
		b := s[i]
		switch {
		case qpLiteral[b]:
			if len(dst)-start == lineMax {
				dst = append(dst, '=', '\r', '\n')
				start = len(dst)
			}
			// The run of literal bytes that fits on the line, at once.
			j, end := i+1, i+min(len(s)-i, lineMax-(len(dst)-start))
			for j < end && qpLiteral[s[j]] {
				j++
			}
			dst = append(dst, s[i:j]...)
			i = j - 1
			cr = false
		case b == '\n' || b == '\r':
			if cr && b == '\n' {
				cr = false
				continue
			}
			cr = b == '\r'
			dst, start = qpLastSpace(dst, start)
			dst = append(dst, '\r', '\n')
			start = len(dst)
		default:
			// As the Writer: an encoded byte leaves cr as it was.
			dst, start = qpEncode(dst, start, b)
		}
	}
	dst, _ = qpLastSpace(dst, start)
	return dst
}

// qpLiteral tells the bytes that stand for themselves: printable ASCII
// but '=', space and tab.
var qpLiteral = func() (t [256]bool) {
	for b := '!'; b <= '~'; b++ {
		t[b] = b != '='
	}
	t[' '], t['\t'] = true, true
	return t
}()

// qpEncode appends b as =XX, after a soft line break if it would not fit.
func qpEncode(dst []byte, start int, b byte) ([]byte, int) {
	const upperhex = "0123456789ABCDEF"
	if 76-1-(len(dst)-start) < 3 {
		dst = append(dst, '=', '\r', '\n')
		start = len(dst)
	}
	return append(dst, '=', upperhex[b>>4], upperhex[b&0x0f]), start
}

// qpLastSpace encodes a space or tab that ends the current line, which a
// mail system might strip.
func qpLastSpace(dst []byte, start int) ([]byte, int) {
	if len(dst) == start {
		return dst, start
	}
	if b := dst[len(dst)-1]; b == ' ' || b == '\t' {
		return qpEncode(dst[:len(dst)-1], start, b)
	}
	return dst, start
}
