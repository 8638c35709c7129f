package sqlstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/sqlstore"
)

// completionFixture is a user with a confirmed authenticator app (last step 10), a
// second-factor flow session "flow-N" per N in flows, account and push counters, and one
// audit entry already in the trail.
func completionFixture(t *testing.T, db *sqlstore.DB, flows int) (*latchkey.User, *latchkey.TOTPCredential) {
	t.Helper()
	ctx := context.Background()
	u := mkUser(t, db, "alice")
	c := &latchkey.TOTPCredential{UserID: u.ID, Name: "app", Secret: []byte("0123456789abcdefghij")}
	if err := db.CreateTOTPCredential(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := db.ConfirmTOTPCredential(ctx, c.ID, 10, t0, nil, false); err != nil {
		t.Fatal(err)
	}
	for i := range flows {
		s := &latchkey.Session{ID: fmt.Sprintf("flow-%d", i), SID: fmt.Sprintf("sid-%d", i), UserID: u.ID, State: latchkey.StateSecondFactor,
			AMR: []string{"pwd"}, PasswordAt: t0, CreatedAt: t0, LastSeenAt: t0, ExpiresAt: t0.Add(10 * time.Minute)}
		if err := db.CreateSession(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.RecordFailure(ctx, "user:alice", t0); err != nil {
		t.Fatal(err)
	}
	if _, err := db.RecordFailure(ctx, "push:alice", t0); err != nil {
		t.Fatal(err)
	}
	if err := db.AppendAuditEvent(ctx, &latchkey.AuditEvent{Time: t0, UserID: u.ID, Username: "alice", Action: latchkey.ActionLogin, Outcome: latchkey.OutcomeSuccess}); err != nil {
		t.Fatal(err)
	}
	return u, c
}

func completionOf(u *latchkey.User, c *latchkey.TOTPCredential, flow int, step int64) *latchkey.SecondFactorCompletion {
	at := t0.Add(time.Minute)
	return &latchkey.SecondFactorCompletion{
		OldSessionID: fmt.Sprintf("flow-%d", flow),
		Session: &latchkey.Session{ID: fmt.Sprintf("signed-in-%d", flow), SID: fmt.Sprintf("sid-%d", flow), UserID: u.ID, State: latchkey.StateAuthenticated,
			AMR: []string{"pwd", "otp", "mfa"}, PasswordAt: t0, MFAAt: &at, CreatedAt: t0, LastSeenAt: at, ExpiresAt: at.Add(8 * time.Hour), IP: "192.0.2.1"},
		TOTPCredentialID: c.ID,
		TOTPStep:         step,
		ResetThrottles:   []string{"user:alice", "push:alice", "user:nobody"},
		Audit:            &latchkey.AuditEvent{Time: at, UserID: u.ID, Username: "alice", Action: latchkey.ActionLoginTOTP, Outcome: latchkey.OutcomeSuccess, IP: "192.0.2.1"},
	}
}

// spendRecoveryCode spends u's recovery code hash as a sign-in does: it completes a flow
// session of its own, named flow, with the code (CompleteSecondFactor).
func spendRecoveryCode(t *testing.T, db *sqlstore.DB, u *latchkey.User, flow, hash string) error {
	t.Helper()
	return signInWith(t, db, u, flow, latchkey.ActionLoginRecovery, func(c *latchkey.SecondFactorCompletion) {
		c.RecoveryCodeHash = []byte(hash)
	})
}

// useTOTPStep records step of u's credential cred as used as a sign-in does, the one write
// that records a step outside a reset of all MFA: it completes a flow session of its own,
// named flow, with the code (CompleteSecondFactor, whose replay guard refuses with
// EConflict a step not newer than the last used one, or of a credential gone or pending).
func useTOTPStep(t *testing.T, db *sqlstore.DB, u *latchkey.User, flow string, cred, step int64) error {
	t.Helper()
	return signInWith(t, db, u, flow, latchkey.ActionLoginTOTP, func(c *latchkey.SecondFactorCompletion) {
		c.TOTPCredentialID, c.TOTPStep = cred, step
	})
}

// signInWith creates a second-factor flow session of u named flow and completes it with
// CompleteSecondFactor, audited as action, with the factor that proof sets.
func signInWith(t *testing.T, db *sqlstore.DB, u *latchkey.User, flow, action string, proof func(*latchkey.SecondFactorCompletion)) error {
	t.Helper()
	ctx := context.Background()
	s := &latchkey.Session{ID: flow, SID: "sid-" + flow, UserID: u.ID, State: latchkey.StateSecondFactor,
		AMR: []string{"pwd"}, PasswordAt: t0, CreatedAt: t0, LastSeenAt: t0, ExpiresAt: t0.Add(10 * time.Minute)}
	if err := db.CreateSession(ctx, s); err != nil {
		t.Fatal(err)
	}
	at := t0.Add(time.Minute)
	c := &latchkey.SecondFactorCompletion{
		OldSessionID: flow,
		Session: &latchkey.Session{ID: "signed-in-" + flow, SID: s.SID, UserID: u.ID, State: latchkey.StateAuthenticated,
			AMR: []string{"pwd", "otp", "mfa"}, PasswordAt: t0, MFAAt: &at, CreatedAt: t0, LastSeenAt: at, ExpiresAt: at.Add(8 * time.Hour)},
		Audit: &latchkey.AuditEvent{Time: at, UserID: u.ID, Username: u.Username, Action: action, Outcome: latchkey.OutcomeSuccess},
	}
	proof(c)
	return db.CompleteSecondFactor(ctx, c)
}

// completionState is what a completion may change.
type completionState struct {
	flowExists, signedInExists bool
	lastStep                   int64
	userFailures, pushFailures int
	auditEntries               int
}

func readCompletionState(t *testing.T, db *sqlstore.DB, u *latchkey.User, flow int) completionState {
	t.Helper()
	ctx := context.Background()
	var st completionState
	_, err := db.FindSessionByID(ctx, fmt.Sprintf("flow-%d", flow))
	st.flowExists = err == nil
	_, err = db.FindSessionByID(ctx, fmt.Sprintf("signed-in-%d", flow))
	st.signedInExists = err == nil
	creds, err := db.FindTOTPCredentials(ctx, u.ID)
	if err != nil || len(creds) != 1 {
		t.Fatalf("FindTOTPCredentials = %v, %v", creds, err)
	}
	st.lastStep = creds[0].LastStep
	th, _ := db.FindThrottle(ctx, "user:alice")
	st.userFailures = th.Failures
	th, _ = db.FindThrottle(ctx, "push:alice")
	st.pushFailures = th.Failures
	events, err := db.FindAuditEvents(ctx, latchkey.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	st.auditEntries = len(events)
	// The chain, once what waits for PostgreSQL's chainer is chained.
	if _, err := db.ChainAuditEvents(ctx); err != nil {
		t.Fatal(err)
	}
	chain, err := db.FindAuditChain(ctx, 0, 0)
	if err != nil || len(chain) != len(events) {
		t.Fatalf("FindAuditChain = %d entries, %v; want %d", len(chain), err, len(events))
	}
	prev := []byte{}
	for _, e := range chain {
		if !bytes.Equal(e.PrevHash, prev) || !bytes.Equal(e.Hash, e.ComputeHash(e.PrevHash)) {
			t.Fatalf("audit chain broken at %d", e.ID)
		}
		prev = e.Hash
	}
	return st
}

// TestCompleteSecondFactor: the step, the rotation, the resets and the audit entry are
// written together, and a refused completion writes none of them.
func TestCompleteSecondFactor(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		u, c := completionFixture(t, db, 3)
		before := completionState{flowExists: true, lastStep: 10, userFailures: 1, pushFailures: 1, auditEntries: 1}
		if got := readCompletionState(t, db, u, 0); got != before {
			t.Fatalf("before: %+v, want %+v", got, before)
		}

		// Admitted on the account's counter, which the completion resets: Admit sees the
		// counter as it was before the reset.
		comp := completionOf(u, c, 0, 12)
		var seen latchkey.Throttle
		comp.AdmitKey, comp.Admit = "user:alice", func(th latchkey.Throttle) error { seen = th; return nil }
		if err := db.CompleteSecondFactor(ctx, comp); err != nil {
			t.Fatalf("CompleteSecondFactor: %v", err)
		}
		if seen.Key != "user:alice" || seen.Failures != 1 {
			t.Errorf("Admit got %+v, want user:alice's counter with 1 failure", seen)
		}
		want := completionState{signedInExists: true, lastStep: 12, auditEntries: 2}
		if got := readCompletionState(t, db, u, 0); got != want {
			t.Errorf("after: %+v, want %+v", got, want)
		}
		if comp.Audit.ID == 0 || db.Dialect() == sqlstore.SQLite && len(comp.Audit.Hash) == 0 {
			t.Errorf("the audit entry's ID and hash were not set: %+v", comp.Audit)
		}
		s, err := db.FindSessionByID(ctx, "signed-in-0")
		if err != nil || s.State != latchkey.StateAuthenticated || s.SID != "sid-0" || len(s.AMR) != 3 || s.MFAAt == nil {
			t.Errorf("signed-in session = %+v, %v", s, err)
		}

		// Refused: nothing of it is written.
		db.RecordFailure(ctx, "user:alice", t0)
		untouched := completionState{flowExists: true, lastStep: 12, userFailures: 1, auditEntries: 2}
		for _, tt := range []struct {
			name string
			comp *latchkey.SecondFactorCompletion
			want string
		}{
			{"same step", completionOf(u, c, 1, 12), latchkey.EConflict},
			{"older step", completionOf(u, c, 1, 11), latchkey.EConflict},
			{"unknown credential", func() *latchkey.SecondFactorCompletion {
				x := completionOf(u, c, 1, 13)
				x.TOTPCredentialID = 99999
				return x
			}(), latchkey.EConflict},
			{"flow gone", func() *latchkey.SecondFactorCompletion {
				x := completionOf(u, c, 1, 13)
				x.OldSessionID = "flow-gone"
				return x
			}(), latchkey.ENotFound},
			{"session of another user", func() *latchkey.SecondFactorCompletion {
				x := completionOf(u, c, 1, 13)
				x.Session.UserID = u.ID + 1000
				return x
			}(), latchkey.ENotFound},
			{"new session ID taken", func() *latchkey.SecondFactorCompletion {
				x := completionOf(u, c, 1, 13)
				x.Session.ID = "flow-2"
				return x
			}(), latchkey.EConflict},
			{"refused by Admit", func() *latchkey.SecondFactorCompletion {
				x := completionOf(u, c, 1, 13)
				x.AdmitKey = "user:alice"
				x.Admit = func(th latchkey.Throttle) error {
					if th.Key != "user:alice" || th.Failures != 1 || !th.LastFailureAt.Equal(t0) {
						t.Errorf("Admit got %+v, want user:alice's counter (1 failure at %v)", th, t0)
					}
					return latchkey.Throttled(time.Second)
				}
				return x
			}(), latchkey.EThrottled},
		} {
			err := db.CompleteSecondFactor(ctx, tt.comp)
			if errCode(err) != tt.want {
				t.Errorf("%s: CompleteSecondFactor = %v, want %s", tt.name, err, tt.want)
			}
			if tt.comp.Audit.ID != 0 || tt.comp.Audit.Hash != nil {
				t.Errorf("%s: the refused audit entry kept ID %d", tt.name, tt.comp.Audit.ID)
			}
			if got := readCompletionState(t, db, u, 1); got != untouched {
				t.Errorf("%s: state %+v, want %+v", tt.name, got, untouched)
			}
		}

		// Without a TOTP step (push, security keys, recovery codes) and without an audit entry;
		// admitted. The session gets a SID other than its flow's: it is stored (the rotation
		// that keeps the flow's SID changes no row, and the one that sets it runs).
		comp = completionOf(u, c, 1, 0)
		comp.TOTPCredentialID, comp.Audit, comp.ResetThrottles = 0, nil, nil
		comp.Session.SID = "sid-new"
		admitted := false
		comp.AdmitKey, comp.Admit = "user:alice", func(latchkey.Throttle) error { admitted = true; return nil }
		if err := db.CompleteSecondFactor(ctx, comp); err != nil {
			t.Fatalf("CompleteSecondFactor without a step: %v", err)
		}
		if !admitted {
			t.Error("Admit was not called")
		}
		want = completionState{signedInExists: true, lastStep: 12, userFailures: 1, auditEntries: 2}
		if got := readCompletionState(t, db, u, 1); got != want {
			t.Errorf("without a step: %+v, want %+v", got, want)
		}
		if s, err := db.FindSessionByID(ctx, "signed-in-1"); err != nil || s.SID != "sid-new" || s.State != latchkey.StateAuthenticated {
			t.Errorf("signed-in session with a new SID = %+v, %v", s, err)
		}
	})
}

// TestCommittedAuditEntries: Options.Committed hears of every audit entry once its
// transaction has committed (a completed second factor, an entry appended alone), and never
// of one rolled back with its transaction (a replayed step).
func TestCommittedAuditEntries(t *testing.T) {
	eachDSN(t, func(t *testing.T, fixture *sqlstore.DB, dsn string) {
		ctx := context.Background()
		u, c := completionFixture(t, fixture, 2)
		var mu sync.Mutex
		var heard []string
		db, err := sqlstore.Open(ctx, dsn, sqlstore.Options{SecretsKey: key, Now: func() time.Time { return t0 }, Committed: func(e *latchkey.AuditEvent) {
			mu.Lock()
			defer mu.Unlock()
			heard = append(heard, e.Action+"/"+e.Outcome)
		}})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.CompleteSecondFactor(ctx, completionOf(u, c, 0, 12)); err != nil {
			t.Fatal(err)
		}
		if err := db.CompleteSecondFactor(ctx, completionOf(u, c, 1, 12)); errCode(err) != latchkey.EConflict {
			t.Fatalf("the replayed step: %v, want a conflict", err)
		}
		if err := db.AppendAuditEvent(ctx, &latchkey.AuditEvent{UserID: u.ID, Username: "alice", Action: latchkey.ActionLockout, Outcome: latchkey.OutcomeDenied}); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if want := []string{"login.totp/success", "lockout/denied"}; !slices.Equal(heard, want) {
			t.Errorf("Committed heard %q, want %q", heard, want)
		}
	})
}

// TestCompleteSecondFactorConcurrent: the same code sent from several sign-ins at once is
// accepted for one of them only; the others change nothing, and the audit chain holds.
func TestCompleteSecondFactorConcurrent(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		const n = 12
		u, c := completionFixture(t, db, n)
		oneWins(t, n, func(i int) error { return db.CompleteSecondFactor(ctx, completionOf(u, c, i, 20)) })
		signedIn, flows := 0, 0
		for i := range n {
			st := readCompletionState(t, db, u, i)
			if st.signedInExists {
				signedIn++
			}
			if st.flowExists {
				flows++
			}
			if st.lastStep != 20 || st.auditEntries != 2 {
				t.Errorf("flow %d: %+v", i, st)
			}
		}
		if signedIn != 1 || flows != n-1 {
			t.Errorf("%d signed in, %d flows left, want 1 and %d", signedIn, flows, n-1)
		}
	})
}

