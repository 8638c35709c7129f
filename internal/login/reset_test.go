package login_test

import (
	"context"
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

// TestResetAllMFAAppCodeSpentWithTheReset: an app code that proves Reset all MFA has its time
// step recorded in the reset's own transaction: when the reset fails (here its audit entry,
// without which it does not happen), the code is not burned and still works for the reset
// once the database takes it.
func TestResetAllMFAAppCodeSpentWithTheReset(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.user(t, "alice")
	res := e.signIn(t, "alice")
	secret, codes := e.enableTOTP(t, res)
	e.clock.Add(30 * time.Second) // a step after the one that confirmed the app
	if _, err := e.db.SQL().Exec(`CREATE TRIGGER reset_fails BEFORE INSERT ON audit_events
		WHEN NEW.action = 'mfa.reset' AND NEW.outcome = 'success'
		BEGIN SELECT RAISE(ABORT, 'audit write refused'); END`); err != nil {
		t.Fatal(err)
	}
	p := login.ResetProof{Password: goodPassword, Code: totp.Code(secret, totp.Step(e.clock.Now()))}
	if err := e.svc.ResetAllMFA(ctx, alice, res.Session, res.User, p); err == nil {
		t.Fatal("ResetAllMFA succeeded without its audit entry")
	}
	if st, _ := e.svc.Status(ctx, res.User); !st.TOTPEnabled || st.RecoveryCodesLeft != len(codes) {
		t.Fatalf("after a reset that failed: TOTP %v, %d recovery codes left, want the app and all %d", st.TOTPEnabled, st.RecoveryCodesLeft, len(codes))
	}
	if _, err := e.db.SQL().Exec(`DROP TRIGGER reset_fails`); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.ResetAllMFA(ctx, alice, res.Session, res.User, p); err != nil {
		t.Fatalf("ResetAllMFA with the code again: %v", err)
	}
	if st, _ := e.svc.Status(ctx, res.User); st.Factors != 0 || st.RecoveryCodesLeft != 0 {
		t.Fatalf("after the reset: %+v", st)
	}
}

// TestResetAllMFAAppCodeUsedMeanwhile: an app code used by a sign-in after Reset all MFA
// checked it and before its transaction refuses the reset as a replay (the replay guard holds
// in the reset's transaction), audited as one, and nothing is removed.
func TestResetAllMFAAppCodeUsedMeanwhile(t *testing.T) {
	e, st := newResetHookEnv(t)
	ctx := context.Background()
	e.user(t, "alice")
	res := e.signIn(t, "alice")
	secret, _ := e.enableTOTP(t, res)
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
