package sqlstore_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/pgtest"
	"github.com/latchkey/latchkey/internal/sqlstore"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var key = bytes.Repeat([]byte{42}, 32)

var t0 = time.Date(2026, 11, 22, 9, 30, 15, 123456000, time.UTC)

// backend opens a fresh store of one kind; dsn lets a test open the same database twice.
type backend struct {
	name string
	dsn  func(t *testing.T) string
}

var backends = []backend{
	{"sqlite", func(t *testing.T) string { return filepath.Join(t.TempDir(), "store.db") }},
	{"postgres", func(t *testing.T) string { return pgtest.Start(t) }},
}

func open(t *testing.T, dsn string, k []byte) *sqlstore.DB {
	t.Helper()
	db, err := sqlstore.Open(context.Background(), dsn, sqlstore.Options{SecretsKey: k, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// each runs the contract test f against every backend.
func each(t *testing.T, f func(t *testing.T, db *sqlstore.DB)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { f(t, open(t, b.dsn(t), key)) })
	}
}

// eachDSN is each for tests that open the same database again (another key, another node):
// f also gets its DSN.
func eachDSN(t *testing.T, f func(t *testing.T, db *sqlstore.DB, dsn string)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			dsn := b.dsn(t)
			f(t, open(t, dsn, key), dsn)
		})
	}
}

func errCode(err error) string { return latchkey.ErrorCode(err) }

func mkUser(t *testing.T, db *sqlstore.DB, name string) *latchkey.User {
	t.Helper()
	u := &latchkey.User{Username: name, Email: name + "@example.com", Role: latchkey.RoleUser, PasswordHash: "$argon2id$x"}
	if err := db.CreateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	return u
}

// mkPendingApp creates an authenticator app of u that is not confirmed yet.
func mkPendingApp(t *testing.T, db *sqlstore.DB, u *latchkey.User) *latchkey.TOTPCredential {
	t.Helper()
	c := &latchkey.TOTPCredential{UserID: u.ID, Name: "App", Secret: []byte("12345678901234567890")}
	if err := db.CreateTOTPCredential(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	return c
}

// mkApp creates a confirmed authenticator app of u, without recovery codes, whose last used
// time step is step.
func mkApp(t *testing.T, db *sqlstore.DB, u *latchkey.User, step int64) *latchkey.TOTPCredential {
	t.Helper()
	c := mkPendingApp(t, db, u)
	if err := db.ConfirmTOTPCredential(context.Background(), c.ID, step, t0, nil, false); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestUsers(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		u := mkUser(t, db, "alice")
		if u.ID == 0 || !u.CreatedAt.Equal(t0.Truncate(time.Microsecond)) {
			t.Fatalf("CreateUser set ID %d, CreatedAt %v", u.ID, u.CreatedAt)
		}
		if err := db.CreateUser(ctx, &latchkey.User{Username: "alice", Email: "x@example.com", Role: latchkey.RoleUser, PasswordHash: "h"}); errCode(err) != latchkey.EConflict {
			t.Errorf("duplicate username: %v, want conflict", err)
		}
		got, err := db.FindUserByUsername(ctx, "alice")
		if err != nil || got.ID != u.ID || got.Email != "alice@example.com" || got.Role != latchkey.RoleUser || got.Disabled || !got.CreatedAt.Equal(u.CreatedAt) {
			t.Errorf("FindUserByUsername = %+v, %v", got, err)
		}
		if _, err := db.FindUserByID(ctx, 9999); errCode(err) != latchkey.ENotFound {
			t.Errorf("FindUserByID(missing) = %v", err)
		}
		if _, err := db.FindUserByUsername(ctx, "nobody"); errCode(err) != latchkey.ENotFound {
			t.Errorf("FindUserByUsername(missing) = %v", err)
		}
		admin := latchkey.RoleAdmin
		disabled := true
		upd, err := db.UpdateUser(ctx, u.ID, latchkey.UserUpdate{Role: &admin, Disabled: &disabled})
		if err != nil || upd.Role != admin || !upd.Disabled || upd.Email != u.Email {
			t.Errorf("UpdateUser = %+v, %v", upd, err)
		}
		if _, err := db.UpdateUser(ctx, 9999, latchkey.UserUpdate{Role: &admin}); errCode(err) != latchkey.ENotFound {
			t.Errorf("UpdateUser(missing) = %v", err)
		}
		mkUser(t, db, "bob")
		mkUser(t, db, "carol")
		users, n, err := db.FindUsers(ctx, latchkey.UserFilter{Offset: 1, Limit: 1})
		if err != nil || n != 3 || len(users) != 1 || users[0].Username != "bob" {
			t.Errorf("FindUsers(offset 1, limit 1) = %v, %d, %v", users, n, err)
		}
		users, n, _ = db.FindUsers(ctx, latchkey.UserFilter{Role: &admin})
		if n != 1 || users[0].Username != "alice" {
			t.Errorf("FindUsers(role admin) = %v, %d", users, n)
		}
		users, _, _ = db.FindUsers(ctx, latchkey.UserFilter{Offset: 2})
		if len(users) != 1 || users[0].Username != "carol" {
			t.Errorf("FindUsers(offset 2) = %v", users)
		}
	})
}

