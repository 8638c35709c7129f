package totp_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"image"
	"image/png"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/totp"
	"github.com/latchkey/latchkey/internal/totp/qrdecode"
)

// rfcSeed is the seed of RFC 6238 Appendix B for SHA-1; the SHA-256 and SHA-512 vectors use
// it repeated to 32 and 64 bytes.
var rfcSeed = []byte("12345678901234567890")

// TestRFC6238Vectors checks all 18 test vectors of RFC 6238 Appendix B.
func TestRFC6238Vectors(t *testing.T) {
	seeds := map[totp.Algorithm][]byte{
		totp.SHA1:   rfcSeed,
		totp.SHA256: []byte("12345678901234567890123456789012"),
		totp.SHA512: []byte("1234567890123456789012345678901234567890123456789012345678901234"),
	}
	tests := []struct {
		unix int64
		step int64 // T in hex in the RFC's table
		alg  totp.Algorithm
		want string
	}{
		{59, 0x1, totp.SHA1, "94287082"},
		{59, 0x1, totp.SHA256, "46119246"},
		{59, 0x1, totp.SHA512, "90693936"},
		{1111111109, 0x23523EC, totp.SHA1, "07081804"},
		{1111111109, 0x23523EC, totp.SHA256, "68084774"},
		{1111111109, 0x23523EC, totp.SHA512, "25091201"},
		{1111111111, 0x23523ED, totp.SHA1, "14050471"},
		{1111111111, 0x23523ED, totp.SHA256, "67062674"},
		{1111111111, 0x23523ED, totp.SHA512, "99943326"},
		{1234567890, 0x273EF07, totp.SHA1, "89005924"},
		{1234567890, 0x273EF07, totp.SHA256, "91819424"},
		{1234567890, 0x273EF07, totp.SHA512, "93441116"},
		{2000000000, 0x3F940AA, totp.SHA1, "69279037"},
		{2000000000, 0x3F940AA, totp.SHA256, "90698825"},
		{2000000000, 0x3F940AA, totp.SHA512, "38618901"},
		{20000000000, 0x27BC86AA, totp.SHA1, "65353130"},
		{20000000000, 0x27BC86AA, totp.SHA256, "77737706"},
		{20000000000, 0x27BC86AA, totp.SHA512, "47863826"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d", tt.alg, tt.unix), func(t *testing.T) {
			step := totp.Step(time.Unix(tt.unix, 0).UTC())
			if step != tt.step {
				t.Errorf("Step(%d) = %#x, want %#x", tt.unix, step, tt.step)
			}
			if got := totp.CodeCustom(seeds[tt.alg], step, 8, tt.alg); got != tt.want {
				t.Errorf("CodeCustom(seed, %#x, 8, %s) = %s, want %s", step, tt.alg, got, tt.want)
			}
			// A 6-digit code is the 8-digit one modulo 10^6: its last six digits.
			if got, want := totp.CodeCustom(seeds[tt.alg], step, 6, tt.alg), tt.want[2:]; got != want {
				t.Errorf("CodeCustom(seed, %#x, 6, %s) = %s, want %s", step, tt.alg, got, want)
			}
			if tt.alg == totp.SHA1 {
				if got, want := totp.Code(seeds[tt.alg], step), tt.want[2:]; got != want {
					t.Errorf("Code(seed, %#x) = %s, want %s", step, got, want)
				}
			}
		})
	}
}

func TestCodeCustomRefusesUnknownShapes(t *testing.T) {
	tests := []struct {
		name   string
		digits int
		alg    totp.Algorithm
		want   string
	}{
		{"default algorithm is SHA1", 6, "", "287082"},
		{"5 digits", 5, totp.SHA1, ""},
		{"9 digits", 9, totp.SHA1, ""},
		{"MD5", 6, "MD5", ""},
		{"lower-case sha1", 6, "sha1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := totp.CodeCustom(rfcSeed, 1, tt.digits, tt.alg); got != tt.want {
				t.Errorf("CodeCustom(seed, 1, %d, %q) = %q, want %q", tt.digits, tt.alg, got, tt.want)
			}
		})
	}
}

