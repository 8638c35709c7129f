// Package password hashes passwords with argon2id and holds the password policy.
//
// Hashes are PHC strings that carry their parameters, so parameters can be raised at any
// time: Verify reports when a stored hash differs from the current parameters and the
// caller rehashes on sign-in. A semaphore bounds how many hashes run at once, so that a flood
// of sign-in attempts cannot exhaust memory (each hash takes Params.Memory KiB).
//
// Passwords are NFKC-normalised before hashing and before the policy counts their length, so
// the same password typed on two keyboards (composed or decomposed é, the "ﬁ" ligature or
// "fi") hashes alike and is measured alike. Passwords are never truncated.
package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/password/argon2id"
)

// Params are argon2id parameters. Memory is in KiB; KeyLen and SaltLen are in bytes.
type Params struct {
	Memory  uint32
	Time    uint32
	Threads uint8
	KeyLen  uint32
	SaltLen uint32
}

// DefaultParams are the OWASP ASVS 5.0 appendix C parameters: m = 46 MiB, t = 1, p = 1, with a
// 16-byte salt and a 32-byte key.
var DefaultParams = Params{Memory: 47104, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}

// Options configure a Hasher.
type Options struct {
	// Params default to DefaultParams when zero.
	Params Params
	// MaxConcurrent bounds simultaneous hashes (default: the number of CPUs, at least 2).
	// Memory for hashing never exceeds MaxConcurrent × Params.Memory KiB. The hashes' memory
	// is reused from one to the next (package argon2id); an idle server's goes back to the
	// collector within two of its cycles.
	MaxConcurrent int
}

// Hasher hashes and verifies passwords. It is safe for concurrent use.
type Hasher struct {
	p     Params
	sem   chan struct{}
	dummy string
	// hook, when set (by tests only, through export_test.go), runs while a hashing slot is
	// held, with the parameters about to be used, so a test can observe how many hashes run
	// at once and at what cost.
	hook func(Params)
}

// New returns a Hasher. It panics if opt.Params are outside the bounds Verify accepts
// (1 ≤ Time ≤ 16, 1 ≤ Threads ≤ 16, 8×Threads ≤ Memory ≤ 1 GiB, 16 ≤ KeyLen ≤ 128,
// 8 ≤ SaltLen ≤ 64): that is a programming error, not a runtime condition.
func New(opt Options) *Hasher {
	if opt.Params == (Params{}) {
		opt.Params = DefaultParams
	}
	p := opt.Params
	// The same bounds as decode, so that every hash a Hasher makes, it can verify.
	if p.Time < 1 || p.Time > maxTime || p.Threads < 1 || p.Threads > maxThreads || p.Memory < 8*uint32(p.Threads) || p.Memory > maxMemory ||
		p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen || p.SaltLen < minSaltLen || p.SaltLen > maxSaltLen {
		panic(fmt.Sprintf("password: unusable argon2id parameters %+v", p))
	}
	if opt.MaxConcurrent <= 0 {
		opt.MaxConcurrent = max(2, runtime.NumCPU())
	}
	return &Hasher{
		p:   p,
		sem: make(chan struct{}, opt.MaxConcurrent),
		// The dummy hash matches no password and needs no real derivation: verifying against
		// it costs one argon2id run with the current parameters, like a real verification.
		dummy: encode(p, make([]byte, p.SaltLen), make([]byte, p.KeyLen)),
	}
}

// Params returns the parameters new hashes are made with.
func (h *Hasher) Params() Params { return h.p }

// acquire takes a hashing slot, or returns ctx's error if the context ends first.
func (h *Hasher) acquire(ctx context.Context) error {
	// A context that has already ended never takes a slot, even if one is free: select
	// would pick at random between the two ready cases.
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case h.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *Hasher) release() { <-h.sem }

// InFlight returns how many hashing slots are taken now (for metrics).
func (h *Hasher) InFlight() int { return len(h.sem) }

// derive runs argon2id (package argon2id: x/crypto's, with its memory reused) while holding
// a slot.
func (h *Hasher) derive(ctx context.Context, password string, salt []byte, p Params) ([]byte, error) {
	if err := h.acquire(ctx); err != nil {
		return nil, err
	}
	defer h.release()
	if h.hook != nil {
		h.hook(p)
	}
	return argon2id.Key([]byte(norm.NFKC.String(password)), salt, p.Time, p.Memory, p.Threads, p.KeyLen), nil
}

