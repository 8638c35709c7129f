// Package totp implements RFC 6238 time-based one-time passwords as authenticator apps use
// them (SHA-1, 6 digits, 30-second steps), the otpauth:// Key URI format, QR images, and the
// verification rules Latchkey needs: a ±1 step window and a replay bound.
//
// It is shared by the server and the Latch app, so it imports no server package and not the
// domain package: only the standard library, pquerna/otp (HMAC and dynamic truncation) and
// boombuler/barcode (QR images).
package totp

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/boombuler/barcode"
	"github.com/boombuler/barcode/qr"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
)

// Period is the length of a time step in seconds.
const Period = 30

// Digits is the length of a code.
const Digits = 6

// SecretSize is the size of a generated seed in bytes: 160 bits, as RFC 4226 §4 recommends.
const SecretSize = 20

// Algorithm is the HMAC hash of a TOTP key, spelt as in otpauth:// URIs.
type Algorithm string

// The algorithms of RFC 6238. Authenticator apps reliably support only SHA1.
const (
	SHA1   Algorithm = "SHA1"
	SHA256 Algorithm = "SHA256"
	SHA512 Algorithm = "SHA512"
)

// ErrMalformedCode is returned by ParseCode for anything that is not a 6-digit code. Its
// message can be shown to a person as it is.
//
//lint:ignore ST1005 the message is a sentence shown to people.
var ErrMalformedCode = errors.New("Enter the 6-digit code from your authenticator app.")

// GenerateSecret returns a new 160-bit seed from crypto/rand.
func GenerateSecret() ([]byte, error) {
	b := make([]byte, SecretSize)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("generate totp secret: %w", err)
	}
	return b, nil
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// Encode returns the unpadded upper-case base32 form of a secret, as authenticator apps
// expect it.
func Encode(secret []byte) string { return b32.EncodeToString(secret) }

// Decode parses a base32 secret as people copy it: upper or lower case, with or without
// padding, with spaces or dashes between groups. An empty secret is an error.
func Decode(s string) ([]byte, error) {
	s = strings.ToUpper(strings.NewReplacer(" ", "", "\t", "", "-", "", "=", "").Replace(s))
	if s == "" {
		return nil, errors.New("totp: empty secret")
	}
	b, err := b32.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("totp: secret is not base32: %w", err)
	}
	if len(b) == 0 { // "A" or "AAA": base32 without padding drops a partial last byte
		return nil, errors.New("totp: empty secret")
	}
	return b, nil
}

// GroupKey splits a base32 key into groups of four characters separated by spaces, for
// reading aloud or typing. Decode accepts the result.
func GroupKey(key string) string {
	var b strings.Builder
	n := 0
	for _, r := range key {
		if n > 0 && n%4 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// Step returns the RFC 6238 time step of t: seconds since the Unix epoch divided by Period.
func Step(t time.Time) int64 { return t.Unix() / Period }

// Code returns the 6-digit HMAC-SHA-1 code of secret at step.
func Code(secret []byte, step int64) string { return CodeCustom(secret, step, Digits, SHA1) }

// CodeCustom returns the RFC 4226 code of secret at step with the given number of digits
// (6, 7 or 8) and algorithm ("" means SHA1). It returns "" for any other digits or algorithm,
// which matches no parsed code. The HMAC and dynamic truncation are pquerna/otp's; this
// package adds the window, the replay bound and the parsing rules Latchkey needs.
func CodeCustom(secret []byte, step int64, digits int, alg Algorithm) string {
	return codeB32(Encode(secret), step, digits, alg)
}

// codeB32 is CodeCustom for a secret already in base32, so that Verify encodes it once.
func codeB32(secret string, step int64, digits int, alg Algorithm) string {
	if digits < 6 || digits > 8 {
		return ""
	}
	opts := hotp.ValidateOpts{Digits: otp.Digits(digits)}
	switch alg {
	case SHA1, "":
		opts.Algorithm = otp.AlgorithmSHA1
	case SHA256:
		opts.Algorithm = otp.AlgorithmSHA256
	case SHA512:
		opts.Algorithm = otp.AlgorithmSHA512
	default:
		return ""
	}
	code, err := hotp.GenerateCodeCustom(secret, uint64(step), opts)
	if err != nil {
		// Encode always yields valid base32, so this does not happen; an empty code never
		// matches a parsed one.
		return ""
	}
	return code
}

// Verify reports whether code is the 6-digit code of secret for a step within one step of
// now's (T-1, T, T+1) that is greater than lastStep, and returns that step. Codes for T±2 and
// beyond are refused, and so are codes for steps ≤ lastStep: once the caller has stored the
// returned step as lastStep, that code and every earlier one are spent. Pass math.MinInt64
// as lastStep when no step has been used yet. code must already be well-formed (ParseCode).
// Each comparison is constant-time.
func Verify(secret []byte, code string, now time.Time, lastStep int64) (step int64, ok bool) {
	t := Step(now)
	enc := Encode(secret)
	for _, s := range [...]int64{t - 1, t, t + 1} {
		if s <= lastStep {
			continue
		}
		if subtle.ConstantTimeCompare([]byte(codeB32(enc, s, Digits, SHA1)), []byte(code)) == 1 {
			return s, true
		}
	}
	return 0, false
}

// maxCodeInput bounds the input ParseCode looks at: a code with generous spacing is far
// shorter.
const maxCodeInput = 64

// ParseCode accepts a code as people type or paste it and returns its six ASCII digits, or
// ErrMalformedCode. Spaces (also no-break and thin spaces) and hyphens or dashes anywhere are
// ignored, so "123456", " 123 456 ", "123-456" and "12 34 56" are all "123456". Any other
// character, including digits of other scripts (Arabic-Indic, full-width), is refused.
func ParseCode(s string) (string, error) {
	if len(s) > maxCodeInput {
		return "", ErrMalformedCode
	}
	var b [Digits]byte
	n := 0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			if n == Digits {
				return "", ErrMalformedCode
			}
			b[n] = byte(r)
			n++
		case isSeparator(r):
		default:
			return "", ErrMalformedCode
		}
	}
	if n != Digits {
		return "", ErrMalformedCode
	}
	return string(b[:]), nil
}

