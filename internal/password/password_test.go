package password_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/argon2"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/password"
)

// small keeps tests fast where the cost of argon2id is beside the point.
var small = password.Params{Memory: 1024, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}

func TestHashFormat(t *testing.T) {
	ctx := context.Background()
	h := password.New(password.Options{})
	if got := h.Params(); got != password.DefaultParams {
		t.Fatalf("Params() = %+v, want DefaultParams %+v", got, password.DefaultParams)
	}
	a, err := h.Hash(ctx, "correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	rest, ok := strings.CutPrefix(a, "$argon2id$v=19$m=47104,t=1,p=1$")
	if !ok {
		t.Fatalf("Hash = %q, want the ASVS parameters $argon2id$v=19$m=47104,t=1,p=1$…", a)
	}
	salt, key, _ := strings.Cut(rest, "$")
	for _, f := range []struct {
		name, b64 string
		size      int
	}{{"salt", salt, 16}, {"key", key, 32}} {
		raw, err := base64.RawStdEncoding.DecodeString(f.b64)
		if err != nil || len(raw) != f.size {
			t.Errorf("%s %q: %d bytes, %v; want %d bytes of unpadded base64", f.name, f.b64, len(raw), err, f.size)
		}
	}
	b, _ := h.Hash(ctx, "correct horse battery staple")
	if a == b {
		t.Errorf("two hashes of one password are equal (%q): the salt is not random", a)
	}
}

// TestSameKeysAsXCrypto: the hashes are x/crypto's Argon2id (the server hashes with
// internal/password/argon2id, which reuses memory): a hash made by x/crypto verifies, and one
// made here has x/crypto's key for its salt and parameters, at the default parameters and
// others, several times in a row on the same reused memory.
func TestSameKeysAsXCrypto(t *testing.T) {
	ctx := context.Background()
	for _, p := range []password.Params{password.DefaultParams, small, {Memory: 4096, Time: 3, Threads: 2, KeyLen: 64, SaltLen: 32}} {
		h := password.New(password.Options{Params: p})
		for i := range 3 {
			pw := strings.Repeat("pass", i+1)
			enc, err := h.Hash(ctx, pw)
			if err != nil {
				t.Fatal(err)
			}
			got, salt, key, err := password.DecodeHash(enc)
			if err != nil {
				t.Fatal(err)
			}
			if want := argon2.IDKey([]byte(pw), salt, got.Time, got.Memory, got.Threads, uint32(len(key))); string(key) != string(want) {
				t.Errorf("%+v: Hash(%q) = %q, whose key x/crypto makes %x", p, pw, enc, want)
			}
			salt[0] ^= 1
			other := password.EncodeHash(got, salt, argon2.IDKey([]byte(pw), salt, got.Time, got.Memory, got.Threads, uint32(len(key))))
			if ok, _, err := h.Verify(ctx, pw, other); !ok || err != nil {
				t.Errorf("%+v: Verify(%q, x/crypto's %q) = %v, %v; want true", p, pw, other, ok, err)
			}
		}
	}
}

func TestVerify(t *testing.T) {
	ctx := context.Background()
	h := password.New(password.Options{Params: small})
	const pw = "correct horse battery staple"
	enc, err := h.Hash(ctx, pw)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		pw   string
		ok   bool
	}{
		{"right", pw, true},
		{"wrong", "correct horse battery stapler", false},
		{"other case", "Correct horse battery staple", false},
		{"trailing space", pw + " ", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, rehash, err := h.Verify(ctx, tt.pw, enc)
			if err != nil || ok != tt.ok || rehash {
				t.Errorf("Verify(%q) = %v, %v, %v, want %v, false, nil", tt.pw, ok, rehash, err, tt.ok)
			}
		})
	}
}

// TestNoTruncation: bcrypt reads only 72 bytes; argon2id reads everything, and so must we.
func TestNoTruncation(t *testing.T) {
	ctx := context.Background()
	h := password.New(password.Options{Params: small})
	tests := []struct {
		name   string
		prefix int
	}{
		{"differ after 72", 72},
		{"differ after 128", 128},
		{"differ after 1023", 1023},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			common := strings.Repeat("x", tt.prefix)
			enc, err := h.Hash(ctx, common+"A")
			if err != nil {
				t.Fatal(err)
			}
			if ok, _, _ := h.Verify(ctx, common+"B", enc); ok {
				t.Errorf("Verify(%d×x+B) against %d×x+A = true, want false: the password is truncated", tt.prefix, tt.prefix)
			}
			if ok, _, _ := h.Verify(ctx, common+"A", enc); !ok {
				t.Errorf("Verify(%d×x+A) = false, want true", tt.prefix)
			}
		})
	}
}