// Hash returns the PHC string of password (after NFKC normalisation) with a fresh salt:
// $argon2id$v=19$m=47104,t=1,p=1$<salt>$<key>, both in unpadded standard base64. It waits for
// a free hashing slot and returns ctx.Err() if ctx ends first.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	salt := make([]byte, h.p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("read salt: %w", err)
	}
	key, err := h.derive(ctx, password, salt, h.p)
	if err != nil {
		return "", err
	}
	return encode(h.p, salt, key), nil
}

// Verify reports whether password matches the PHC string encoded, and whether the hash should
// be replaced because its parameters differ from the Hasher's (needsRehash is only ever true
// together with ok, since only a correct password can be rehashed). The comparison is
// constant-time. A malformed hash is an error wrapping ErrMalformedHash; an ended context
// returns ctx.Err().
func (h *Hasher) Verify(ctx context.Context, password, encoded string) (ok, needsRehash bool, err error) {
	p, salt, want, err := decode(encoded)
	if err != nil {
		return false, false, err
	}
	got, err := h.derive(ctx, password, salt, p)
	if err != nil {
		return false, false, err
	}
	ok = subtle.ConstantTimeCompare(got, want) == 1
	return ok, ok && p != h.p, nil
}

// VerifyDummy does the work of one Verify with the current parameters against a hash that
// matches no password, so that a sign-in for an unknown user takes as long as a wrong
// password for a known one. Its only error is ctx.Err(), when ctx ends before a hashing
// slot is free (then no hashing was done), as Verify's.
func (h *Hasher) VerifyDummy(ctx context.Context, password string) error {
	_, _, err := h.Verify(ctx, password, h.dummy)
	return err
}

var b64 = base64.RawStdEncoding.Strict()

// Bounds on what decode accepts, so that a corrupted or hostile row cannot make one
// verification take minutes or gigabytes.
const (
	maxMemory  = 1 << 20 // KiB: 1 GiB
	maxTime    = 16
	maxThreads = 16
	minSaltLen = 8
	maxSaltLen = 64
	minKeyLen  = 16
	maxKeyLen  = 128
)

