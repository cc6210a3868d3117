package reply

import (
	"html"
	"strings"
)

// htmlToText converts an HTML body to plain text for intent extraction. It
// is a small tag scanner, not a full HTML parser: it only has to keep line
// structure (<br>, block elements), mark <blockquote> content as quoted with
// "> " (so StripQuoted removes it like a quoted plain-text reply), turn <hr>
// into the Outlook separator line, drop <head>, <style>, <script> and
// comments, and decode entities.
func htmlToText(s string) string {
	c := &htmlConv{}
	lower := asciiLower(s)
	for i := 0; i < len(s); {
		if s[i] != '<' {
			j := strings.IndexByte(s[i:], '<')
			if j < 0 {
				j = len(s) - i
			}
			c.text(html.UnescapeString(s[i : i+j]))
			i += j
			continue
		}
		// Comments, including Outlook's conditional comments.
		if strings.HasPrefix(s[i:], "<!--") {
			end := strings.Index(s[i+4:], "-->")
			if end < 0 {
				break
			}
			i += 4 + end + 3
			continue
		}
		end := tagEnd(s, i)
		if end == -2 {
			// A tag left open at the end: like a browser, drop it and stop.
			// Scanning on from every later "<" would be quadratic.
			break
		}
		if end < 0 {
			c.text("<") // a lone "<" in text ("a < b")
			i++
			continue
		}
		name, closing := tagName(s[i+1 : end])
		i = end + 1
		if name == "" {
			continue // <!DOCTYPE>, <?xml?>
		}
		switch name {
		case "head", "style", "script", "title", "xml", "template":
			// Invisible content is skipped up to its closing tag without
			// tokenising it: CSS and scripts contain stray "<".
			if !closing {
				k := strings.Index(lower[i:], "</"+name)
				if k < 0 {
					i = len(s)
				} else {
					i += k
				}
			}
			continue
		}
		switch name {
		case "br":
			c.newline()
		case "hr":
			c.block()
			c.text("________________________________")
			c.block()
		case "blockquote":
			c.block()
			if closing {
				if c.depth > 0 {
					c.depth--
				}
			} else {
				c.depth++
			}
		case "pre":
			c.block()
			c.pre = !closing
		case "li":
			c.block()
			if !closing {
				c.text("- ")
			}
		case "td", "th":
			if !closing {
				c.space()
			}
		case "p", "div", "tr", "table", "tbody", "thead", "ul", "ol", "dl", "dt", "dd",
			"h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "header", "footer",
			"address", "center", "form", "fieldset", "body", "html":
			c.block()
		}
	}
	c.block()
	return c.result()
}

// asciiLower lowercases ASCII letters only, so byte offsets stay valid for
// the original string.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// tagEnd returns the index of the ">" closing the tag that starts at i,
// skipping quoted attribute values; -1 if s[i] does not start a tag, -2 if
// the tag is never closed.
func tagEnd(s string, i int) int {
	if i+1 >= len(s) {
		return -1
	}
	n := s[i+1]
	if !(n == '/' || n == '!' || n == '?' || ('a' <= n && n <= 'z') || ('A' <= n && n <= 'Z')) {
		return -1
	}
	var quote byte
	for j := i + 1; j < len(s); j++ {
		switch {
		case quote != 0:
			if s[j] == quote {
				quote = 0
			}
		case s[j] == '"' || s[j] == '\'':
			quote = s[j]
		case s[j] == '>':
			return j
		}
	}
	return -2
}

// tagName returns the lowercased element name of a tag body ("/p", "br/",
// "o:p class=x") and whether it is a closing tag.
func tagName(t string) (string, bool) {
	closing := strings.HasPrefix(t, "/")
	t = strings.TrimPrefix(t, "/")
	end := 0
	for end < len(t) {
		c := t[end]
		if c == ' ' || c == '\t' || c == '\n' || c == '/' || c == '>' {
			break
		}
		end++
	}
	name := strings.ToLower(t[:end])
	if strings.HasPrefix(name, "!") || strings.HasPrefix(name, "?") {
		return "", closing
	}
	return name, closing
}

// htmlConv accumulates converted text line by line, so each line can get the
// quote prefix of the blockquote depth it was written in.
type htmlConv struct {
	out       strings.Builder
	line      strings.Builder
	lineDepth int
	depth     int
	pre       bool
	pendSpace bool
}

// text adds character data, collapsing white space as a browser would
// (except inside <pre>).
//
// A no-break space counts as content here, so an Outlook empty paragraph
// (<p>&nbsp;</p>) still becomes the empty line it looks like; newline turns
// it into a plain space.
func (c *htmlConv) text(t string) {
	if c.pre {
		for i, l := range strings.Split(t, "\n") {
			if i > 0 {
				c.newline()
			}
			c.write(l)
		}
		return
	}
	start := 0
	for i := 0; i <= len(t); i++ {
		if i == len(t) || isHTMLSpace(t[i]) {
			if i > start {
				if c.pendSpace && c.line.Len() > 0 {
					c.write(" ")
				}
				c.pendSpace = false
				c.write(t[start:i])
			}
			if i < len(t) {
				c.pendSpace = true
			}
			start = i + 1
		}
	}
}

func isHTMLSpace(r byte) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\f'
}

// space separates table cells.
func (c *htmlConv) space() {
	if c.line.Len() > 0 {
		c.pendSpace = true
	}
}

func (c *htmlConv) write(s string) {
	if c.line.Len() == 0 {
		c.lineDepth = c.depth
	}
	c.line.WriteString(s)
}

// newline ends the current line, even an empty one (<br>).
func (c *htmlConv) newline() {
	if c.line.Len() == 0 {
		c.lineDepth = c.depth
	}
	l := strings.ReplaceAll(c.line.String(), "\u00a0", " ")
	if !c.pre {
		l = strings.TrimSpace(l)
	}
	c.out.WriteString(strings.Repeat("> ", c.lineDepth))
	c.out.WriteString(strings.TrimRight(l, " "))
	c.out.WriteByte('\n')
	c.line.Reset()
	c.pendSpace = false
}

// block ends the current line if it has content; block elements never add
// empty lines by themselves.
func (c *htmlConv) block() {
	if c.line.Len() > 0 {
		c.newline()
	}
	c.pendSpace = false
}

// result returns the text with runs of empty lines collapsed to one.
func (c *htmlConv) result() string {
	lines := strings.Split(c.out.String(), "\n")
	out := make([]string, 0, len(lines))
	blank := 0
	for _, l := range lines {
		l = strings.TrimRight(l, " ")
		if strings.TrimSpace(strings.Trim(l, ">")) == "" && !strings.HasPrefix(l, ">") {
			blank++
			if blank > 1 {
				continue
			}
			l = ""
		} else {
			blank = 0
		}
		out = append(out, l)
	}
	return strings.TrimSpace(strings.Join(out, "\n"))
}
