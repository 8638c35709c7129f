package web_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/browsertest"
	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/totp"
)

// cdpSignIn signs username in with the password pw on the sign-in page of base.
func cdpSignIn(t *testing.T, ctx context.Context, base, username string) {
	t.Helper()
	cdp(t, ctx, "sign in as "+username,
		chromedp.Navigate(base+"/login"),
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), username),
		chromedp.SendKeys(chromedp.CSS("#password"), pw),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)),
		chromedp.WaitNotPresent(chromedp.CSS(`form[action="/login"] #password`)),
	)
}

// TestBrowserDashboardAwaitingActivation, in Chromium: an invited account that has not been
// activated is not one of the users without MFA on the dashboard (its owner has not signed in
// yet); the dashboard counts it apart, as awaiting activation, and the link to the users
// without a second factor lists exactly the ones it counts.
func TestBrowserDashboardAwaitingActivation(t *testing.T) {
	f := newAdminFixture(t, login.MFAOptional, nil)
	// root, agent and alice are active; alice gets an authenticator app; newbie is invited.
	c := &latchkey.TOTPCredential{UserID: f.alice.ID, Name: "Phone", Secret: bytes.Repeat([]byte{1}, 20)}
	if err := f.db.CreateTOTPCredential(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if err := f.db.ConfirmTOTPCredential(context.Background(), c.ID, 1, f.clock.Now(), nil, false); err != nil {
		t.Fatal(err)
	}
	f.invite(t, f.browser(t, "root"), "newbie")

	ctx := browsertest.New(t, 2*time.Minute)
	cdpSignIn(t, ctx, f.srv.URL, "root")
	cdp(t, ctx, "open the dashboard",
		chromedp.Navigate(f.srv.URL+"/admin"),
		chromedp.WaitVisible(chromedp.CSS("#adoption-h")),
	)
	browsertest.Screenshot(t, ctx, "admin-dashboard-awaiting-activation")
	type kpi struct {
		Value string `json:"value"`
		Note  string `json:"note"`
	}
	got := js[kpi](t, ctx, `(() => {
  const k = [...document.querySelectorAll('.kpi')].find(k => k.querySelector('.kpi-label').textContent === 'Users without MFA');
  return k ? {value: k.querySelector('.kpi-value').textContent, note: k.querySelector('.kpi-note').textContent} : {value: '', note: ''};
})()`)
	if want := (kpi{"2", "of 3 active users; 1 awaiting activation"}); got != want {
		t.Errorf("Users without MFA = %+v, want %+v (root and agent; newbie apart)", got, want)
	}
	if got := cdpText(t, ctx, ".adoption .big"); got != "1 of 3 active users" {
		t.Errorf("adoption = %q, want 1 of 3 active users", got)
	}
	if got, want := js[string](t, ctx, `document.getElementById('awaiting-activation')?.textContent ?? ''`), "1 invited account is awaiting activation and not counted here: nobody has signed in with it yet."; got != want {
		t.Errorf("awaiting activation = %q, want %q", got, want)
	}

	cdp(t, ctx, "follow the link to the users without a second factor",
		chromedp.Click(chromedp.CSS(`a[href="/admin/users?mfa=none"]`)),
		chromedp.WaitVisible(chromedp.CSS("#mfa:checked")),
	)
	browsertest.Screenshot(t, ctx, "admin-users-without-mfa")
	rows := js[[]string](t, ctx, `[...document.querySelectorAll('table.list tbody th')].map(th => th.textContent)`)
	if strings.Join(rows, " ") != "agent root" {
		t.Errorf("users without a second factor = %q, want agent and root", rows)
	}
}

// TestBrowserUserPageAwaitingActivation, in Chromium: the admin console's page of an invited
// account that has not been activated says that it is waiting for activation, with the
// status the page shows in its header (Invited, then Link expired), where it said that the
// user signs in with the password alone; the page of an active user without a factor still
// says that.
func TestBrowserUserPageAwaitingActivation(t *testing.T) {
	f := newAdminFixture(t, login.MFAOptional, nil)
	id, _ := f.invite(t, f.browser(t, "root"), "newbie")
	ctx := browsertest.New(t, 2*time.Minute)
	open := func(user latchkey.UserID) string {
		t.Helper()
		cdp(t, ctx, "open the user's page",
			chromedp.Navigate(fmt.Sprintf("%s/admin/users/%d", f.srv.URL, user)),
			chromedp.WaitVisible(chromedp.CSS("#factors-h")),
		)
		return js[string](t, ctx, `document.querySelector('section[aria-labelledby=factors-h] p.muted')?.textContent ?? ''`)
	}
	cdpSignIn(t, ctx, f.srv.URL, "root")

	if got, want := open(id), "No second factor yet: the account is waiting for activation (Invited). The user cannot sign in until they set a password with the activation link."; got != want {
		t.Errorf("newbie's sign-in methods say %q, want %q", got, want)
	}
	browsertest.Screenshot(t, ctx, "admin-user-invited")
	if got, want := open(f.alice.ID), "No second factor. The user signs in with the password alone, or is asked to set one up when policy requires it."; got != want {
		t.Errorf("alice's sign-in methods say %q, want %q", got, want)
	}

	f.clock.Add(login.InvitationTTL + time.Minute)
	cdpSignIn(t, ctx, f.srv.URL, "root") // the clock's jump ended the session
	if got, want := open(id), "No second factor yet: the account is waiting for activation (Link expired). The user cannot sign in until they set a password with a new activation link."; got != want {
		t.Errorf("newbie's sign-in methods, link expired, say %q, want %q", got, want)
	}
	browsertest.Screenshot(t, ctx, "admin-user-invite-expired")
}

// cdpSignInMFA gives username an authenticator app and signs them in with the password and
// a code from it, in Chromium.
func cdpSignInMFA(t *testing.T, ctx context.Context, f *adminFixture, username string) {
	t.Helper()
	u, err := f.db.FindUserByUsername(context.Background(), username)
	if err != nil {
		t.Fatal(err)
	}
	secret := bytes.Repeat([]byte{3}, 20)
	app := &latchkey.TOTPCredential{UserID: u.ID, Name: "Phone", Secret: secret}
	if err := f.db.CreateTOTPCredential(context.Background(), app); err != nil {
		t.Fatal(err)
	}
	if err := f.db.ConfirmTOTPCredential(context.Background(), app.ID, 1, f.clock.Now(), nil, false); err != nil {
		t.Fatal(err)
	}
	cdpSignIn(t, ctx, f.srv.URL, username)
	cdp(t, ctx, "second factor of "+username,
		chromedp.WaitVisible(chromedp.CSS("#code")),
		chromedp.SendKeys(chromedp.CSS("#code"), totp.Code(secret, totp.Step(f.clock.Now()))),
		chromedp.Submit(chromedp.CSS("#code")),
		chromedp.WaitNotPresent(chromedp.CSS("#code")),
	)
}

// TestBrowserUserPageResetAwaitingActivation, in Chromium: to an administrator signed in with
// a second factor, the page of an invited account that has not been activated offers no
// Reset MFA form and says why; a reset posted by hand from the page is refused with the
// reason above the page, and nothing is reset or mailed.
func TestBrowserUserPageResetAwaitingActivation(t *testing.T) {
	f := newAdminFixture(t, login.MFAOptional, nil)
	id, _ := f.invite(t, f.browser(t, "root"), "newbie")
	ctx := browsertest.New(t, 2*time.Minute)
	cdpSignInMFA(t, ctx, f, "root")
	cdp(t, ctx, "open newbie's page",
		chromedp.Navigate(fmt.Sprintf("%s/admin/users/%d", f.srv.URL, id)),
		chromedp.WaitVisible(chromedp.CSS("#reset-h")),
	)
	browsertest.Screenshot(t, ctx, "admin-user-invited-no-reset")
	if n := cdpCount(t, ctx, `form[action$="/reset-mfa"]`); n != 0 {
		t.Error("the page of an account awaiting activation has the Reset MFA form")
	}
	if got, want := cdpText(t, ctx, "#reset-nothing"), "Nothing to reset: newbie has not activated the account yet, so it has no second factor."; !strings.HasPrefix(got, want) {
		t.Errorf("Reset MFA says %q, want %q", got, want)
	}
	if got, want := postResetByHand(t, ctx, "admin-user-invited-reset-refused"), "newbie has not activated the account yet, so it has no sign-in methods to reset or remove."; !strings.HasPrefix(got, want) {
		t.Errorf("refusal = %q, want %q", got, want)
	}
	if ev := f.events(t, latchkey.ActionAdminMFAReset); len(ev) != 0 {
		t.Errorf("the refused reset was audited: %+v", ev)
	}
	if got := f.mails.subjects("newbie@example.com"); len(got) != 1 {
		t.Errorf("mails to newbie %q, want the activation mail only", got)
	}
}

// TestBrowserUserPageResetNoFactor, in Chromium: to an administrator signed in with a second
// factor, the page of an active account without one offers no Reset MFA form and says there
// is nothing to reset; the page of an account with an app offers it.
func TestBrowserUserPageResetNoFactor(t *testing.T) {
	f := newAdminFixture(t, login.MFAOptional, nil)
	ctx := browsertest.New(t, 2*time.Minute)
	cdpSignInMFA(t, ctx, f, "root")
	open := func(u *latchkey.User) {
		t.Helper()
		cdp(t, ctx, "open the page of "+u.Username,
			chromedp.Navigate(fmt.Sprintf("%s/admin/users/%d", f.srv.URL, u.ID)),
			chromedp.WaitVisible(chromedp.CSS("#reset-h")),
		)
	}
	open(f.alice)
	browsertest.Screenshot(t, ctx, "admin-user-no-factor")
	if n := cdpCount(t, ctx, `form[action$="/reset-mfa"]`); n != 0 {
		t.Error("the page of an account without a second factor has the Reset MFA form")
	}
	if got, want := cdpText(t, ctx, "#reset-nothing"), "Nothing to reset: alice has no second factor."; got != want {
		t.Errorf("Reset MFA says %q, want %q", got, want)
	}
	app := &latchkey.TOTPCredential{UserID: f.alice.ID, Name: "Phone", Secret: bytes.Repeat([]byte{1}, 20)}
	if err := f.db.CreateTOTPCredential(context.Background(), app); err != nil {
		t.Fatal(err)
	}
	if err := f.db.ConfirmTOTPCredential(context.Background(), app.ID, 1, f.clock.Now(), nil, false); err != nil {
		t.Fatal(err)
	}
	open(f.alice)
	browsertest.Screenshot(t, ctx, "admin-user-reset")
	if n := cdpCount(t, ctx, `form[action$="/reset-mfa"]`); n != 1 {
		t.Error("the page of an account with an app has no Reset MFA form")
	}
	if n := cdpCount(t, ctx, "#reset-nothing"); n != 0 {
		t.Error("the page of an account with an app says there is nothing to reset")
	}
}
