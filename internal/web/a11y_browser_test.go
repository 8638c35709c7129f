package web_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/latchkey/latchkey/internal/audit"
	"github.com/latchkey/latchkey/internal/browsertest"
	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/password"
	"github.com/latchkey/latchkey/internal/push"
	"github.com/latchkey/latchkey/internal/sqlstore"
	"github.com/latchkey/latchkey/internal/support"
	"github.com/latchkey/latchkey/internal/totp"
	"github.com/latchkey/latchkey/internal/web"
)

// a11yFixture is a server at http://localhost:PORT (a host name, so that security keys are
// on) with the support desk, and the user alice without a second factor.
type a11yFixture struct {
	*fixture
	base string
}

func newA11yFixture(t *testing.T, mfa string) *a11yFixture {
	t.Helper()
	ctx := context.Background()
	c := &clock{t: time.Now().UTC()}
	db, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "web.db"), sqlstore.Options{SecretsKey: make([]byte, 32), Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	srv := httptest.NewUnstartedServer(nil)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	base := "http://localhost:" + port
	pu, _ := url.Parse(base)
	mails := &recMailer{}
	rec := audit.New(db, nil, c.Now)
	pusher := push.New(push.Options{Store: db, Mailer: mails, Audit: rec, Hub: push.NewHub(), Now: c.Now, Key: bytes.Repeat([]byte{9}, 32), PublicURL: base})
	svc := login.New(login.Options{Store: db, Hasher: password.New(password.Options{Params: password.Params{Memory: 1024, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}}),
		Mailer: mails, Audit: rec, Now: c.Now, SessionKey: bytes.Repeat([]byte{7}, 32), Pusher: pusher, PublicURL: base, MFA: mfa})
	desk := support.New(support.Options{Store: db, Accounts: svc, Mailer: mails, Audit: rec, Now: c.Now, Key: bytes.Repeat([]byte{5}, 32), PublicURL: base})
	h := web.New(web.Options{Login: svc, Push: pusher, DB: db, PublicURL: pu, Now: c.Now, Support: desk, Logger: slog.New(slog.DiscardHandler)})
	srv.Config.Handler = h
	srv.Start()
	t.Cleanup(srv.Close)
	t.Cleanup(h.Shutdown)
	if _, err := svc.CreateUser(ctx, login.Client{}, login.NewUser{Username: "alice", Email: "alice@example.com", Password: pw}); err != nil {
		t.Fatal(err)
	}
	return &a11yFixture{fixture: &fixture{srv: srv, db: db, svc: svc, push: pusher, mails: mails, clock: c}, base: base}
}

// js evaluates expr in the page.
func js[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// focused names the focused element: its id, or its tag name.
func focused(t *testing.T, ctx context.Context) string {
	t.Helper()
	return js[string](t, ctx, `(e => e.id || e.tagName.toLowerCase())(document.activeElement)`)
}

// waitJS polls the boolean expr until it holds.
func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	for range 100 {
		if ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr)); err == nil && ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("waited in vain for %s (%s)", what, expr)
}

// summary is the error summary at the top of a page.
type summary struct {
	Role  string   `json:"role"`
	Items []string `json:"items"`
	Links []string `json:"links"`
}

const summaryJS = `(() => {
  const s = document.getElementById('error-summary');
  if (!s) return {role: '', items: [], links: []};
  return {role: s.getAttribute('role'), items: [...s.querySelectorAll('li')].map(l => l.textContent.trim()), links: [...s.querySelectorAll('li a')].map(a => a.getAttribute('href'))};
})()`

