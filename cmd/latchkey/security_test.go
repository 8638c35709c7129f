package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/latchkey/latchkey/internal/browsertest"
	"github.com/latchkey/latchkey/internal/totp"
)

// TestBrowserSecurityPage is journeys 4 and 11 end to end in Chromium with a real `latch`:
// under mfa: required a new user rolls out with the Latch app and gets recovery codes; the
// Security page lists the device, a security key and an authenticator app in one list; the
// key is made primary and sign-in offers it first; the app is renamed; "Reset all MFA" with
// the password and a Latch code removes everything, mails the user and sends the next sign-in
// back to the rollout.
func TestBrowserSecurityPage(t *testing.T) {
	s, base := localServer(t, "mfa: required\n", "alice")
	phone := newLatch(t)
	ctx := browsertest.New(t, 4*time.Minute)
	shot := func(name string) { browsertest.Screenshot(t, ctx, "security-"+name) }

	// Rollout with the Latch app.
	do(t, ctx, "open the account page",
		chromedp.Navigate(base+"/settings/account"),
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), "alice"),
		chromedp.SendKeys(chromedp.CSS("#password"), alicePassword),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/login/enroll/device"] button`)),
		chromedp.Click(chromedp.CSS(`form[action="/login/enroll/device"] button`)),
		chromedp.WaitVisible(chromedp.CSS("#activation-code")),
	)
	do(t, ctx, "continue too early", chromedp.Click(chromedp.CSS(`form[action="/login/enroll/done"] button`)), chromedp.WaitVisible(chromedp.CSS(".error, .notice, [role=alert]")))
	if l := location(t, ctx); strings.HasSuffix(l, "/settings/account") {
		t.Fatal("the rollout let the user go before the app was activated")
	}
	do(t, ctx, "start over", chromedp.Navigate(base+"/login/enroll?next=%2Fsettings%2Faccount"), chromedp.WaitVisible(chromedp.CSS(`form[action="/login/enroll/device"] button`)),
		chromedp.Click(chromedp.CSS(`form[action="/login/enroll/device"] button`)), chromedp.WaitVisible(chromedp.CSS("#activation-code")))
	phone.must("activate", text(t, ctx, "#activation-code"), "--server", base, "--name", "Work phone")
	do(t, ctx, "continue", chromedp.Click(chromedp.CSS(`form[action="/login/enroll/done"] button`)), chromedp.WaitVisible(chromedp.CSS("#recovery-codes")))
	shot("01-rollout-latch-codes")
	if n := strings.Count(text(t, ctx, "#recovery-codes"), "-"); n != 30 {
		t.Errorf("recovery codes after a Latch rollout: %d dashes, want 10 codes", n)
	}
	do(t, ctx, "after the codes", chromedp.Click(chromedp.CSS("a.button")), chromedp.WaitVisible(chromedp.CSS("h1")))
	if l := location(t, ctx); l != base+"/settings/account" {
		t.Fatalf("after the rollout at %s, want the page asked for", l)
	}

	// Add a security key and an authenticator app from the one list.
	browsertest.Authenticator(t, ctx)
	do(t, ctx, "add a key",
		chromedp.Navigate(base+"/settings/security"),
		chromedp.Click(chromedp.CSS(`a[href="/settings/security/keys/add"]`)),
		chromedp.WaitVisible(chromedp.CSS("#key-name")),
		chromedp.SendKeys(chromedp.CSS("#key-name"), "Blue key"),
		chromedp.Click(chromedp.CSS(`form[data-webauthn] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	// A Latch user adds an authenticator app beside it (its offline codes are not "an app").
	do(t, ctx, "add an app", chromedp.Click(chromedp.CSS(`form[action="/settings/security/totp"] button`)), chromedp.WaitVisible(chromedp.CSS("#qr")))
	secret := scanQR(t, ctx)
	enterCode(t, ctx, totp.Code(secret, totp.Step(time.Now())), "#recovery-codes")
	do(t, ctx, "back", chromedp.Navigate(base+"/settings/security"), chromedp.WaitVisible(chromedp.CSS("#factors")))
	rows := func() []string {
		t.Helper()
		out, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#factors li.factor")].map(li => li.dataset.kind + "|" + li.querySelector(".device-name").textContent + "|" + (li.querySelector(".badge.on") ? "primary" : ""))`))
		if err != nil {
			t.Fatalf("read the list: %v", err)
		}
		return out
	}
	got := strings.Join(rows(), " ")
	if got != "device|Work phone|primary totp|Authenticator app| webauthn|Blue key|" {
		t.Fatalf("the list: %q", got)
	}
	list := strings.ToLower(text(t, ctx, "#factors"))
	for _, want := range []string{"latch app", "security key", "added", "last used", "make primary", "rename", "remove"} {
		if !strings.Contains(list, want) {
			t.Errorf("the list lacks %q", want)
		}
	}
	shot("02-one-list")

	// Make the key primary, rename the app.
	do(t, ctx, "make the key primary",
		chromedp.Click(chromedp.CSS(`li[data-kind="webauthn"] form[action="/settings/security/primary"] button`)),
	)
	waitFlash(t, ctx, "offered first")
	do(t, ctx, "rename the app",
		chromedp.SetValue(chromedp.CSS(`li[data-kind="totp"] input[name=name]`), "Old phone"),
		chromedp.Click(chromedp.CSS(`li[data-kind="totp"] form.rename button`)),
	)
	waitFlash(t, ctx, "name was saved")
	if got := strings.Join(rows(), " "); got != "webauthn|Blue key|primary totp|Old phone| device|Work phone|" {
		t.Fatalf("after make primary and rename: %q", got)
	}
	shot("03-key-primary")

	// Sign-in offers the key first, and it works.
	signOut(t, ctx)
	signIn(t, ctx, base, "alice")
	keyFirst, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!(document.querySelector(".key-login").compareDocumentPosition(document.querySelector("form[action='/login/push']")) & Node.DOCUMENT_POSITION_FOLLOWING)`))
	if err != nil || !keyFirst {
		t.Error("the primary security key is not offered first")
	}
	shot("04-code-key-first")
	do(t, ctx, "use the key", chromedp.Click(chromedp.CSS(".key-login button")), chromedp.WaitVisible(chromedp.CSS("h1.page-title")))

	// Reset all MFA with the password and a Latch code.
	do(t, ctx, "reset page", chromedp.Navigate(base+"/settings/security/reset"), chromedp.WaitVisible(chromedp.CSS("#reset-form")))
	shot("05-reset")
	var code string
	for _, c := range phone.codes() {
		code = c
	}
	do(t, ctx, "reset with a wrong code",
		chromedp.SendKeys(chromedp.CSS("#password"), alicePassword),
		chromedp.SendKeys(chromedp.CSS("#code"), "000000"),
		chromedp.Click(chromedp.CSS("#confirm")),
		chromedp.Click(chromedp.CSS(`#reset-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("#code-error")),
	)
	if got := len(rowsAt(t, ctx, base)); got != 3 {
		t.Fatalf("a refused reset left %d factors, want 3", got)
	}
	do(t, ctx, "reset",
		chromedp.Navigate(base+"/settings/security/reset"),
		chromedp.WaitVisible(chromedp.CSS("#reset-form")),
		chromedp.SendKeys(chromedp.CSS("#password"), alicePassword),
		chromedp.SendKeys(chromedp.CSS("#code"), code),
		chromedp.Click(chromedp.CSS("#confirm")),
		chromedp.Click(chromedp.CSS(`#reset-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	shot("06-after-reset")
	if got := rows(); len(got) != 0 {
		t.Fatalf("after the reset: %q", got)
	}
	waitMail(t, s, "All your sign-in methods were reset")
	signOut(t, ctx)
	signIn(t, ctx, base, "alice")
	if l := location(t, ctx); !strings.HasPrefix(l, base+"/login/enroll") {
		t.Fatalf("after a reset under mfa: required, sign-in went to %s, want the rollout", l)
	}
}

// rowsAt reads the factor list of the Security page.
func rowsAt(t *testing.T, ctx context.Context, base string) []string {
	t.Helper()
	do(t, ctx, "security page", chromedp.Navigate(base+"/settings/security"), chromedp.WaitVisible(chromedp.CSS("#factors")))
	out, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#factors li.factor")].map(li => li.dataset.kind)`))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// waitFlash waits for the page's flash message to contain want.
func waitFlash(t *testing.T, ctx context.Context, want string) {
	t.Helper()
	for range 100 {
		if s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector(".flash") || {}).textContent || ""`)); err == nil && strings.Contains(s, want) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no flash message %q", want)
}

// TestRolloutFlowNeedsItsOwnFactor: under mfa: required, someone who knows the password holds
// a rollout sign-in while the user sets up an authenticator app in their own browser. The
// held sign-in cannot then be finished as if it had set up the factor (the JSON API's
// enroll/complete, the page's "Continue"): no session, nothing that claims MFA.
// rolloutTOTP sets up an authenticator app in b's rollout sign-in, which it signs in, and
// returns the confirmation's answer.
func rolloutTOTP(t *testing.T, b *browserAPI) map[string]any {
	t.Helper()
	code, en := b.call("POST", "/api/v1/account/totp", nil)
	if code != 200 {
		t.Fatalf("enrol: %d %v", code, en)
	}
	key, err := totp.ParseURI(en["otpauth_uri"].(string))
	if err != nil {
		t.Fatal(err)
	}
	code, done := b.call("POST", "/api/v1/account/totp/confirm", map[string]string{"code": totp.Code(key.Secret, totp.Step(time.Now()))})
	if code != 200 || done["state"] != "authenticated" {
		t.Fatalf("the rollout: %d %v", code, done)
	}
	return done
}

func TestRolloutFlowNeedsItsOwnFactor(t *testing.T) {
	_, base := localServer(t, "mfa: required\n", "alice")
	attacker, user := newBrowserAPI(t, base), newBrowserAPI(t, base)
	if st := attacker.login(); st != "enroll" {
		t.Fatalf("attacker's sign-in: %q", st)
	}
	if st := user.login(); st != "enroll" {
		t.Fatalf("user's sign-in: %q", st)
	}
	rolloutTOTP(t, user)
	if code, m := attacker.call("POST", "/api/v1/login/enroll/complete", nil); code != 403 {
		t.Errorf("enroll/complete of the held sign-in: %d %v, want 403", code, m)
	}
	noFollow := *attacker.hc
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noFollow.PostForm(base+"/login/enroll/done", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == 303 {
		t.Errorf("the page's Continue of the held sign-in: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if code, m := attacker.call("GET", "/api/v1/session", nil); code != 401 {
		t.Errorf("the held sign-in is signed in: %d %v", code, m)
	}
}

// TestRolloutFlowAddsNoFactorBesideTheUsers: rollout sign-ins held by someone who knows the
// password, while the user sets up a factor in their own browser, can add none of their own
// afterwards: not an authenticator app, not a security key, not a Latch device (with a code the
// held sign-in made before), and each is ended. The user's recovery codes stay good.
func TestRolloutFlowAddsNoFactorBesideTheUsers(t *testing.T) {
	_, base := localServer(t, "mfa: required\n", "alice")
	held := make([]*browserAPI, 3)
	for i := range held {
		held[i] = newBrowserAPI(t, base)
		if st := held[i].login(); st != "enroll" {
			t.Fatalf("held sign-in %d: %q", i, st)
		}
	}
	// The third made an activation code while the account had no factor.
	code, act := held[2].call("POST", "/api/v1/account/devices/activation", nil)
	if code != 200 {
		t.Fatalf("activation code of the held sign-in: %d %v", code, act)
	}
	user := newBrowserAPI(t, base)
	if st := user.login(); st != "enroll" {
		t.Fatalf("user's sign-in: %q", st)
	}
	recovery := rolloutTOTP(t, user)["recovery_codes"].([]any)

	for i, path := range []string{"/api/v1/account/totp", "/api/v1/account/webauthn"} {
		code, m := held[i].call("POST", path, nil)
		if code != 403 || !strings.Contains(fmt.Sprint(m), "set up for this account meanwhile") {
			t.Errorf("POST %s from a held sign-in: %d %v, want 403", path, code, m)
		}
		if code, m := held[i].call("POST", "/api/v1/login/enroll/complete", nil); code != 401 {
			t.Errorf("the held sign-in after its refusal: %d %v, want 401 (ended)", code, m)
		}
	}
	phone := newLatch(t)
	if out := phone.mustFail("activate", act["code"].(string), "--server", base, "--name", "Attacker"); !strings.Contains(out, "account has one now") {
		t.Errorf("latch activate with the held sign-in's code: %s", out)
	}
	if code, m := held[2].call("POST", "/api/v1/login/enroll/complete", nil); code == 200 {
		t.Errorf("the held sign-in completed: %v", m)
	}
	code, f := user.call("GET", "/api/v1/account/factors", nil)
	if code != 200 || len(f["factors"].([]any)) != 1 || f["recovery_codes_left"] != float64(len(recovery)) {
		t.Errorf("the user's factors after the attempts: %d %v, want the app alone and %d recovery codes", code, f, len(recovery))
	}
}