func TestTOTPCredentials(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		u := mkUser(t, db, "alice")
		secret := []byte("0123456789abcdefghij")
		first := &latchkey.TOTPCredential{UserID: u.ID, Name: "app", Secret: []byte("first pending secret")}
		if err := db.CreateTOTPCredential(ctx, first); err != nil {
			t.Fatal(err)
		}
		c := &latchkey.TOTPCredential{UserID: u.ID, Name: "app", Secret: secret}
		if err := db.CreateTOTPCredential(ctx, c); err != nil {
			t.Fatal(err)
		}
		creds, err := db.FindTOTPCredentials(ctx, u.ID)
		if err != nil || len(creds) != 1 || creds[0].ID != c.ID || !bytes.Equal(creds[0].Secret, secret) || creds[0].Confirmed() {
			t.Fatalf("after a second pending enrolment: %+v, %v (want only the new pending one)", creds, err)
		}
		if err := useTOTPStep(t, db, u, "flow-pending", c.ID, 10); errCode(err) != latchkey.EConflict {
			t.Errorf("a sign-in with a pending credential's step = %v, want conflict", err)
		}
		hashes := [][]byte{[]byte("h1"), []byte("h2")}
		if err := db.ConfirmTOTPCredential(ctx, c.ID, 100, t0, hashes, false); err != nil {
			t.Fatal(err)
		}
		if err := db.ConfirmTOTPCredential(ctx, c.ID, 101, t0, hashes, false); errCode(err) != latchkey.ENotFound {
			t.Errorf("second confirm = %v, want not_found", err)
		}
		codes, _ := db.FindRecoveryCodes(ctx, u.ID)
		if len(codes) != 2 {
			t.Errorf("confirm stored %d recovery codes, want 2", len(codes))
		}
		creds, _ = db.FindTOTPCredentials(ctx, u.ID)
		if !creds[0].Confirmed() || creds[0].LastStep != 100 || !creds[0].ConfirmedAt.Equal(t0.Truncate(time.Microsecond)) {
			t.Errorf("confirmed credential = %+v", creds[0])
		}
		// The replay guard, as sign-ins meet it (each completes a flow of its own): only a
		// step newer than the last used one, which the confirmation's step starts.
		for i, tt := range []struct {
			step int64
			want string
		}{{100, latchkey.EConflict}, {99, latchkey.EConflict}, {101, ""}, {101, latchkey.EConflict}, {103, ""}} {
			if got := errCode(useTOTPStep(t, db, u, fmt.Sprintf("flow-%d", i), c.ID, tt.step)); got != tt.want {
				t.Errorf("a sign-in with step %d = %q, want %q", tt.step, got, tt.want)
			}
		}
		if creds, _ := db.FindTOTPCredentials(ctx, u.ID); creds[0].LastStep != 103 {
			t.Errorf("last step = %d after the sign-ins, want 103", creds[0].LastStep)
		}
		if err := useTOTPStep(t, db, u, "flow-missing", 9999, 1000); errCode(err) != latchkey.EConflict {
			t.Errorf("a sign-in with a missing credential's step = %v, want conflict", err)
		}
		other := mkUser(t, db, "mallory")
		if err := db.DeleteTOTPCredential(ctx, other.ID, c.ID, false); errCode(err) != latchkey.ENotFound {
			t.Errorf("delete another user's credential = %v, want not_found", err)
		}
		if err := db.DeleteTOTPCredential(ctx, u.ID, c.ID, true); !errors.Is(err, latchkey.ErrLastFactor) {
			t.Errorf("delete the last factor with keepOne = %v, want ErrLastFactor", err)
		}
		if err := db.DeleteTOTPCredential(ctx, u.ID, c.ID, false); err != nil {
			t.Fatal(err)
		}
		if creds, _ := db.FindTOTPCredentials(ctx, u.ID); len(creds) != 0 {
			t.Errorf("credentials after delete: %v", creds)
		}
		if codes, _ := db.FindRecoveryCodes(ctx, u.ID); len(codes) != 0 {
			t.Errorf("recovery codes after the last factor went: %d", len(codes))
		}
	})
}

// TestRecoveryCodes: a user's codes are listed in order with their use, and replacing them
// voids the old set at once: an old code, used or not, is unknown to a sign-in and to a reset
// (which tells an unknown code from a used one), and the new ones are unused. Spending a code
// is tested with the two writes that spend one (TestCompleteSecondFactorRecoveryCode,
// TestResetMFARecoveryCode).
func TestRecoveryCodes(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		u := mkUser(t, db, "alice")
		c := mkPendingApp(t, db, u)
		if err := db.ConfirmTOTPCredential(ctx, c.ID, 1, t0, [][]byte{[]byte("a"), []byte("b")}, false); err != nil {
			t.Fatal(err)
		}
		if err := spendRecoveryCode(t, db, u, "flow-a", "a"); err != nil {
			t.Fatal(err)
		}
		codes, _ := db.FindRecoveryCodes(ctx, u.ID)
		if len(codes) != 2 || string(codes[0].Hash) != "a" || codes[0].UsedAt == nil || string(codes[1].Hash) != "b" || codes[1].UsedAt != nil {
			t.Errorf("codes = %+v, want a used and b unused", codes)
		}
		if err := db.ReplaceRecoveryCodes(ctx, u.ID, [][]byte{[]byte("c")}, t0); err != nil {
			t.Fatal(err)
		}
		codes, _ = db.FindRecoveryCodes(ctx, u.ID)
		if len(codes) != 1 || string(codes[0].Hash) != "c" || codes[0].UsedAt != nil {
			t.Errorf("codes after replace = %+v, want c unused", codes)
		}
		if err := spendRecoveryCode(t, db, u, "flow-b", "b"); errCode(err) != latchkey.EConflict {
			t.Errorf("a sign-in with an old code after replace = %v, want conflict", err)
		}
		for _, old := range []string{"a", "b"} {
			if _, err := db.ResetMFA(ctx, u.ID, &latchkey.MFAResetProof{RecoveryCodeHash: []byte(old)}, nil); errCode(err) != latchkey.ENotFound {
				t.Errorf("a reset with old code %s after replace = %v, want not_found", old, err)
			}
		}
		if cs, _ := db.FindTOTPCredentials(ctx, u.ID); len(cs) != 1 {
			t.Errorf("refused resets removed the app: %+v", cs)
		}
	})
}

