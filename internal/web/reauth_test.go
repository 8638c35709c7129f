package web_test

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/totp"
)

// TestFullReauthenticationPages: with a second factor, a session that has not given one in the
// last 10 minutes is sent from every form that changes how the user signs in (and from the
// API's answer) to re-authenticate, which asks the password and then the second step of
// sign-in, and comes back. Nothing changes before that.
func TestFullReauthenticationPages(t *testing.T) {
	f := newFixture(t, "")
	ctx := context.Background()
	c := f.client(t)
	form := func(path string, v url.Values) response {
		return c.do("POST", path, "application/x-www-form-urlencoded", v.Encode())
	}
	if r := form("/login", url.Values{"username": {"alice"}, "password": {pw}}); r.code != 303 {
		t.Fatalf("login: %d", r.code)
	}
	secret := f.enrolTOTP(t, c) // this session gave the password only
	alice := mustUser(t, f)
	enabled := func() bool {
		creds, _ := f.db.FindTOTPCredentials(ctx, alice.ID)
		return slices.ContainsFunc(creds, (*latchkey.TOTPCredential).Confirmed)
	}

	for _, page := range []string{"/settings/security/totp/disable", "/settings/security/totp/disable?from=account", "/settings/security/recovery-codes", "/settings/password"} {
		if r := c.do("GET", page, "", ""); r.code != 303 || r.header.Get("Location") != "/reauth?next="+url.QueryEscape(page) {
			t.Errorf("GET %s: %d Location %q, want the re-authentication", page, r.code, r.header.Get("Location"))
		}
	}
	if r := form("/settings/security/totp/disable", url.Values{"confirm": {"yes"}, "password": {pw}}); r.code != 303 || r.header.Get("Location") != "/reauth?next=%2Fsettings%2Fsecurity%2Ftotp%2Fdisable" {
		t.Errorf("disable form: %d Location %q", r.code, r.header.Get("Location"))
	}
	if r := c.do("DELETE", "/api/v1/account/totp", "application/json", `{"password":"`+pw+`"}`); r.code != 403 || r.errCode() != latchkey.EReauthenticate {
		t.Errorf("DELETE /api/v1/account/totp: %d %s", r.code, r.raw)
	}
	if r := c.post("/api/v1/account/password", map[string]string{"current_password": pw, "new_password": "another long passphrase of alice"}); r.code != 403 || r.errCode() != latchkey.EReauthenticate {
		t.Errorf("POST /api/v1/account/password: %d %s", r.code, r.raw)
	}
	// No device to approve a new one: a new device would be a factor added unapproved.
	if r := c.post("/api/v1/account/devices/activation", nil); r.code != 403 || r.errCode() != latchkey.EReauthenticate {
		t.Errorf("activation without a device to approve it: %d %s", r.code, r.raw)
	}
	if !enabled() {
		t.Fatal("a session without a recent second factor turned off the authenticator app")
	}

	// The re-authentication page says that a second factor follows the password.
	next := "/settings/security/totp/disable"
	if r := c.do("GET", "/reauth?next="+url.QueryEscape(next), "", ""); r.code != 200 || !strings.Contains(r.raw, `id="then-second-factor"`) {
		t.Errorf("reauth page: %d, no word of the second factor", r.code)
	}
	if r := form("/reauth", url.Values{"password": {"wrong"}, "next": {next}}); r.code != 401 || !strings.Contains(r.raw, `id="then-second-factor"`) {
		t.Errorf("reauth with a wrong password: %d", r.code)
	}
	r := form("/reauth", url.Values{"password": {pw}, "next": {next}})
	if r.code != 303 || r.header.Get("Location") != "/login/code?next="+url.QueryEscape(next) {
		t.Fatalf("reauth: %d Location %q", r.code, r.header.Get("Location"))
	}
	// Between the password and the factor the session is signed in for nothing.
	if r := c.do("GET", "/api/v1/session", "", ""); r.code != 401 {
		t.Errorf("session between the password and the factor: %d %s", r.code, r.raw)
	}
	f.clock.Add(30 * time.Second) // the enrolment's step is used
	r = form("/login/code", url.Values{"code": {totp.Code(secret, totp.Step(f.clock.Now()))}, "next": {next}})
	if r.code != 303 || r.header.Get("Location") != next {
		t.Fatalf("second factor: %d Location %q", r.code, r.header.Get("Location"))
	}
	if r := c.do("GET", "/reauth", "", ""); r.code != 200 || strings.Contains(r.raw, `id="then-second-factor"`) {
		t.Errorf("reauth page after a second factor: %d, still announces one", r.code)
	}
	if r := c.do("GET", next, "", ""); r.code != 200 {
		t.Fatalf("GET %s after the full re-authentication: %d", next, r.code)
	}
	if r := form(next, url.Values{"confirm": {"yes"}, "password": {pw}}); r.code != 303 || r.header.Get("Location") != "/settings/security?done=totp-disabled" {
		t.Fatalf("disable after the full re-authentication: %d Location %q", r.code, r.header.Get("Location"))
	}
	if enabled() {
		t.Fatal("the authenticator app is still on")
	}
}