func TestStep(t *testing.T) {
	tests := []struct {
		name string
		t    time.Time
		want int64
	}{
		{"epoch", time.Unix(0, 0), 0},
		{"last second of step 0", time.Unix(29, 999_999_999), 0},
		{"first second of step 1", time.Unix(30, 0), 1},
		{"time zone does not matter", time.Unix(1_700_000_000, 0).In(time.FixedZone("UTC+14", 14*3600)), 1_700_000_000 / 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := totp.Step(tt.t); got != tt.want {
				t.Errorf("Step(%v) = %d, want %d", tt.t, got, tt.want)
			}
		})
	}
}

func TestVerifyWindow(t *testing.T) {
	secret := rfcSeed
	// 10 seconds into a step, so that T-1 and T+1 are whole steps away from the edges.
	now := time.Unix(1_700_000_010, 0)
	T := totp.Step(now)
	tests := []struct {
		name   string
		offset int64
		ok     bool
	}{
		{"T-3", -3, false},
		{"T-2", -2, false},
		{"T-1", -1, true},
		{"T", 0, true},
		{"T+1", 1, true},
		{"T+2", 2, false},
		{"T+3", 3, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code := totp.Code(secret, T+tt.offset)
			step, ok := totp.Verify(secret, code, now, math.MinInt64)
			if ok != tt.ok || (ok && step != T+tt.offset) {
				t.Errorf("Verify(code of T%+d) = T%+d, %v, want T%+d, %v", tt.offset, step-T, ok, tt.offset, tt.ok)
			}
		})
	}
	t.Run("other secret", func(t *testing.T) {
		other := []byte("09876543210987654321")
		if _, ok := totp.Verify(other, totp.Code(secret, T), now, math.MinInt64); ok {
			t.Error("Verify(code of another secret) = true, want false")
		}
	})
	t.Run("empty code", func(t *testing.T) {
		if _, ok := totp.Verify(secret, "", now, math.MinInt64); ok {
			t.Error(`Verify("") = true, want false`)
		}
	})
}

// TestVerifyReplay: after step S is accepted (and stored as lastStep), a code for any step
// ≤ S is refused, even inside the window.
func TestVerifyReplay(t *testing.T) {
	secret := rfcSeed
	now := time.Unix(1_700_000_010, 0)
	T := totp.Step(now)
	tests := []struct {
		name     string
		code     int64 // step of the code, relative to T
		lastStep int64 // relative to T
		ok       bool
	}{
		{"T, nothing used", 0, math.MinInt64, true},
		{"T, T-2 used", 0, -2, true},
		{"T, T-1 used", 0, -1, true},
		{"T again after T", 0, 0, false},
		{"T-1 after T", -1, 0, false},
		{"T+1 after T", 1, 0, true},
		{"T-1 after T-1", -1, -1, false},
		{"T after T+1", 0, 1, false},
		{"T+1 after T+1", 1, 1, false},
		{"T-1, T-2 used", -1, -2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			last := tt.lastStep
			if last != math.MinInt64 {
				last += T
			}
			step, ok := totp.Verify(secret, totp.Code(secret, T+tt.code), now, last)
			if ok != tt.ok || (ok && step != T+tt.code) {
				t.Errorf("Verify(code of T%+d, lastStep T%+d) = T%+d, %v, want %v", tt.code, tt.lastStep, step-T, ok, tt.ok)
			}
		})
	}
	t.Run("sequence", func(t *testing.T) {
		last := int64(math.MinInt64)
		code := totp.Code(secret, T)
		step, ok := totp.Verify(secret, code, now, last)
		if !ok || step != T {
			t.Fatalf("first Verify = T%+d, %v, want T, true", step-T, ok)
		}
		last = step
		if _, ok := totp.Verify(secret, code, now, last); ok {
			t.Error("second Verify of the same code = true, want false")
		}
		// Thirty seconds later the same code is T-1 of the new now: still spent.
		if _, ok := totp.Verify(secret, code, now.Add(30*time.Second), last); ok {
			t.Error("Verify of the spent code one step later = true, want false")
		}
	})
}