// TestSendPushChallenge: the push's count, the challenge and its audit entry are written
// together; a refused challenge (its ID taken) writes neither the count nor the entry.
func TestSendPushChallenge(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		u, _ := completionFixture(t, db, 1) // push:alice at 1, one audit entry
		sent := func() *latchkey.AuditEvent {
			return &latchkey.AuditEvent{Time: t0, UserID: u.ID, Username: "alice", Action: latchkey.ActionPushSent, Outcome: latchkey.OutcomeSuccess}
		}
		ch := &latchkey.PushChallenge{ID: "p1", UserID: u.ID, DeviceID: 5, Kind: latchkey.PushLogin, SessionID: "flow-0", Number: "42",
			CreatedAt: t0, ExpiresAt: t0.Add(2 * time.Minute)}
		e := sent()
		if err := db.SendPushChallenge(ctx, ch, "push:alice", 0, e); err != nil {
			t.Fatalf("SendPushChallenge: %v", err)
		}
		if got, err := db.FindPushChallenge(ctx, "p1"); err != nil || got.State != latchkey.PushPending {
			t.Errorf("the challenge = %+v, %v", got, err)
		}
		if e.ID == 0 || db.Dialect() == sqlstore.SQLite && len(e.Hash) == 0 {
			t.Errorf("the audit entry's ID and hash were not set: %+v", e)
		}
		want := completionState{flowExists: true, lastStep: 10, userFailures: 1, pushFailures: 2, auditEntries: 2}
		if got := readCompletionState(t, db, u, 0); got != want {
			t.Errorf("after: %+v, want %+v", got, want)
		}
		e = sent()
		if err := db.SendPushChallenge(ctx, ch, "push:alice", 0, e); errCode(err) != latchkey.EConflict {
			t.Errorf("the same challenge again = %v, want %s", err, latchkey.EConflict)
		}
		if e.ID != 0 || e.Hash != nil {
			t.Errorf("the refused audit entry kept ID %d", e.ID)
		}
		if got := readCompletionState(t, db, u, 0); got != want {
			t.Errorf("after a refused challenge: %+v, want %+v (nothing written)", got, want)
		}
	})
}

