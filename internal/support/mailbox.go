package support

import (
	"strings"

	"golang.org/x/net/idna"
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// MailboxKey is the mailbox an address (one that NewTicket's validation accepted) reaches, in
// the form the per-address ticket limit counts, so that one mailbox spelled several ways
// counts once:
//   - the local part case-folded in compatibility form (NFKC with Unicode case folding:
//     "Alice", "ALICE" and their full-width letters are one), without a +tag ("alice+1" is alice:
//     the tag is the subaddress most providers deliver to the same mailbox);
//   - the domain as its IDNA A-label in lower case, without a final dot (UTS #46 mapping:
//     "MÜller.de", "müller.de" and "xn--mller-kva.de" are one), or case-folded like the
//     local part when it is not a valid IDN.
//
// The key only counts; mail still goes to the address as the requester wrote it. Providers'
// own rules beyond these (Gmail ignores dots) are not guessed at.
func MailboxKey(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return fold(addr)
	}
	local, domain := fold(addr[:at]), strings.TrimSuffix(addr[at+1:], ".")
	if i := strings.IndexByte(local, '+'); i > 0 {
		local = local[:i]
	}
	if a, err := idna.Lookup.ToASCII(domain); err == nil {
		domain = strings.ToLower(a)
	} else {
		domain = fold(domain)
	}
	return local + "@" + domain
}

// fold is s in NFKC with Unicode case folding (as NFKC_Casefold, closely enough for counting).
func fold(s string) string {
	return norm.NFKC.String(cases.Fold().String(norm.NFKC.String(s)))
}
