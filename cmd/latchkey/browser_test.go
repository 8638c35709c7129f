package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/latchkey/latchkey/internal/browsertest"
	"github.com/latchkey/latchkey/internal/mail/mailtest"
	"github.com/latchkey/latchkey/internal/totp"
	"github.com/latchkey/latchkey/internal/totp/qrdecode"
)

const alicePassword = "correct horse battery staple"

// testServer is the real `latchkey serve`, run in-process on a free port.
type testServer struct {
	url   string
	data  string
	mail  *mailtest.Server
	mu    sync.Mutex
	lines []string
	setup string
}

var (
	listenRe = regexp.MustCompile(`msg="latchkey listening" addr=(\S+)`)
	setupRe  = regexp.MustCompile(`(http://\S+/setup\?token=\S+)`)
)

// startServer creates the given users with `latchkey user create`, then starts `latchkey
// serve` and waits until it listens. At the end of the test it stops the server the way
// SIGTERM does (cancelling its context) and expects a clean shutdown.
func startServer(t *testing.T, users ...string) *testServer {
	t.Helper()
	return startServerArgs(t, nil, users...)
}

// startServerArgs is startServer with extra arguments for `latchkey serve`.
func startServerArgs(t *testing.T, args []string, users ...string) *testServer {
	t.Helper()
	s := &testServer{data: t.TempDir(), mail: mailtest.StartServer(t)}
	for _, u := range users {
		var out, errb strings.Builder
		err := run(context.Background(), []string{"user", "create", "--data", s.data, "--username", u, "--email", u + "@example.com", "--password-stdin"},
			env(nil), strings.NewReader(alicePassword+"\n"), &out, &errb)
		if err != nil {
			t.Fatalf("user create %s: %v\n%s", u, err, errb.String())
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, withConfig(t, append([]string{"serve", "--addr", "127.0.0.1:0", "--data", s.data, "--smtp", s.mail.URL()}, args...)...), env(nil), nil, io.Discard, pw)
		pw.Close()
	}()
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.lines = append(s.lines, line)
			if m := setupRe.FindStringSubmatch(line); m != nil {
				s.setup = m[1]
			}
			s.mu.Unlock()
			if m := listenRe.FindStringSubmatch(line); m != nil {
				listening <- m[1]
			}
		}
	}()
	select {
	case addr := <-listening:
		s.url = "http://" + addr
	case err := <-done:
		t.Fatalf("serve exited: %v\n%s", err, s.log())
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not start:\n%s", s.log())
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve did not shut down cleanly: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("serve did not shut down within 20 s")
		}
	})
	return s
}

func (s *testServer) log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.lines, "\n")
}

// do runs browser steps and fails the test with the step's name on error.
func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func attr(t *testing.T, ctx context.Context, sel, name string) string {
	t.Helper()
	a, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(sel), name))
	if err != nil {
		t.Fatalf("attribute %s of %s: %v", name, sel, err)
	}
	return a.Value
}

func location(t *testing.T, ctx context.Context) string {
	t.Helper()
	l, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func signIn(t *testing.T, ctx context.Context, base, user string) {
	t.Helper()
	do(t, ctx, "sign in",
		chromedp.Navigate(base+"/login"),
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), user),
		chromedp.SendKeys(chromedp.CSS("#password"), alicePassword),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)),
		chromedp.WaitNotPresent(chromedp.CSS(`form[action="/login"]`)),
		chromedp.WaitVisible(chromedp.CSS("h1")),
	)
}

func signOut(t *testing.T, ctx context.Context) {
	t.Helper()
	do(t, ctx, "sign out",
		chromedp.Click(chromedp.CSS(`form[action="/logout"] button`)),
		chromedp.WaitVisible(chromedp.CSS("#username")),
	)
}

func enterCode(t *testing.T, ctx context.Context, code, waitFor string) {
	t.Helper()
	do(t, ctx, "enter code "+code,
		chromedp.WaitVisible(chromedp.CSS("#code")),
		chromedp.Clear(chromedp.CSS("#code")),
		chromedp.SendKeys(chromedp.CSS("#code"), code),
		chromedp.Submit(chromedp.CSS("#code")),
		chromedp.WaitVisible(chromedp.CSS(waitFor)),
	)
}