func TestNormalisation(t *testing.T) {
	ctx := context.Background()
	h := password.New(password.Options{Params: small})
	tests := []struct {
		name       string
		hashed, in string
		ok         bool
	}{
		{"composed and decomposed é", "caf\u00e9 au lait", "cafe\u0301 au lait", true},
		{"decomposed and composed é", "cafe\u0301 au lait", "caf\u00e9 au lait", true},
		{"ﬁ ligature and fi", "\ufb01sh and chips", "fish and chips", true},
		{"full-width and ASCII", "\uff30\uff41\uff53\uff53", "Pass", true},
		{"Ångström sign and Å", "\u212bngstr\u00f6m", "\u00c5ngstr\u00f6m", true},
		{"different letters stay different", "caf\u00e9 au lait", "cafe au lait", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc, err := h.Hash(ctx, tt.hashed)
			if err != nil {
				t.Fatal(err)
			}
			if ok, _, err := h.Verify(ctx, tt.in, enc); ok != tt.ok || err != nil {
				t.Errorf("Verify(%+q) against a hash of %+q = %v, %v, want %v, nil", tt.in, tt.hashed, ok, err, tt.ok)
			}
		})
	}
}

func TestNeedsRehash(t *testing.T) {
	ctx := context.Background()
	cur := password.New(password.Options{}) // m=47104, t=1, p=1
	tests := []struct {
		name   string
		params password.Params
		pw     string
		ok     bool
		rehash bool
	}{
		{"current params", password.DefaultParams, "pw", true, false},
		{"less memory", password.Params{Memory: 19456, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}, "pw", true, true},
		{"OWASP m=19456 t=2", password.Params{Memory: 19456, Time: 2, Threads: 1, KeyLen: 32, SaltLen: 16}, "pw", true, true},
		{"shorter key", password.Params{Memory: 47104, Time: 1, Threads: 1, KeyLen: 16, SaltLen: 16}, "pw", true, true},
		{"shorter salt", password.Params{Memory: 47104, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 8}, "pw", true, true},
		{"wrong password never asks for a rehash", password.Params{Memory: 19456, Time: 2, Threads: 1, KeyLen: 32, SaltLen: 16}, "wrong", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc, err := password.New(password.Options{Params: tt.params}).Hash(ctx, "pw")
			if err != nil {
				t.Fatal(err)
			}
			ok, rehash, err := cur.Verify(ctx, tt.pw, enc)
			if ok != tt.ok || rehash != tt.rehash || err != nil {
				t.Errorf("Verify(%q, %s) = %v, %v, %v, want %v, %v, nil", tt.pw, enc, ok, rehash, err, tt.ok, tt.rehash)
			}
		})
	}
}