// TestSendPushChallengeLimit: with a limit, the count in the push's own transaction decides:
// of pushes sent at once, as many as the limit leaves pass, and a refused one writes neither
// its count, nor its challenge, nor its audit entry.
func TestSendPushChallengeLimit(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		u, _ := completionFixture(t, db, 1) // push:alice at 1, one audit entry
		const limit, n = 5, 12
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				ch := &latchkey.PushChallenge{ID: fmt.Sprintf("p%d", i), UserID: u.ID, DeviceID: 5, Kind: latchkey.PushLogin, SessionID: "flow-0", Number: "42",
					CreatedAt: t0, ExpiresAt: t0.Add(2 * time.Minute)}
				e := &latchkey.AuditEvent{Time: t0, UserID: u.ID, Username: "alice", Action: latchkey.ActionPushSent, Outcome: latchkey.OutcomeSuccess}
				errs[i] = db.SendPushChallenge(ctx, ch, "push:alice", limit, e)
			})
		}
		wg.Wait()
		sent := 0
		for i, err := range errs {
			switch {
			case err == nil:
				sent++
			case errCode(err) != latchkey.EThrottled:
				t.Errorf("push %d: %v, want nil or %s", i, err, latchkey.EThrottled)
			}
			if _, ferr := db.FindPushChallenge(ctx, fmt.Sprintf("p%d", i)); (ferr == nil) != (err == nil) {
				t.Errorf("push %d: refused %v, its challenge found: %v", i, err, ferr)
			}
		}
		if sent != limit-1 {
			t.Errorf("%d of %d pushes sent at once passed with the count at 1 and the limit %d, want %d", sent, n, limit, limit-1)
		}
		want := completionState{flowExists: true, lastStep: 10, userFailures: 1, pushFailures: limit, auditEntries: 1 + limit - 1}
		if got := readCompletionState(t, db, u, 0); got != want {
			t.Errorf("after: %+v, want %+v", got, want)
		}
	})
}

