// Package deviceproto is the wire format of the Latch device protocol, shared by the server
// (internal/push, internal/web) and the reference client (internal/latch, cmd/latch):
// request signing, public-key encoding, activation codes and URIs, and the JSON messages.
// docs/device-protocol.md describes the protocol for people writing other clients.
//
// It imports only the standard library.
package deviceproto

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Request headers of a signed device request.
const (
	// HeaderDevice carries the device ID, absent on activation and transfer redemption (the
	// key is then in the body and the signature proves possession of it).
	HeaderDevice    = "Latch-Device"
	HeaderTimestamp = "Latch-Timestamp" // Unix seconds
	HeaderNonce     = "Latch-Nonce"     // 16+ random bytes, base64url, unique per request
	HeaderSignature = "Latch-Signature" // base64url ASN.1 ECDSA P-256 SHA-256 signature
)

// Limits the server enforces.
const (
	// MaxSkew is how far a request's timestamp may be from the server's clock.
	MaxSkew = 5 * time.Minute
	// MaxBody bounds a device request body.
	MaxBody = 16 << 10
	// MinNonceLen and MaxNonceLen bound the nonce header's length in characters.
	MinNonceLen, MaxNonceLen = 22, 64
)

// Enc is the encoding of binary values in headers and JSON: base64url without padding.
var Enc = base64.RawURLEncoding

// SigningString is what a device signs: the protocol version, the method, the request path
// with its query, the timestamp, the nonce, the device ID ("" when absent) and the hex
// SHA-256 of the body, one per line.
func SigningString(method, pathQuery, timestamp, nonce, device string, body []byte) []byte {
	h := sha256.Sum256(body)
	return []byte("latch-v1\n" + method + "\n" + pathQuery + "\n" + timestamp + "\n" + nonce + "\n" + device + "\n" + hex.EncodeToString(h[:]))
}

// Sign sets the signature headers on r for body (which the caller sends as r's body).
// deviceID 0 leaves out HeaderDevice (activation and transfer redemption).
func Sign(r *http.Request, key *ecdsa.PrivateKey, deviceID int64, body []byte, now time.Time) error {
	nb := make([]byte, 18)
	if _, err := rand.Read(nb); err != nil {
		return err
	}
	nonce := Enc.EncodeToString(nb)
	ts := strconv.FormatInt(now.Unix(), 10)
	dev := ""
	if deviceID != 0 {
		dev = strconv.FormatInt(deviceID, 10)
		r.Header.Set(HeaderDevice, dev)
	}
	digest := sha256.Sum256(SigningString(r.Method, r.URL.RequestURI(), ts, nonce, dev, body))
	sig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
	if err != nil {
		return err
	}
	r.Header.Set(HeaderTimestamp, ts)
	r.Header.Set(HeaderNonce, nonce)
	r.Header.Set(HeaderSignature, Enc.EncodeToString(sig))
	return nil
}

// Signed is the parsed signature of a request, before it is checked against a key.
type Signed struct {
	DeviceID  int64 // 0 when the header is absent
	Timestamp time.Time
	Nonce     string
	Signature []byte
	message   []byte
}

// ErrSignature is returned by Parse and Verify for any malformed or wrong signature.
var ErrSignature = errors.New("deviceproto: bad request signature")

// Parse reads the signature headers of r, whose body the caller has read as body, and checks
// that the timestamp is within MaxSkew of now. It does not check the signature itself.
func Parse(r *http.Request, body []byte, now time.Time) (*Signed, error) {
	ts, nonce, sig := r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderNonce), r.Header.Get(HeaderSignature)
	if ts == "" || nonce == "" || sig == "" {
		return nil, fmt.Errorf("%w: the %s, %s and %s headers are required", ErrSignature, HeaderTimestamp, HeaderNonce, HeaderSignature)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: %s is not a Unix time", ErrSignature, HeaderTimestamp)
	}
	t := time.Unix(sec, 0)
	if d := t.Sub(now); d > MaxSkew || d < -MaxSkew {
		return nil, fmt.Errorf("%w: the request time is more than %v from the server's clock", ErrSignature, MaxSkew)
	}
	if len(nonce) < MinNonceLen || len(nonce) > MaxNonceLen {
		return nil, fmt.Errorf("%w: %s must be %d to %d characters", ErrSignature, HeaderNonce, MinNonceLen, MaxNonceLen)
	}
	if _, err := Enc.DecodeString(nonce); err != nil {
		return nil, fmt.Errorf("%w: %s is not base64url", ErrSignature, HeaderNonce)
	}
	raw, err := Enc.DecodeString(sig)
	if err != nil || len(raw) > 80 {
		return nil, fmt.Errorf("%w: %s is not a base64url ECDSA signature", ErrSignature, HeaderSignature)
	}
	s := &Signed{Timestamp: t, Nonce: nonce, Signature: raw}
	dev := r.Header.Get(HeaderDevice)
	if dev != "" {
		if s.DeviceID, err = strconv.ParseInt(dev, 10, 64); err != nil || s.DeviceID <= 0 {
			return nil, fmt.Errorf("%w: %s is not a device ID", ErrSignature, HeaderDevice)
		}
	}
	s.message = SigningString(r.Method, r.URL.RequestURI(), ts, nonce, dev, body)
	return s, nil
}