func TestMalformedHash(t *testing.T) {
	const salt, key = "c2FsdHNhbHQ", "aGFzaGhhc2hoYXNoaGFzaA" // 8 and 16 bytes
	h := password.New(password.Options{Params: small})
	tests := []struct {
		name string
		enc  string
	}{
		{"empty", ""},
		{"plain text", "plain"},
		{"bcrypt", "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"},
		{"argon2i", "$argon2i$v=19$m=1024,t=1,p=1$" + salt + "$" + key},
		{"argon2d", "$argon2d$v=19$m=1024,t=1,p=1$" + salt + "$" + key},
		{"no leading dollar", "argon2id$v=19$m=1024,t=1,p=1$" + salt + "$" + key},
		{"version 16", "$argon2id$v=16$m=1024,t=1,p=1$" + salt + "$" + key},
		{"version with junk", "$argon2id$v=19x$m=1024,t=1,p=1$" + salt + "$" + key},
		{"version missing", "$argon2id$m=1024,t=1,p=1$" + salt + "$" + key},
		{"p missing", "$argon2id$v=19$m=1024,t=1$" + salt + "$" + key},
		{"params reordered", "$argon2id$v=19$t=1,m=1024,p=1$" + salt + "$" + key},
		{"param with junk", "$argon2id$v=19$m=1024k,t=1,p=1$" + salt + "$" + key},
		{"param with sign", "$argon2id$v=19$m=+1024,t=1,p=1$" + salt + "$" + key},
		{"param with leading zero", "$argon2id$v=19$m=01024,t=1,p=1$" + salt + "$" + key},
		{"extra param", "$argon2id$v=19$m=1024,t=1,p=1,k=1$" + salt + "$" + key},
		{"memory too large", "$argon2id$v=19$m=99999999,t=1,p=1$" + salt + "$" + key},
		{"memory overflows uint32", "$argon2id$v=19$m=4294967296,t=1,p=1$" + salt + "$" + key},
		{"memory below 8 KiB per thread", "$argon2id$v=19$m=8,t=1,p=2$" + salt + "$" + key},
		{"time zero", "$argon2id$v=19$m=1024,t=0,p=1$" + salt + "$" + key},
		{"time too large", "$argon2id$v=19$m=1024,t=17,p=1$" + salt + "$" + key},
		{"threads zero", "$argon2id$v=19$m=1024,t=1,p=0$" + salt + "$" + key},
		{"threads too many", "$argon2id$v=19$m=1024,t=1,p=255$" + salt + "$" + key},
		{"salt not base64", "$argon2id$v=19$m=1024,t=1,p=1$!!$" + key},
		{"salt padded", "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ=$" + key},
		{"salt too short", "$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$" + key},
		{"salt non-canonical", "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHR$" + key},
		{"key empty", "$argon2id$v=19$m=1024,t=1,p=1$" + salt + "$"},
		{"key too short", "$argon2id$v=19$m=1024,t=1,p=1$" + salt + "$aGFzaA"},
		{"key URL alphabet", "$argon2id$v=19$m=1024,t=1,p=1$" + salt + "$aGFzaGhhc2hoYXNoaGFzaA_-"},
		{"trailing field", "$argon2id$v=19$m=1024,t=1,p=1$" + salt + "$" + key + "$extra"},
		{"trailing newline", "$argon2id$v=19$m=1024,t=1,p=1$" + salt + "$" + key + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, rehash, err := h.Verify(context.Background(), "pw", tt.enc)
			if !errors.Is(err, password.ErrMalformedHash) || ok || rehash {
				t.Errorf("Verify(%q) = %v, %v, %v, want false, false, ErrMalformedHash", tt.enc, ok, rehash, err)
			}
		})
	}
	t.Run("well-formed", func(t *testing.T) {
		enc := "$argon2id$v=19$m=1024,t=1,p=1$" + salt + "$" + key
		if _, _, err := h.Verify(context.Background(), "pw", enc); err != nil {
			t.Errorf("Verify(%q) = %v, want no error", enc, err)
		}
	})
}

func TestNewRefusesUnusableParams(t *testing.T) {
	tests := []struct {
		name string
		p    password.Params
	}{
		{"no time", password.Params{Memory: 1024, Threads: 1, KeyLen: 32, SaltLen: 16}},
		{"no threads", password.Params{Memory: 1024, Time: 1, KeyLen: 32, SaltLen: 16}},
		{"short key", password.Params{Memory: 1024, Time: 1, Threads: 1, KeyLen: 8, SaltLen: 16}},
		{"short salt", password.Params{Memory: 1024, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 4}},
		{"more memory than Verify accepts", password.Params{Memory: 1<<20 + 1, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("New(%+v) did not panic", tt.p)
				}
			}()
			password.New(password.Options{Params: tt.p})
		})
	}
}

// TestConcurrencyBound: with MaxConcurrent 2, twelve simultaneous hashes and verifications
// never run more than two at once, and two do run at once.
func TestConcurrencyBound(t *testing.T) {
	const limit, callers = 2, 12
	var running, peak, calls atomic.Int64
	entered := make(chan struct{})
	proceed := make(chan struct{})
	h := password.NewWithHook(password.Options{Params: small, MaxConcurrent: limit}, func(password.Params) {
		n := running.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		calls.Add(1)
		entered <- struct{}{}
		<-proceed
		running.Add(-1)
	})
	enc, err := password.New(password.Options{Params: small}).Hash(context.Background(), "pw")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			if i%2 == 0 {
				_, _ = h.Hash(context.Background(), "pw")
			} else {
				_, _, _ = h.Verify(context.Background(), "pw", enc)
			}
		})
	}
	// Wait until both slots are held: every other caller is now queued on the semaphore.
	<-entered
	<-entered
	if got := h.InFlight(); got != limit {
		t.Errorf("InFlight() with every slot held = %d, want %d", got, limit)
	}
	// Let them through one at a time; each release admits at most one more.
	go func() {
		for range callers - limit {
			<-entered
		}
	}()
	for range callers {
		proceed <- struct{}{}
	}
	wg.Wait()
	if p := peak.Load(); p != limit {
		t.Errorf("peak concurrent hashes = %d, want %d", p, limit)
	}
	if c := calls.Load(); c != callers {
		t.Errorf("hashes run = %d, want %d", c, callers)
	}
}

