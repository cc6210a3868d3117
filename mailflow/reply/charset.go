package reply

import (
	"bytes"
	"io"
	"mime"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
	"golang.org/x/text/encoding/charmap"
)

// decodeCharset converts b from the MIME charset label to UTF-8. It never
// fails: mail in the wild carries unknown or wrong labels, and losing a
// provider's binding reply over a label is worse than a wrong umlaut. An
// unknown label falls back to toUTF8 (valid UTF-8 stays, other bytes are read
// as windows-1252, the superset of latin1 most such mail really is).
func decodeCharset(label string, b []byte) string {
	label = strings.ToLower(strings.Trim(strings.TrimSpace(label), `"'`))
	switch label {
	case "", "utf-8", "utf8", "us-ascii", "ascii", "unknown-8bit", "x-unknown":
		return clean(string(b))
	}
	r, err := charset.Reader(label, bytes.NewReader(b))
	if err != nil || r == nil {
		return clean(string(b))
	}
	out, err := io.ReadAll(r)
	if err != nil && len(out) == 0 {
		return clean(string(b))
	}
	return clean(string(out))
}

// clean makes s valid UTF-8 without losing text: bytes that are not part of
// a valid UTF-8 sequence are read as windows-1252 (raw 8-bit headers and
// mislabelled bodies are nearly always latin1 or windows-1252), and C1
// control characters, which never occur in real text but are what a latin1
// decoder makes of windows-1252 quotes and the euro sign, are mapped the same
// way.
func clean(s string) string {
	if utf8.ValidString(s) && !hasC1(s) {
		return s
	}
	var sb strings.Builder
	sb.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			sb.WriteRune(cp1252(s[i]))
		case r >= 0x80 && r <= 0x9f:
			sb.WriteRune(cp1252(byte(r)))
		default:
			sb.WriteString(s[i : i+size])
		}
		i += size
	}
	return sb.String()
}

// hasC1 reports whether s contains a C1 control character (U+0080–U+009F).
func hasC1(s string) bool {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == 0xc2 && s[i+1] >= 0x80 && s[i+1] <= 0x9f {
			return true
		}
	}
	return false
}

// cp1252 decodes one windows-1252 byte. The five bytes windows-1252 leaves
// undefined become the latin1 code point, which is still valid UTF-8.
func cp1252(b byte) rune {
	if b < 0x80 {
		return rune(b)
	}
	r := charmap.Windows1252.DecodeByte(b)
	if r == utf8.RuneError {
		return rune(b)
	}
	return r
}

// decodeWords decodes RFC 2047 encoded words in a header value. Words in an
// unknown charset are decoded like an unknown body charset instead of being
// left encoded.
func decodeWords(s string) string {
	d := mime.WordDecoder{CharsetReader: wordCharsetReader}
	out, err := d.DecodeHeader(s)
	if err != nil {
		return clean(s)
	}
	return clean(out)
}

// wordCharsetReader is mime.WordDecoder's hook for charsets other than UTF-8,
// ISO-8859-1 and US-ASCII. It never returns an error, so one odd word does
// not leave the whole header undecoded.
func wordCharsetReader(label string, input io.Reader) (io.Reader, error) {
	b, err := io.ReadAll(input)
	if err != nil {
		return nil, err
	}
	return strings.NewReader(decodeCharset(label, b)), nil
}
