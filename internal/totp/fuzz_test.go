package totp_test

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/latchkey/latchkey/internal/totp"
)

// FuzzURIFromParts complements FuzzParseURI (totp_test.go), which starts from a URI: here the
// issuer, account and secret are arbitrary, and what URI writes, ParseURI must read back
// exactly (escaping of ':', '+', '%', spaces, non-ASCII and invalid UTF-8 included).
func FuzzURIFromParts(f *testing.F) {
	secret := []byte("12345678901234567890")
	f.Add("Latchkey", "alice", secret)
	f.Add("ACME Co", "alice@example.com", secret)
	f.Add("a:b", "c:d", secret)
	f.Add("a+b%20c", "d+e%3Af", secret)
	f.Add("", "bob", secret)
	f.Add("Ünïcødé 名前", "user/with/slashes?x=y#z", bytes.Repeat([]byte{0xff}, 128))
	f.Add("\xff\xfe", "\x00", []byte("0123456789"))
	f.Fuzz(func(t *testing.T, issuer, account string, secret []byte) {
		uri := totp.URI(issuer, account, secret)
		k, err := totp.ParseURI(uri)
		valid := account != "" && strings.TrimSpace(account) == account && strings.TrimSpace(issuer) == issuer &&
			len(secret) >= 10 && len(secret) <= 128
		if !valid {
			// Leading or trailing spaces are trimmed, short secrets refused: no exact round
			// trip to check, but never a panic, and never a key ParseURI would not accept.
			if err == nil && (k.Account == "" || len(k.Secret) < 10) {
				t.Fatalf("ParseURI(%q) accepted %+v", uri, k)
			}
			return
		}
		if err != nil {
			t.Fatalf("ParseURI(URI(%q, %q, %x)) = %v", issuer, account, secret, err)
		}
		if k.Issuer != issuer || k.Account != account || !bytes.Equal(k.Secret, secret) || k.Digits != 6 || k.Period != 30 || k.Algorithm != totp.SHA1 {
			t.Fatalf("ParseURI(%q) = %+v, want issuer %q account %q", uri, k, issuer, account)
		}
		if strings.ContainsAny(uri, " \n\r\t#") || (!utf8.ValidString(uri)) {
			t.Fatalf("URI(%q, %q, …) = %q: unescaped characters", issuer, account, uri)
		}
	})
}

// FuzzDecode: the secret decoder of `latch add` and the enrolment page never panics; what it
// decodes, Encode writes back in a form Decode reads to the same bytes, also grouped for
// reading and in lower case.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "gezd gnbv gy3t qojq", "GEZD-GNBV", "GEZDGNBV====", "", " ", "A", "1", "Ä", "MZXW6===", "====GEZD"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := totp.Decode(s)
		if err != nil {
			if b != nil {
				t.Fatalf("Decode(%q) = %x with error %v", s, b, err)
			}
			return
		}
		if len(b) == 0 {
			t.Fatalf("Decode(%q) accepted an empty secret", s)
		}
		enc := totp.Encode(b)
		for _, form := range []string{enc, strings.ToLower(enc), totp.GroupKey(enc)} {
			if again, err := totp.Decode(form); err != nil || !bytes.Equal(again, b) {
				t.Fatalf("Decode(%q) = %x, %v, want %x (from %q)", form, again, err, b, s)
			}
		}
	})
}