// checkErrorPage checks what a page that comes back with field errors must do: "Error: " in
// the title, an alert that lists the problems and links to their fields, in order, and the
// focus on the first of them.
func checkErrorPage(t *testing.T, ctx context.Context, title string, fields ...string) {
	t.Helper()
	if got := js[string](t, ctx, `document.title`); got != "Error: "+title+" · Latchkey" {
		t.Errorf("title = %q, want %q", got, "Error: "+title+" · Latchkey")
	}
	s := js[summary](t, ctx, summaryJS)
	var want []string
	for _, f := range fields {
		want = append(want, "#"+f)
	}
	if s.Role != "alert" || strings.Join(s.Links, " ") != strings.Join(want, " ") {
		t.Errorf("error summary: role %q, links %q, want role alert, links %q", s.Role, s.Links, want)
	}
	for i, f := range fields {
		if i < len(s.Items) {
			if inline := js[string](t, ctx, `(e => e ? e.textContent : '(none)')(document.getElementById('`+f+`-error'))`); inline != s.Items[i] {
				t.Errorf("summary item %d %q, but %s says %q", i, s.Items[i], f, inline)
			}
		}
	}
	// Chromium moves the focus to an autofocus field at its next rendering update, which may
	// come after the error summary is visible: the focus is given time to arrive, and a page
	// without autofocus on the field still fails here.
	got := focused(t, ctx)
	for deadline := time.Now().Add(3 * time.Second); got != fields[0] && time.Now().Before(deadline); got = focused(t, ctx) {
		time.Sleep(20 * time.Millisecond)
	}
	if got != fields[0] {
		t.Errorf("focus on %q, want %q", got, fields[0])
	}
}

// TestBrowserFormErrorsAnnounced: a wrong code when setting up the authenticator app, at the
// second step and as a recovery code comes back announced, with the focus on the field.
func TestBrowserFormErrorsAnnounced(t *testing.T) {
	f := newA11yFixture(t, "")
	ctx := browsertest.New(t, 2*time.Minute)
	shot := func(name string) { browsertest.Screenshot(t, ctx, "a11y-"+name) }

	passwordStep(t, ctx, f.base)
	cdp(t, ctx, "signed in", chromedp.WaitVisible(chromedp.CSS("#factors")))
	if got := js[string](t, ctx, `document.title`); got != "Security · Latchkey" {
		t.Errorf("a page without errors is titled %q", got)
	}
	cdp(t, ctx, "set up the authenticator app",
		chromedp.Click(chromedp.CSS(`form[action="/settings/security/totp"] button`)),
		chromedp.WaitVisible(chromedp.CSS("#code")),
	)
	secret := js[string](t, ctx, `document.querySelector('[data-copy]').getAttribute('data-copy')`)
	key, err := totp.Decode(secret)
	if err != nil {
		t.Fatal(err)
	}
	wrong := func(code string) string { // a valid-looking code that is not the current one
		if code == "000000" {
			return "111111"
		}
		return "000000"
	}
	// enter types code and submits it, then waits for the element sel.
	enter := func(what, code, sel string) {
		t.Helper()
		cdp(t, ctx, what,
			chromedp.SendKeys(chromedp.CSS("#code"), code),
			chromedp.Submit(chromedp.CSS("#code")),
			chromedp.WaitVisible(chromedp.CSS(sel)),
		)
	}
	enter("a wrong code", wrong(totp.Code(key, totp.Step(f.clock.Now()))), "#error-summary")
	checkErrorPage(t, ctx, "Set up two-factor authentication", "code")
	shot("01-totp-wrong-code")
	enter("the right code", totp.Code(key, totp.Step(f.clock.Now())), "#recovery-codes")

	// The second step.
	f.clock.Add(time.Minute)
	cdp(t, ctx, "sign out and in",
		chromedp.Click(chromedp.CSS(`header form[action="/logout"] button`)),
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), "alice"),
		chromedp.SendKeys(chromedp.CSS("#password"), pw),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("#code")),
	)
	if n := cdpCount(t, ctx, `#need-help[href="/support/new"]`); n != 1 {
		t.Errorf("the second step has %d Need help? links, want 1", n)
	}
	enter("a wrong code at the second step", wrong(totp.Code(key, totp.Step(f.clock.Now()))), "#error-summary")
	checkErrorPage(t, ctx, "Two-factor authentication", "code")
	shot("02-second-step-wrong-code")

	cdp(t, ctx, "a wrong recovery code",
		chromedp.Navigate(f.base+"/login/recovery"),
		chromedp.WaitVisible(chromedp.CSS("#code")),
		chromedp.SendKeys(chromedp.CSS("#code"), "aaaa-bbbb-cccc-dddd"),
		chromedp.Submit(chromedp.CSS("#code")),
		chromedp.WaitVisible(chromedp.CSS("#error-summary")),
	)
	checkErrorPage(t, ctx, "Use a recovery code", "code")
	shot("03-recovery-wrong-code")
}

