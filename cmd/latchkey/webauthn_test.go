package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/latchkey/latchkey/internal/browsertest"
	"github.com/latchkey/latchkey/internal/totp"
)

// localServer starts the server on a free port with the public URL http://localhost:PORT: an
// IP address is never a valid WebAuthn relying party ID. config is a YAML configuration.
func localServer(t *testing.T, config string, users ...string) (*testServer, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cfg := filepath.Join(t.TempDir(), "latchkey.yaml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("http://localhost:%d", port)
	s := startServerArgs(t, []string{"--addr", fmt.Sprintf("127.0.0.1:%d", port), "--public-url", base, "--config", cfg}, users...)
	return s, base
}

// unplug removes a virtual authenticator and returns the credentials it held.
func unplug(t *testing.T, ctx context.Context, id webauthn.AuthenticatorID) []*webauthn.Credential {
	t.Helper()
	var creds []*webauthn.Credential
	do(t, ctx, "remove virtual authenticator", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		res, err := chromedp.Call(ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: id})
		if err != nil {
			return err
		}
		creds = res.Credentials
		_, err = chromedp.Call(ctx, webauthn.RemoveVirtualAuthenticator, webauthn.RemoveVirtualAuthenticatorParams{AuthenticatorID: id})
		return err
	}))
	return creds
}

