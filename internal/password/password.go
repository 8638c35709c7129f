// Package password hashes passwords with argon2id and holds the password policy.
//
// Hashes are PHC strings that carry their parameters, so parameters can be raised at any
// time: Verify reports when a stored hash is weaker than the current parameters and the
// caller rehashes on sign-in. A semaphore bounds how many hashes run at once, so that a flood
// of sign-in attempts cannot exhaust memory (each hash takes Params.Memory KiB).
package password

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
	"golang.org/x/text/unicode/norm"

	"github.com/latchkey/latchkey"
)

// Params are argon2id parameters. Memory is in KiB.
type Params struct {
	Memory  uint32
	Time    uint32
	Threads uint8
	KeyLen  uint32
	SaltLen uint32
}

// DefaultParams are the OWASP ASVS 5.0 appendix C parameters: m = 46 MiB, t = 1, p = 1.
var DefaultParams = Params{Memory: 47104, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}

// Options configure a Hasher.
type Options struct {
	// Params default to DefaultParams.
	Params Params
	// MaxConcurrent bounds simultaneous hashes (default: the number of CPUs, at least 2).
	MaxConcurrent int
}

// Hasher hashes and verifies passwords. It is safe for concurrent use.
type Hasher struct {
	p     Params
	sem   chan struct{}
	dummy string
}

// New returns a Hasher.
func New(opt Options) *Hasher {
	if opt.Params == (Params{}) {
		opt.Params = DefaultParams
	}
	if opt.MaxConcurrent <= 0 {
		opt.MaxConcurrent = max(2, runtime.NumCPU())
	}
	h := &Hasher{p: opt.Params, sem: make(chan struct{}, opt.MaxConcurrent)}
	salt := make([]byte, h.p.SaltLen)
	h.dummy = encode(h.p, salt, argon2.IDKey([]byte("latchkey dummy password"), salt, h.p.Time, h.p.Memory, h.p.Threads, h.p.KeyLen))
	return h
}

// acquire takes a hashing slot, or returns ctx's error if the context ends first.
func (h *Hasher) acquire(ctx context.Context) error {
	select {
	case h.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *Hasher) release() { <-h.sem }

// InFlight returns how many hashes are running now (for metrics and tests).
func (h *Hasher) InFlight() int { return len(h.sem) }

// Hash returns the PHC string of password (after NFKC normalisation) with a fresh salt.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	salt := make([]byte, h.p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("read salt: %w", err)
	}
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	key := argon2.IDKey([]byte(norm.NFKC.String(password)), salt, h.p.Time, h.p.Memory, h.p.Threads, h.p.KeyLen)
	return encode(h.p, salt, key), nil
}

// Verify reports whether password matches the PHC string encoded, and whether the hash
// should be replaced because its parameters differ from the Hasher's. The comparison is
// constant-time. A malformed hash is an error.
func (h *Hasher) Verify(ctx context.Context, password, encoded string) (ok, needsRehash bool, err error) {
	p, salt, want, err := decode(encoded)
	if err != nil {
		return false, false, err
	}
	if err := h.acquire(ctx); err != nil {
		return false, false, err
	}
	defer h.release()
	got := argon2.IDKey([]byte(norm.NFKC.String(password)), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	ok = subtle.ConstantTimeCompare(got, want) == 1
	return ok, ok && (p.Memory != h.p.Memory || p.Time != h.p.Time || p.Threads != h.p.Threads || uint32(len(want)) != h.p.KeyLen), nil
}

// VerifyDummy does the work of one Verify against a fixed hash, so that a sign-in for an
// unknown user takes as long as one for a known user.
func (h *Hasher) VerifyDummy(ctx context.Context, password string) {
	_, _, _ = h.Verify(ctx, password, h.dummy)
}

var b64 = base64.RawStdEncoding

func encode(p Params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// ErrMalformedHash is returned for a stored hash that is not an argon2id PHC string.
var ErrMalformedHash = errors.New("password: malformed argon2id hash")

func decode(s string) (p Params, salt, key []byte, err error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, ErrMalformedHash
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return p, nil, nil, ErrMalformedHash
	}
	var threads uint32
	if n, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &threads); err != nil || n != 3 || fmt.Sprintf("m=%d,t=%d,p=%d", p.Memory, p.Time, threads) != parts[3] {
		return p, nil, nil, ErrMalformedHash
	}
	// Bounds keep a corrupted or hostile row from making one verification take minutes or
	// gigabytes.
	if p.Time < 1 || p.Time > 16 || threads < 1 || threads > 16 || p.Memory < 8*threads || p.Memory > 1<<21 {
		return p, nil, nil, ErrMalformedHash
	}
	p.Threads = uint8(threads)
	if salt, err = b64.DecodeString(parts[4]); err != nil || len(salt) < 8 {
		return p, nil, nil, ErrMalformedHash
	}
	if key, err = b64.DecodeString(parts[5]); err != nil || len(key) < 16 || len(key) > 128 {
		return p, nil, nil, ErrMalformedHash
	}
	p.SaltLen, p.KeyLen = uint32(len(salt)), uint32(len(key))
	return p, salt, key, nil
}

// Policy is the password policy of NIST SP 800-63B rev 4 and ASVS 5.0: a minimum length that
// depends on whether the account has a second factor, a generous maximum, no composition
// rules, and no common passwords.
type Policy struct {
	MinWithMFA    int
	MinWithoutMFA int
	Max           int
}

// DefaultPolicy: 8 characters with a second factor, 15 without, up to 1024.
var DefaultPolicy = Policy{MinWithMFA: 8, MinWithoutMFA: 15, Max: 1024}

//go:embed common-passwords.txt
var commonList string

var (
	commonOnce sync.Once
	common     map[string]struct{}
)

func isCommon(pw string) bool {
	commonOnce.Do(func() {
		common = make(map[string]struct{}, 40000)
		sc := bufio.NewScanner(strings.NewReader(commonList))
		for sc.Scan() {
			common[sc.Text()] = struct{}{}
		}
	})
	_, ok := common[strings.ToLower(pw)]
	return ok
}

func weak(format string, args ...any) error {
	return latchkey.Errorf(latchkey.EWeakPassword, format, args...)
}

// Check returns a latchkey.EWeakPassword error saying why pw is not acceptable, or nil.
// Length counts characters after NFKC normalisation. userInputs (username, email) must not
// appear in the password.
func (p Policy) Check(pw string, hasMFA bool, userInputs ...string) error {
	n := utf8.RuneCountInString(norm.NFKC.String(pw))
	switch {
	case n == 0:
		return weak("Enter a password.")
	case n > p.Max:
		return weak("Use at most %d characters.", p.Max)
	case hasMFA && n < p.MinWithMFA:
		return weak("Use at least %d characters.", p.MinWithMFA)
	case !hasMFA && n < p.MinWithoutMFA:
		return weak("Use at least %d characters, or enable two-factor authentication to use %d.", p.MinWithoutMFA, p.MinWithMFA)
	case isCommon(pw):
		return weak("This password is too common. Choose another.")
	}
	lower := strings.ToLower(pw)
	for _, in := range userInputs {
		in = strings.ToLower(strings.TrimSpace(in))
		if local, _, ok := strings.Cut(in, "@"); ok && len(local) >= 4 {
			in = local
		}
		if len(in) >= 4 && strings.Contains(lower, in) {
			return weak("The password must not contain your username or email address.")
		}
	}
	return nil
}
