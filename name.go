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