// waitText polls the text of sel until it is not empty.
func waitText(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	for range 100 {
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err == nil && strings.TrimSpace(s) != "" {
			return s
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s stayed empty", sel)
	return ""
}

// TestBrowserSecurityKeys is journey 10 in Chromium with virtual authenticators: register
// two keys, sign in with each, remove one and see it refused, sign in with a passkey.
func TestBrowserSecurityKeys(t *testing.T) {
	s, base := localServer(t, "webauthn:\n  passkeys: true\n", "alice")
	ctx := browsertest.New(t, 3*time.Minute)
	shot := func(name string) { browsertest.Screenshot(t, ctx, "keys-"+name) }

	do(t, ctx, "open", chromedp.Navigate(base+"/login"), chromedp.WaitVisible(chromedp.CSS("#username")))
	blue := browsertest.Authenticator(t, ctx)
	signIn(t, ctx, base, "alice")
	addKey := func(name string) {
		t.Helper()
		do(t, ctx, "add key "+name,
			chromedp.Navigate(base+"/settings/security"),
			chromedp.Click(chromedp.CSS(`a[href="/settings/security/keys/add"]`)),
			chromedp.WaitVisible(chromedp.CSS("#key-name")),
			chromedp.SendKeys(chromedp.CSS("#key-name"), name),
			chromedp.Click(chromedp.CSS(`form[data-webauthn] button[type=submit]`)),
		)
	}

	// The first key is the only factor: it comes with recovery codes.
	addKey("Blue key")
	do(t, ctx, "recovery codes", chromedp.WaitVisible(chromedp.CSS(".webauthn-codes li code")))
	shot("01-first-key-codes")
	if n := strings.Count(text(t, ctx, "#key-recovery-codes"), "-"); n != 30 {
		t.Errorf("recovery codes shown: %d dashes, want 10 codes of 4 groups", n)
	}
	do(t, ctx, "saved", chromedp.Click(chromedp.CSS(".webauthn-codes a.button")), chromedp.WaitVisible(chromedp.CSS("#factors")))
	waitMail(t, s, "A security key was added")

	useKey := func(what string) {
		t.Helper()
		signOut(t, ctx)
		signIn(t, ctx, base, "alice")
		if l := location(t, ctx); !strings.HasPrefix(l, base+"/login/code") {
			t.Fatalf("after the password at %s", l)
		}
		do(t, ctx, "use "+what, chromedp.Click(chromedp.CSS(".key-login button")), chromedp.WaitVisible(chromedp.CSS("h1.page-title")))
		if l := location(t, ctx); l != base+"/settings/security" {
			t.Fatalf("after %s at %s", what, l)
		}
	}
	// The second key, on another authenticator, in a session that gave the first one (adding a
	// factor needs a second factor given in the last 10 minutes once there is one).
	useKey("the blue key")
	blueCreds := unplug(t, ctx, blue)
	if len(blueCreds) != 1 {
		t.Fatalf("blue key holds %d credentials", len(blueCreds))
	}
	green := browsertest.Authenticator(t, ctx)
	addKey("Green key")
	do(t, ctx, "second key added", chromedp.WaitVisible(chromedp.CSS(".flash")))
	keys := text(t, ctx, "#factors")
	if !strings.Contains(keys, "Blue key") || !strings.Contains(keys, "Green key") || !strings.Contains(keys, "Security key") {
		t.Fatalf("keys panel: %q", keys)
	}
	shot("02-security-two-keys")

	useKey("the green key")
	greenCreds := unplug(t, ctx, green)
	blue = browsertest.Authenticator(t, ctx, blueCreds...)
	useKey("the blue key")

	// Remove the blue key; the blue authenticator can no longer sign in.
	do(t, ctx, "remove the blue key", chromedp.Click(chromedp.CSS(`button[aria-label="Remove Blue key"]`)), chromedp.WaitVisible(chromedp.CSS(".flash")))
	if keys := text(t, ctx, "#factors"); strings.Contains(keys, "Blue key") || !strings.Contains(keys, "Green key") {
		t.Fatalf("after removal: %q", keys)
	}
	waitMail(t, s, "A security key was removed")
	signOut(t, ctx)
	signIn(t, ctx, base, "alice")
	do(t, ctx, "use the removed key", chromedp.Click(chromedp.CSS(".key-login button")))
	msg := waitText(t, ctx, ".key-login .webauthn-status")
	for i := 0; i < 100 && strings.Contains(msg, "Touch your security key"); i++ {
		time.Sleep(100 * time.Millisecond)
		msg = waitText(t, ctx, ".key-login .webauthn-status")
	}
	shot("03-removed-key-refused")
	if !strings.Contains(msg, "Try again") {
		t.Errorf("the removed key's attempt says %q", msg)
	}
	if l := location(t, ctx); !strings.HasPrefix(l, base+"/login/code") {
		t.Fatalf("the removed key signed in: at %s", l)
	}

	// Passkey: the green key holds a discoverable credential; no username is typed.
	unplug(t, ctx, blue)
	browsertest.Authenticator(t, ctx, greenCreds...)
	do(t, ctx, "passkey",
		chromedp.Navigate(base+"/login"),
		chromedp.WaitVisible(chromedp.CSS(".passkey button")),
	)
	shot("04-login-passkey")
	do(t, ctx, "sign in with a passkey", chromedp.Click(chromedp.CSS(".passkey button")), chromedp.WaitVisible(chromedp.CSS("h1.page-title")))
	if l := location(t, ctx); l != base+"/settings/security" {
		t.Fatalf("after the passkey at %s", l)
	}
}

// TestBrowserRollout is journey 4: under mfa: required, a user without a factor signs in, is
// sent to the activation page, enrols an authenticator app from the QR code, saves the
// recovery codes and lands on the page they asked for.
func TestBrowserRollout(t *testing.T) {
	_, base := localServer(t, "mfa: required\n", "alice")
	ctx := browsertest.New(t, 2*time.Minute)
	shot := func(name string) { browsertest.Screenshot(t, ctx, "rollout-"+name) }
	do(t, ctx, "open the account page",
		chromedp.Navigate(base+"/settings/account"),
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), "alice"),
		chromedp.SendKeys(chromedp.CSS("#password"), alicePassword),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(".choices")),
	)
	if l := location(t, ctx); l != base+"/login/enroll?next=%2Fsettings%2Faccount" {
		t.Fatalf("after the password at %s", l)
	}
	shot("01-choose")
	page := text(t, ctx, ".choices")
	for _, m := range []string{"Latch app", "Any authenticator app", "Security key"} {
		if !strings.Contains(page, m) {
			t.Errorf("the rollout page does not offer %q", m)
		}
	}
	do(t, ctx, "choose an authenticator app", chromedp.Click(chromedp.CSS(`form[action="/login/enroll/totp"] button`)), chromedp.WaitVisible(chromedp.CSS("#qr")))
	shot("02-qr")
	secret := scanQR(t, ctx)
	enterCode(t, ctx, "000000", "#code-error")
	enterCode(t, ctx, totp.Code(secret, totp.Step(time.Now())), "#recovery-codes")
	shot("03-codes")
	do(t, ctx, "continue", chromedp.Click(chromedp.CSS("a.button")), chromedp.WaitVisible(chromedp.CSS("h1")))
	if l := location(t, ctx); l != base+"/settings/account" {
		t.Fatalf("after the rollout at %s, want the page asked for", l)
	}
	if h := text(t, ctx, "h1"); !strings.Contains(h, "Account") {
		t.Errorf("landed on %q", h)
	}
}
