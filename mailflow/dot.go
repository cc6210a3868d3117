package mailflow

import (
	"bytes"
	"sync"
)

// appendDotStuffed appends raw as SMTP DATA sends it, with the final
// line: a dot doubled at the start of each line, then "." CRLF on a line
// of its own. It is what net/textproto's DotWriter writes for raw and
// Close, for a message whose line breaks are all CRLF, as composed
// messages' are; ok is false for any other (dst is then unchanged, and the
// caller uses the DotWriter). The DotWriter passes each byte through a
// state machine and a buffer of 4 KB: a third of the sender's CPU, and
// three writes to the socket for a 10 KB notification, where this is one.
func appendDotStuffed(dst, raw []byte) (_ []byte, ok bool) {
	crlf := bytes.Count(raw, []byte("\r\n"))
	if bytes.Count(raw, []byte("\r")) != crlf || bytes.Count(raw, []byte("\n")) != crlf {
		return dst, false
	}
	ended := bytes.HasSuffix(raw, []byte("\r\n")) // else the final line is ended first
	if len(raw) > 0 && raw[0] == '.' {
		dst = append(dst, '.')
	}
	for {
		k := bytes.Index(raw, []byte("\r\n."))
		if k < 0 {
			break
		}
		dst = append(append(dst, raw[:k+2]...), '.')
		raw = raw[k+2:]
	}
	dst = append(dst, raw...)
	if !ended {
		dst = append(dst, '\r', '\n')
	}
	return append(dst, '.', '\r', '\n'), true
}

// dataBuffers holds the buffers of appendDotStuffed between messages.
var dataBuffers = sync.Pool{New: func() any { return new([]byte) }}