// TestWaitRespectsContext: with every slot taken, a caller gives up when its context ends
// instead of queueing forever.
func TestWaitRespectsContext(t *testing.T) {
	entered := make(chan struct{})
	proceed := make(chan struct{})
	h := password.NewWithHook(password.Options{Params: small, MaxConcurrent: 1}, func(password.Params) {
		entered <- struct{}{}
		<-proceed
	})
	enc, err := password.New(password.Options{Params: small}).Hash(context.Background(), "pw")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = h.Hash(context.Background(), "holds the only slot")
	}()
	<-entered

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.Hash(cancelled, "pw"); !errors.Is(err, context.Canceled) {
		t.Errorf("Hash(cancelled ctx) with the slot held = %v, want context.Canceled", err)
	}
	if ok, _, err := h.Verify(cancelled, "pw", enc); ok || !errors.Is(err, context.Canceled) {
		t.Errorf("Verify(cancelled ctx) with the slot held = %v, %v, want false, context.Canceled", ok, err)
	}

	// A caller already waiting for the slot is released when its context ends.
	waiting, cancelWaiting := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := h.Hash(waiting, "pw")
		errc <- err
	}()
	cancelWaiting()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("Hash while waiting, then cancelled = %v, want context.Canceled", err)
	}

	proceed <- struct{}{}
	<-done
	// An ended context never takes a slot, even a free one.
	if _, err := h.Hash(cancelled, "pw"); !errors.Is(err, context.Canceled) {
		t.Errorf("Hash(cancelled ctx) with a free slot = %v, want context.Canceled", err)
	}
}

// TestVerifyDummy: an unknown user costs one argon2id run with the current parameters, as a
// wrong password for a known user does.
func TestVerifyDummy(t *testing.T) {
	var got []password.Params
	h := password.NewWithHook(password.Options{Params: small}, func(p password.Params) { got = append(got, p) })
	if err := h.VerifyDummy(context.Background(), "anything"); err != nil {
		t.Fatalf("VerifyDummy: %v", err)
	}
	if len(got) != 1 || got[0] != small {
		t.Errorf("VerifyDummy ran argon2id with %+v, want once with %+v", got, small)
	}
	// An ended context: its error, and no hashing (the caller does not count the attempt).
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.VerifyDummy(cancelled, "anything"); !errors.Is(err, context.Canceled) || len(got) != 1 {
		t.Errorf("VerifyDummy(cancelled ctx) = %v after %d hashes, want context.Canceled after 1", err, len(got))
	}
}

func TestCommonList(t *testing.T) {
	if n := password.CommonCount(); n < 10000 {
		t.Errorf("common-password list holds %d entries, want at least 10,000", n)
	}
}

