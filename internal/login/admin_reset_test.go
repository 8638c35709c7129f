package login_test

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/login"
)

// staff creates an administrator (root) and a support agent (sam) in e.
func (e *env) staff(t *testing.T) (root, sam *latchkey.User) {
	t.Helper()
	ctx := context.Background()
	var err error
	if root, err = e.svc.CreateUser(ctx, login.Client{}, login.NewUser{Username: "root", Email: "root@example.com", Role: latchkey.RoleAdmin, Password: goodPassword}); err != nil {
		t.Fatal(err)
	}
	if sam, err = e.svc.CreateUser(ctx, login.Client{}, login.NewUser{Username: "sam", Email: "sam@example.com", Role: latchkey.RoleSupport, Password: goodPassword}); err != nil {
		t.Fatal(err)
	}
	return root, sam
}

// unchanged returns a check that nothing was written or mailed since it was made: no audit
// entry and no mail.
func (e *env) unchanged(t *testing.T) func(when string) {
	t.Helper()
	ctx := context.Background()
	before, err := e.db.FindAuditEvents(ctx, latchkey.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	mails := len(e.mail.subjects())
	return func(when string) {
		t.Helper()
		if after, _ := e.db.FindAuditEvents(ctx, latchkey.AuditFilter{}); len(after) != len(before) {
			for _, ev := range after[len(before):] {
				t.Errorf("%s: audit entry %s %s %q written", when, ev.Action, ev.Outcome, ev.Detail)
			}
		}
		if got := e.mail.subjects(); len(got) != mails {
			t.Errorf("%s: mails sent %q", when, got[mails:])
		}
	}
}

// TestAdminResetMFAAwaitingActivation: an invited account whose owner has not activated it
// has no sign-in method, so the admin console's reset of its MFA, and the support desk's
// reset or removal of a factor asked of login directly, are refused with a conflict that says
// why, also once the link expired, and write nothing: no mfa.reset entry, no "All your
// sign-in methods were reset" mail to the invitee. Once the owner has activated the account
// and set up an app, the administrator's reset runs.
func TestAdminResetMFAAwaitingActivation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	root, sam := e.staff(t)
	newbie, err := e.svc.InviteUser(ctx, alice, root, true, "newbie", "newbie@example.com", latchkey.RoleUser)
	if err != nil {
		t.Fatal(err)
	}
	const why = "newbie has not activated the account yet, so it has no sign-in methods to reset or remove."
	refused := func(when string) {
		t.Helper()
		nothing := e.unchanged(t)
		agent := login.AgentAction{Agent: sam, AgentMFA: true, TicketID: 1001, Reason: "lost phone"}
		for name, act := range map[string]func() error{
			"AdminResetMFA":     func() error { return e.svc.AdminResetMFA(ctx, alice, root, true, newbie.ID, "lost phone") },
			"AgentResetMFA":     func() error { return e.svc.AgentResetMFA(ctx, alice, agent, newbie) },
			"AgentRemoveFactor": func() error { return e.svc.AgentRemoveFactor(ctx, alice, agent, newbie, "totp:1") },
		} {
			if err := act(); code(t, err) != latchkey.EConflict || !strings.HasPrefix(latchkey.ErrorMessage(err), why) {
				t.Errorf("%s, %s = %v, want a conflict: %q", name, when, err, why)
			}
		}
		nothing(when)
		if err := e.svc.RequireActivated(ctx, newbie); code(t, err) != latchkey.EConflict {
			t.Errorf("RequireActivated, %s = %v, want a conflict", when, err)
		}
	}
	refused("invited")
	e.clock.Add(login.InvitationTTL + 1)
	refused("link expired")

	// Activated with a new link, with an app: the administrator's reset runs.
	if err := e.svc.ResendInvitation(ctx, alice, root, newbie.ID); err != nil {
		t.Fatal(err)
	}
	e.mail.mu.Lock()
	text := e.mail.msgs[len(e.mail.msgs)-1].Text
	e.mail.mu.Unlock()
	token := regexp.MustCompile(`token=([A-Za-z0-9_-]+)`).FindStringSubmatch(text)
	if token == nil {
		t.Fatalf("no activation link in %q", text)
	}
	if _, err := e.svc.Activate(ctx, alice, "", token[1], goodPassword); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.RequireActivated(ctx, newbie); err != nil {
		t.Errorf("RequireActivated of the activated account = %v", err)
	}
	e.enableTOTP(t, e.signIn(t, "newbie"))
	if err := e.svc.AdminResetMFA(ctx, alice, root, true, newbie.ID, "lost phone"); err != nil {
		t.Fatalf("AdminResetMFA of the activated account: %v", err)
	}
	if got := e.mail.subjects(); got[len(got)-1] != "All your sign-in methods were reset" {
		t.Errorf("last mail %q, want the reset's", got[len(got)-1])
	}
}

// TestResetMFANoFactor: an active account without a second factor (a pending enrolment is
// none) has nothing to reset, so the admin console's reset and the support desk's are refused
// with a conflict that says so, and write nothing: no mfa.reset entry, no "All your sign-in
// methods were reset" mail. With an app the reset runs, and a second one, which would find
// nothing left, is refused in turn.
func TestResetMFANoFactor(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	root, sam := e.staff(t)
	bob := e.user(t, "bob")
	agent := login.AgentAction{Agent: sam, AgentMFA: true, TicketID: 1001, Reason: "lost phone"}
	const why = "bob has no second factor, so there is nothing to reset"
	refused := func(when string) {
		t.Helper()
		if ok, err := e.svc.HasSecondFactor(ctx, bob); ok || err != nil {
			t.Errorf("HasSecondFactor, %s = %v, %v; want false", when, ok, err)
		}
		nothing := e.unchanged(t)
		for name, act := range map[string]func() error{
			"AdminResetMFA": func() error { return e.svc.AdminResetMFA(ctx, alice, root, true, bob.ID, "lost phone") },
			"AgentResetMFA": func() error { return e.svc.AgentResetMFA(ctx, alice, agent, bob) },
		} {
			if err := act(); code(t, err) != latchkey.EConflict || !strings.HasPrefix(latchkey.ErrorMessage(err), why) {
				t.Errorf("%s, %s = %v, want a conflict: %q", name, when, err, why)
			}
		}
		nothing(when)
	}
	refused("no factor")
	// An app begun but not confirmed is no factor.
	res := e.signIn(t, "bob")
	if _, err := e.svc.BeginTOTP(ctx, alice, res.Session, res.User); err != nil {
		t.Fatal(err)
	}
	refused("a pending app")

	for name, reset := range map[string]func() error{
		"AdminResetMFA": func() error { return e.svc.AdminResetMFA(ctx, alice, root, true, bob.ID, "lost phone") },
		"AgentResetMFA": func() error { return e.svc.AgentResetMFA(ctx, alice, agent, bob) },
	} {
		e.enableTOTP(t, e.signIn(t, "bob"))
		if ok, err := e.svc.HasSecondFactor(ctx, bob); !ok || err != nil {
			t.Errorf("HasSecondFactor with an app = %v, %v; want true", ok, err)
		}
		if err := reset(); err != nil {
			t.Fatalf("%s with an app: %v", name, err)
		}
		if got := e.mail.subjects(); got[len(got)-1] != "All your sign-in methods were reset" {
			t.Errorf("%s: last mail %q, want the reset's", name, got[len(got)-1])
		}
		refused("after " + name)
	}
}
