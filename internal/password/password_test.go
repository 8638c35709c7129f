package password_test

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/password"
)

var small = password.Params{Memory: 1024, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}

func TestHashVerify(t *testing.T) {
	ctx := context.Background()
	h := password.New(password.Options{})
	enc, err := h.Hash(ctx, "correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=47104,t=1,p=1$") {
		t.Errorf("hash %q does not carry the ASVS parameters", enc)
	}
	tests := []struct {
		name, pw string
		ok       bool
	}{
		{"right", "correct horse battery staple", true},
		{"wrong", "correct horse battery stapler", false},
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

func TestNoTruncationAndNormalisation(t *testing.T) {
	ctx := context.Background()
	h := password.New(password.Options{Params: small})
	long := strings.Repeat("x", 100)
	enc, _ := h.Hash(ctx, long+"A")
	if ok, _, _ := h.Verify(ctx, long+"B", enc); ok {
		t.Error("passwords differing after character 100 verify alike: the password is truncated")
	}
	// é composed (U+00E9) and decomposed (e + U+0301) are the same password; so are "ﬁ" and "fi".
	enc, _ = h.Hash(ctx, "caf\u00e9 ﬁsh")
	if ok, _, _ := h.Verify(ctx, "cafe\u0301 fish", enc); !ok {
		t.Error("NFKC-equivalent passwords do not verify")
	}
}

func TestRehashWhenParamsRaised(t *testing.T) {
	ctx := context.Background()
	old := password.New(password.Options{Params: password.Params{Memory: 19456, Time: 2, Threads: 1, KeyLen: 32, SaltLen: 16}})
	enc, _ := old.Hash(ctx, "pw")
	cur := password.New(password.Options{})
	ok, rehash, err := cur.Verify(ctx, "pw", enc)
	if !ok || !rehash || err != nil {
		t.Errorf("Verify(old params) = %v, %v, %v, want true, true, nil", ok, rehash, err)
	}
	if _, rehash, _ := cur.Verify(ctx, "wrong", enc); rehash {
		t.Error("a wrong password asks for a rehash")
	}
}

func TestMalformedHash(t *testing.T) {
	h := password.New(password.Options{Params: small})
	for _, enc := range []string{
		"",
		"plain",
		"$argon2i$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=18$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=1024,t=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=1024,t=1,p=1$!!$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$",
		"$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA$extra",
	} {
		if _, _, err := h.Verify(context.Background(), "pw", enc); err == nil {
			t.Errorf("Verify(%q) accepted a malformed hash", enc)
		}
	}
}

func TestConcurrencyBound(t *testing.T) {
	h := password.New(password.Options{Params: password.Params{Memory: 8192, Time: 2, Threads: 1, KeyLen: 32, SaltLen: 16}, MaxConcurrent: 2})
	var peak atomic.Int64
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				if n := int64(h.InFlight()); n > peak.Load() {
					peak.Store(n)
				}
			}
		}
	}()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { h.Hash(context.Background(), "pw") })
	}
	wg.Wait()
	close(stop)
	if p := peak.Load(); p > 2 || p < 1 {
		t.Errorf("peak concurrent hashes = %d, want 1..2", p)
	}
}

// TestWaitRespectsContext: with every slot taken, a caller gives up when its context ends
// instead of queueing forever.
func TestWaitRespectsContext(t *testing.T) {
	h := password.New(password.Options{Params: password.Params{Memory: 64 * 1024, Time: 10, Threads: 1, KeyLen: 32, SaltLen: 16}, MaxConcurrent: 1})
	done := make(chan struct{})
	go func() { h.Hash(context.Background(), "slow"); close(done) }()
	for h.InFlight() == 0 {
		runtime.Gosched()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	_, err := h.Hash(ctx, "pw")
	if err != context.DeadlineExceeded {
		t.Errorf("Hash with every slot busy = %v, want context.DeadlineExceeded", err)
	}
	<-done
}

func TestPolicy(t *testing.T) {
	p := password.DefaultPolicy
	tests := []struct {
		name   string
		pw     string
		mfa    bool
		inputs []string
		ok     bool
		reason string
	}{
		{"15 without MFA", "river lamp quiet", false, nil, true, ""},
		{"14 without MFA", "river lamp qui", false, nil, false, "at least 15"},
		{"8 with MFA", "tX9#kq2L", true, nil, true, ""},
		{"7 with MFA", "tX9#kq2", true, nil, false, "at least 8"},
		{"64+ allowed", strings.Repeat("long passphrase ", 5), false, nil, true, ""},
		{"1024 allowed", strings.Repeat("z", 1024), false, nil, true, ""},
		{"1025 refused", strings.Repeat("z", 1025), false, nil, false, "at most 1024"},
		{"no composition rules", "all lower case words here", false, nil, true, ""},
		{"common", "passwordpassword", false, nil, false, "too common"},
		{"common any case", "PasswordPassword", false, nil, false, "too common"},
		{"common with MFA", "iloveyou1", true, nil, false, "too common"},
		{"contains username", "my name is alice and this is long", false, []string{"alice"}, false, "username"},
		{"contains email local part", "bob.smith rules the world", false, []string{"bob.smith@example.com"}, false, "username"},
		{"counts characters, not bytes", "ääääääääääääääää", false, nil, true, ""},
		{"empty", "", true, nil, false, "Enter a password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := p.Check(tt.pw, tt.mfa, tt.inputs...)
			if (err == nil) != tt.ok {
				t.Fatalf("Check(%q, mfa=%v) = %v, want ok=%v", tt.pw, tt.mfa, err, tt.ok)
			}
			if err != nil {
				if latchkey.ErrorCode(err) != latchkey.EWeakPassword || !strings.Contains(latchkey.ErrorMessage(err), tt.reason) {
					t.Errorf("Check(%q) = %v, want weak_password mentioning %q", tt.pw, err, tt.reason)
				}
			}
		})
	}
}

func FuzzVerifyHash(f *testing.F) {
	h := password.New(password.Options{Params: small})
	f.Add("$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA")
	f.Add("$argon2id$v=19$m=8,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, enc string) {
		h.Verify(context.Background(), "pw", enc) // must not panic or run away
	})
}

func BenchmarkHash(b *testing.B) {
	h := password.New(password.Options{})
	b.ReportAllocs()
	for b.Loop() {
		h.Hash(context.Background(), "correct horse battery staple")
	}
}

func BenchmarkPolicyCheck(b *testing.B) {
	p := password.DefaultPolicy
	p.Check("warm up the list", false)
	b.ReportAllocs()
	for b.Loop() {
		p.Check("a perfectly fine passphrase", false, "alice", "alice@example.com")
	}
}