func TestPolicy(t *testing.T) {
	const (
		short15  = "Use at least 15 characters, or enable two-factor authentication to use 8."
		short8   = "Use at least 8 characters."
		tooLong  = "Use at most 1024 characters."
		tooCommn = "This password is too common. Choose another."
		username = "The password must not contain your username or email address."
		empty    = "Enter a password."
	)
	p := password.DefaultPolicy
	tests := []struct {
		name   string
		pw     string
		mfa    bool
		inputs []string
		want   string // "" for accepted, else the exact message
	}{
		{"15 without MFA", "river lamp quie", false, nil, ""},
		{"14 without MFA", "river lamp qui", false, nil, short15},
		{"8 with MFA", "tX9#kq2L", true, nil, ""},
		{"7 with MFA", "tX9#kq2", true, nil, short8},
		{"8 without MFA", "tX9#kq2L", false, nil, short15},
		{"64 allowed", strings.Repeat("abcd", 16), false, nil, ""},
		{"100 allowed", strings.Repeat("long passphrase ", 6) + "done", false, nil, ""},
		{"1024 allowed", strings.Repeat("z", 1024), false, nil, ""},
		{"1025 refused", strings.Repeat("z", 1025), false, nil, tooLong},
		{"huge refused", strings.Repeat("z", 1<<20), false, nil, tooLong},
		{"no composition rules: lower case only", "all lower case words here", false, nil, ""},
		{"no composition rules: digits only", "918273645546372819", false, nil, ""},
		{"common", "passwordpassword", false, nil, tooCommn},
		{"common in any case", "PassWordPassWord", false, nil, tooCommn},
		{"common with MFA", "iloveyou1", true, nil, tooCommn},
		{"common once normalised", "\uff49\uff4c\uff4f\uff56\uff45\uff59\uff4f\uff55\uff11", true, nil, tooCommn}, // full-width "iloveyou1"
		{"length rule before common rule", "password", false, nil, short15},
		{"contains username", "my name is alice and this is long", false, []string{"alice"}, username},
		{"contains username in other case", "my name is ALICE and this is long", false, []string{"Alice"}, username},
		{"contains email local part", "bob.smith rules the whole world", false, []string{"bob.smith@example.com"}, username},
		{"contains whole email", "mail me at bob.smith@example.com", false, []string{"bob.smith@example.com"}, username},
		{"short username not searched", "my name is al and this is long", false, []string{"al"}, ""},
		{"other username", "my name is alice and this is long", false, []string{"carol", "carol@example.com"}, ""},
		{"counts characters, not bytes", strings.Repeat("ä", 15), false, nil, ""},
		{"counts characters after NFKC", strings.Repeat("a\u0308", 14), false, nil, short15}, // 28 runes, 14 after NFKC
		{"empty", "", true, nil, empty},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := p.Check(tt.pw, tt.mfa, tt.inputs...)
			if tt.want == "" {
				if err != nil {
					t.Errorf("Check(%.40q, mfa=%v) = %v, want nil", tt.pw, tt.mfa, err)
				}
				return
			}
			var e *latchkey.Error
			if !errors.As(err, &e) || e.Code != latchkey.EWeakPassword || e.Message != tt.want {
				t.Errorf("Check(%.40q, mfa=%v) = %v, want weak_password %q", tt.pw, tt.mfa, err, tt.want)
			}
		})
	}
}

// FuzzDecodeHash: the PHC decoder never panics, and accepts only what the encoder writes.
func FuzzDecodeHash(f *testing.F) {
	for _, s := range []string{
		"$argon2id$v=19$m=47104,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
		"$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=8,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=19$m=01024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2i$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, salt, key, err := password.DecodeHash(s)
		if err != nil {
			if !errors.Is(err, password.ErrMalformedHash) {
				t.Fatalf("DecodeHash(%q) = %v, want an ErrMalformedHash", s, err)
			}
			return
		}
		if got := password.EncodeHash(p, salt, key); got != s {
			t.Fatalf("DecodeHash(%q) then EncodeHash = %q, want the input back", s, got)
		}
		if p.Memory > 1<<20 || p.Time > 16 || p.Threads < 1 || p.Threads > 16 || len(key) < 16 {
			t.Fatalf("DecodeHash(%q) accepted out-of-bounds parameters %+v", s, p)
		}
	})
}

func benchmarkHash(b *testing.B, p password.Params) {
	h := password.New(password.Options{Params: p})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Hash(ctx, "correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}

func benchmarkVerify(b *testing.B, p password.Params) {
	h := password.New(password.Options{Params: p})
	ctx := context.Background()
	enc, err := h.Hash(ctx, "correct horse battery staple")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if ok, _, err := h.Verify(ctx, "correct horse battery staple", enc); !ok || err != nil {
			b.Fatalf("Verify = %v, %v", ok, err)
		}
	}
}

// BenchmarkHash measures argon2id at the ASVS parameters (46 MiB, t=1, p=1).
func BenchmarkHash(b *testing.B) { benchmarkHash(b, password.DefaultParams) }

// BenchmarkVerify measures a verification at the ASVS parameters.
func BenchmarkVerify(b *testing.B) { benchmarkVerify(b, password.DefaultParams) }

// BenchmarkHashSmall measures the package's own overhead with 1 MiB parameters.
func BenchmarkHashSmall(b *testing.B) { benchmarkHash(b, small) }

// BenchmarkVerifySmall measures the package's own overhead with 1 MiB parameters.
func BenchmarkVerifySmall(b *testing.B) { benchmarkVerify(b, small) }

func BenchmarkPolicyCheck(b *testing.B) {
	p := password.DefaultPolicy
	_ = p.Check("warm up the common-password list", false)
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Check("a perfectly fine passphrase", false, "alice", "alice@example.com"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPolicyCheckCommon(b *testing.B) {
	p := password.DefaultPolicy
	_ = p.Check("warm up the common-password list", false)
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Check("iloveyou1", true); err == nil {
			b.Fatal("common password accepted")
		}
	}
}
