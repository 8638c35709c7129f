package login_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/totp"
)

func TestStepUp(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.user(t, "alice")
	first := e.signIn(t, "alice")
	secret, _ := e.enableTOTP(t, first)

	// alice signs in with the password only (a session from before she had a factor).
	e.clock.Add(time.Minute)
	sess, _, err := e.svc.Authenticate(ctx, first.Token)
	if err != nil || slices.Contains(sess.AMR, latchkey.AMRMFA) {
		t.Fatalf("password-only session: %+v, %v", sess, err)
	}
	res, err := e.svc.StepUp(ctx, alice, first.Token, time.Time{})
	if err != nil || res.State != latchkey.StateSecondFactor || !slices.Contains(res.Methods, latchkey.MethodTOTP) || res.Token == first.Token {
		t.Fatalf("StepUp = %+v, %v", res, err)
	}
	if !res.Session.PasswordAt.Equal(first.Session.PasswordAt) || res.Session.ExpiresAt.After(first.Session.ExpiresAt) {
		t.Errorf("step-up changed the password proof or extended the session: %+v (was %+v)", res.Session, first.Session)
	}
	// The old token is gone and the new one is a sign-in in progress, not a session.
	if _, _, err := e.svc.Authenticate(ctx, first.Token); code(t, err) != latchkey.EUnauthenticated {
		t.Errorf("old token after step-up: %v", err)
	}
	if _, _, err := e.svc.Authenticate(ctx, res.Token); code(t, err) != latchkey.EUnauthenticated {
		t.Errorf("step-up token authenticates before the factor: %v", err)
	}
	done, err := e.svc.LoginTOTP(ctx, alice, res.Token, totp.Code(secret, totp.Step(e.clock.Now())))
	if err != nil || done.State != latchkey.StateAuthenticated || !slices.Contains(done.Session.AMR, latchkey.AMRMFA) {
		t.Fatalf("factor after step-up: %+v, %v", done, err)
	}
	if _, err := e.svc.StepUp(ctx, alice, done.Token, time.Time{}); code(t, err) != latchkey.EConflict {
		t.Errorf("StepUp with MFA already: %v, want conflict", err)
	}
	// An application's max_age asks for a second factor newer than alice's: she steps up
	// again, and the new factor's time is kept.
	e.clock.Add(time.Minute)
	if _, err := e.svc.StepUp(ctx, alice, done.Token, *done.Session.MFAAt); code(t, err) != latchkey.EConflict {
		t.Errorf("StepUp with a factor as new as asked: %v, want conflict", err)
	}
	again, err := e.svc.StepUp(ctx, alice, done.Token, e.clock.Now())
	if err != nil || again.State != latchkey.StateSecondFactor || again.Session.MFAAt != nil || slices.Contains(again.Session.AMR, latchkey.AMRMFA) {
		t.Fatalf("StepUp with an older factor = %+v, %v", again, err)
	}
	e.clock.Add(30 * time.Second)
	redone, err := e.svc.LoginTOTP(ctx, alice, again.Token, totp.Code(secret, totp.Step(e.clock.Now())))
	if err != nil || redone.Session.MFAAt == nil || !redone.Session.MFAAt.Equal(e.clock.Now()) {
		t.Fatalf("factor after the second step-up: %+v, %v", redone, err)
	}
	if _, err := e.svc.StepUp(ctx, alice, "nope", time.Time{}); code(t, err) != latchkey.EUnauthenticated {
		t.Errorf("StepUp without a session: %v, want unauthenticated", err)
	}
	events, _ := e.db.FindAuditEvents(ctx, latchkey.AuditFilter{})
	if !slices.ContainsFunc(events, func(ev *latchkey.AuditEvent) bool { return ev.Action == login.ActionStepUp }) {
		t.Error("step-up not audited")
	}
}

func TestStepUpWithoutFactorEnrols(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.user(t, "bob")
	first := e.signIn(t, "bob")
	res, err := e.svc.StepUp(ctx, alice, first.Token, time.Time{})
	if err != nil || res.State != latchkey.StateEnroll || !slices.Contains(res.Methods, latchkey.MethodTOTP) {
		t.Fatalf("StepUp without a factor = %+v, %v", res, err)
	}
	if _, _, err := e.svc.EnrollFlow(ctx, res.Token); err != nil {
		t.Errorf("the step-up is not a rollout flow: %v", err)
	}
}