// TestAnswerPushChallengeWritesTogether: the answer, the device's last use, the failure it
// counts and its audit entry are written together; a refused answer (answered already)
// writes none of them.
func TestAnswerPushChallengeWritesTogether(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		u, _ := completionFixture(t, db, 1) // user:alice at 1, one audit entry
		d, _ := mkDevice(t, db, u, "pk", latchkey.DevicePending, "")
		mkPush(t, db, "p1", u, d.ID, latchkey.PushLogin, 0, t0, t0.Add(2*time.Minute))
		at := t0.Add(10 * time.Second)
		answer := func() *latchkey.PushAnswer {
			return &latchkey.PushAnswer{ID: "p1", State: latchkey.PushDenied, Reason: latchkey.DenyWrongNumber, At: at,
				DeviceID: d.ID, CountKey: "user:alice",
				Audit: &latchkey.AuditEvent{Time: at, UserID: u.ID, Username: "alice", Action: latchkey.ActionPushDenied, Outcome: latchkey.OutcomeFailure}}
		}
		a := answer()
		if err := db.AnswerPushChallenge(ctx, a); err != nil {
			t.Fatalf("AnswerPushChallenge: %v", err)
		}
		if got, err := db.FindPushChallenge(ctx, "p1"); err != nil || got.State != latchkey.PushDenied || got.Reason != latchkey.DenyWrongNumber {
			t.Errorf("the challenge = %+v, %v", got, err)
		}
		if got, err := db.FindDevice(ctx, d.ID); err != nil || got.LastUsedAt == nil || !got.LastUsedAt.Equal(at) {
			t.Errorf("the device's last use = %+v, %v, want %v", got, err, at)
		}
		if a.Audit.ID == 0 || db.Dialect() == sqlstore.SQLite && len(a.Audit.Hash) == 0 {
			t.Errorf("the audit entry's ID and hash were not set: %+v", a.Audit)
		}
		want := completionState{flowExists: true, lastStep: 10, userFailures: 2, pushFailures: 1, auditEntries: 2}
		if got := readCompletionState(t, db, u, 0); got != want {
			t.Errorf("after: %+v, want %+v", got, want)
		}
		a = answer()
		a.At = at.Add(time.Second)
		if err := db.AnswerPushChallenge(ctx, a); errCode(err) != latchkey.EConflict {
			t.Errorf("a second answer = %v, want %s", err, latchkey.EConflict)
		}
		if a.Audit.ID != 0 || a.Audit.Hash != nil {
			t.Errorf("the refused audit entry kept ID %d", a.Audit.ID)
		}
		if got := readCompletionState(t, db, u, 0); got != want {
			t.Errorf("after a refused answer: %+v, want %+v (nothing written)", got, want)
		}
		if got, _ := db.FindDevice(ctx, d.ID); got.LastUsedAt == nil || !got.LastUsedAt.Equal(at) {
			t.Errorf("the refused answer touched the device: %v", got.LastUsedAt)
		}
	})
}