// TestBrowserSupportFormAllErrors: the support form reports every problem at once, in the
// order of the form, and focuses the first.
func TestBrowserSupportFormAllErrors(t *testing.T) {
	f := newA11yFixture(t, "")
	ctx := browsertest.New(t, time.Minute)
	cdp(t, ctx, "send an empty form",
		chromedp.Navigate(f.base+"/support/new"),
		chromedp.WaitVisible(chromedp.CSS("#email")),
		chromedp.Click(chromedp.CSS(`form[action="/support/new"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("#error-summary")),
	)
	checkErrorPage(t, ctx, "Create a new support ticket", "email", "type", "message")
	if got := cdpText(t, ctx, "#error-summary .error-summary-title"); got != "There are 3 problems" {
		t.Errorf("summary title %q", got)
	}
	browsertest.Screenshot(t, ctx, "a11y-04-support-errors")
	cdp(t, ctx, "only an email address and a bad username",
		chromedp.SendKeys(chromedp.CSS("#email"), "alice@example.com"),
		chromedp.SendKeys(chromedp.CSS("#username"), "a b"),
		chromedp.Click(chromedp.CSS(`form[action="/support/new"] button[type=submit]`)),
		chromedp.WaitNotPresent(chromedp.CSS("#email-error")),
	)
	checkErrorPage(t, ctx, "Create a new support ticket", "username", "type", "message")
	if v := js[string](t, ctx, `document.getElementById('email').value`); v != "alice@example.com" {
		t.Errorf("the email address was not kept: %q", v)
	}

	// An unknown page.
	cdp(t, ctx, "an unknown page", chromedp.Navigate(f.base+"/admin/nonexistent"), chromedp.WaitVisible(chromedp.CSS("h1")))
	if got := js[string](t, ctx, `document.title`); got != "Page not found · Latchkey" {
		t.Errorf("unknown page titled %q", got)
	}
	browsertest.Screenshot(t, ctx, "a11y-09-not-found")
	cdp(t, ctx, "back home", chromedp.Click(chromedp.CSS(`main a[href="/"]`)), chromedp.WaitVisible(chromedp.CSS("#username")))
}

// statusJS reads a .webauthn-status: text, role, live setting, classes and colour.
const statusJS = `(sel => {
  const s = document.querySelector(sel);
  return {text: s.textContent, role: s.getAttribute('role'), live: s.getAttribute('aria-live'), cls: s.className, color: getComputedStyle(s).color, visible: s.offsetParent !== null};
})`

type status struct {
	Text    string `json:"text"`
	Role    string `json:"role"`
	Live    string `json:"live"`
	Class   string `json:"cls"`
	Color   string `json:"color"`
	Visible bool   `json:"visible"`
}

// TestBrowserSecurityKeyAnnounced: adding the first key says so, moves the focus to the
// recovery codes (with a copy button) and takes away what no longer applies; a key that
// fails says so as an error; the Security page's rename fields say which factor they rename.
func TestBrowserSecurityKeyAnnounced(t *testing.T) {
	f := newA11yFixture(t, "")
	ctx := browsertest.New(t, 2*time.Minute)
	shot := func(name string) { browsertest.Screenshot(t, ctx, "a11y-"+name) }
	passwordStep(t, ctx, f.base)
	cdp(t, ctx, "signed in", chromedp.WaitVisible(chromedp.CSS("#factors")))
	browsertest.Authenticator(t, ctx)
	addKey := func(name string) {
		t.Helper()
		cdp(t, ctx, "add key "+name,
			chromedp.Navigate(f.base+"/settings/security/keys/add"),
			chromedp.WaitVisible(chromedp.CSS("#key-name")),
			chromedp.SendKeys(chromedp.CSS("#key-name"), name),
			chromedp.Click(chromedp.CSS(`form[data-webauthn] button[type=submit]`)),
		)
	}
	addKey("Blue key")
	cdp(t, ctx, "recovery codes", chromedp.WaitVisible(chromedp.CSS(".webauthn-codes li code")))
	st := js[status](t, ctx, statusJS+`('.key-form .webauthn-status')`)
	if want := `Security key "Blue key" added. Save your recovery codes: they are shown only now.`; st.Text != want || st.Role != "status" || !st.Visible {
		t.Errorf("after adding the key the status is %+v, want %q, visible, role status", st, want)
	}
	if h, title := js[string](t, ctx, `document.querySelector('main h1').textContent`), js[string](t, ctx, `document.title`); h != "Security key added" || title != "Security key added · Latchkey" {
		t.Errorf("after adding the key the heading is %q and the title %q, want %q", h, title, "Security key added")
	}
	if got := focused(t, ctx); got != "key-codes-title" {
		t.Errorf("focus on %q, want the codes' heading", got)
	}
	if got := js[int](t, ctx, `document.getElementById('key-codes-title').tabIndex`); got != -1 {
		t.Errorf("the codes' heading has tabindex %d, want -1", got)
	}
	for _, sel := range []string{`main a[href="/settings/security"]`, `main [data-key-pending]`, "#key-name", `.key-form button[type=submit]`} {
		if n := js[int](t, ctx, `[...document.querySelectorAll('`+sel+`')].filter(e => e.offsetParent !== null).length`); n != 0 {
			t.Errorf("%d of %s still shown after the key was added", n, sel)
		}
	}
	copied := js[string](t, ctx, `(() => {
  const b = document.querySelector('.webauthn-codes button[data-copy-list]');
  if (!b || b.offsetParent === null) return 'no copy button';
  navigator.clipboard.writeText = t => { window.copiedText = t; return Promise.resolve(); };
  b.click();
  return window.copiedText || '';
})()`)
	codes := js[string](t, ctx, `[...document.querySelectorAll('#key-recovery-codes code')].map(c => c.textContent).join('\n')`)
	if copied != codes || strings.Count(codes, "\n") != 9 {
		t.Errorf("Copy codes copied %q, want the 10 codes %q", copied, codes)
	}
	shot("05-key-added")

	// Another key needs the first one given lately: the password, then the key, and back.
	cdp(t, ctx, "re-authenticate with the key",
		chromedp.Navigate(f.base+"/settings/security/keys/add"),
		chromedp.WaitVisible(chromedp.CSS("#then-second-factor")),
		chromedp.SendKeys(chromedp.CSS("#password"), pw),
		chromedp.Submit(chromedp.CSS("#password")),
		chromedp.WaitVisible(chromedp.CSS(".key-login button")),
		chromedp.Click(chromedp.CSS(".key-login button")),
		chromedp.WaitVisible(chromedp.CSS("#key-name")),
	)
	// The same key again: the browser refuses, and the page says so as an error.
	addKey("Blue key again")
	waitJS(t, ctx, "the refusal", `document.querySelector('.key-form .webauthn-status').textContent.includes('registered already')`)
	st = js[status](t, ctx, statusJS+`('.key-form .webauthn-status')`)
	if st.Role != "alert" || st.Live != "assertive" || !strings.Contains(st.Class, "error") || st.Color != "rgb(180, 35, 24)" {
		t.Errorf("a refused key's status is %+v, want role alert, assertive, class error, red", st)
	}
	shot("06-key-refused")
	cdp(t, ctx, "no name", chromedp.Evaluate[chromedp.Void](`document.getElementById('key-name').value = ''`),
		chromedp.Click(chromedp.CSS(`form[data-webauthn] button[type=submit]`)))
	if st := js[status](t, ctx, statusJS+`('.key-form .webauthn-status')`); st.Text != "Give the key a name first." || st.Role != "alert" {
		t.Errorf("without a name the status is %+v", st)
	}

	// The Security page: each rename field is described by its factor's name and type.
	cdp(t, ctx, "security page", chromedp.Navigate(f.base+"/settings/security"), chromedp.WaitVisible(chromedp.CSS("#factors")))
	type field struct {
		Label       string `json:"label"`
		Description string `json:"description"`
	}
	fields := js[[]field](t, ctx, `[...document.querySelectorAll('.rename input[name=name]')].map(i => ({
  label: i.labels[0].textContent,
  description: (i.getAttribute('aria-describedby') || '').split(' ').filter(Boolean).map(id => document.getElementById(id) ? document.getElementById(id).textContent : '<missing ' + id + '>').join(' ')}))`)
	if len(fields) != 1 || fields[0].Label != "Name" || fields[0].Description != "Blue key Security key" {
		t.Errorf("rename fields %+v, want one labelled Name described by %q", fields, "Blue key Security key")
	}
}

// TestBrowserKeyFailsAtSecondStep: a security key that fails at the second step says so in
// red and at once, and the page offers help.
func TestBrowserKeyFailsAtSecondStep(t *testing.T) {
	f := newA11yFixture(t, "")
	ctx := browsertest.New(t, 2*time.Minute)
	signIn := func() { t.Helper(); passwordStep(t, ctx, f.base) }
	signIn()
	cdp(t, ctx, "signed in", chromedp.WaitVisible(chromedp.CSS("#factors")))
	id := browsertest.Authenticator(t, ctx)
	cdp(t, ctx, "add a key",
		chromedp.Navigate(f.base+"/settings/security/keys/add"),
		chromedp.WaitVisible(chromedp.CSS("#key-name")),
		chromedp.SendKeys(chromedp.CSS("#key-name"), "Blue key"),
		chromedp.Click(chromedp.CSS(`form[data-webauthn] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(".webauthn-codes li code")),
		chromedp.Click(chromedp.CSS(`header form[action="/logout"] button`)),
		chromedp.WaitVisible(chromedp.CSS("#username")),
	)
	// The key is wiped: the authenticator no longer holds the credential.
	cdp(t, ctx, "wipe the key", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, webauthn.ClearCredentials, webauthn.ClearCredentialsParams{AuthenticatorID: id})
		return err
	}))
	signIn()
	cdp(t, ctx, "use the key", chromedp.WaitVisible(chromedp.CSS(".key-login button")), chromedp.Click(chromedp.CSS(".key-login button")))
	waitJS(t, ctx, "the failure", `(t => t !== '' && !t.includes('Touch your security key') && !t.includes('Checking'))(document.querySelector('.key-login .webauthn-status').textContent)`)
	st := js[status](t, ctx, statusJS+`('.key-login .webauthn-status')`)
	if st.Role != "alert" || st.Live != "assertive" || !strings.Contains(st.Class, "error") || st.Color != "rgb(180, 35, 24)" || !strings.Contains(st.Text, "Try again") {
		t.Errorf("the failed key's status is %+v, want role alert, assertive, class error, red, saying Try again", st)
	}
	if n := cdpCount(t, ctx, `#need-help[href="/support/new"]`); n != 1 {
		t.Errorf("the second step has %d Need help? links, want 1", n)
	}
	browsertest.Screenshot(t, ctx, "a11y-07-second-step-key-failed")
}

