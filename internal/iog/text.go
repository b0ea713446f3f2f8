package iog

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Strings one party gives and others see (device names, GPU models, host facts, failure
// messages) are bounded and checked where they enter, at the API: a label must be short,
// UTF-8 and free of control and formatting characters; free text is cut to its bound and its
// control characters become spaces. (The CLI strips what it prints as well: a store may hold
// rows from before these checks.)

// CheckLabel checks a label of at most max bytes: valid UTF-8, no control or formatting
// characters (C0, DEL, C1, bidirectional overrides, zero-width characters), and not empty
// unless optional.
func CheckLabel(field, s string, max int, optional bool) error {
	switch {
	case s == "" && optional:
		return nil
	case s == "":
		return Errorf(EINVALID, "%s is required", field)
	case len(s) > max:
		return Errorf(EINVALID, "%s is %d bytes long; the limit is %d", field, len(s), max)
	case !utf8.ValidString(s):
		return Errorf(EINVALID, "%s is not valid UTF-8", field)
	}
	for _, r := range s {
		if unprintable(r) {
			return Errorf(EINVALID, "%s holds the control character %U", field, r)
		}
	}
	return nil
}

// CleanText is free text made safe to store and show: invalid UTF-8 and control or
// formatting characters become spaces (newlines included: a message is one line), and the
// result is cut to at most max bytes on a rune boundary.
func CleanText(s string, max int) string {
	var b strings.Builder
	for _, r := range s {
		if r == utf8.RuneError || unprintable(r) {
			r = ' '
		}
		if b.Len()+utf8.RuneLen(r) > max {
			break
		}
		b.WriteRune(r)
	}
	return strings.TrimSpace(b.String())
}

// Cut shortens s to at most max bytes on a rune boundary.
func Cut(s string, max int) string {
	if len(s) <= max {
		return s
	}
	for max > 0 && !utf8.RuneStart(s[max]) {
		max--
	}
	return s[:max]
}

func unprintable(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r)
}
