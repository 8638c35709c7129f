package login_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/totp"
)

// TestFullReauthentication: changes to a user's factors need the password and, for a user
// with a factor, a second factor, both within the re-authentication window (ASVS 5.0 7.5.1).
// Someone holding a signed-in session and the password cannot add a factor of their own.
func TestFullReauthentication(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	u := e.user(t, "alice")

	// Without a factor, the password is the whole re-authentication.
	res := e.signIn(t, "alice")
	e.clock.Add(11 * time.Minute)
	if _, err := e.svc.BeginTOTP(ctx, alice, res.Session, u); code(t, err) != latchkey.EReauthenticate {
		t.Fatalf("BeginTOTP with a stale password = %v, want reauthentication_required", err)
	}
	re, err := e.svc.Reauthenticate(ctx, alice, res.Token, goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	if re.State != latchkey.StateAuthenticated || len(re.Methods) != 0 {
		t.Fatalf("Reauthenticate without a factor: %s %v, want authenticated", re.State, re.Methods)
	}
	secret, _ := e.enableTOTP(t, re)

	// With one, a session that gave only the password may not add, remove or show anything.
	k := newSoftKey(t)
	if _, err := e.svc.BeginWebAuthnRegistration(ctx, re.Session, u); code(t, err) != latchkey.EReauthenticate {
		t.Fatalf("BeginWebAuthnRegistration without a second factor = %v, want reauthentication_required", err)
	}
	if err := e.svc.DisableTOTP(ctx, alice, re.Session, u, goodPassword); code(t, err) != latchkey.EReauthenticate {
		t.Fatalf("DisableTOTP without a second factor = %v, want reauthentication_required", err)
	}
	if _, err := e.svc.ChangePassword(ctx, alice, re.Token, goodPassword, "a brand new passphrase for alice"); code(t, err) != latchkey.EReauthenticate {
		t.Fatalf("ChangePassword without a second factor = %v, want reauthentication_required", err)
	}
	if st, _ := e.svc.Status(ctx, u); !st.TOTPEnabled || st.Factors != 1 {
		t.Fatalf("refused changes changed the factors: %+v", st)
	}
	if _, err := e.svc.Login(ctx, alice, "", "alice", goodPassword); err != nil {
		t.Fatalf("the refused password change changed the password: %v", err)
	}

	// A wrong password changes nothing: the session is still signed in.
	e.clock.Add(30 * time.Second)
	if _, err := e.svc.Reauthenticate(ctx, alice, re.Token, "wrong"); code(t, err) != latchkey.EInvalidCredentials {
		t.Fatalf("Reauthenticate(wrong) = %v, want invalid_credentials", err)
	}
	if _, _, err := e.svc.Authenticate(ctx, re.Token); err != nil {
		t.Fatalf("a wrong re-authentication signed the session out: %v", err)
	}

	// The right one turns the session into the second step: signed in for nothing until a
	// factor is given, the old token gone.
	step, err := e.svc.Reauthenticate(ctx, alice, re.Token, goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	if step.State != latchkey.StateSecondFactor || !slices.Equal(step.Methods, []string{latchkey.MethodTOTP, latchkey.MethodRecovery}) {
		t.Fatalf("Reauthenticate with a factor: %s %v, want second_factor [totp recovery]", step.State, step.Methods)
	}
	if _, _, err := e.svc.Authenticate(ctx, re.Token); err == nil {
		t.Fatal("the token before the re-authentication still works")
	}
	if _, _, err := e.svc.Authenticate(ctx, step.Token); err == nil {
		t.Fatal("the session is signed in before its second factor")
	}
	done, err := e.svc.LoginTOTP(ctx, alice, step.Token, totp.Code(secret, totp.Step(e.clock.Now())))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.addKey(t, done, k, "Key"); err != nil {
		t.Fatalf("adding a key after the full re-authentication: %v", err)
	}

	// Within the window of that factor, the password alone re-authenticates again.
	e.clock.Add(5 * time.Minute)
	again, err := e.svc.Reauthenticate(ctx, alice, done.Token, goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	if again.State != latchkey.StateAuthenticated {
		t.Fatalf("Reauthenticate within the factor's window: %s, want authenticated", again.State)
	}

	// Past it, a started re-authentication that is never finished ends the session with its
	// step (FlowTTL), as an unfinished sign-in does.
	e.clock.Add(11 * time.Minute)
	if err := e.svc.Recent(ctx, again.Session, u); code(t, err) != latchkey.EReauthenticate {
		t.Fatalf("Recent after the window = %v, want reauthentication_required", err)
	}
	left, err := e.svc.Reauthenticate(ctx, alice, again.Token, goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	if left.State != latchkey.StateSecondFactor || !slices.Contains(left.Methods, latchkey.MethodWebAuthn) {
		t.Fatalf("Reauthenticate after the window: %s %v, want second_factor with webauthn", left.State, left.Methods)
	}
	e.clock.Add(11 * time.Minute)
	if _, err := e.svc.LoginTOTP(ctx, alice, left.Token, totp.Code(secret, totp.Step(e.clock.Now()))); code(t, err) != latchkey.EFlowExpired {
		t.Fatalf("the second step after its end = %v, want flow_expired", err)
	}

	// Each re-authentication is audited, and says when it went on to a second factor.
	events, err := e.db.FindAuditEvents(ctx, latchkey.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var details []string
	for _, ev := range events {
		if ev.Action == latchkey.ActionReauthenticate && ev.Outcome == latchkey.OutcomeSuccess {
			details = append(details, ev.Detail)
		}
	}
	if want := []string{"", "next: second_factor", "", "next: second_factor"}; !slices.Equal(details, want) {
		t.Errorf("re-authentications audited %q, want %q", details, want)
	}
}