// isSeparator reports whether r is a space or a dash that people or apps put between the
// digits of a code.
func isSeparator(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\r',
		'\u00a0', // no-break space
		'\u2007', // figure space
		'\u2009', // thin space
		'\u202f', // narrow no-break space
		'-',
		'\u2010', // hyphen
		'\u2011', // non-breaking hyphen
		'\u2012', // figure dash
		'\u2013', // en dash
		'\u2212': // minus sign
		return true
	}
	return false
}

// URI returns the otpauth:// Key URI for an account, the form every common authenticator app
// accepts: otpauth://totp/Issuer:account?secret=BASE32&issuer=Issuer&algorithm=SHA1&digits=6&period=30.
// The colon between issuer and account is literal; spaces are %20, '+' is %2B. The Key URI
// Format forbids colons inside the issuer and the account: they are escaped as %3A, which
// ParseURI reads back as part of the name, but which some apps take for the separator.
func URI(issuer, account string, secret []byte) string {
	label := escapeLabel(issuer) + ":" + escapeLabel(account)
	return "otpauth://totp/" + label + "?secret=" + Encode(secret) + "&issuer=" + escapeQuery(issuer) +
		"&algorithm=SHA1&digits=6&period=30"
}

// escapeLabel escapes s for the label of an otpauth URI. url.PathEscape leaves ':' and '+'
// as they are; ':' would split the label and some apps read '+' as a space.
func escapeLabel(s string) string {
	return strings.NewReplacer(":", "%3A", "+", "%2B").Replace(url.PathEscape(s))
}

