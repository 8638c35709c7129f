package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/latchkey/latchkey/internal/browsertest"
	"github.com/latchkey/latchkey/internal/totp"
)

var activationRe = regexp.MustCompile(`http://\S+/activate\?token=[A-Za-z0-9_-]+`)

// apiSession is a second person's browser, signed in through the JSON API.
func apiSession(t *testing.T, base, user string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	resp, err := hc.Post(base+"/api/v1/login", "application/json", strings.NewReader(`{"username":"`+user+`","password":"`+alicePassword+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s signs in: %d", user, resp.StatusCode)
	}
	return hc
}

func sessionStatus(t *testing.T, hc *http.Client, base string) int {
	t.Helper()
	resp, err := hc.Get(base + "/api/v1/session")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestBrowserAdminConsole is journey 13 in a real Chromium against the real binary's wiring
// and a real SMTP server: the first admin opens the dashboard (server-drawn SVG charts),
// creates a user who gets the activation mail, disables a signed-in user whose next request
// is refused, reads the audit trail; the new user follows the link, chooses a password and,
// with mfa: required, lands in the enrolment.
func TestBrowserAdminConsole(t *testing.T) {
	cfg := writeConfig(t, "mfa: required\n")
	s := startServerArgs(t, []string{"--config", cfg}, "alice")
	if s.setup == "" {
		t.Fatalf("no setup link printed:\n%s", s.log())
	}
	// Some traffic for the charts: alice signs in (into the rollout) and mistypes twice.
	for _, p := range []string{"wrong one", "wrong two"} {
		resp, err := http.Post(s.url+"/api/v1/login", "application/json", strings.NewReader(`{"username":"alice","password":"`+p+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}

	ctx := browsertest.New(t, 3*time.Minute)
	shot := func(name string) { browsertest.Screenshot(t, ctx, "admin-"+name) }
	do(t, ctx, "create the first admin",
		chromedp.EmulateViewport(1280, 900),
		chromedp.Navigate(s.setup),
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), "root"),
		chromedp.SendKeys(chromedp.CSS("#email"), "root@example.com"),
		chromedp.SendKeys(chromedp.CSS("#password"), alicePassword),
		chromedp.Submit(chromedp.CSS("#password")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)

	// A ticket for the dashboard's "open tickets by age".
	if resp, err := http.Post(s.url+"/api/v1/support/tickets", "application/json", strings.NewReader(`{"email":"carol@example.com","type":"lost_phone","message":"I lost my phone."}`)); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("open a ticket: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// The dashboard: the header links to it; charts are inline SVG with titles.
	do(t, ctx, "dashboard",
		chromedp.Click(chromedp.CSS(`header nav a[href="/admin"]`)),
		chromedp.WaitVisible(chromedp.CSS("svg.chart")),
	)
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('svg.chart[role=img] > title, svg.donut[role=img] > title').length`))
	if err != nil || n != 4 {
		t.Errorf("dashboard has %d titled SVG charts (%v), want the adoption ring, the day, the week and the tickets", n, err)
	}
	if got := text(t, ctx, "table.shares"); !strings.Contains(got, "No second factor") || !strings.Contains(got, "Security key") {
		t.Errorf("adoption by factor = %q", got)
	}
	if got := text(t, ctx, ".kpi.k-fail .kpi-value"); got != "2" {
		t.Errorf("failed attempts in 24 h = %q, want 2", got)
	}
	if got := text(t, ctx, "#tickets-h + .big"); got != "1 open" {
		t.Errorf("tickets panel = %q", got)
	}
	shot("01-dashboard")
	do(t, ctx, "dashboard on a phone", chromedp.EmulateViewport(390, 844), chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("svg.chart")))
	if w, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); err != nil || w > 390 {
		t.Errorf("the dashboard is %d px wide on a 390 px screen (%v)", w, err)
	}
	shot("01b-dashboard-phone")
	do(t, ctx, "back to desktop", chromedp.EmulateViewport(1280, 900))

	// Create a user; the activation mail arrives through SMTP.
	do(t, ctx, "create user",
		chromedp.Click(chromedp.CSS(`.admin-nav a[href="/admin/users"]`)),
		chromedp.WaitVisible(chromedp.CSS("table.list")),
		chromedp.Click(chromedp.CSS(`a[href="/admin/users/new"]`)),
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), "bob"),
		chromedp.SendKeys(chromedp.CSS("#email"), "bob@example.com"),
		chromedp.Submit(chromedp.CSS("#email")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	if got := text(t, ctx, ".flash"); !strings.Contains(got, "activation link was sent") {
		t.Errorf("flash = %q", got)
	}
	mctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	m, err := s.mail.WaitFor(mctx, "bob@example.com", "ready to activate")
	if err != nil {
		t.Fatal(err)
	}
	link := activationRe.FindString(m.Text)
	if link == "" || !strings.Contains(m.HTML, link) {
		t.Fatalf("no activation link in the mail:\n%s", m.Text)
	}
	if tok := strings.SplitN(link, "token=", 2)[1]; strings.Contains(s.log(), tok) {
		t.Error("the activation token reached the log")
	}
	do(t, ctx, "users list", chromedp.Navigate(s.url+"/admin/users"), chromedp.WaitVisible(chromedp.CSS("table.list")))
	shot("02-users")

	// Alice is signed in elsewhere (she completed the rollout with an authenticator app); the
	// admin disables her and her next request is refused.
	aliceHC := apiSession(t, s.url, "alice")
	var en struct{ Secret string }
	if st := postJSON(t, aliceHC, s.url+"/api/v1/account/totp", "{}", &en); st != 200 {
		t.Fatalf("alice starts enrolment: %d", st)
	}
	secret, err := totp.Decode(en.Secret)
	if err != nil {
		t.Fatal(err)
	}
	// Confirming the code ends the rollout: the session is signed in at once.
	var confirmed struct {
		State         string   `json:"state"`
		RecoveryCodes []string `json:"recovery_codes"`
	}
	if st := postJSON(t, aliceHC, s.url+"/api/v1/account/totp/confirm", `{"code":"`+totp.Code(secret, totp.Step(time.Now()))+`"}`, &confirmed); st != 200 ||
		confirmed.State != "authenticated" || len(confirmed.RecoveryCodes) == 0 {
		t.Fatalf("alice confirms: %d %+v", st, confirmed)
	}
	if st := sessionStatus(t, aliceHC, s.url); st != http.StatusOK {
		t.Fatalf("alice's session after confirming: %d", st)
	}
	do(t, ctx, "search alice",
		chromedp.SendKeys(chromedp.CSS("#q"), "alice"),
		chromedp.Submit(chromedp.CSS("#q")),
		chromedp.WaitVisible(chromedp.CSS(`#q[value="alice"]`)),
		chromedp.WaitVisible(chromedp.CSS(`table.list a[href^="/admin/users/"]`)),
		chromedp.Click(chromedp.CSS(`table.list a[href^="/admin/users/"]`)),
		chromedp.WaitVisible(chromedp.CSS("#reset-h")),
	)
	shot("03-user-detail")
	do(t, ctx, "disable alice",
		chromedp.Click(chromedp.CSS(`form[action$="/disable"] button`)),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	if got := text(t, ctx, ".badge.off"); got != "Disabled" {
		t.Errorf("status badge = %q", got)
	}
	if st := sessionStatus(t, aliceHC, s.url); st != http.StatusUnauthorized {
		t.Errorf("disabled alice's next request: %d, want 401", st)
	}

	// The audit trail: filters, and the chain check.
	do(t, ctx, "audit",
		chromedp.Click(chromedp.CSS(`.admin-nav a[href="/admin/audit"]`)),
		chromedp.WaitVisible(chromedp.CSS(".chain")),
	)
	if got := text(t, ctx, ".chain"); !strings.Contains(got, "Chain verified") {
		t.Errorf("chain = %q", got)
	}
	for _, want := range []string{"user.invited", "user.disabled", "setup.completed"} {
		if !strings.Contains(text(t, ctx, "table.audit"), want) {
			t.Errorf("audit trail lacks %s", want)
		}
	}
	shot("04-audit")
	do(t, ctx, "policy", chromedp.Click(chromedp.CSS(`.admin-nav a[href="/admin/policy"]`)), chromedp.WaitVisible(chromedp.CSS("#mfa-h")))
	if got := text(t, ctx, ".facts dd"); !strings.HasPrefix(got, "Required") {
		t.Errorf("policy MFA = %q", got)
	}
	shot("05-policy")

	// Bob activates: password, then the enrolment of the rollout.
	signOut(t, ctx)
	do(t, ctx, "activation page", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("#password")))
	if a := attr(t, ctx, "#password", "autocomplete"); a != "new-password" {
		t.Errorf("password autocomplete = %q", a)
	}
	do(t, ctx, "weak password",
		chromedp.SendKeys(chromedp.CSS("#password"), "bobbob"),
		chromedp.SendKeys(chromedp.CSS("#confirm"), "bobbob"),
		chromedp.Submit(chromedp.CSS("#confirm")),
		chromedp.WaitVisible(chromedp.CSS("#password-error")),
	)
	shot("06-activate-weak")
	do(t, ctx, "activate",
		chromedp.SendKeys(chromedp.CSS("#password"), "a long and memorable passphrase"),
		chromedp.SendKeys(chromedp.CSS("#confirm"), "a long and memorable passphrase"),
		chromedp.Submit(chromedp.CSS("#confirm")),
		chromedp.WaitNotPresent(chromedp.CSS(`form[action="/activate"]`)),
		chromedp.WaitVisible(chromedp.CSS("h1")),
	)
	if l := location(t, ctx); !strings.HasPrefix(l, s.url+"/login/enroll") {
		t.Errorf("after activation at %s, want the enrolment", l)
	}
	shot("07-enrol-after-activation")
	// The link was single use.
	do(t, ctx, "link again", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS(".alert")))
	if got := text(t, ctx, ".alert"); !strings.Contains(got, "not valid any more") {
		t.Errorf("second use = %q", got)
	}
}

// postJSON posts body and decodes the answer into out (when not nil).
func postJSON(t *testing.T, hc *http.Client, url, body string, out any) int {
	t.Helper()
	resp, err := hc.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

// TestUsage: asking for help, at the top or of a command group ("latchkey user --help"),
// prints the list of commands on standard output and exits 0; an unknown command prints it on
// standard error and exits 2; a command's own -h lists its flags and exits 0.
func TestUsage(t *testing.T) {
	for _, tt := range []struct {
		args        []string
		code        int
		out, errOut string
	}{
		{[]string{"--help"}, 0, "latchkey user create [flags]", ""},
		{[]string{"help"}, 0, "latchkey user create [flags]", ""},
		{[]string{"user", "--help"}, 0, "latchkey user create [flags]", ""},
		{[]string{"audit", "-h"}, 0, "latchkey audit verify [flags]", ""},
		{[]string{"client", "help"}, 0, "latchkey client create [flags]", ""},
		{[]string{"oidc", "-help"}, 0, "latchkey oidc rotate-key", ""},
		{[]string{"user", "delete"}, 2, "", "latchkey user create [flags]"},
		{[]string{"users", "--help"}, 2, "", "latchkey user create [flags]"},
		// A command asked for help prints its flags on stdout.
		{[]string{"user", "create", "-h"}, 0, "-password-stdin", ""},
		{[]string{"serve", "-h"}, 0, "-public-url", ""},
		{[]string{"serve", "help"}, 0, "-public-url", ""},
		{[]string{"audit", "verify", "--help"}, 0, "-data", ""},
		// A flag's usage error goes to stderr.
		{[]string{"serve", "--nope"}, 2, "", "-public-url"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(t.Context(), tt.args, func(string) string { return "" }, strings.NewReader(""), &stdout, &stderr)
		code := 0
		if err != nil {
			code = exitCode(err)
		}
		if code != tt.code {
			t.Errorf("%q: exit %d (%v), want %d", tt.args, code, err, tt.code)
		}
		if tt.out != "" && !strings.Contains(stdout.String(), tt.out) {
			t.Errorf("%q: stdout %q, want it to contain %q", tt.args, stdout.String(), tt.out)
		}
		if tt.errOut != "" && !strings.Contains(stderr.String(), tt.errOut) {
			t.Errorf("%q: stderr %q, want it to contain %q", tt.args, stderr.String(), tt.errOut)
		}
		if tt.code == 0 && strings.Contains(stderr.String(), "unknown command") {
			t.Errorf("%q: stderr says %q", tt.args, stderr.String())
		}
	}
}