func encode(p Params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2id.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// ErrMalformedHash is wrapped by the error Verify returns for a stored hash that is not an
// argon2id PHC string this package accepts.
var ErrMalformedHash = errors.New("malformed argon2id hash")

func malformed(why string) error { return fmt.Errorf("password: %w: %s", ErrMalformedHash, why) }

// decode parses a PHC string as encode writes it, and nothing else: decode(s) succeeds only
// if encode of the result gives s back.
func decode(s string) (p Params, salt, key []byte, err error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" {
		return p, nil, nil, malformed("not a PHC string")
	}
	if parts[1] != "argon2id" {
		return p, nil, nil, malformed("not argon2id")
	}
	if v, ok := strings.CutPrefix(parts[2], "v="); !ok || v != strconv.Itoa(argon2id.Version) {
		return p, nil, nil, malformed("unsupported version")
	}
	params := strings.Split(parts[3], ",")
	if len(params) != 3 {
		return p, nil, nil, malformed("want m, t and p")
	}
	var m, t, threads uint64
	for i, f := range []struct {
		name   string
		dst    *uint64
		lo, hi uint64
	}{{"m=", &m, 8, maxMemory}, {"t=", &t, 1, maxTime}, {"p=", &threads, 1, maxThreads}} {
		v, ok := strings.CutPrefix(params[i], f.name)
		if !ok || !canonicalUint(v) {
			return p, nil, nil, malformed("bad parameter " + strconv.Quote(params[i]))
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n < f.lo || n > f.hi {
			return p, nil, nil, malformed("parameter out of range " + strconv.Quote(params[i]))
		}
		*f.dst = n
	}
	if m < 8*threads {
		return p, nil, nil, malformed("memory below 8 KiB per thread")
	}
	p = Params{Memory: uint32(m), Time: uint32(t), Threads: uint8(threads)}
	if salt, err = decodeB64(parts[4]); err != nil || len(salt) < minSaltLen || len(salt) > maxSaltLen {
		return Params{}, nil, nil, malformed("bad salt")
	}
	if key, err = decodeB64(parts[5]); err != nil || len(key) < minKeyLen || len(key) > maxKeyLen {
		return Params{}, nil, nil, malformed("bad key")
	}
	p.SaltLen, p.KeyLen = uint32(len(salt)), uint32(len(key))
	return p, salt, key, nil
}

// decodeB64 decodes unpadded standard base64 in its one canonical form: the decoder alone
// would also skip line breaks.
func decodeB64(s string) ([]byte, error) {
	b, err := b64.DecodeString(s)
	if err != nil {
		return nil, err
	}
	if b64.EncodeToString(b) != s {
		return nil, errors.New("not canonical base64")
	}
	return b, nil
}

// canonicalUint reports whether s is a decimal number without sign or leading zeros.
func canonicalUint(s string) bool {
	if s == "" || len(s) > 1 && s[0] == '0' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Policy is the password policy of NIST SP 800-63B rev 4 and ASVS 5.0: a minimum length that
// depends on whether the account has a second factor, a generous maximum, no composition
// rules, no common passwords, and not the user's own name. Lengths count characters (runes)
// after NFKC normalisation.
type Policy struct {
	MinWithMFA    int // minimum length when the account has a second factor
	MinWithoutMFA int // minimum length when it has none
	Max           int // maximum length; at least 64
}

// DefaultPolicy allows 8 characters with a second factor, 15 without, and up to 1024.
var DefaultPolicy = Policy{MinWithMFA: 8, MinWithoutMFA: 15, Max: 1024}

// common-passwords.txt: see README.md for its source and licence.
//
//go:embed common-passwords.txt
var commonList string

var (
	commonOnce sync.Once
	common     map[string]struct{}
)

func loadCommon() {
	commonOnce.Do(func() {
		common = make(map[string]struct{}, strings.Count(commonList, "\n")+1)
		for line := range strings.Lines(commonList) {
			if line = strings.TrimRight(line, "\r\n"); line != "" {
				common[line] = struct{}{}
			}
		}
	})
}

// isCommon reports whether lower, a normalised and lower-cased password, is on the list.
func isCommon(lower string) bool {
	loadCommon()
	_, ok := common[lower]
	return ok
}

func weak(format string, args ...any) error {
	return latchkey.Errorf(latchkey.EWeakPassword, format, args...)
}

// minInputLen is the shortest user input (username, email local part) Check looks for in a
// password: shorter ones ("al", "bob") are too likely to occur by chance in a passphrase.
const minInputLen = 4

// Check returns nil if pw is acceptable, or a *latchkey.Error with code
// latchkey.EWeakPassword whose message tells the user, in one sentence, what to change.
// hasMFA selects the minimum length. userInputs (username, email address) must not appear
// in the password, case-insensitively; for an email address its local part is looked for.
func (p Policy) Check(pw string, hasMFA bool, userInputs ...string) error {
	// A cheap bound before normalising: no string of more than 64×Max bytes can normalise to
	// Max characters or fewer (NFKC composes at most a handful of runes of ≤ 4 bytes into one).
	if len(pw) > 64*p.Max {
		return weak("Use at most %d characters.", p.Max)
	}
	pw = norm.NFKC.String(pw)
	n := utf8.RuneCountInString(pw)
	switch {
	case n == 0:
		return weak("Enter a password.")
	case n > p.Max:
		return weak("Use at most %d characters.", p.Max)
	case hasMFA && n < p.MinWithMFA:
		return weak("Use at least %d characters.", p.MinWithMFA)
	case !hasMFA && n < p.MinWithoutMFA:
		return weak("Use at least %d characters, or enable two-factor authentication to use %d.", p.MinWithoutMFA, p.MinWithMFA)
	}
	lower := strings.ToLower(pw)
	if isCommon(lower) {
		return weak("This password is too common. Choose another.")
	}
	for _, in := range userInputs {
		in = strings.ToLower(norm.NFKC.String(strings.TrimSpace(in)))
		if local, _, ok := strings.Cut(in, "@"); ok && utf8.RuneCountInString(local) >= minInputLen {
			in = local
		}
		if utf8.RuneCountInString(in) >= minInputLen && strings.Contains(lower, in) {
			return weak("The password must not contain your username or email address.")
		}
	}
	return nil
}
