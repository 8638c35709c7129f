package login

import "github.com/mtibben/confusables"

// UsernameKey is a normalised username's look-alike key: its skeleton after UTS #39
// (Unicode's confusables table, through github.com/mtibben/confusables), which no two users
// may share. "mike" and "rnike", "paypal" and an all-Cyrillic "раураl", "bill1" and "billl"
// have one key: on a page, in a mail or in the audit trail they read as the same name.
// ValidUsername refuses names that mix alphabets; this catches those that look alike whole.
func UsernameKey(username string) string {
	return confusables.Skeleton(username)
}