func TestParseCode(t *testing.T) {
	tests := []struct {
		name, in, want string // want "" means ErrMalformedCode
	}{
		{"plain", "123456", "123456"},
		{"leading zeros", "000001", "000001"},
		{"surrounding spaces", " 123456 ", "123456"},
		{"tab and newline", "\t123456\n", "123456"},
		{"space in the middle", "123 456", "123456"},
		{"pairs", "12 34 56", "123456"},
		{"two spaces", "123  456", "123456"},
		{"hyphen-minus in the middle", "123-456", "123456"},
		{"en dash", "123\u2013456", "123456"},
		{"no-break space", "123\u00a0456", "123456"},
		{"narrow no-break space", "123\u202f456", "123456"},
		{"five digits", "12345", ""},
		{"seven digits", "1234567", ""},
		{"eight-digit code", "12345678", ""},
		{"letter", "12a456", ""},
		{"letter O for zero", "12345O", ""},
		{"empty", "", ""},
		{"only spaces", "      ", ""},
		{"Arabic-Indic digits", "١٢٣٤٥٦", ""},
		{"Extended Arabic-Indic digits", "۱۲۳۴۵۶", ""},
		{"Devanagari digits", "१२३४५६", ""},
		{"full-width digits", "１２３４５６", ""},
		{"superscript digit", "12345\u00b9", ""},
		{"NUL", "123456\x00", ""},
		{"dot", "123.456", ""},
		{"plus", "+123456", ""},
		{"invalid UTF-8", "123\xff456", ""},
		{"very long", "123456" + strings.Repeat(" ", 100), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := totp.ParseCode(tt.in)
			if tt.want == "" {
				if !errors.Is(err, totp.ErrMalformedCode) || got != "" {
					t.Errorf("ParseCode(%q) = %q, %v, want ErrMalformedCode", tt.in, got, err)
				}
				return
			}
			if got != tt.want || err != nil {
				t.Errorf("ParseCode(%q) = %q, %v, want %q, nil", tt.in, got, err, tt.want)
			}
		})
	}
	if got, want := totp.ErrMalformedCode.Error(), "Enter the 6-digit code from your authenticator app."; got != want {
		t.Errorf("ErrMalformedCode = %q, want %q", got, want)
	}
}

func TestURI(t *testing.T) {
	tests := []struct {
		name, issuer, account, want string
	}{
		{
			"plain", "Latchkey", "alice",
			"otpauth://totp/Latchkey:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Latchkey&algorithm=SHA1&digits=6&period=30",
		},
		{
			"spaces and email", "Acme Corp", "alice@example.com",
			"otpauth://totp/Acme%20Corp:alice@example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Acme%20Corp&algorithm=SHA1&digits=6&period=30",
		},
		{
			"plus, ampersand and colon", "A&B: Tools", "bob+tag@example.com",
			"otpauth://totp/A&B%3A%20Tools:bob%2Btag@example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=A%26B%3A%20Tools&algorithm=SHA1&digits=6&period=30",
		},
		{
			"non-ASCII", "Zürich Bank", "jürgen",
			"otpauth://totp/Z%C3%BCrich%20Bank:j%C3%BCrgen?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Z%C3%BCrich%20Bank&algorithm=SHA1&digits=6&period=30",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := totp.URI(tt.issuer, tt.account, rfcSeed)
			if got != tt.want {
				t.Fatalf("URI(%q, %q) =\n%s\nwant\n%s", tt.issuer, tt.account, got, tt.want)
			}
			k, err := totp.ParseURI(got)
			if err != nil {
				t.Fatalf("ParseURI(%q) = %v", got, err)
			}
			want := totp.Key{Issuer: tt.issuer, Account: tt.account, Secret: rfcSeed, Digits: 6, Period: 30, Algorithm: totp.SHA1}
			if !keysEqual(k, want) {
				t.Errorf("ParseURI(URI(%q, %q)) = %+v, want %+v", tt.issuer, tt.account, k, want)
			}
		})
	}
}

func keysEqual(a, b totp.Key) bool {
	return a.Issuer == b.Issuer && a.Account == b.Account && bytes.Equal(a.Secret, b.Secret) &&
		a.Digits == b.Digits && a.Period == b.Period && a.Algorithm == b.Algorithm
}

