package login_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/totp"
)

// resetHookStore is the real store whose ResetMFA first runs beforeReset once (when set): a
// test makes another request happen between the checks of Reset all MFA and its
// transaction.
type resetHookStore struct {
	login.Store
	beforeReset func()
}

func (s *resetHookStore) ResetMFA(ctx context.Context, id latchkey.UserID, proof *latchkey.MFAResetProof, e *latchkey.AuditEvent) ([]int64, error) {
	if f := s.beforeReset; f != nil {
		s.beforeReset = nil
		f()
	}
	return s.Store.ResetMFA(ctx, id, proof, e)
}

// newResetHookEnv is newEnv with a resetHookStore.
func newResetHookEnv(t *testing.T) (*env, *resetHookStore) {
	t.Helper()
	st := &resetHookStore{}
	e := newEnv(t, func(o *login.Options) {
		st.Store = o.Store
		o.Store = st
	})
	return e, st
}

// aliceWithApp creates alice, signs her in and enrols an authenticator app in that session,
// the start of the Reset all MFA tests: it returns the session, the app's secret and the
// recovery codes.
func (e *env) aliceWithApp(t *testing.T) (res *login.Result, secret []byte, codes []string) {
	t.Helper()
	e.user(t, "alice")
	res = e.signIn(t, "alice")
	secret, codes = e.enableTOTP(t, res)
	return res, secret, codes
}

// failResetAudit makes the audit entry of a successful Reset all MFA fail, and with it the
// reset, which does not happen without its entry, until the returned function is called.
func failResetAudit(t *testing.T, e *env) (allow func()) {
	t.Helper()
	if _, err := e.db.SQL().Exec(`CREATE TRIGGER reset_fails BEFORE INSERT ON audit_events
		WHEN NEW.action = 'mfa.reset' AND NEW.outcome = 'success'
		BEGIN SELECT RAISE(ABORT, 'audit write refused'); END`); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if _, err := e.db.SQL().Exec(`DROP TRIGGER reset_fails`); err != nil {
			t.Fatal(err)
		}
	}
}

// checkSpentWithTheReset checks that the code or key of p, a proof for Reset all MFA of the
// user of res, is spent in the reset's own transaction: with the reset's audit entry refused
// the reset fails and leaves the app and all codes recovery codes, and p then still works
// for the reset once the database takes it.
func checkSpentWithTheReset(t *testing.T, e *env, res *login.Result, p login.ResetProof, codes int) {
	t.Helper()
	ctx := context.Background()
	allow := failResetAudit(t, e)
	if err := e.svc.ResetAllMFA(ctx, alice, res.Session, res.User, p); err == nil {
		t.Fatal("ResetAllMFA succeeded without its audit entry")
	}
	if st, _ := e.svc.Status(ctx, res.User); !st.TOTPEnabled || st.RecoveryCodesLeft != codes {
		t.Fatalf("after a reset that failed: TOTP %v, %d recovery codes left, want the app and all %d", st.TOTPEnabled, st.RecoveryCodesLeft, codes)
	}
	allow()
	if err := e.svc.ResetAllMFA(ctx, alice, res.Session, res.User, p); err != nil {
		t.Fatalf("ResetAllMFA with the code again: %v", err)
	}
	if st, _ := e.svc.Status(ctx, res.User); st.Factors != 0 || st.RecoveryCodesLeft != 0 {
		t.Fatalf("after the reset: %+v", st)
	}
}

// TestResetAllMFAAppCodeSpentWithTheReset: an app code that proves Reset all MFA has its time
// step recorded in the reset's own transaction: when the reset fails (here its audit entry,
// without which it does not happen), the code is not burned and still works for the reset
// once the database takes it.
func TestResetAllMFAAppCodeSpentWithTheReset(t *testing.T) {
	e := newEnv(t)
	res, secret, codes := e.aliceWithApp(t)
	e.clock.Add(30 * time.Second) // a step after the one that confirmed the app
	p := login.ResetProof{Password: goodPassword, Code: totp.Code(secret, totp.Step(e.clock.Now()))}
	checkSpentWithTheReset(t, e, res, p, len(codes))
}