// TestCompletePushSignIn: a push sign-in completes its approved challenge in the same
// transaction, once; a challenge that is not approved, or completed already, refuses the
// whole completion.
func TestCompletePushSignIn(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		u, c := completionFixture(t, db, 3)
		exp := t0.Add(2 * time.Minute)
		mkPush(t, db, "approved", u, 5, latchkey.PushLogin, 0, t0, exp)
		mkPush(t, db, "pending", u, 5, latchkey.PushLogin, 0, t0, exp)
		if err := db.AnswerPushChallenge(ctx, &latchkey.PushAnswer{ID: "approved", State: latchkey.PushApproved, At: t0}); err != nil {
			t.Fatal(err)
		}
		push := func(flow int, id string) *latchkey.SecondFactorCompletion {
			x := completionOf(u, c, flow, 0)
			x.TOTPCredentialID, x.PushChallengeID = 0, id
			return x
		}
		if err := db.CompleteSecondFactor(ctx, push(0, "pending")); errCode(err) != latchkey.EConflict {
			t.Errorf("with a pending challenge = %v, want %s", err, latchkey.EConflict)
		}
		untouched := completionState{flowExists: true, lastStep: 10, userFailures: 1, pushFailures: 1, auditEntries: 1}
		if got := readCompletionState(t, db, u, 0); got != untouched {
			t.Errorf("after the refusal: %+v, want %+v", got, untouched)
		}
		if err := db.CompleteSecondFactor(ctx, push(0, "approved")); err != nil {
			t.Fatalf("with the approved challenge: %v", err)
		}
		if got, _ := db.FindPushChallenge(ctx, "approved"); got.CompletedAt == nil {
			t.Error("the challenge was not completed")
		}
		if got := readCompletionState(t, db, u, 0); !got.signedInExists || got.flowExists {
			t.Errorf("after: %+v, want signed in", got)
		}
		if err := db.CompleteSecondFactor(ctx, push(1, "approved")); errCode(err) != latchkey.EConflict {
			t.Errorf("the same challenge for another flow = %v, want %s", err, latchkey.EConflict)
		}
		if got := readCompletionState(t, db, u, 1); !got.flowExists || got.signedInExists {
			t.Errorf("the second flow after the refusal: %+v, want untouched", got)
		}
	})
}

