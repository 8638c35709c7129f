// Package totp implements RFC 6238 time-based one-time passwords as authenticator apps use
// them (SHA-1, 6 digits, 30-second steps), the otpauth:// Key URI format, QR images, and the
// verification rules Latchkey needs: a ±1 step window and a replay bound.
//
// It is shared by the server and the Latch app, so it imports no server package.
package totp

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
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

// Period is the length of a time step.
const Period = 30

// Digits is the length of a code.
const Digits = 6

// SecretSize is the size of a generated seed: 160 bits, as RFC 4226 §4 recommends.
const SecretSize = 20

// Algorithm is the HMAC hash of a TOTP key.
type Algorithm string

// Algorithms.
const (
	SHA1   Algorithm = "SHA1"
	SHA256 Algorithm = "SHA256"
	SHA512 Algorithm = "SHA512"
)

// ErrMalformedCode is returned by ParseCode for anything that is not six digits.
var ErrMalformedCode = errors.New("totp: a code is six digits")

// GenerateSecret returns a new 160-bit seed from crypto/rand.
func GenerateSecret() ([]byte, error) {
	b := make([]byte, SecretSize)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("generate totp secret: %w", err)
	}
	return b, nil
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// Encode returns the unpadded base32 form of a secret, as authenticator apps expect it.
func Encode(secret []byte) string { return b32.EncodeToString(secret) }

// Decode parses a base32 secret, tolerating lower case, spaces, dashes and padding.
func Decode(s string) ([]byte, error) {
	s = strings.ToUpper(strings.NewReplacer(" ", "", "-", "", "=", "").Replace(s))
	if s == "" {
		return nil, errors.New("totp: empty secret")
	}
	b, err := b32.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("totp: secret is not base32: %w", err)
	}
	return b, nil
}

// GroupKey splits a base32 key into groups of four for reading aloud or typing.
func GroupKey(key string) string {
	var b strings.Builder
	for i, r := range key {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Step returns the RFC 6238 time step of t.
func Step(t time.Time) int64 { return t.Unix() / Period }

// Code returns the 6-digit SHA-1 code of secret at step.
func Code(secret []byte, step int64) string { return CodeCustom(secret, step, Digits, SHA1) }

// CodeCustom returns the RFC 4226 code with the given digits (6 or 8) and algorithm. The
// HMAC and dynamic truncation are pquerna/otp's; this package adds the window, the replay
// bound and the parsing rules Latchkey needs.
func CodeCustom(secret []byte, step int64, digits int, alg Algorithm) string {
	return codeB32(Encode(secret), step, digits, alg)
}

// codeB32 is CodeCustom for a secret already in base32, so Verify encodes it once.
func codeB32(secret string, step int64, digits int, alg Algorithm) string {
	opts := hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}
	if digits == 8 {
		opts.Digits = otp.DigitsEight
	}
	switch alg {
	case SHA256:
		opts.Algorithm = otp.AlgorithmSHA256
	case SHA512:
		opts.Algorithm = otp.AlgorithmSHA512
	}
	code, err := hotp.GenerateCodeCustom(secret, uint64(step), opts)
	if err != nil {
		// Encode always yields valid base32, so this is unreachable; an empty code never
		// matches a parsed one.
		return ""
	}
	return code
}

// Verify reports whether code is the code of secret for a step within one step of now's
// (T-1, T, T+1) that is greater than lastStep, and returns that step. Codes for T±2 and
// beyond, and codes for steps ≤ lastStep (already used), are refused. code must already be
// well-formed (ParseCode). The comparison is constant-time.
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

// ParseCode accepts a code as people type or paste it ("123456", "123 456", "123-456",
// surrounding spaces) and returns its six ASCII digits, or ErrMalformedCode.
func ParseCode(s string) (string, error) {
	var b [Digits]byte
	n := 0
	s = strings.TrimSpace(s)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			if n == Digits {
				return "", ErrMalformedCode
			}
			b[n] = c
			n++
		case (c == ' ' || c == '-') && n == 3:
		default:
			return "", ErrMalformedCode
		}
	}
	if n != Digits {
		return "", ErrMalformedCode
	}
	return string(b[:]), nil
}

// URI returns the otpauth:// Key URI for an account, the form every common authenticator app
// accepts: otpauth://totp/Issuer:account?secret=...&issuer=Issuer&algorithm=SHA1&digits=6&period=30.
func URI(issuer, account string, secret []byte) string {
	label := url.PathEscape(issuer) + ":" + url.PathEscape(account)
	q := "secret=" + Encode(secret) + "&issuer=" + url.QueryEscape(issuer) + "&algorithm=SHA1&digits=6&period=30"
	return "otpauth://totp/" + label + "?" + strings.ReplaceAll(q, "+", "%20")
}

// Key is a parsed otpauth:// URI.
type Key struct {
	Issuer    string
	Account   string
	Secret    []byte
	Digits    int
	Period    int
	Algorithm Algorithm
}

// ParseURI parses an otpauth://totp/ URI. Defaults follow the Key URI Format: SHA1, 6 digits,
// 30 seconds. The issuer parameter wins over the label's prefix.
func ParseURI(raw string) (Key, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Key{}, fmt.Errorf("totp: not a URI: %w", err)
	}
	if u.Scheme != "otpauth" || u.Host != "totp" {
		return Key{}, errors.New("totp: not an otpauth://totp/ URI")
	}
	label := strings.TrimPrefix(u.Path, "/")
	k := Key{Digits: Digits, Period: Period, Algorithm: SHA1}
	if i := strings.Index(label, ":"); i >= 0 {
		k.Issuer, k.Account = strings.TrimSpace(label[:i]), strings.TrimSpace(label[i+1:])
	} else {
		k.Account = label
	}
	q := u.Query()
	if k.Secret, err = Decode(q.Get("secret")); err != nil {
		return Key{}, err
	}
	if v := q.Get("issuer"); v != "" {
		k.Issuer = v
	}
	if v := q.Get("digits"); v != "" {
		if k.Digits, err = strconv.Atoi(v); err != nil || (k.Digits != 6 && k.Digits != 8) {
			return Key{}, fmt.Errorf("totp: digits must be 6 or 8, not %q", v)
		}
	}
	if v := q.Get("period"); v != "" {
		if k.Period, err = strconv.Atoi(v); err != nil || k.Period < 1 || k.Period > 300 {
			return Key{}, fmt.Errorf("totp: bad period %q", v)
		}
	}
	if v := strings.ToUpper(q.Get("algorithm")); v != "" {
		switch Algorithm(v) {
		case SHA1, SHA256, SHA512:
			k.Algorithm = Algorithm(v)
		default:
			return Key{}, fmt.Errorf("totp: unknown algorithm %q", v)
		}
	}
	if k.Account == "" {
		return Key{}, errors.New("totp: the URI names no account")
	}
	return k, nil
}

// QRPNG renders content as a QR code PNG of size×size pixels (medium error correction).
func QRPNG(content string, size int) ([]byte, error) {
	code, err := qr.Encode(content, qr.M, qr.Auto)
	if err != nil {
		return nil, fmt.Errorf("encode qr: %w", err)
	}
	scaled, err := barcode.Scale(code, size, size)
	if err != nil {
		return nil, fmt.Errorf("scale qr: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, scaled); err != nil {
		return nil, fmt.Errorf("encode png: %w", err)
	}
	return buf.Bytes(), nil
}

// DataURL returns a data: URL for a PNG image.
func DataURL(png []byte) string {
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(png)
}
