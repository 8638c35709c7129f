package latchkey

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// CleanName trims a name people give to a factor or a device and reports whether it is 1 to
// max printable characters: letters, marks, numbers, punctuation, symbols and spaces. Control
// and format characters (zero-width spaces, right-to-left overrides) are refused: a name is
// shown on pages, in mails and in the audit trail, and must read as what it is.
func CleanName(name string, max int) (string, bool) {
	name = strings.TrimSpace(name)
	if name == "" || utf8.RuneCountInString(name) > max || strings.ContainsFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return "", false
	}
	return name, true
}

// CleanLine is free text on one line, like the reason an agent or administrator gives for an
// action: runs of white space (line breaks too) become one space, and the result must be
// valid UTF-8 of printable characters, at most max of them. It may be empty (the caller
// decides whether a reason is required). The text goes into the audit trail, which must
// take it on every database (PostgreSQL refuses NUL and invalid UTF-8) and show it as it is.
func CleanLine(s string, max int) (string, bool) {
	s = strings.Join(strings.Fields(s), " ")
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > max || strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return "", false
	}
	return s, true
}