// TestCompleteSecondFactorInPlace: the rotation internal/login makes (the flow's ID, a new
// verifier) turns the flow's row into the signed-in session; a completion that names the
// flow with another verifier (a forged or an already rotated cookie) writes nothing.
func TestCompleteSecondFactorInPlace(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		u, c := completionFixture(t, db, 1)
		inPlace := func(oldVerifier string, step int64) *latchkey.SecondFactorCompletion {
			x := completionOf(u, c, 0, step)
			x.OldVerifier = oldVerifier
			x.Session.ID, x.Session.Verifier = "flow-0", "verifier-1"
			return x
		}
		untouched := completionState{flowExists: true, lastStep: 10, userFailures: 1, pushFailures: 1, auditEntries: 1}
		for _, v := range []string{"forged", "verifier-1"} {
			if err := db.CompleteSecondFactor(ctx, inPlace(v, 12)); errCode(err) != latchkey.ENotFound {
				t.Errorf("old verifier %q: CompleteSecondFactor = %v, want not_found", v, err)
			}
			if got := readCompletionState(t, db, u, 0); got != untouched {
				t.Errorf("old verifier %q: state %+v, want %+v", v, got, untouched)
			}
		}
		if err := db.CompleteSecondFactor(ctx, inPlace("", 12)); err != nil {
			t.Fatalf("CompleteSecondFactor in place: %v", err)
		}
		s, err := db.FindSessionByID(ctx, "flow-0")
		if err != nil || s.Verifier != "verifier-1" || s.State != latchkey.StateAuthenticated || s.SID != "sid-0" || s.MFAAt == nil {
			t.Fatalf("session after the rotation in place = %+v, %v", s, err)
		}
		want := completionState{flowExists: true, lastStep: 12, auditEntries: 2}
		if got := readCompletionState(t, db, u, 0); got != want {
			t.Errorf("after: %+v, want %+v", got, want)
		}
		// The flow's cookie again, with a newer code: its verifier is gone.
		if err := db.CompleteSecondFactor(ctx, inPlace("", 13)); errCode(err) != latchkey.ENotFound {
			t.Errorf("the flow's verifier after the rotation: CompleteSecondFactor = %v, want not_found", err)
		}
		if got := readCompletionState(t, db, u, 0); got != want {
			t.Errorf("after the replay: %+v, want %+v", got, want)
		}
	})
}