// TestResetAllMFAAppCodeUsedMeanwhile: an app code used by a sign-in after Reset all MFA
// checked it and before its transaction refuses the reset as a replay (the replay guard holds
// in the reset's transaction), audited as one, and nothing is removed.
func TestResetAllMFAAppCodeUsedMeanwhile(t *testing.T) {
	e, st := newResetHookEnv(t)
	ctx := context.Background()
	res, secret, _ := e.aliceWithApp(t)
	e.clock.Add(30 * time.Second)
	c := totp.Code(secret, totp.Step(e.clock.Now()))
	st.beforeReset = func() {
		flow := e.signIn(t, "alice")
		if _, err := e.svc.LoginTOTP(ctx, alice, flow.Token, c); err != nil {
			t.Errorf("the sign-in with the code: %v", err)
		}
	}
	err := e.svc.ResetAllMFA(ctx, alice, res.Session, res.User, login.ResetProof{Password: goodPassword, Code: c})
	if code(t, err) != latchkey.EInvalidCode {
		t.Fatalf("ResetAllMFA with a code used meanwhile = %v, want %s", err, latchkey.EInvalidCode)
	}
	if s, _ := e.svc.Status(ctx, res.User); !s.TOTPEnabled {
		t.Errorf("a refused reset removed the app: %+v", s)
	}
	evs, _ := e.db.FindAuditEvents(ctx, latchkey.AuditFilter{UserID: &res.User.ID})
	if last := evs[len(evs)-1]; last.Action != latchkey.ActionCodeReplayed || last.Outcome != latchkey.OutcomeFailure {
		t.Errorf("audited %s %s %q, want %s failure", last.Action, last.Outcome, last.Detail, latchkey.ActionCodeReplayed)
	}
}

// TestResetAllMFALoserOfTwo: of two Reset all MFA requests with one factor (a double submit,
// two tabs), the one whose transaction comes second finds no factor left and is told that
// they were removed meanwhile, not that its code is wrong or used: with an app code, a
// recovery code and a security key alike. It changes nothing (one reset entry, one mail) and
// its attempt is taken back.
func TestResetAllMFALoserOfTwo(t *testing.T) {
	for _, proof := range []string{"app code", "recovery code", "security key"} {
		t.Run(proof, func(t *testing.T) {
			e, st := newResetHookEnv(t)
			ctx := context.Background()
			res, secret, codes := e.aliceWithApp(t)
			e.clock.Add(30 * time.Second)
			other := e.mfaSignIn(t, "", secret) // the winner's tab
			k := newSoftKey(t)
			if proof == "security key" {
				if _, err := e.addKey(t, other, k, "Key"); err != nil {
					t.Fatal(err)
				}
			}
			e.clock.Add(30 * time.Second)
			// proofOf is the proof of a request in the session of r.
			proofOf := func(r *login.Result) login.ResetProof {
				switch proof {
				case "app code":
					return login.ResetProof{Password: goodPassword, Code: totp.Code(secret, totp.Step(e.clock.Now()))}
				case "recovery code":
					return login.ResetProof{Password: goodPassword, Code: codes[0]}
				}
				o, err := e.svc.BeginConfirmKey(ctx, r.Session, r.User)
				if err != nil {
					t.Fatal(err)
				}
				return login.ResetProof{Password: goodPassword, CeremonyID: o.CeremonyID, KeyResponse: k.get(t, o)}
			}
			// The second's key answers first, so that the first's counter is the higher one.
			loser := proofOf(res)
			winner := proofOf(other)
			st.beforeReset = func() {
				if err := e.svc.ResetAllMFA(ctx, alice, other.Session, other.User, winner); err != nil {
					t.Errorf("the first reset: %v", err)
				}
			}
			err := e.svc.ResetAllMFA(ctx, alice, res.Session, res.User, loser)
			if code(t, err) != latchkey.EConflict || !strings.Contains(latchkey.ErrorMessage(err), "removed meanwhile") {
				t.Errorf("the second reset = %v, want %s saying the methods were removed meanwhile", err, latchkey.EConflict)
			}
			if s, _ := e.svc.Status(ctx, res.User); s.Factors != 0 || s.RecoveryCodesLeft != 0 {
				t.Errorf("after the resets: %+v", s)
			}
			evs, _ := e.db.FindAuditEvents(ctx, latchkey.AuditFilter{UserID: &res.User.ID})
			var resets []string
			for _, ev := range evs {
				if ev.Action == latchkey.ActionMFAReset || ev.Action == latchkey.ActionCodeReplayed {
					resets = append(resets, ev.Outcome+" "+ev.Detail)
				}
			}
			if !slices.Equal(resets, []string{latchkey.OutcomeSuccess + " by the user"}) {
				t.Errorf("reset entries %q, want the first reset's success alone", resets)
			}
			notices := 0
			for _, s := range e.mail.subjects() {
				if s == "All your sign-in methods were reset" {
					notices++
				}
			}
			if notices != 1 {
				t.Errorf("mails %v, want one reset notice", e.mail.subjects())
			}
			if th, _ := e.db.FindThrottle(ctx, latchkey.ThrottleKeyUser("alice")); th.Failures != 0 {
				t.Errorf("counter = %d, want 0", th.Failures)
			}
		})
	}
}
