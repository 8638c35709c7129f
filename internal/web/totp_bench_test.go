package web_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/totp"
)

// totpBench is a server with users who have an authenticator app, and sign-ins of theirs
// that passed the password step, seeded directly in the store (as the harness in bench/
// does), so that a benchmark measures the TOTP step alone.
type totpBench struct {
	f       *fixture
	users   []*latchkey.User
	secrets [][]byte
	tokens  []string // tokens[i] is a second-factor flow of users[i]
	base    int64    // the clock's time step (the clock does not move)

	next atomic.Int64
}

// benchKeyedHash is internal/login's keyed hash of a token part, with the fixture's session
// key: the selector's is the stored session ID, the verifier's the stored verifier.
func benchKeyedHash(purpose, value string) string {
	m := hmac.New(sha256.New, bytes.Repeat([]byte{7}, 32))
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(value))
	return hex.EncodeToString(m.Sum(nil))
}

// newTOTPBench seeds n users with a confirmed authenticator app and a sign-in flow each.
// One user per sign-in and a clock that stands still: a request that waits long for
// SQLite's write lock cannot fall out of the code's window or meet a newer code of its user.
func newTOTPBench(b *testing.B, n int) *totpBench {
	b.Helper()
	ctx := context.Background()
	f := newFixture(b, "")
	tb := &totpBench{f: f, base: totp.Step(f.clock.Now())}
	now := f.clock.Now()
	for i := range n {
		u := &latchkey.User{Username: fmt.Sprintf("bench%05d", i), Email: fmt.Sprintf("bench%05d@example.com", i), Role: latchkey.RoleUser, PasswordHash: "unused"}
		if err := f.db.CreateUser(ctx, u); err != nil {
			b.Fatal(err)
		}
		secret := bytes.Repeat([]byte{byte(i), byte(i >> 8), 3, 4}, 5)
		cr := &latchkey.TOTPCredential{UserID: u.ID, Name: "phone", Secret: secret}
		if err := f.db.CreateTOTPCredential(ctx, cr); err != nil {
			b.Fatal(err)
		}
		if err := f.db.ConfirmTOTPCredential(ctx, cr.ID, tb.base-2, now, nil, false); err != nil {
			b.Fatal(err)
		}
		tb.users, tb.secrets = append(tb.users, u), append(tb.secrets, secret)
	}
	tx, err := f.db.SQL().BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		sel, ver := fmt.Sprintf("bench-flow-%08d-%s", i, strings.Repeat("x", 24)), fmt.Sprintf("verifier-%08d-%s", i, strings.Repeat("y", 24))
		tok := sel + "." + ver
		u := tb.users[i]
		_, err := tx.ExecContext(ctx, `INSERT INTO sessions (id, verifier, sid, user_id, state, amr, password_at, mfa_at, created_at, last_seen_at, expires_at, ip, user_agent)
			VALUES ($1, $7, $2, $3, $4, 'pwd', $5, NULL, $5, $5, $6, '192.0.2.1', 'bench')`,
			benchKeyedHash("session", sel), fmt.Sprintf("%032x", i), u.ID, string(latchkey.StateSecondFactor), now.UnixMicro(), now.Add(24*time.Hour).UnixMicro(), benchKeyedHash("session-verifier", ver))
		if err != nil {
			b.Fatal(err)
		}
		tb.tokens = append(tb.tokens, tok)
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	return tb
}

// step sends the TOTP step of sign-in i: the current code of user i.
func (tb *totpBench) step(b *testing.B, i int) {
	code := totp.Code(tb.secrets[i], tb.base)
	req := httptest.NewRequest("POST", "/api/v1/login/totp", strings.NewReader(`{"code":"`+code+`"}`))
	req.Header.Set("Content-Type", "application/json")
	req.AddCookie(&http.Cookie{Name: "latchkey_session", Value: tb.tokens[i]})
	w := httptest.NewRecorder()
	tb.f.srv.Config.Handler.ServeHTTP(w, req)
	if w.Code != 200 {
		b.Fatalf("totp step %d: %d %s", i, w.Code, w.Body)
	}
}

// BenchmarkTOTPStep measures one TOTP sign-in step (POST /api/v1/login/totp of a sign-in that
// passed the password) through the HTTP handler and SQLite, one request at a time: the flow
// and user reads, the throttle reservation, the code check, the replay guard, the session
// rotation, the throttle resets and the audit entry.
func BenchmarkTOTPStep(b *testing.B) {
	tb := newTOTPBench(b, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		tb.step(b, i)
	}
}

// BenchmarkTOTPStepParallel is BenchmarkTOTPStep with 16 requests per CPU in flight at once
// (32 on 2 cores, half the harness's 64 clients, below the per-IP limit of 50 attempts in
// flight): the contention on SQLite's one write lock.
func BenchmarkTOTPStepParallel(b *testing.B) {
	tb := newTOTPBench(b, b.N)
	b.ReportAllocs()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tb.step(b, int(tb.next.Add(1)-1))
		}
	})
}
