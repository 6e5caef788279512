// Package textsafe keeps text that came from elsewhere (a weights
// provider's model ids, architectures, task types, error messages) from
// controlling the terminal it is printed on: control characters are shown
// as escapes instead of being sent raw. A provider-supplied ESC sequence can
// otherwise retitle a window, hide text, rewrite earlier lines or, on some
// terminals, answer back.
package textsafe

import (
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// String returns s with every control character (C0 including newline and
// tab, DEL, C1), every invalid UTF-8 byte and every bidirectional override
// written as a Go escape (\x1b, \n, \u202e, …). Printable text, spaces
// included, is kept as it is.
func String(s string) string {
	if isClean(s, false) {
		return s
	}
	var b strings.Builder
	write(&b, s, false)
	return b.String()
}

// Writer returns a writer that passes text to w with the control characters
// of String escaped, except newlines and tabs, which lay out the output of
// commands. Writes are not buffered; a multi-byte character split across two
// writes is escaped as invalid bytes.
func Writer(w io.Writer) io.Writer { return writer{w} }

type writer struct{ w io.Writer }

func (sw writer) Write(p []byte) (int, error) {
	s := string(p)
	if isClean(s, true) {
		return sw.w.Write(p)
	}
	var b strings.Builder
	write(&b, s, true)
	if _, err := io.WriteString(sw.w, b.String()); err != nil {
		return 0, err
	}
	return len(p), nil
}

func isClean(s string, layout bool) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if unsafeByte(c, layout) {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || unsafeRune(r) {
			return false
		}
		i += n
	}
	return true
}

func unsafeByte(c byte, layout bool) bool {
	if layout && (c == '\n' || c == '\t') {
		return false
	}
	return c < 0x20 || c == 0x7f
}

// unsafeRune: C1 controls and the bidirectional formatting characters that
// can make text read differently from what it is.
func unsafeRune(r rune) bool {
	switch {
	case r >= 0x80 && r <= 0x9f:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
		return true
	}
	return false
}

func write(b *strings.Builder, s string, layout bool) {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case !unsafeByte(c, layout):
				b.WriteByte(c)
			case c == '\n':
				b.WriteString(`\n`)
			case c == '\t':
				b.WriteString(`\t`)
			case c == '\r':
				b.WriteString(`\r`)
			default:
				fmt.Fprintf(b, `\x%02x`, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(b, `\x%02x`, c)
		case unsafeRune(r) || !unicode.IsPrint(r) && !unicode.IsSpace(r) && unicode.IsControl(r):
			fmt.Fprintf(b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
}