// TestBrowserCancelEnrolment: the setup page under mfa: required offers help and a way out.
func TestBrowserCancelEnrolment(t *testing.T) {
	f := newA11yFixture(t, login.MFARequired)
	ctx := browsertest.New(t, time.Minute)
	passwordStep(t, ctx, f.base)
	cdp(t, ctx, "setup page", chromedp.WaitVisible(chromedp.CSS("#cancel-sign-in")))
	if n := cdpCount(t, ctx, `#need-help[href="/support/new"]`); n != 1 {
		t.Errorf("the setup page has %d Need help? links, want 1", n)
	}
	browsertest.Screenshot(t, ctx, "a11y-08-enroll")
	cdp(t, ctx, "cancel sign-in", chromedp.Click(chromedp.CSS("#cancel-sign-in")), chromedp.WaitVisible(chromedp.CSS("#username")))
	if got := cdpText(t, ctx, ".flash"); got != "You are signed out." {
		t.Errorf("after Cancel sign-in the page says %q", got)
	}
	// The sign-in was ended: the setup page asks to sign in again.
	cdp(t, ctx, "setup page again", chromedp.Navigate(f.base+"/login/enroll"), chromedp.WaitVisible(chromedp.CSS("#username")))
	if n := cdpCount(t, ctx, "#cancel-sign-in"); n != 0 {
		t.Errorf("the setup page is still open after Cancel sign-in")
	}
}