// Verify reports whether the signature was made by key.
func (s *Signed) Verify(key *ecdsa.PublicKey) bool {
	digest := sha256.Sum256(s.message)
	return ecdsa.VerifyASN1(key, digest[:], s.Signature)
}

// GenerateKey creates a device key pair.
func GenerateKey() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

// EncodePublicKey returns the base64url PKIX DER form of a P-256 public key, as activation
// requests carry it.
func EncodePublicKey(k *ecdsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return "", err
	}
	return Enc.EncodeToString(der), nil
}

// ErrPublicKey is returned for a public key that is not a base64url PKIX ECDSA P-256 key.
var ErrPublicKey = errors.New("public_key must be a base64url PKIX DER ECDSA P-256 public key")

// ParsePublicKey decodes an encoded public key and returns it with its DER bytes.
func ParsePublicKey(s string) (*ecdsa.PublicKey, []byte, error) {
	if len(s) > 512 {
		return nil, nil, ErrPublicKey
	}
	der, err := Enc.DecodeString(s)
	if err != nil {
		return nil, nil, ErrPublicKey
	}
	k, err := ParsePublicKeyDER(der)
	return k, der, err
}

// ParsePublicKeyDER decodes a PKIX DER P-256 public key.
func ParsePublicKeyDER(der []byte) (*ecdsa.PublicKey, error) {
	pk, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, ErrPublicKey
	}
	k, ok := pk.(*ecdsa.PublicKey)
	if !ok || k.Curve != elliptic.P256() {
		return nil, ErrPublicKey
	}
	return k, nil
}

// codeAlphabet is Crockford's base32: no I, L, O or U, so codes read and type unambiguously.
const codeAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// CodeLen is the number of symbols of an activation or transfer code: 50 bits.
const CodeLen = 10

// NewCode returns a random code of CodeLen symbols, grouped for reading: "7KQ2M-XD9FA".
func NewCode(r io.Reader) (string, error) {
	b := make([]byte, CodeLen)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	out := make([]byte, 0, CodeLen+1)
	for i, v := range b {
		if i == CodeLen/2 {
			out = append(out, '-')
		}
		out = append(out, codeAlphabet[v&31])
	}
	return string(out), nil
}

// NormalizeCode returns the canonical form of a typed code (upper case, no separators, O read
// as 0 and I or L as 1), or false when it cannot be a code.
func NormalizeCode(s string) (string, bool) {
	if len(s) > 64 {
		return "", false
	}
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		switch {
		case r == '-' || r == ' ':
			continue
		case r == 'O':
			r = '0'
		case r == 'I' || r == 'L':
			r = '1'
		}
		if !strings.ContainsRune(codeAlphabet, r) {
			return "", false
		}
		b.WriteRune(r)
	}
	if b.Len() != CodeLen {
		return "", false
	}
	return b.String(), true
}

// URI schemes and kinds.
const (
	Scheme       = "latchkey"
	KindActivate = "activate"
	KindTransfer = "transfer"
)

// FormatURI returns the URI a QR code holds: latchkey://activate?server=URL&code=CODE (or
// latchkey://transfer?...).
func FormatURI(kind, server, code string) string {
	v := url.Values{"server": {server}, "code": {code}}
	return Scheme + "://" + kind + "?" + v.Encode()
}

// ParseURI reads an activation or transfer URI.
func ParseURI(s string) (kind, server, code string, err error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != Scheme || (u.Host != KindActivate && u.Host != KindTransfer) {
		return "", "", "", errors.New("not a latchkey://activate or latchkey://transfer URI")
	}
	q := u.Query()
	server, code = q.Get("server"), q.Get("code")
	su, err := url.Parse(server)
	if err != nil || (su.Scheme != "https" && su.Scheme != "http") || su.Host == "" {
		return "", "", "", errors.New("the URI's server is not an http(s) URL")
	}
	if _, ok := NormalizeCode(code); !ok {
		return "", "", "", errors.New("the URI's code is not a valid code")
	}
	return u.Host, strings.TrimSuffix(su.Scheme+server[len(su.Scheme):], "/"), code, nil // "HTTPS://" read as "https://"
}