func TestParseURI(t *testing.T) {
	const secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ" // rfcSeed
	tests := []struct {
		name string
		uri  string
		want totp.Key
	}{
		{"defaults", "otpauth://totp/alice?secret=" + secret,
			totp.Key{Account: "alice", Secret: rfcSeed, Digits: 6, Period: 30, Algorithm: totp.SHA1}},
		{"issuer from label", "otpauth://totp/Example:alice@example.com?secret=" + secret,
			totp.Key{Issuer: "Example", Account: "alice@example.com", Secret: rfcSeed, Digits: 6, Period: 30, Algorithm: totp.SHA1}},
		{"issuer parameter wins", "otpauth://totp/Old:alice?secret=" + secret + "&issuer=New",
			totp.Key{Issuer: "New", Account: "alice", Secret: rfcSeed, Digits: 6, Period: 30, Algorithm: totp.SHA1}},
		{"%3A separator and %20 before the account", "otpauth://totp/Example%3A%20alice?secret=" + secret,
			totp.Key{Issuer: "Example", Account: "alice", Secret: rfcSeed, Digits: 6, Period: 30, Algorithm: totp.SHA1}},
		{"plus in the query is a space", "otpauth://totp/a?secret=" + secret + "&issuer=Acme+Corp",
			totp.Key{Issuer: "Acme Corp", Account: "a", Secret: rfcSeed, Digits: 6, Period: 30, Algorithm: totp.SHA1}},
		{"lower-case padded secret", "otpauth://totp/a?secret=gezdgnbvgy3tqojqgezdgnbvgy3tqojq======",
			totp.Key{Account: "a", Secret: rfcSeed, Digits: 6, Period: 30, Algorithm: totp.SHA1}},
		{"8 digits, 60 s, sha256", "otpauth://totp/a?secret=" + secret + "&digits=8&period=60&algorithm=sha256",
			totp.Key{Account: "a", Secret: rfcSeed, Digits: 8, Period: 60, Algorithm: totp.SHA256}},
		{"80-bit secret", "otpauth://totp/a?secret=GEZDGNBVGY3TQOJQ",
			totp.Key{Account: "a", Secret: rfcSeed[:10], Digits: 6, Period: 30, Algorithm: totp.SHA1}},
		{"upper-case type", "otpauth://TOTP/a?secret=" + secret,
			totp.Key{Account: "a", Secret: rfcSeed, Digits: 6, Period: 30, Algorithm: totp.SHA1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := totp.ParseURI(tt.uri)
			if err != nil || !keysEqual(got, tt.want) {
				t.Errorf("ParseURI(%q) = %+v, %v, want %+v, nil", tt.uri, got, err, tt.want)
			}
		})
	}
}

func TestParseURIErrors(t *testing.T) {
	const secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
	tests := []struct {
		name, uri string
	}{
		{"empty", ""},
		{"http", "http://totp/a?secret=" + secret},
		{"hotp", "otpauth://hotp/a?secret=" + secret + "&counter=1"},
		{"opaque", "otpauth:totp/a?secret=" + secret},
		{"user info", "otpauth://x@totp/a?secret=" + secret},
		{"no secret", "otpauth://totp/a"},
		{"empty secret", "otpauth://totp/a?secret="},
		{"secret not base32", "otpauth://totp/a?secret=!!!!"},
		{"secret with 1 and 8", "otpauth://totp/a?secret=GEZDGNBV18"},
		{"secret below 80 bits", "otpauth://totp/a?secret=GEZDGNBV"},
		{"secret above 1024 bits", "otpauth://totp/a?secret=" + strings.Repeat("A", 216)},
		{"no account", "otpauth://totp/?secret=" + secret},
		{"only an issuer", "otpauth://totp/Example:?secret=" + secret},
		{"blank account", "otpauth://totp/Example:%20%20?secret=" + secret},
		{"bad escape in label", "otpauth://totp/a%zz?secret=" + secret},
		{"bad escape in query", "otpauth://totp/a?secret=" + secret + "&issuer=%zz"},
		{"digits 7", "otpauth://totp/a?secret=" + secret + "&digits=7"},
		{"digits not a number", "otpauth://totp/a?secret=" + secret + "&digits=six"},
		{"period 0", "otpauth://totp/a?secret=" + secret + "&period=0"},
		{"period negative", "otpauth://totp/a?secret=" + secret + "&period=-30"},
		{"period too long", "otpauth://totp/a?secret=" + secret + "&period=301"},
		{"algorithm MD5", "otpauth://totp/a?secret=" + secret + "&algorithm=MD5"},
		{"not a URI", "otpauth://totp/a\x7f?secret=" + secret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if k, err := totp.ParseURI(tt.uri); err == nil {
				t.Errorf("ParseURI(%q) = %+v, nil, want an error", tt.uri, k)
			}
		})
	}
}