// escapeQuery escapes s for a query value with spaces as %20, which every app reads as a
// space ('+' is not read as a space by all of them).
func escapeQuery(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

// Key is a parsed otpauth://totp/ URI.
type Key struct {
	Issuer    string    // who issued the key; "" if the URI names none
	Account   string    // the account name; never ""
	Secret    []byte    // the seed, 10 to 128 bytes
	Digits    int       // 6 or 8
	Period    int       // seconds per step, 1 to 300
	Algorithm Algorithm // SHA1, SHA256 or SHA512
}

// Bounds on the secret ParseURI accepts. Below 80 bits a key is too weak to import; real
// services issue 80 to 512 bits.
const (
	minSecretSize = 10
	maxSecretSize = 128
)

// ParseURI parses an otpauth://totp/ Key URI. Defaults follow the Key URI Format: SHA1, 6
// digits, 30 seconds. The issuer parameter wins over the label's prefix. It returns an error
// for another scheme or type, a missing account, a secret that is not base32 or is shorter
// than 80 bits, and unsupported digits, periods or algorithms.
func ParseURI(raw string) (Key, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Key{}, fmt.Errorf("totp: not a URI: %w", err)
	}
	if u.Scheme != "otpauth" || !strings.EqualFold(u.Host, "totp") || u.User != nil || u.Opaque != "" {
		return Key{}, errors.New("totp: not an otpauth://totp/ URI")
	}
	k := Key{Digits: Digits, Period: Period, Algorithm: SHA1}
	// Split the label at its first literal colon before unescaping, so that an escaped
	// colon (%3A) stays inside the issuer or account. The Key URI Format also allows %3A
	// as the separator: without a literal colon, the first %3A separates.
	label := strings.TrimPrefix(u.EscapedPath(), "/")
	issuer, account, ok := strings.Cut(label, ":")
	if !ok {
		if i := strings.Index(strings.ToUpper(label), "%3A"); i >= 0 {
			issuer, account, ok = label[:i], label[i+3:], true
		}
	}
	if ok {
		if k.Issuer, err = url.PathUnescape(issuer); err != nil {
			return Key{}, fmt.Errorf("totp: bad issuer in label: %w", err)
		}
		label = account
	}
	if k.Account, err = url.PathUnescape(label); err != nil {
		return Key{}, fmt.Errorf("totp: bad account in label: %w", err)
	}
	k.Issuer, k.Account = strings.TrimSpace(k.Issuer), strings.TrimSpace(k.Account)
	if k.Account == "" {
		return Key{}, errors.New("totp: the URI names no account")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Key{}, fmt.Errorf("totp: bad query: %w", err)
	}
	if k.Secret, err = Decode(q.Get("secret")); err != nil {
		return Key{}, err
	}
	if len(k.Secret) < minSecretSize || len(k.Secret) > maxSecretSize {
		return Key{}, fmt.Errorf("totp: secret of %d bytes, want %d to %d", len(k.Secret), minSecretSize, maxSecretSize)
	}
	if v := strings.TrimSpace(q.Get("issuer")); v != "" {
		k.Issuer = v
	}
	if v := q.Get("digits"); v != "" {
		if k.Digits, err = strconv.Atoi(v); err != nil || (k.Digits != 6 && k.Digits != 8) {
			return Key{}, fmt.Errorf("totp: digits must be 6 or 8, not %q", v)
		}
	}
	if v := q.Get("period"); v != "" {
		if k.Period, err = strconv.Atoi(v); err != nil || k.Period < 1 || k.Period > 300 {
			return Key{}, fmt.Errorf("totp: period must be 1 to 300 seconds, not %q", v)
		}
	}
	if v := q.Get("algorithm"); v != "" {
		switch a := Algorithm(strings.ToUpper(v)); a {
		case SHA1, SHA256, SHA512:
			k.Algorithm = a
		default:
			return Key{}, fmt.Errorf("totp: unknown algorithm %q", v)
		}
	}
	return k, nil
}

// quietZone is the white border a QR code needs around it, in modules (ISO/IEC 18004).
const quietZone = 4

// QRPNG renders content as a black-on-white QR code PNG of size×size pixels with medium
// error correction and a quiet zone of at least four modules, so that it scans on any
// background. It returns an error if size is too small for whole-pixel modules.
func QRPNG(content string, size int) ([]byte, error) {
	code, err := qr.Encode(content, qr.M, qr.Auto)
	if err != nil {
		return nil, fmt.Errorf("encode qr: %w", err)
	}
	n := code.Bounds().Dx()
	f := size / (n + 2*quietZone)
	if f < 1 {
		return nil, fmt.Errorf("qr code of %d modules needs at least %d pixels, not %d", n, n+2*quietZone, size)
	}
	scaled, err := barcode.Scale(code, n*f, n*f)
	if err != nil {
		return nil, fmt.Errorf("scale qr: %w", err)
	}
	// A two-colour palette makes a 1-bit PNG; index 0 is white, so the canvas starts white.
	img := image.NewPaletted(image.Rect(0, 0, size, size), color.Palette{color.White, color.Black})
	off := (size - n*f) / 2
	draw.Draw(img, image.Rect(off, off, off+n*f, off+n*f), scaled, image.Point{}, draw.Src)
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("encode png: %w", err)
	}
	return buf.Bytes(), nil
}

// DataURL returns a data: URL for a PNG image, for an <img src> that needs no request.
func DataURL(png []byte) string {
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(png)
}