// passwordSignInOf is the PasswordSignIn of a right password for u in completionFixture: a
// second-factor flow "signed-in-N" (the name readCompletionState looks for), the account's
// attempt (its second failure, reserved at t0+1m) taken back.
func passwordSignInOf(u *latchkey.User, flow int) *latchkey.PasswordSignIn {
	at := t0.Add(time.Minute)
	return &latchkey.PasswordSignIn{
		RefundKey: "user:alice", RefundN: 2, RefundPrev: t0,
		Session: &latchkey.Session{ID: fmt.Sprintf("signed-in-%d", flow), SID: fmt.Sprintf("new-sid-%d", flow), UserID: u.ID, State: latchkey.StateSecondFactor,
			AMR: []string{"pwd"}, PasswordAt: at, CreatedAt: at, LastSeenAt: at, ExpiresAt: at.Add(5 * time.Minute), IP: "192.0.2.1"},
		Audit: &latchkey.AuditEvent{Time: at, UserID: u.ID, Username: "alice", Action: latchkey.ActionLogin, Outcome: latchkey.OutcomePasswordOK, IP: "192.0.2.1"},
	}
}

// TestStartPasswordSession: the refund of the password's attempt, the new session, the resets
// and the audit entry are written together, and a refused one writes none of them.
func TestStartPasswordSession(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		u, _ := completionFixture(t, db, 2)
		at := t0.Add(time.Minute)
		reserve := func() {
			t.Helper()
			th, _ := db.FindThrottle(ctx, "user:alice")
			if ok, err := db.ReserveAttempt(ctx, "user:alice", th, at); err != nil || !ok {
				t.Fatalf("ReserveAttempt = %v, %v", ok, err)
			}
		}
		reserve()
		if got, want := readCompletionState(t, db, u, 0), (completionState{flowExists: true, lastStep: 10, userFailures: 2, pushFailures: 1, auditEntries: 1}); got != want {
			t.Fatalf("before: %+v, want %+v", got, want)
		}

		// A flow waiting for its second factor: the attempt is taken back (the counter's
		// failure and its time as before it), the push counter stays.
		ps := passwordSignInOf(u, 0)
		if err := db.StartPasswordSession(ctx, ps); err != nil {
			t.Fatalf("StartPasswordSession: %v", err)
		}
		if got, want := readCompletionState(t, db, u, 0), (completionState{flowExists: true, signedInExists: true, lastStep: 10, userFailures: 1, pushFailures: 1, auditEntries: 2}); got != want {
			t.Errorf("after: %+v, want %+v", got, want)
		}
		if th, _ := db.FindThrottle(ctx, "user:alice"); !th.LastFailureAt.Equal(t0) {
			t.Errorf("the counter's last failure = %v after the refund, want %v", th.LastFailureAt, t0)
		}
		if ps.Audit.ID == 0 || db.Dialect() == sqlstore.SQLite && len(ps.Audit.Hash) == 0 {
			t.Errorf("the audit entry's ID and hash were not set: %+v", ps.Audit)
		}
		if s, err := db.FindSessionByID(ctx, "signed-in-0"); err != nil || s.State != latchkey.StateSecondFactor || s.SID != "new-sid-0" || s.UserID != u.ID {
			t.Errorf("the new session = %+v, %v", s, err)
		}

		// Refused, the session's ID or SID taken: nothing is written, the attempt stays
		// counted.
		reserve()
		untouched := completionState{flowExists: true, lastStep: 10, userFailures: 2, pushFailures: 1, auditEntries: 2}
		for name, ps := range map[string]*latchkey.PasswordSignIn{
			"ID taken":  func() *latchkey.PasswordSignIn { p := passwordSignInOf(u, 1); p.Session.ID = "flow-0"; return p }(),
			"SID taken": func() *latchkey.PasswordSignIn { p := passwordSignInOf(u, 1); p.Session.SID = "sid-0"; return p }(),
		} {
			if err := db.StartPasswordSession(ctx, ps); errCode(err) != latchkey.EConflict {
				t.Errorf("%s: StartPasswordSession = %v, want %s", name, err, latchkey.EConflict)
			}
			if ps.Audit.ID != 0 {
				t.Errorf("%s: the refused audit entry kept ID %d", name, ps.Audit.ID)
			}
			if got := readCompletionState(t, db, u, 1); got != untouched {
				t.Errorf("%s: state %+v, want %+v", name, got, untouched)
			}
		}

		// Signed in with the password alone: the account's and push counters are reset (the
		// refund of a counter that is reset is no statement of its own), without an audit
		// entry.
		ps = passwordSignInOf(u, 1)
		ps.Session.State, ps.Audit = latchkey.StateAuthenticated, nil
		ps.ResetThrottles = []string{"user:alice", "push:alice"}
		if err := db.StartPasswordSession(ctx, ps); err != nil {
			t.Fatalf("StartPasswordSession with resets: %v", err)
		}
		if got, want := readCompletionState(t, db, u, 1), (completionState{flowExists: true, signedInExists: true, lastStep: 10, auditEntries: 2}); got != want {
			t.Errorf("with resets: %+v, want %+v", got, want)
		}
	})
}