func TestSecretEncoding(t *testing.T) {
	secret, err := totp.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	if len(secret) != 20 {
		t.Fatalf("GenerateSecret() = %d bytes, want 20 (160 bits)", len(secret))
	}
	if other, _ := totp.GenerateSecret(); bytes.Equal(secret, other) {
		t.Fatal("GenerateSecret() twice = the same secret")
	}
	enc := totp.Encode(secret)
	if len(enc) != 32 || strings.ContainsAny(enc, "=abcdefghijklmnopqrstuvwxyz") {
		t.Errorf("Encode = %q, want 32 upper-case base32 characters without padding", enc)
	}
	tests := []struct {
		name, in string
	}{
		{"as encoded", enc},
		{"lower case", strings.ToLower(enc)},
		{"grouped", totp.GroupKey(enc)},
		{"grouped lower case", strings.ToLower(totp.GroupKey(enc))},
		{"padded", enc + "===="},
		{"dashes", strings.ReplaceAll(totp.GroupKey(enc), " ", "-")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := totp.Decode(tt.in)
			if err != nil || !bytes.Equal(got, secret) {
				t.Errorf("Decode(%q) = %x, %v, want %x", tt.in, got, err, secret)
			}
		})
	}
	for _, bad := range []string{"", "   ", "GEZDGNB!", "GEZDGNBV1"} {
		if got, err := totp.Decode(bad); err == nil {
			t.Errorf("Decode(%q) = %x, nil, want an error", bad, got)
		}
	}
}

func TestGroupKey(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"empty", "", ""},
		{"short", "ABC", "ABC"},
		{"four", "ABCD", "ABCD"},
		{"ragged", "ABCDEFGHIJ", "ABCD EFGH IJ"},
		{"32 characters", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := totp.GroupKey(tt.in); got != tt.want {
				t.Errorf("GroupKey(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestQRRoundTrip(t *testing.T) {
	secret, err := totp.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		uri  string
		size int
	}{
		{"enrolment", totp.URI("Latchkey", "alice", secret), 256},
		{"long names", totp.URI("Acme Corporation Identity Service", "someone.with.a.long.name+tag@example.com", secret), 320},
		{"small", totp.URI("L", "a", secret), 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := totp.QRPNG(tt.uri, tt.size)
			if err != nil {
				t.Fatal(err)
			}
			dataURL := totp.DataURL(data)
			b64, ok := strings.CutPrefix(dataURL, "data:image/png;base64,")
			if !ok {
				t.Fatalf("DataURL = %.40q…, want data:image/png;base64,…", dataURL)
			}
			raw, err := base64.StdEncoding.DecodeString(b64)
			if err != nil || !bytes.Equal(raw, data) {
				t.Fatalf("DataURL does not carry the PNG: %v", err)
			}
			img, err := png.Decode(bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			if b := img.Bounds(); b.Dx() != tt.size || b.Dy() != tt.size {
				t.Errorf("QRPNG(…, %d) is %v, want %d×%d", tt.size, b, tt.size, tt.size)
			}
			if !whiteBorder(img, 4) {
				t.Error("QRPNG has no white quiet zone at its edge")
			}
			got, err := qrdecode.Decode(raw)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.uri {
				t.Errorf("qrdecode.Decode(QRPNG(%q)) = %q", tt.uri, got)
			}
		})
	}
	t.Run("too small", func(t *testing.T) {
		if _, err := totp.QRPNG(totp.URI("Latchkey", "alice", secret), 20); err == nil {
			t.Error("QRPNG(…, 20) = nil error, want an error")
		}
	})
}

// whiteBorder reports whether the outer n pixels of img are white all round.
func whiteBorder(img image.Image, n int) bool {
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			inner := x >= b.Min.X+n && x < b.Max.X-n && y >= b.Min.Y+n && y < b.Max.Y-n
			if inner {
				continue
			}
			if r, g, bl, _ := img.At(x, y).RGBA(); r&g&bl != 0xffff {
				return false
			}
		}
	}
	return true
}

