package cli

import (
	"io"
	"sync"
	"unicode/utf8"
)

// Everything the CLI prints passes through printable (the writers Run gives every command are
// safeWriters): device names, GPU models, reasons and log lines come from other parties, and a
// terminal obeys the control sequences in them (moving the cursor, rewriting what was printed,
// setting the window title, or worse). Newlines and tabs stay; a carriage return becomes a
// newline (so nothing can be overwritten); every other C0 control, DEL, the C1 controls
// (U+0080..U+009F: 8-bit CSI and OSC), the bidirectional overrides and isolates (text that reads
// differently from how it is stored) and bytes that are not UTF-8 are dropped.
//
// printable appends the cleaned form of b to dst. It stops before a UTF-8 sequence that b cuts
// short and reports how much of b it consumed, so that a writer can keep the rest for the next
// write; with final, such a tail is dropped instead. cr carries "the last byte was a carriage
// return" across calls, so that "\r\n" is one newline even when split between writes.
func printable(dst, b []byte, cr *bool, final bool) ([]byte, int) {
	i := 0
	for i < len(b) {
		c := b[i]
		if c < utf8.RuneSelf {
			i++
			wasCR := *cr
			*cr = c == '\r'
			switch {
			case c == '\n' && wasCR:
				// The newline of a "\r\n" was written already.
			case c == '\n', c == '\t', c >= 0x20 && c < 0x7f:
				dst = append(dst, c)
			case c == '\r':
				dst = append(dst, '\n')
			}
			continue
		}
		if !utf8.FullRune(b[i:]) && !final {
			return dst, i
		}
		r, n := utf8.DecodeRune(b[i:])
		*cr = false
		if r != utf8.RuneError && !hidden(r) {
			dst = append(dst, b[i:i+n]...)
		}
		i += n
	}
	return dst, i
}

// hidden reports whether r is a control character a terminal may act on or that changes how
// the text around it reads.
func hidden(r rune) bool {
	switch {
	case r >= 0x80 && r <= 0x9f: // C1 controls
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
		return true // bidirectional embeddings, overrides, isolates and marks
	}
	return false
}

// clean is printable for one string.
func clean(s string) string {
	var cr bool
	out, _ := printable(make([]byte, 0, len(s)), []byte(s), &cr, true)
	return string(out)
}

// safeWriter cleans everything written through it (see printable).
type safeWriter struct {
	mu   sync.Mutex
	w    io.Writer
	tail []byte // an incomplete UTF-8 sequence at the end of the last write
	cr   bool
	buf  []byte
}

func newSafeWriter(w io.Writer) *safeWriter { return &safeWriter{w: w} }

// Write reports len(p) written when the cleaned bytes were written: what it dropped on purpose
// is not a short write.
func (s *safeWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := p
	if len(s.tail) > 0 {
		in = append(s.tail, p...)
		s.tail = nil
	}
	var n int
	s.buf, n = printable(s.buf[:0], in, &s.cr, false)
	if n < len(in) {
		s.tail = append([]byte(nil), in[n:]...) // at most 3 bytes: the start of a rune
	}
	if len(s.buf) > 0 {
		if _, err := s.w.Write(s.buf); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}