// TestCompleteSecondFactorRecoveryCode: a recovery code is spent with the sign-in it
// completes: a used or unknown code, or another user's, refuses the completion and writes
// nothing of it; a completion refused for its flow leaves the code unused; of several
// sign-ins completed at once with the same code, one succeeds.
func TestCompleteSecondFactorRecoveryCode(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		const n = 8
		u, c := completionFixture(t, db, n+3)
		bob := mkUser(t, db, "bob")
		if err := db.ReplaceRecoveryCodes(ctx, u.ID, [][]byte{[]byte("code-a"), []byte("code-b")}, t0); err != nil {
			t.Fatal(err)
		}
		if err := db.ReplaceRecoveryCodes(ctx, bob.ID, [][]byte{[]byte("code-bob")}, t0); err != nil {
			t.Fatal(err)
		}
		withCode := func(flow int, hash string) *latchkey.SecondFactorCompletion {
			x := completionOf(u, c, flow, 0)
			x.TOTPCredentialID, x.RecoveryCodeHash = 0, []byte(hash)
			x.Audit.Action = latchkey.ActionLoginRecovery
			return x
		}
		used := func() map[string]bool {
			t.Helper()
			m := map[string]bool{}
			for _, id := range []latchkey.UserID{u.ID, bob.ID} {
				codes, err := db.FindRecoveryCodes(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				for _, rc := range codes {
					m[string(rc.Hash)] = rc.UsedAt != nil
				}
			}
			return m
		}

		// The flow is gone: refused, and the code stays unused.
		gone := withCode(0, "code-a")
		gone.OldSessionID = "flow-gone"
		if err := db.CompleteSecondFactor(ctx, gone); errCode(err) != latchkey.ENotFound {
			t.Fatalf("a gone flow: %v, want %s", err, latchkey.ENotFound)
		}
		if used()["code-a"] {
			t.Fatal("a completion refused for its flow spent its recovery code")
		}
		// Several sign-ins with the same code at once: one.
		oneWins(t, n, func(i int) error { return db.CompleteSecondFactor(ctx, withCode(i, "code-a")) })
		if got := used(); !got["code-a"] || got["code-b"] || got["code-bob"] {
			t.Errorf("used codes %v, want code-a alone", got)
		}
		// Used already, unknown, another user's: refused, nothing written.
		for i, hash := range []string{"code-a", "code-x", "code-bob"} {
			flow := n + i
			before := readCompletionState(t, db, u, flow)
			if err := db.CompleteSecondFactor(ctx, withCode(flow, hash)); errCode(err) != latchkey.EConflict {
				t.Errorf("%s: CompleteSecondFactor = %v, want %s", hash, err, latchkey.EConflict)
			}
			if got := readCompletionState(t, db, u, flow); got != before || !got.flowExists {
				t.Errorf("%s: state %+v, want %+v", hash, got, before)
			}
		}
		if got := used(); got["code-bob"] || got["code-b"] {
			t.Errorf("used codes %v, want code-a alone", got)
		}
	})
}

// oneWins runs f(0..n-1) at once and checks that exactly one succeeds and every other is
// refused with EConflict.
func oneWins(t *testing.T, n int, f func(i int) error) {
	t.Helper()
	oneWinsAs(t, n, latchkey.EConflict, f)
}

// oneWinsAs is oneWins for losers refused with loser: an error code (a string), or an error
// that the losers' errors wrap (a sentinel such as latchkey.ErrNoFactor).
func oneWinsAs(t *testing.T, n int, loser any, f func(i int) error) {
	t.Helper()
	var refused func(error) bool
	switch l := loser.(type) {
	case string:
		refused = func(err error) bool { return errCode(err) == l }
	case error:
		refused = func(err error) bool { return errors.Is(err, l) }
	default:
		t.Fatalf("oneWinsAs: loser %T is neither an error code nor an error", loser)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, conflicts := 0, 0
	for i := range n {
		wg.Go(func() {
			err := f(i)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case refused(err):
				conflicts++
			default:
				t.Errorf("unexpected error %v", err)
			}
		})
	}
	wg.Wait()
	if wins != 1 || conflicts != n-1 {
		t.Errorf("%d succeeded, %d refused with %v, want 1 and %d", wins, conflicts, loser, n-1)
	}
}