func FuzzParseCode(f *testing.F) {
	for _, s := range []string{"123456", "123 456", "123-456", " 000000 ", "", "abc", "１２３４５６", "١٢٣٤٥٦", "1234567"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := totp.ParseCode(s)
		if err != nil {
			if !errors.Is(err, totp.ErrMalformedCode) || got != "" {
				t.Fatalf("ParseCode(%q) = %q, %v, want \"\" with ErrMalformedCode", s, got, err)
			}
			return
		}
		if len(got) != 6 || strings.Trim(got, "0123456789") != "" {
			t.Fatalf("ParseCode(%q) = %q: not six ASCII digits", s, got)
		}
		if again, err := totp.ParseCode(got); again != got || err != nil {
			t.Fatalf("ParseCode(%q) = %q, %v, want it unchanged", got, again, err)
		}
	})
}

func FuzzParseURI(f *testing.F) {
	f.Add("otpauth://totp/Latchkey:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Latchkey&algorithm=SHA1&digits=6&period=30")
	f.Add("otpauth://totp/a?secret=gezdgnbvgy3tqojq&digits=8&period=60&algorithm=sha256")
	f.Add("otpauth://totp/A%3A%20B:c%2Bd@e?secret=GEZDGNBVGY3TQOJQ")
	f.Add("otpauth://hotp/a?secret=GEZD")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := totp.ParseURI(s)
		if err != nil {
			return
		}
		if len(k.Secret) < 10 || k.Account == "" || (k.Digits != 6 && k.Digits != 8) || k.Period < 1 || k.Period > 300 {
			t.Fatalf("ParseURI(%q) accepted an invalid key %+v", s, k)
		}
		switch k.Algorithm {
		case totp.SHA1, totp.SHA256, totp.SHA512:
		default:
			t.Fatalf("ParseURI(%q) accepted algorithm %q", s, k.Algorithm)
		}
		// What URI writes, ParseURI reads back (URI always writes SHA1, 6 digits, 30 s).
		if k.Issuer != "" {
			back, err := totp.ParseURI(totp.URI(k.Issuer, k.Account, k.Secret))
			want := totp.Key{Issuer: k.Issuer, Account: k.Account, Secret: k.Secret, Digits: 6, Period: 30, Algorithm: totp.SHA1}
			if err != nil || !keysEqual(back, want) {
				t.Fatalf("ParseURI(URI(%+v)) = %+v, %v, want %+v", k, back, err, want)
			}
		}
	})
}

// BenchmarkVerify measures one TOTP verification in the worst case: the code matches the last
// of the three window steps.
func BenchmarkVerify(b *testing.B) {
	secret, _ := totp.GenerateSecret()
	now := time.Now()
	code := totp.Code(secret, totp.Step(now)+1)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := totp.Verify(secret, code, now, math.MinInt64); !ok {
			b.Fatal("not verified")
		}
	}
}

// BenchmarkCode measures one 6-digit HMAC-SHA-1 code.
func BenchmarkCode(b *testing.B) {
	secret, _ := totp.GenerateSecret()
	b.ReportAllocs()
	for b.Loop() {
		totp.Code(secret, 12345)
	}
}

// BenchmarkParseCode measures parsing a typed code with a space.
func BenchmarkParseCode(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := totp.ParseCode(" 123 456 "); err != nil {
			b.Fatal(err)
		}
	}
}