func TestSessions(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		u := mkUser(t, db, "alice")
		mfa := t0.Add(time.Second)
		s := &latchkey.Session{ID: "s1", Verifier: "v1", UserID: u.ID, State: latchkey.StateAuthenticated, AMR: []string{"pwd", "otp", "mfa"}, PasswordAt: t0, MFAAt: &mfa, CreatedAt: t0, LastSeenAt: t0, ExpiresAt: t0.Add(time.Hour), IP: "192.0.2.1", UserAgent: "UA"}
		if err := db.CreateSession(ctx, s); err != nil {
			t.Fatal(err)
		}
		got, err := db.FindSessionByID(ctx, "s1")
		if err != nil || got.State != s.State || len(got.AMR) != 3 || got.AMR[1] != "otp" || !got.MFAAt.Equal(mfa.Truncate(time.Microsecond)) || !got.ExpiresAt.Equal(s.ExpiresAt.Truncate(time.Microsecond)) || got.IP != "192.0.2.1" || got.Verifier != "v1" {
			t.Fatalf("FindSessionByID = %+v, %v", got, err)
		}
		if got, _, err := db.FindSessionWithUser(ctx, "s1"); err != nil || got.Verifier != "v1" || got.State != s.State {
			t.Fatalf("FindSessionWithUser = %+v, %v", got, err)
		}
		next := *s
		next.ID, next.Verifier = "s2", "v2"
		for _, v := range []string{"", "v2"} {
			if err := db.RotateSession(ctx, "s1", v, &next); errCode(err) != latchkey.ENotFound {
				t.Errorf("rotating with verifier %q = %v, want not_found", v, err)
			}
		}
		if _, err := db.FindSessionByID(ctx, "s2"); errCode(err) != latchkey.ENotFound {
			t.Errorf("a rotation with the wrong verifier inserted the new session: %v", err)
		}
		if err := db.RotateSession(ctx, "s1", "v1", &next); err != nil {
			t.Fatal(err)
		}
		if _, err := db.FindSessionByID(ctx, "s1"); errCode(err) != latchkey.ENotFound {
			t.Errorf("old session after rotation: %v", err)
		}
		again := next
		again.ID = "s3"
		if err := db.RotateSession(ctx, "s1", "v1", &again); errCode(err) != latchkey.ENotFound {
			t.Errorf("rotating a gone session = %v, want not_found", err)
		}
		if _, err := db.FindSessionByID(ctx, "s3"); errCode(err) != latchkey.ENotFound {
			t.Errorf("a failed rotation inserted the new session: %v", err)
		}
		if err := db.TouchSession(ctx, "s2", t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.FindSessionByID(ctx, "s2"); !got.LastSeenAt.Equal(t0.Add(time.Minute).Truncate(time.Microsecond)) {
			t.Errorf("LastSeenAt = %v", got.LastSeenAt)
		}
		for _, id := range []string{"s4", "s5"} {
			x := *s
			x.ID, x.ExpiresAt = id, t0.Add(-time.Minute)
			if err := db.CreateSession(ctx, &x); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := db.DeleteExpiredSessions(ctx, t0); err != nil || n != 2 {
			t.Errorf("DeleteExpiredSessions = %d, %v, want 2", n, err)
		}
		x := *s
		x.ID = "s6"
		db.CreateSession(ctx, &x)
		// The user's unused activation codes for new devices go with the sessions; a used one
		// and another user's stay.
		other := mkUser(t, db, "sessions-other")
		for _, a := range []*latchkey.DeviceActivation{
			{ID: "code-unused", UserID: u.ID, Kind: latchkey.ActivationNew, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)},
			{ID: "code-used", UserID: u.ID, Kind: latchkey.ActivationNew, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)},
			{ID: "code-other", UserID: other.ID, Kind: latchkey.ActivationNew, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)},
		} {
			if err := db.CreateDeviceActivation(ctx, a); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.UseDeviceActivation(ctx, "code-used", t0); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteUserSessions(ctx, u.ID, "s2"); err != nil {
			t.Fatal(err)
		}
		var codes []string
		rows, err := db.SQL().QueryContext(ctx, `SELECT id FROM device_activations ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id string
			rows.Scan(&id)
			codes = append(codes, id)
		}
		rows.Close()
		if strings.Join(codes, " ") != "code-other code-used" {
			t.Errorf("activation codes after DeleteUserSessions: %v, want code-other code-used", codes)
		}
		if _, err := db.FindSessionByID(ctx, "s6"); errCode(err) != latchkey.ENotFound {
			t.Errorf("s6 survived DeleteUserSessions: %v", err)
		}
		if _, err := db.FindSessionByID(ctx, "s2"); err != nil {
			t.Errorf("the excepted session was deleted: %v", err)
		}
		if err := db.DeleteSession(ctx, "s2"); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteSession(ctx, "s2"); err != nil {
			t.Errorf("deleting a missing session: %v", err)
		}
	})
}

func TestThrottlesAndSettings(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		if th, err := db.FindThrottle(ctx, "user:alice"); err != nil || th.Failures != 0 {
			t.Errorf("FindThrottle(new) = %+v, %v", th, err)
		}
		for i := 1; i <= 3; i++ {
			if n, err := db.RecordFailure(ctx, "user:alice", t0.Add(time.Duration(i)*time.Second)); err != nil || n != i {
				t.Errorf("RecordFailure #%d = %d, %v", i, n, err)
			}
		}
		th, _ := db.FindThrottle(ctx, "user:alice")
		if th.Failures != 3 || !th.LastFailureAt.Equal(t0.Add(3*time.Second).Truncate(time.Microsecond)) {
			t.Errorf("throttle = %+v", th)
		}
		// Several counters in one read, in the keys' order, a missing one as zero.
		if _, err := db.RecordFailure(ctx, "push:alice", t0); err != nil {
			t.Fatal(err)
		}
		ths, err := db.FindThrottles(ctx, "push:alice", "nobody", "user:alice")
		if err != nil || len(ths) != 3 {
			t.Fatalf("FindThrottles = %+v, %v", ths, err)
		}
		want := []latchkey.Throttle{{Key: "push:alice", Failures: 1, LastFailureAt: t0.Truncate(time.Microsecond)}, {Key: "nobody"}, th}
		for i := range want {
			if ths[i].Key != want[i].Key || ths[i].Failures != want[i].Failures || !ths[i].LastFailureAt.Equal(want[i].LastFailureAt) {
				t.Errorf("FindThrottles[%d] = %+v, want %+v", i, ths[i], want[i])
			}
		}
		if _, err := db.FindThrottles(ctx); err == nil {
			t.Error("FindThrottles of no keys: no error")
		}
		if err := db.ResetThrottle(ctx, "user:alice"); err != nil {
			t.Fatal(err)
		}
		if th, _ := db.FindThrottle(ctx, "user:alice"); th.Failures != 0 {
			t.Errorf("after reset: %+v", th)
		}
		if _, err := db.FindSetting(ctx, "k"); errCode(err) != latchkey.ENotFound {
			t.Errorf("FindSetting(missing) = %v", err)
		}
		db.SetSetting(ctx, "k", "v1")
		db.SetSetting(ctx, "k", "v2")
		if v, _ := db.FindSetting(ctx, "k"); v != "v2" {
			t.Errorf("FindSetting = %q, want v2", v)
		}
		if ok, _ := db.ConsumeSetting(ctx, "k", "v1"); ok {
			t.Error("consumed with the wrong value")
		}
		if ok, _ := db.ConsumeSetting(ctx, "k", "v2"); !ok {
			t.Error("not consumed with the right value")
		}
		if ok, _ := db.ConsumeSetting(ctx, "k", "v2"); ok {
			t.Error("consumed twice")
		}
	})
}

// TestConcurrentSingleUse: of many simultaneous uses of one TOTP step, or of one setting (the
// setup token), exactly one wins. The step is used by the two writes that record one, a
// sign-in's completion and a reset of all MFA, at once: a losing sign-in finds the step used
// or the app gone (EConflict), a losing reset the step used or no factor left. (Mostly a
// reset wins, and the others find the app gone: the replay guard among sign-ins alone, or
// resets alone, is TestCompleteSecondFactorConcurrent's and TestResetMFATOTPStep's; of one
// recovery code's, TestCompleteSecondFactorRecoveryCode's and TestResetMFARecoveryCode's.)
func TestConcurrentSingleUse(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		const n = 12
		u, c := completionFixture(t, db, n)
		var wg sync.WaitGroup
		var mu sync.Mutex
		signIns, resets, refused := 0, 0, 0
		for i := range n {
			wg.Go(func() {
				var err error
				if i%2 == 0 {
					err = db.CompleteSecondFactor(ctx, completionOf(u, c, i, 50))
				} else {
					e := &latchkey.AuditEvent{UserID: u.ID, Username: u.Username, Action: latchkey.ActionMFAReset, Outcome: latchkey.OutcomeSuccess}
					_, err = db.ResetMFA(ctx, u.ID, &latchkey.MFAResetProof{TOTPCredentialID: c.ID, TOTPStep: 50}, e)
				}
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil && i%2 == 0:
					signIns++
				case err == nil:
					resets++
				case errCode(err) == latchkey.EConflict, i%2 == 1 && errors.Is(err, latchkey.ErrNoFactor):
					refused++
				default:
					t.Errorf("use %d of the step: unexpected error %v", i, err)
				}
			})
		}
		wg.Wait()
		if signIns+resets != 1 || refused != n-1 {
			t.Errorf("totp step: %d sign-ins and %d resets, %d refused, want 1 in all and %d", signIns, resets, refused, n-1)
		}
		creds, err := db.FindTOTPCredentials(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if want := 1 - resets; len(creds) != want || want == 1 && creds[0].LastStep != 50 {
			t.Errorf("after %d sign-ins and %d resets: credentials %+v, want %d with last step 50", signIns, resets, creds, want)
		}

		if err := db.SetSetting(ctx, "token", "t"); err != nil {
			t.Fatal(err)
		}
		oneWins(t, n, func(int) error {
			ok, err := db.ConsumeSetting(ctx, "token", "t")
			if err == nil && !ok {
				return latchkey.Errorf(latchkey.EConflict, "lost")
			}
			return err
		})
	})
}

func TestAuditTrail(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() {
				e := &latchkey.AuditEvent{Time: t0.Add(time.Duration(i) * time.Nanosecond * 1500), UserID: 1, Username: "alice", Action: latchkey.ActionLogin, Outcome: latchkey.OutcomeFailure, IP: "192.0.2.1", TicketID: int64(i)}
				if err := db.AppendAuditEvent(ctx, e); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		// Chained in chain order: on SQLite as appended, on PostgreSQL once the chainer ran
		// (ChainAuditEvents runs it now). Every entry once, each linked to the one before.
		if pending, err := db.ChainAuditEvents(ctx); err != nil || pending != 0 {
			t.Fatalf("ChainAuditEvents = %d pending, %v", pending, err)
		}
		chain, err := db.FindAuditChain(ctx, 0, 0)
		if err != nil || len(chain) != 20 {
			t.Fatalf("FindAuditChain = %d entries, %v", len(chain), err)
		}
		prev, seen, lastSeq := []byte{}, map[int64]bool{}, int64(0)
		for _, e := range chain {
			if e.Seq <= lastSeq || seen[e.ID] || !bytes.Equal(e.PrevHash, prev) || !bytes.Equal(e.Hash, e.ComputeHash(e.PrevHash)) {
				t.Fatalf("chain broken at place %d (entry %d)", e.Seq, e.ID)
			}
			prev, seen[e.ID], lastSeq = e.Hash, true, e.Seq
		}
		if rest, err := db.FindAuditChain(ctx, chain[9].Seq, 5); err != nil || len(rest) != 5 || rest[0].Seq != chain[10].Seq {
			t.Errorf("FindAuditChain after place %d: %d entries, %v", chain[9].Seq, len(rest), err)
		}
		events, err := db.FindAuditEvents(ctx, latchkey.AuditFilter{})
		if err != nil || len(events) != 20 {
			t.Fatalf("FindAuditEvents = %d events, %v", len(events), err)
		}
		for i, e := range events {
			// In ID order, each with its hashes from the chain.
			if i > 0 && e.ID <= events[i-1].ID || !seen[e.ID] || !bytes.Equal(e.Hash, e.ComputeHash(e.PrevHash)) {
				t.Fatalf("FindAuditEvents: entry %d out of order or without its hashes", e.ID)
			}
		}
		page, _ := db.FindAuditEvents(ctx, latchkey.AuditFilter{AfterID: events[4].ID, Limit: 3})
		if len(page) != 3 || page[0].ID != events[5].ID {
			t.Errorf("page = %v", page)
		}
		uid := latchkey.UserID(2)
		if none, _ := db.FindAuditEvents(ctx, latchkey.AuditFilter{UserID: &uid}); len(none) != 0 {
			t.Errorf("user filter returned %d", len(none))
		}
		// Append-only: the database refuses updates and deletes.
		if _, err := db.SQL().ExecContext(ctx, `UPDATE audit_events SET outcome = 'success' WHERE id = $1`, events[0].ID); err == nil {
			t.Error("an audit event was updated")
		}
		if _, err := db.SQL().ExecContext(ctx, `DELETE FROM audit_events WHERE id = $1`, events[0].ID); err == nil {
			t.Error("an audit event was deleted")
		}
		if db.Dialect() == sqlstore.Postgres {
			if _, err := db.SQL().ExecContext(ctx, `UPDATE audit_chain SET hash = prev_hash WHERE seq = $1`, chain[0].Seq); err == nil {
				t.Error("an audit chain row was updated")
			}
			if _, err := db.SQL().ExecContext(ctx, `DELETE FROM audit_chain WHERE seq = $1`, chain[19].Seq); err == nil {
				t.Error("an audit chain row was deleted")
			}
		}
	})
}

func TestSecretsEncryptedAtRest(t *testing.T) {
	eachDSN(t, func(t *testing.T, db *sqlstore.DB, dsn string) {
		ctx := context.Background()
		alice, bob := mkUser(t, db, "alice"), mkUser(t, db, "bob")
		secret := []byte("SUPER-SECRET-SEED-20")
		ca := &latchkey.TOTPCredential{UserID: alice.ID, Name: "app", Secret: secret}
		cb := &latchkey.TOTPCredential{UserID: bob.ID, Name: "app", Secret: []byte("bob's own seed 12345")}
		db.CreateTOTPCredential(ctx, ca)
		db.CreateTOTPCredential(ctx, cb)
		var raw []byte
		if err := db.SQL().QueryRowContext(ctx, `SELECT secret FROM totp_credentials WHERE id = $1`, ca.ID).Scan(&raw); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, secret) || len(raw) < len(secret)+28 {
			t.Fatalf("the stored secret is not encrypted: %q", raw)
		}
		// A different key cannot read it: the store refuses to open with it.
		refusesWrongKey(t, db, dsn)
		// Alice's ciphertext copied onto Bob's row does not decrypt there.
		if _, err := db.SQL().ExecContext(ctx, `UPDATE totp_credentials SET secret = $1 WHERE id = $2`, raw, cb.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := db.FindTOTPCredentials(ctx, bob.ID); err == nil {
			t.Error("a ciphertext moved to another row decrypted")
		}
		if creds, err := db.FindTOTPCredentials(ctx, alice.ID); err != nil || !bytes.Equal(creds[0].Secret, secret) {
			t.Errorf("alice's own secret: %v", err)
		}
	})
}

func TestMigrationsIdempotent(t *testing.T) {
	eachDSN(t, func(t *testing.T, db *sqlstore.DB, dsn string) {
		mkUser(t, db, "alice")
		db.Close()
		// Two nodes starting at once on the same database.
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				db2, err := sqlstore.Open(context.Background(), dsn, sqlstore.Options{SecretsKey: key})
				if err != nil {
					t.Error(err)
					return
				}
				defer db2.Close()
				if _, err := db2.FindUserByUsername(context.Background(), "alice"); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	})
}

// TestReserveAttempt: of concurrent reservations that saw the same counter exactly one wins,
// at zero (no row) and above; a refund takes one back and, when nothing was counted since,
// restores the previous last failure.
func TestReserveAttempt(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		race := func(seen latchkey.Throttle, at time.Time) int {
			t.Helper()
			var wg sync.WaitGroup
			var mu sync.Mutex
			won := 0
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ok, err := db.ReserveAttempt(ctx, "user:bob", seen, at)
					if err != nil {
						t.Error(err)
					}
					if ok {
						mu.Lock()
						won++
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			return won
		}
		seen, _ := db.FindThrottle(ctx, "user:bob")
		if won := race(seen, t0); won != 1 {
			t.Fatalf("at zero: %d reservations won, want 1", won)
		}
		seen, _ = db.FindThrottle(ctx, "user:bob")
		if seen.Failures != 1 || !seen.LastFailureAt.Equal(t0) {
			t.Fatalf("after the first: %+v", seen)
		}
		if won := race(seen, t0.Add(time.Minute)); won != 1 {
			t.Fatalf("at one: %d reservations won, want 1", won)
		}
		if ok, _ := db.ReserveAttempt(ctx, "user:bob", seen, t0); ok {
			t.Fatal("a reservation on a stale counter won")
		}
		if err := db.RefundAttempt(ctx, "user:bob", 2, t0); err != nil {
			t.Fatal(err)
		}
		if th, _ := db.FindThrottle(ctx, "user:bob"); th.Failures != 1 || !th.LastFailureAt.Equal(t0) {
			t.Fatalf("after a refund: %+v, want 1 failure at t0", th)
		}
		// Refund when another attempt counted since: the count drops, the time stays.
		db.ReserveAttempt(ctx, "user:bob", latchkey.Throttle{Failures: 1}, t0.Add(time.Hour))
		if err := db.RefundAttempt(ctx, "user:bob", 1, t0.Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
		if th, _ := db.FindThrottle(ctx, "user:bob"); th.Failures != 1 || !th.LastFailureAt.Equal(t0.Add(time.Hour)) {
			t.Fatalf("after a late refund: %+v", th)
		}
		// Back at zero (the row stays), a reservation that saw zero wins once more.
		db.RefundAttempt(ctx, "user:bob", 1, t0)
		db.RefundAttempt(ctx, "user:bob", 0, t0)
		if th, _ := db.FindThrottle(ctx, "user:bob"); th.Failures != 0 {
			t.Fatalf("refunds went below zero or did not apply: %+v", th)
		}
		if won := race(latchkey.Throttle{}, t0); won != 1 {
			t.Fatalf("at a zero row: %d reservations won, want 1", won)
		}
	})
}

func TestSessionsBySID(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		u, bob := mkUser(t, db, "alice"), mkUser(t, db, "bob")
		mk := func(id, sid string, user latchkey.UserID, state latchkey.SessionState, seen, expires time.Duration) {
			t.Helper()
			s := &latchkey.Session{ID: id, SID: sid, UserID: user, State: state, AMR: []string{"pwd"}, PasswordAt: t0, CreatedAt: t0, LastSeenAt: t0.Add(seen), ExpiresAt: t0.Add(expires), IP: "192.0.2.1", UserAgent: "UA"}
			if err := db.CreateSession(ctx, s); err != nil {
				t.Fatalf("CreateSession(%s): %v", id, err)
			}
		}
		mk("a1", "sid-a1", u.ID, latchkey.StateAuthenticated, time.Minute, time.Hour)
		mk("a2", "sid-a2", u.ID, latchkey.StateAuthenticated, 2*time.Minute, time.Hour)
		mk("a3", "sid-a3", u.ID, latchkey.StateSecondFactor, 0, time.Hour)     // unfinished: not listed
		mk("a4", "sid-a4", u.ID, latchkey.StateAuthenticated, 0, -time.Minute) // expired: not listed
		mk("b1", "sid-b1", bob.ID, latchkey.StateAuthenticated, 0, time.Hour)
		dup := &latchkey.Session{ID: "a5", SID: "sid-a1", UserID: u.ID, State: latchkey.StateAuthenticated, PasswordAt: t0, CreatedAt: t0, LastSeenAt: t0, ExpiresAt: t0.Add(time.Hour)}
		if err := db.CreateSession(ctx, dup); errCode(err) != latchkey.EConflict {
			t.Errorf("a second session with the same SID: %v, want conflict", err)
		}
		list, err := db.FindUserSessions(ctx, u.ID, t0)
		if err != nil {
			t.Fatal(err)
		}
		var sids []string
		for _, s := range list {
			sids = append(sids, s.SID)
		}
		if got, want := strings.Join(sids, " "), "sid-a2 sid-a1"; got != want {
			t.Errorf("FindUserSessions = %q, want %q (most recently active first)", got, want)
		}
		got, err := db.FindSessionBySID(ctx, "sid-a1")
		if err != nil || got.ID != "a1" || got.UserID != u.ID {
			t.Errorf("FindSessionBySID = %+v, %v", got, err)
		}
		next := *got
		next.ID = "a1-rotated"
		if err := db.RotateSession(ctx, "a1", "", &next); err != nil {
			t.Fatal(err)
		}
		if got, err := db.FindSessionBySID(ctx, "sid-a1"); err != nil || got.ID != "a1-rotated" {
			t.Errorf("SID after rotation = %+v, %v; want the same SID on the new ID", got, err)
		}
		for _, sid := range []string{"", "nope"} {
			if _, err := db.FindSessionBySID(ctx, sid); errCode(err) != latchkey.ENotFound {
				t.Errorf("FindSessionBySID(%q) = %v, want not_found", sid, err)
			}
		}
		tz := "Europe/Madrid"
		if uu, err := db.UpdateUser(ctx, u.ID, latchkey.UserUpdate{TimeZone: &tz}); err != nil || uu.TimeZone != tz {
			t.Errorf("UpdateUser(TimeZone) = %+v, %v", uu, err)
		}
		if uu, _ := db.FindUserByID(ctx, u.ID); uu.TimeZone != tz {
			t.Errorf("TimeZone = %q, want %q", uu.TimeZone, tz)
		}
	})
}

// refusesWrongKey checks that the store at dsn (db, open with key) refuses to open with another
// secrets key, with a message naming it: by the key's check value, and, once that is deleted
// (a database from before the checks), by a stored secret that does not open. The right key
// still opens it afterwards and stores the check value again.
func refusesWrongKey(t *testing.T, db *sqlstore.DB, dsn string) {
	t.Helper()
	ctx := context.Background()
	other := bytes.Repeat([]byte{7}, 32)
	for _, stage := range []string{"with the check value", "without the check value"} {
		if stage == "without the check value" {
			if _, err := db.SQL().ExecContext(ctx, `DELETE FROM settings WHERE key = 'key_check.secrets'`); err != nil {
				t.Fatal(err)
			}
		}
		if wrong, err := sqlstore.Open(ctx, dsn, sqlstore.Options{SecretsKey: other}); errCode(err) != latchkey.EConflict || !strings.Contains(latchkey.ErrorMessage(err), "secrets key") {
			if wrong != nil {
				wrong.Close()
			}
			t.Errorf("opened %s with a wrong secrets key: %v, want a conflict naming the secrets key", stage, err)
		}
	}
	open(t, dsn, key)
	if v, err := db.FindSetting(ctx, "key_check.secrets"); err != nil || v != sqlstore.KeyCheck(key, "secrets") {
		t.Errorf("the check value after the right key opened the store again: %q, %v", v, err)
	}
}

// TestKeyCheck: a database remembers its keys' check values (never the keys): opening it with
// another secrets key, or checking another session key, is refused with a message for the
// operator and changes nothing; the right keys pass.
func TestKeyCheck(t *testing.T) {
	eachDSN(t, func(t *testing.T, db *sqlstore.DB, dsn string) {
		ctx := context.Background()
		v, err := db.FindSetting(ctx, "key_check.secrets")
		if err != nil || v != sqlstore.KeyCheck(key, "secrets") || strings.Contains(v, hex.EncodeToString(key)) {
			t.Fatalf("secrets check value %q, %v", v, err)
		}
		if sqlstore.KeyCheck(key, "secrets") == sqlstore.KeyCheck(key, "session") || sqlstore.KeyCheck(key, "secrets") == sqlstore.KeyCheck(bytes.Repeat([]byte{7}, 32), "secrets") {
			t.Error("check values do not depend on the name and the key")
		}
		// An empty database (nothing sealed yet) is refused by the check value alone.
		if _, err := sqlstore.Open(ctx, dsn, sqlstore.Options{SecretsKey: bytes.Repeat([]byte{7}, 32)}); errCode(err) != latchkey.EConflict {
			t.Errorf("a second key on a database without secrets: %v, want a conflict", err)
		}
		session := sqlstore.KeyCheck([]byte("session key one, 32 bytes long!!"), "session")
		for i, c := range []struct {
			check string
			want  string
		}{{session, ""}, {session, ""}, {sqlstore.KeyCheck([]byte("session key two, 32 bytes long!!"), "session"), latchkey.EConflict}} {
			err := db.CheckKey(ctx, "session", c.check, "LATCHKEY_SESSION_KEY")
			if errCode(err) != c.want && !(c.want == "" && err == nil) {
				t.Errorf("CheckKey #%d: %v, want %q", i+1, err, c.want)
			}
			if c.want != "" && !strings.Contains(latchkey.ErrorMessage(err), "LATCHKEY_SESSION_KEY") {
				t.Errorf("the refusal does not say which key: %v", err)
			}
		}
		if v, _ := db.FindSetting(ctx, "key_check.session"); v != session {
			t.Errorf("a refused check changed the stored value: %q", v)
		}
	})
}

// TestDatabaseFileIsPrivate: the SQLite file, its write-ahead log and the log's index are
// readable by their owner only, in a folder that existed with 0755 (SQLite would create them
// with the umask's 0644), and a database file made wider before is narrowed on open.
func TestDatabaseFileIsPrivate(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	path := filepath.Join(dir, "latchkey.db")
	db, err := sqlstore.Open(context.Background(), path, sqlstore.Options{SecretsKey: bytes.Repeat([]byte{1}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	mkUser(t, db, "alice")
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v; want mode 0600", filepath.Base(f), fi.Mode().Perm(), err)
		}
	}
	db.Close()
	os.Chmod(path, 0o644)
	db, err = sqlstore.Open(context.Background(), path, sqlstore.Options{SecretsKey: bytes.Repeat([]byte{1}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("a 0644 database file after open: %v", fi.Mode().Perm())
	}
}

// TestAuditTextThatIsNotText: an entry whose fields hold NUL or invalid UTF-8 (a User-Agent
// anyone can send) is stored on both databases, each such byte as U+FFFD, and chained; on
// PostgreSQL the insert failed and the entry was lost.
func TestAuditTextThatIsNotText(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		e := &latchkey.AuditEvent{Time: t0, Username: "ali\x00ce", Action: latchkey.ActionLogin, Outcome: latchkey.OutcomeFailure,
			IP: "192.0.2.1", UserAgent: "Mozilla\xff\xfe", Detail: "reason\x00with NUL"}
		if err := db.AppendAuditEvent(ctx, e); err != nil {
			t.Fatalf("append: %v", err)
		}
		if _, err := db.ChainAuditEvents(ctx); err != nil {
			t.Fatal(err)
		}
		events, err := db.FindAuditEvents(ctx, latchkey.AuditFilter{})
		if err != nil || len(events) != 1 {
			t.Fatalf("FindAuditEvents = %v, %v", events, err)
		}
		got := events[0]
		if got.Username != "ali\uFFFDce" || got.UserAgent != "Mozilla\uFFFD" || got.Detail != "reason\uFFFDwith NUL" {
			t.Errorf("stored %q, %q, %q", got.Username, got.UserAgent, got.Detail)
		}
		if !bytes.Equal(got.Hash, got.ComputeHash(got.PrevHash)) {
			t.Error("the entry's hash does not cover what was stored")
		}
	})
}

// TestAuditActor: the actor of an entry is stored in its own fields, read back by every
// reader of the trail, covered by the entry's hash, and selects entries in the admin
// console's query.
func TestAuditActor(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		events := []*latchkey.AuditEvent{
			{Time: t0, UserID: 2, Username: "bob", Action: latchkey.ActionLogin, Outcome: latchkey.OutcomeSuccess},
			{Time: t0, UserID: 2, Username: "bob", ActorID: 1, Actor: "root\x00", Action: latchkey.ActionUserDisabled, Outcome: latchkey.OutcomeSuccess},
			{Time: t0, UserID: 3, Username: "carol", ActorID: 1, Actor: "root", Action: latchkey.ActionUserRole, Outcome: latchkey.OutcomeSuccess},
			{Time: t0, UserID: 2, Username: "bob", ActorID: 4, Actor: "sam", Action: latchkey.ActionLogin, Outcome: latchkey.OutcomeFailure, TicketID: 9},
		}
		for _, e := range events {
			if err := db.AppendAuditEvent(ctx, e); err != nil {
				t.Fatalf("append: %v", err)
			}
		}
		if _, err := db.ChainAuditEvents(ctx); err != nil {
			t.Fatal(err)
		}
		found, err := db.FindAuditEvents(ctx, latchkey.AuditFilter{})
		if err != nil || len(found) != 4 {
			t.Fatalf("FindAuditEvents = %v, %v", found, err)
		}
		want := []string{"", "root\uFFFD", "root", "sam"}
		for i, e := range found {
			if e.Actor != want[i] || (e.ActorID == 0) != (want[i] == "") {
				t.Errorf("entry %d: actor %d %q, want %q", i, e.ActorID, e.Actor, want[i])
			}
		}
		chain, err := db.FindAuditChain(ctx, 0, 0)
		if err != nil || len(chain) != 4 {
			t.Fatalf("FindAuditChain = %v, %v", chain, err)
		}
		for i, e := range chain {
			if e.Actor != want[i] || !bytes.Equal(e.Hash, e.ComputeHash(e.PrevHash)) {
				t.Errorf("chain entry %d: actor %q, hash covers what was stored: %v", i, e.Actor, bytes.Equal(e.Hash, e.ComputeHash(e.PrevHash)))
			}
			if e.Actor != "" {
				forged := *e
				forged.Actor = "someone else"
				if bytes.Equal(e.Hash, forged.ComputeHash(e.PrevHash)) {
					t.Errorf("chain entry %d: its hash does not cover the actor", i)
				}
			}
		}
		byRoot, err := db.QueryAuditEvents(ctx, latchkey.AuditQuery{Actor: "root"})
		if err != nil || len(byRoot) != 1 || byRoot[0].Username != "carol" || byRoot[0].ActorID != 1 {
			t.Errorf("QueryAuditEvents(actor root) = %v, %v; want carol's role change", byRoot, err)
		}
		bySam, err := db.QueryAuditEvents(ctx, latchkey.AuditQuery{Actor: "sam", Username: "bob"})
		if err != nil || len(bySam) != 1 || bySam[0].TicketID != 9 {
			t.Errorf("QueryAuditEvents(actor sam, user bob) = %v, %v", bySam, err)
		}
		signIns, err := db.RecentSignIns(ctx, 2, 10)
		if err != nil || len(signIns) != 2 || signIns[0].Actor != "sam" || signIns[1].Actor != "" {
			t.Errorf("RecentSignIns = %v, %v", signIns, err)
		}
	})
}

// TestUsernameKeys: no two users share a look-alike key, concurrent creations included; the
// users made before the keys (no key) get theirs once, in batches, a clash left out.
func TestUsernameKeys(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		key := func(name string) string { return strings.ReplaceAll(name, "rn", "m") } // stands in for login.UsernameKey
		// Users without keys, as before the migration: 1,203 of them, two of which look alike.
		for i := range 1201 {
			mkUser(t, db, fmt.Sprintf("user%04d", i))
		}
		mkUser(t, db, "mike")
		mkUser(t, db, "rnike")
		filled, clashes, err := db.FillUsernameKeys(ctx, key)
		if err != nil || filled != 1202 || clashes != 1 {
			t.Fatalf("FillUsernameKeys = %d filled, %d clashes, %v; want 1202, 1", filled, clashes, err)
		}
		if filled, clashes, err := db.FillUsernameKeys(ctx, key); filled != 0 || clashes != 0 || err != nil {
			t.Errorf("a second FillUsernameKeys = %d, %d, %v; want nothing to do", filled, clashes, err)
		}
		// A new user whose key a filled one has is refused, with the look-alike message.
		err = db.CreateUser(ctx, &latchkey.User{Username: "user0007x", UsernameKey: key("user0007"), Email: "x@example.com", Role: latchkey.RoleUser, PasswordHash: "x"})
		if errCode(err) != latchkey.EConflict || !strings.Contains(latchkey.ErrorMessage(err), "looks too much like") {
			t.Errorf("CreateUser with a filled key = %v", err)
		}
		// Of concurrent creations with one key, exactly one succeeds.
		var wg sync.WaitGroup
		var ok sync.Map
		for i := range 6 {
			wg.Go(func() {
				name := fmt.Sprintf("twin%d", i)
				if db.CreateUser(ctx, &latchkey.User{Username: name, UsernameKey: "twin", Email: name + "@example.com", Role: latchkey.RoleUser, PasswordHash: "x"}) == nil {
					ok.Store(name, true)
				}
			})
		}
		wg.Wait()
		n := 0
		ok.Range(func(any, any) bool { n++; return true })
		if n != 1 {
			t.Errorf("%d of 6 concurrent users with one look-alike key were created, want 1", n)
		}
		// A user without a key (the harness's, a test's) is not compared.
		mkUser(t, db, "rnike2")
		mkUser(t, db, "mike2")
	})
}