// scanQR reads the QR code the page shows and returns the secret it holds: the way a phone
// would, not through the API.
func scanQR(t *testing.T, ctx context.Context) []byte {
	t.Helper()
	src := attr(t, ctx, "#qr", "src")
	png, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(src, "data:image/png;base64,"))
	if err != nil {
		t.Fatalf("QR image is not a base64 PNG data URL: %v", err)
	}
	uri, err := qrdecode.Decode(png)
	if err != nil {
		t.Fatal(err)
	}
	key, err := totp.ParseURI(uri)
	if err != nil {
		t.Fatalf("QR code holds %q: %v", uri, err)
	}
	if key.Issuer != "Latchkey" || key.Account != "alice" || key.Digits != 6 || key.Period != 30 || key.Algorithm != totp.SHA1 {
		t.Errorf("QR key = %+v", key)
	}
	// The setup key shown as text is the same secret, in groups of four.
	if shown := strings.ReplaceAll(text(t, ctx, "#setup-key"), " ", ""); shown != totp.Encode(key.Secret) {
		t.Errorf("setup key shown %q, QR holds %q", shown, totp.Encode(key.Secret))
	}
	return key.Secret
}

func waitMail(t *testing.T, s *testServer, subject string) mailtest.Received {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := s.mail.WaitFor(ctx, "alice@example.com", subject)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestBrowserJourneys clicks through journeys 1–3 of SPEC.md in a real Chromium: enable TOTP
// from the QR code, sign in with a code, replay refused, recovery codes single use, disable
// with the password; then the same with the plain account-settings form.
func TestBrowserJourneys(t *testing.T) {
	s := startServer(t, "alice")
	ctx := browsertest.New(t, 3*time.Minute)
	shot := func(name string) { browsertest.Screenshot(t, ctx, "journeys-"+name) }

	// Sign in: the form uses the standard autocomplete tokens.
	do(t, ctx, "open login", chromedp.Navigate(s.url+"/login"), chromedp.WaitVisible(chromedp.CSS("#username")))
	shot("01-login")
	if a := attr(t, ctx, "#username", "autocomplete"); a != "username" {
		t.Errorf("username autocomplete = %q", a)
	}
	if a := attr(t, ctx, "#password", "autocomplete"); a != "current-password" {
		t.Errorf("password autocomplete = %q", a)
	}
	// A wrong password shows one message for the whole form.
	do(t, ctx, "wrong password",
		chromedp.SendKeys(chromedp.CSS("#username"), "alice"),
		chromedp.SendKeys(chromedp.CSS("#password"), "not my password"),
		chromedp.Submit(chromedp.CSS("#password")),
		chromedp.WaitVisible(chromedp.CSS("#form-error")),
	)
	if got := text(t, ctx, "#form-error"); got != "The username or password is incorrect." {
		t.Errorf("error = %q", got)
	}
	shot("02-login-error")
	signIn(t, ctx, s.url, "alice")
	if l := location(t, ctx); l != s.url+"/settings/security" {
		t.Fatalf("after sign-in at %s", l)
	}
	shot("03-security-off")

	// Journey 1: enable.
	do(t, ctx, "enable", chromedp.Click(chromedp.CSS(`form[action="/settings/security/totp"] button`)), chromedp.WaitVisible(chromedp.CSS("#qr")))
	shot("04-enrol")
	secret := scanQR(t, ctx)
	if a := attr(t, ctx, "#code", "autocomplete"); a != "one-time-code" {
		t.Errorf("code autocomplete = %q", a)
	}
	if a := attr(t, ctx, "#code", "inputmode"); a != "numeric" {
		t.Errorf("code inputmode = %q", a)
	}
	T := totp.Step(time.Now())
	enterCode(t, ctx, totp.Code(secret, T+5), "#code-error")
	shot("05-enrol-wrong-code")
	if l := location(t, ctx); !strings.HasSuffix(l, "/settings/security/totp/confirm") {
		t.Errorf("after a wrong code at %s", l)
	}
	enterCode(t, ctx, totp.Code(secret, T), "#recovery-codes")
	codes, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('#recovery-codes code')).map(c => c.textContent)`))
	if err != nil || len(codes) != 10 {
		t.Fatalf("recovery codes = %v, %v", codes, err)
	}
	shot("06-recovery-codes")
	do(t, ctx, "done", chromedp.Click(chromedp.CSS(`a[href^="/settings/security?done"]`)), chromedp.WaitVisible(chromedp.CSS(".badge.on")))
	shot("07-security-on")
	if m := waitMail(t, s, "Two-factor authentication was enabled"); !strings.Contains(m.Text, "turned on") {
		t.Errorf("mail text %q", m.Text)
	}

	// Journey 2: sign in with a code; the same code is refused the second time.
	signOut(t, ctx)
	signIn(t, ctx, s.url, "alice")
	if l := location(t, ctx); !strings.HasPrefix(l, s.url+"/login/code") {
		t.Fatalf("after the password with 2FA on, at %s", l)
	}
	shot("08-code-step")
	next := totp.Code(secret, T+1)
	enterCode(t, ctx, next, "h1.page-title")
	signOut(t, ctx)
	signIn(t, ctx, s.url, "alice")
	enterCode(t, ctx, next, "#code-error")
	if got := text(t, ctx, "#code-error"); !strings.Contains(got, "didn't work") {
		t.Errorf("replayed code error = %q", got)
	}
	shot("09-code-replayed")

	// A recovery code works once, through "Use another method".
	do(t, ctx, "use another method",
		chromedp.Click(chromedp.CSS("details.other summary")),
		chromedp.Click(chromedp.CSS(`a[href^="/login/recovery"]`)),
		chromedp.WaitVisible(chromedp.CSS("#code")),
	)
	shot("10-recovery-step")
	enterCode(t, ctx, codes[0], "h1.page-title")
	if m := waitMail(t, s, "A recovery code was used"); !strings.Contains(m.Text, "9 recovery codes left") {
		t.Errorf("recovery mail %q", m.Text)
	}
	signOut(t, ctx)
	signIn(t, ctx, s.url, "alice")
	do(t, ctx, "recovery page", chromedp.Navigate(s.url+"/login/recovery"))
	enterCode(t, ctx, codes[0], "#code-error")
	if got := text(t, ctx, "#code-error"); !strings.Contains(got, "already been used") {
		t.Errorf("second use of a recovery code = %q", got)
	}
	shot("11-recovery-used-twice")
	enterCode(t, ctx, codes[1], "h1.page-title")

	// The session cookie is HttpOnly and SameSite=Lax.
	cookies, err := chromedp.Run(ctx, chromedp.Action[network.GetCookiesResult](func(ctx context.Context, tg *chromedp.Target) (network.GetCookiesResult, error) {
		return chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{})
	}))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range cookies.Cookies {
		if c.Name == "latchkey_session" {
			found = true
			if !c.HTTPOnly || c.SameSite != network.CookieSameSiteLax {
				t.Errorf("session cookie HttpOnly=%v SameSite=%q", c.HTTPOnly, c.SameSite)
			}
		}
	}
	if !found {
		t.Error("no latchkey_session cookie")
	}

	// Journey 3: disable with a confirmation and the password.
	do(t, ctx, "disable page",
		chromedp.Click(chromedp.CSS(`a[href="/settings/security/totp/disable"]`)),
		chromedp.WaitVisible(chromedp.CSS("#password")),
	)
	shot("12-disable-confirm")
	do(t, ctx, "disable without ticking",
		chromedp.SendKeys(chromedp.CSS("#password"), alicePassword),
		chromedp.Submit(chromedp.CSS("#password")),
		chromedp.WaitVisible(chromedp.CSS("#confirm-error")),
	)
	shot("13-disable-unconfirmed")
	do(t, ctx, "disable",
		chromedp.Click(chromedp.CSS("#confirm")),
		chromedp.SendKeys(chromedp.CSS("#password"), alicePassword),
		chromedp.Submit(chromedp.CSS("#password")),
		chromedp.WaitVisible(chromedp.CSS(".badge.off")),
	)
	shot("14-security-disabled")
	waitMail(t, s, "Two-factor authentication was disabled")
	signOut(t, ctx)
	signIn(t, ctx, s.url, "alice")
	if l := location(t, ctx); l != s.url+"/settings/security" {
		t.Errorf("with 2FA off, sign-in lands at %s", l)
	}

	// The plain account-settings form: a checkbox, Save, a confirmation.
	do(t, ctx, "account page", chromedp.Navigate(s.url+"/settings/account"), chromedp.WaitVisible(chromedp.CSS("#totp")))
	shot("15-account-off")
	do(t, ctx, "tick and save",
		chromedp.Click(chromedp.CSS("#totp")),
		chromedp.Click(chromedp.CSS(`form[action="/settings/account"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("#qr")),
	)
	secret = scanQR(t, ctx)
	enrolled := totp.Step(time.Now())
	enterCode(t, ctx, totp.Code(secret, enrolled), "#recovery-codes")
	do(t, ctx, "back to account", chromedp.Click(chromedp.CSS(`a[href^="/settings/account"]`)), chromedp.WaitVisible(chromedp.CSS("#totp")))
	shot("16-account-on")
	if on, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById('totp').checked`)); !on {
		t.Error("the checkbox is not ticked after enabling")
	}
	// This session signed in with the password alone: turning the app off asks for the
	// password and then a code (full re-authentication), and comes back to the confirmation.
	do(t, ctx, "untick and save",
		chromedp.Click(chromedp.CSS("#totp")),
		chromedp.Click(chromedp.CSS(`form[action="/settings/account"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("#then-second-factor")),
	)
	shot("16b-reauth-password")
	do(t, ctx, "confirm the password",
		chromedp.SendKeys(chromedp.CSS("#password"), alicePassword),
		chromedp.Submit(chromedp.CSS("#password")),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/login/code"] #code`)),
	)
	enterCode(t, ctx, totp.Code(secret, enrolled+1), "#confirm") // the next step: the enrolment's is used
	do(t, ctx, "confirm turning off",
		chromedp.Click(chromedp.CSS("#confirm")),
		chromedp.SendKeys(chromedp.CSS("#password"), alicePassword),
		chromedp.Submit(chromedp.CSS("#password")),
		chromedp.WaitVisible(chromedp.CSS("#totp")),
	)
	if on, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById('totp').checked`)); on {
		t.Error("the checkbox is still ticked after disabling")
	}

	// Change the password: the current one is required, a weak new one is refused next to
	// the field, and the user gets an email.
	do(t, ctx, "password page", chromedp.Navigate(s.url+"/settings/password"), chromedp.WaitVisible(chromedp.CSS("#new_password")))
	if a := attr(t, ctx, "#new_password", "autocomplete"); a != "new-password" {
		t.Errorf("new password autocomplete = %q", a)
	}
	do(t, ctx, "weak new password",
		chromedp.SendKeys(chromedp.CSS("#current_password"), alicePassword),
		chromedp.SendKeys(chromedp.CSS("#new_password"), "passwordpassword"),
		chromedp.Submit(chromedp.CSS("#new_password")),
		chromedp.WaitVisible(chromedp.CSS("#new-error")),
	)
	if got := text(t, ctx, "#new-error"); !strings.Contains(got, "too common") {
		t.Errorf("weak password error = %q", got)
	}
	shot("17-password-weak")
	do(t, ctx, "change password",
		chromedp.SendKeys(chromedp.CSS("#current_password"), alicePassword),
		chromedp.SendKeys(chromedp.CSS("#new_password"), "a brand new long passphrase"),
		chromedp.Submit(chromedp.CSS("#new_password")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	waitMail(t, s, "Your password was changed")
}

// TestBrowserSetupCrossSiteAndNoScript: the first admin is created from the one-time setup
// link; a form on another site cannot make the browser change state here; the sign-in works
// with JavaScript off.
func TestBrowserSetupCrossSiteAndNoScript(t *testing.T) {
	s := startServer(t)
	if s.setup == "" {
		t.Fatalf("no setup link printed:\n%s", s.log())
	}
	if strings.Contains(s.log(), "level=") && strings.Contains(s.log(), "token=") && !strings.Contains(s.log(), "Open this one-time link") {
		t.Error("the setup token reached a log line")
	}
	ctx := browsertest.New(t, 2*time.Minute)
	do(t, ctx, "setup page", chromedp.Navigate(s.setup), chromedp.WaitVisible(chromedp.CSS("#username")))
	browsertest.Screenshot(t, ctx, "setup-01-form")
	do(t, ctx, "create admin",
		chromedp.SendKeys(chromedp.CSS("#username"), "root"),
		chromedp.SendKeys(chromedp.CSS("#email"), "root@example.com"),
		chromedp.SendKeys(chromedp.CSS("#password"), "short"),
		chromedp.Submit(chromedp.CSS("#password")),
		chromedp.WaitVisible(chromedp.CSS("#password-error")),
	)
	browsertest.Screenshot(t, ctx, "setup-02-weak-password")
	do(t, ctx, "create admin",
		chromedp.SendKeys(chromedp.CSS("#password"), alicePassword),
		chromedp.Submit(chromedp.CSS("#password")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	if got := text(t, ctx, ".flash"); got != "Your administrator account is ready." {
		t.Errorf("flash = %q", got)
	}
	// The link works once.
	do(t, ctx, "setup again", chromedp.Navigate(s.setup), chromedp.WaitVisible(chromedp.CSS("#form-error")))
	if got := text(t, ctx, "#form-error"); !strings.Contains(got, "not valid any more") {
		t.Errorf("second visit of the setup link: %q", got)
	}

	// A page on another origin auto-submits a form to /logout.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<form id="f" method="post" action="%s/logout"></form><script>document.getElementById("f").submit()</script>`, s.url)
	}))
	defer evil.Close()
	evilURL := strings.Replace(evil.URL, "127.0.0.1", "localhost", 1)
	do(t, ctx, "cross-site form", chromedp.Navigate(evilURL), chromedp.WaitVisible(chromedp.CSS("body")))
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.location.pathname === "/logout" && document.body.innerText.includes("another site")`)); err != nil {
		t.Fatalf("the cross-site POST was not refused: %v", err)
	}
	browsertest.Screenshot(t, ctx, "setup-03-cross-site-refused")
	do(t, ctx, "still signed in", chromedp.Navigate(s.url+"/settings/security"), chromedp.WaitVisible(chromedp.CSS("h1")))
	if got := text(t, ctx, "h1"); got != "Security" {
		t.Errorf("after the cross-site form, /settings/security shows %q: the session was ended", got)
	}

	// With JavaScript off, signing out and in still works.
	do(t, ctx, "disable scripts", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
		return err
	}))
	signOut(t, ctx)
	do(t, ctx, "sign in without JavaScript",
		chromedp.SendKeys(chromedp.CSS("#username"), "root"),
		chromedp.SendKeys(chromedp.CSS("#password"), alicePassword),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("h1.page-title")),
	)
	browsertest.Screenshot(t, ctx, "setup-04-signed-in-no-js")

	// On a phone-sized screen nothing overflows sideways.
	for _, path := range []string{"/settings/security", "/settings/account", "/settings/password"} {
		do(t, ctx, "phone "+path, chromedp.EmulateViewport(390, 844), chromedp.Navigate(s.url+path), chromedp.WaitVisible(chromedp.CSS("h1")))
		browsertest.Screenshot(t, ctx, "phone"+strings.ReplaceAll(path, "/", "-"))
		fits, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth <= window.innerWidth`))
		if err != nil || !fits {
			t.Errorf("%s overflows a 390 px wide screen (%v)", path, err)
		}
	}
}