// TestNotFoundPage: an unknown page gets a page in the layout; the API keeps its JSON and a
// page path asked with another method keeps its 405.
func TestNotFoundPage(t *testing.T) {
	f := newFixture(t, "")
	c := f.client(t)
	r := c.do("GET", "/admin/nonexistent", "", "")
	for _, want := range []string{`<html lang="en">`, "<title>Page not found · Latchkey</title>", "<h1>Page not found</h1>", `href="/"`, `href="/static/style.css"`} {
		if r.code != 404 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") || !strings.Contains(r.raw, want) {
			t.Errorf("GET /admin/nonexistent = %d %s, lacks %q", r.code, r.header.Get("Content-Type"), want)
		}
	}
	if r := c.do("GET", "/api/v1/nonexistent", "", ""); r.code != 404 || r.errCode() != "not_found" {
		t.Errorf("GET /api/v1/nonexistent = %d %s, want 404 not_found in JSON", r.code, r.raw)
	}
	if r := c.do("GET", "/logout", "", ""); r.code != http.StatusMethodNotAllowed || r.header.Get("Allow") != "POST" {
		t.Errorf("GET /logout = %d Allow %q, want 405 Allow POST", r.code, r.header.Get("Allow"))
	}
	if r := c.do("DELETE", "/login", "", ""); r.code != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET, HEAD, POST" {
		t.Errorf("DELETE /login = %d Allow %q, want 405 Allow GET, HEAD, POST", r.code, r.header.Get("Allow"))
	}
	// Signed in, the page keeps the navigation.
	if r := c.post("/api/v1/login", map[string]string{"username": "alice", "password": pw}); r.code != 200 {
		t.Fatalf("login: %d", r.code)
	}
	if r := c.do("GET", "/nowhere", "", ""); r.code != 404 || !strings.Contains(r.raw, `<nav aria-label="Account">`) {
		t.Errorf("GET /nowhere signed in = %d, without the navigation", r.code)
	}
}

