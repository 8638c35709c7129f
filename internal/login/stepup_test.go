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
	res, err := e.svc.StepUp(ctx, alice, first.Token)
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
	if _, err := e.svc.StepUp(ctx, alice, done.Token); code(t, err) != latchkey.EConflict {
		t.Errorf("StepUp with MFA already: %v, want conflict", err)
	}
	if _, err := e.svc.StepUp(ctx, alice, "nope"); code(t, err) != latchkey.EUnauthenticated {
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
	res, err := e.svc.StepUp(ctx, alice, first.Token)
	if err != nil || res.State != latchkey.StateEnroll || !slices.Contains(res.Methods, latchkey.MethodTOTP) {
		t.Fatalf("StepUp without a factor = %+v, %v", res, err)
	}
	if _, _, err := e.svc.EnrollFlow(ctx, res.Token); err != nil {
		t.Errorf("the step-up is not a rollout flow: %v", err)
	}
}