// TestPageHeadOnce: a page's own head content (support.css) is in the page once.
func TestPageHeadOnce(t *testing.T) {
	f := newSupportFixture(t, io.Discard)
	r := f.client(t).do("GET", "/support/new", "", "")
	if n := strings.Count(r.raw, "/static/support.css"); r.code != 200 || n != 1 {
		t.Errorf("/support/new: %d, support.css linked %d times, want once", r.code, n)
	}
}

// TestNeedHelpOnEveryStep: every second-step page links to the support desk, and pages
// without field errors keep their plain title.
func TestNeedHelpOnEveryStep(t *testing.T) {
	f := newFixture(t, "")
	c := f.client(t)
	c.post("/api/v1/login", map[string]string{"username": "alice", "password": pw})
	f.enrolTOTP(t, c)
	c = f.client(t)
	if r := c.post("/api/v1/login", map[string]string{"username": "alice", "password": pw}); r.body["state"] != "second_factor" {
		t.Fatalf("login: %s", r.raw)
	}
	for _, page := range []string{"/login/code", "/login/recovery"} {
		r := c.do("GET", page, "", "")
		if r.code != 200 || !strings.Contains(r.raw, `<a href="/support/new" id="need-help">Need help?</a>`) {
			t.Errorf("%s: %d, no Need help? link", page, r.code)
		}
		if strings.Contains(r.raw, "<title>Error: ") || strings.Contains(r.raw, "error-summary") {
			t.Errorf("%s without errors has an error title or summary", page)
		}
	}

	// The push page, with a Latch device.
	fp := newFixture(t, "")
	fp.activated(t)
	b := fp.client(t)
	if r := b.post("/api/v1/login", map[string]string{"username": "alice", "password": pw}); r.body["state"] != "second_factor" {
		t.Fatalf("login: %s", r.raw)
	}
	r := b.do("POST", "/login/push", "application/x-www-form-urlencoded", "")
	if r.code != 200 || !strings.Contains(r.raw, "push-number") || !strings.Contains(r.raw, `<a href="/support/new" id="need-help">Need help?</a>`) {
		t.Errorf("push page: %d, no Need help? link", r.code)
	}
}

// TestSupportAPIOneError: the JSON API keeps answering one error, in the usual format: the
// first problem in the order of the form.
func TestSupportAPIOneError(t *testing.T) {
	f := newSupportFixture(t, io.Discard)
	r := f.client(t).post("/api/v1/support/tickets", map[string]string{"username": "a b", "message": " "})
	e, _ := r.body["error"].(map[string]any)
	if r.code != 400 || r.errCode() != "invalid_request" || len(e) != 2 || e["message"] != "Enter your email address, so that we can answer you." {
		t.Errorf("create with every field wrong = %d %s, want 400 invalid_request about the email address", r.code, r.raw)
	}
}

// passwordStep signs alice in with her password on the sign-in page at base.
func passwordStep(t *testing.T, ctx context.Context, base string) {
	t.Helper()
	cdp(t, ctx, "sign in",
		chromedp.Navigate(base+"/login"),
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), "alice"),
		chromedp.SendKeys(chromedp.CSS("#password"), pw),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)),
	)
}
