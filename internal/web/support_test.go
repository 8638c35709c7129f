package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/audit"
	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/mail"
	"github.com/latchkey/latchkey/internal/mail/mailtest"
	"github.com/latchkey/latchkey/internal/password"
	"github.com/latchkey/latchkey/internal/push"
	"github.com/latchkey/latchkey/internal/sqlstore"
	"github.com/latchkey/latchkey/internal/support"
	"github.com/latchkey/latchkey/internal/totp"
	"github.com/latchkey/latchkey/internal/web"
)

type supportFixture struct {
	*fixture
	desk *support.Service
}

// newSupportFixture is newFixture with the support desk and three more accounts: sam
// (support), kim (support) and root (admin).
func newSupportFixture(tb testing.TB, logw io.Writer, mod ...func(*support.Options)) *supportFixture {
	tb.Helper()
	return newSupportFixtureWith(tb, logw, nil, mod...)
}

// newSupportFixtureWith is newSupportFixture whose sign-in service's options loginMod (when
// not nil) changes first, e.g. its Mailer.
func newSupportFixtureWith(tb testing.TB, logw io.Writer, loginMod func(*login.Options), mod ...func(*support.Options)) *supportFixture {
	tb.Helper()
	ctx := context.Background()
	c := &clock{t: time.Now().UTC()}
	db, err := sqlstore.Open(ctx, filepath.Join(tb.TempDir(), "web.db"), sqlstore.Options{SecretsKey: make([]byte, 32), Now: c.Now})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	srv := httptest.NewUnstartedServer(nil)
	pu, _ := url.Parse("http://" + srv.Listener.Addr().String())
	mails := &recMailer{}
	rec := audit.New(db, nil, c.Now)
	pusher := push.New(push.Options{Store: db, Mailer: mails, Audit: rec, Hub: push.NewHub(), Now: c.Now, Key: bytes.Repeat([]byte{9}, 32), PublicURL: pu.String()})
	lopt := login.Options{Store: db, Hasher: password.New(password.Options{Params: password.Params{Memory: 1024, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}}),
		Mailer: mails, Audit: rec, Now: c.Now, SessionKey: bytes.Repeat([]byte{7}, 32), Pusher: pusher, PublicURL: pu.String()}
	if loginMod != nil {
		loginMod(&lopt)
	}
	svc := login.New(lopt)
	opt := support.Options{Store: db, Accounts: svc, Mailer: mails, Audit: rec, Now: c.Now, Key: bytes.Repeat([]byte{5}, 32), PublicURL: pu.String()}
	for _, m := range mod {
		m(&opt)
	}
	desk := support.New(opt)
	h := web.New(web.Options{Login: svc, Push: pusher, DB: db, PublicURL: pu, Now: c.Now, MaxBody: 16 << 10, Support: desk, Logger: slog.New(slog.NewTextHandler(logw, nil)),
		Admin: web.AdminOptions{Store: db, Tickets: desk}})
	srv.Config.Handler = h
	srv.Start()
	tb.Cleanup(srv.Close)
	tb.Cleanup(h.Shutdown)
	for _, u := range []struct {
		name string
		role latchkey.Role
	}{{"alice", latchkey.RoleUser}, {"sam", latchkey.RoleSupport}, {"kim", latchkey.RoleSupport}, {"root", latchkey.RoleAdmin}} {
		if _, err := svc.CreateUser(ctx, login.Client{}, login.NewUser{Username: u.name, Email: u.name + "@example.com", Role: u.role, Password: pw}); err != nil {
			tb.Fatal(err)
		}
	}
	return &supportFixture{fixture: &fixture{srv: srv, db: db, svc: svc, push: pusher, mails: mails, clock: c}, desk: desk}
}

func (f *supportFixture) signedIn(t *testing.T, name string) *apiClient {
	t.Helper()
	c := f.client(t)
	if r := c.post("/api/v1/login", map[string]string{"username": name, "password": pw}); r.code != 200 {
		t.Fatalf("login %s: %d %s", name, r.code, r.raw)
	}
	return c
}

// mfaSignedIn is signedIn for name signed in with the password and an authenticator app (one
// is set up for the account first).
func (f *supportFixture) mfaSignedIn(t *testing.T, name string) *apiClient {
	t.Helper()
	ctx := context.Background()
	u, err := f.db.FindUserByUsername(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	secret := bytes.Repeat([]byte{3}, 20)
	app := &latchkey.TOTPCredential{UserID: u.ID, Name: "Phone", Secret: secret}
	if err := f.db.CreateTOTPCredential(ctx, app); err != nil {
		t.Fatal(err)
	}
	if err := f.db.ConfirmTOTPCredential(ctx, app.ID, 1, f.clock.Now(), nil, false); err != nil {
		t.Fatal(err)
	}
	c := f.client(t)
	if r := c.post("/api/v1/login", map[string]string{"username": name, "password": pw}); r.code != 200 || r.body["state"] != "second_factor" {
		t.Fatalf("login %s: %d %s", name, r.code, r.raw)
	}
	if r := c.post("/api/v1/login/totp", map[string]string{"code": totp.Code(secret, totp.Step(f.clock.Now()))}); r.code != 200 {
		t.Fatalf("second factor of %s: %d %s", name, r.code, r.raw)
	}
	return c
}

func TestSupportAPI(t *testing.T) {
	f := newSupportFixture(t, io.Discard)
	c := f.client(t)

	r := c.do("GET", "/api/v1/support/tickets/types", "", "")
	var types []map[string]string
	if err := json.Unmarshal([]byte(r.raw), &types); r.code != 200 || err != nil || len(types) != 4 || types[0]["id"] != "account_change" ||
		types[0]["name"] != "Account and user data change (incl. user creation by admin and multi-factor authentication, MFA)" || types[1]["id"] != "lost_phone" {
		t.Fatalf("types: %d %s", r.code, r.raw)
	}

	r = c.post("/api/v1/support/tickets", map[string]string{"email": "alice@example.com", "username": "alice", "type": "lost_phone", "message": "I lost my phone."})
	if r.code != 201 || r.body["id"] != float64(1001) {
		t.Fatalf("create: %d %s", r.code, r.raw)
	}
	link, _ := r.body["tracking_url"].(string)
	if !strings.HasPrefix(link, f.srv.URL+"/support/t/") || len(link) < len(f.srv.URL)+len("/support/t/")+43 {
		t.Fatalf("tracking_url = %q", link)
	}
	if got := f.mails.subjects("alice@example.com"); len(got) != 1 || got[0] != "[Ticket #1001] We received your request: Lost or new phone / authenticator" {
		t.Errorf("mails = %q", got)
	}
	// The same answer for an address without an account: nothing reveals whether one exists.
	r2 := c.post("/api/v1/support/tickets", map[string]string{"email": "nobody@example.com", "username": "nobody", "type": "lost_phone", "message": "I lost my phone."})
	if r2.code != 201 || len(r2.body) != 2 {
		t.Errorf("create for an unknown account: %d %s", r2.code, r2.raw)
	}

	path := strings.TrimPrefix(link, f.srv.URL)
	if r := c.do("GET", path, "", ""); r.code != 200 || !strings.Contains(r.raw, "#1001") || !strings.Contains(r.raw, "I lost my phone.") {
		t.Errorf("tracking page: %d", r.code)
	}
	for _, bad := range []string{"/support/t/" + strings.Repeat("A", 43), "/support/t/x"} {
		if r := c.do("GET", bad, "", ""); r.code != 404 {
			t.Errorf("GET %s = %d, want 404", bad, r.code)
		}
		if r := c.do("POST", bad, "application/x-www-form-urlencoded", "message=hi"); r.code != 404 {
			t.Errorf("POST %s = %d, want 404", bad, r.code)
		}
	}

	for _, tt := range []struct {
		name, ctype, body string
		code              int
		says              string
	}{
		{"not JSON", "text/plain", `{}`, 415, "JSON"},
		{"broken JSON", "application/json", `{"email":`, 400, ""},
		{"unknown field", "application/json", `{"email":"a@example.com","type":"other","message":"x","admin":true}`, 400, ""},
		{"wrong type", "application/json", `{"email":1}`, 400, ""},
		{"no email", "application/json", `{"type":"other","message":"x"}`, 400, "Enter your email address"},
		{"bad email", "application/json", `{"email":"a@","type":"other","message":"x"}`, 400, "valid email"},
		{"bad username", "application/json", `{"email":"a@example.com","username":"a b","type":"other","message":"x"}`, 400, "username"},
		{"unknown type", "application/json", `{"email":"a@example.com","type":"nope","message":"x"}`, 400, "Choose what"},
		{"empty message", "application/json", `{"email":"a@example.com","type":"other","message":" "}`, 400, "Describe"},
		{"long message", "application/json", `{"email":"a@example.com","type":"other","message":"` + strings.Repeat("x", 5001) + `"}`, 400, "too long"},
		{"too large", "application/json", `{"email":"a@example.com","type":"other","message":"` + strings.Repeat("x", 20000) + `"}`, 413, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := c.do("POST", "/api/v1/support/tickets", tt.ctype, tt.body)
			msg := ""
			if e, ok := r.body["error"].(map[string]any); ok {
				msg, _ = e["message"].(string)
			}
			if r.code != tt.code || msg == "" || !strings.Contains(msg, tt.says) {
				t.Errorf("%d %s, want %d saying %q", r.code, r.raw, tt.code, tt.says)
			}
		})
	}
	if _, n, _ := f.db.FindTickets(context.Background(), latchkey.TicketFilter{}); n != 2 {
		t.Errorf("%d tickets after refused requests, want 2", n)
	}

	// Cross-site requests stay refused.
	req, _ := http.NewRequest("POST", f.srv.URL+"/api/v1/support/tickets", strings.NewReader(`{"email":"a@example.com","type":"other","message":"x"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if resp, err := c.hc.Do(req); err != nil || resp.StatusCode != 403 {
		t.Errorf("cross-site create = %v, %v, want 403", resp.StatusCode, err)
	}
}

func TestSupportThrottled(t *testing.T) {
	f := newSupportFixture(t, io.Discard, func(o *support.Options) { o.PerEmail = 1 })
	c := f.client(t)
	body := map[string]string{"email": "bob@example.com", "type": "other", "message": "x"}
	if r := c.post("/api/v1/support/tickets", body); r.code != 201 {
		t.Fatalf("first: %d %s", r.code, r.raw)
	}
	r := c.post("/api/v1/support/tickets", body)
	if r.code != 429 || r.errCode() != "throttled" || r.header.Get("Retry-After") != "3600" {
		t.Errorf("second from one address: %d %s Retry-After %q", r.code, r.raw, r.header.Get("Retry-After"))
	}
	// The HTML form says so too.
	resp := c.do("POST", "/support/new", "application/x-www-form-urlencoded", url.Values{"email": {"bob@example.com"}, "type": {"other"}, "message": {"x"}}.Encode())
	if resp.code != 429 || resp.header.Get("Retry-After") == "" || !strings.Contains(resp.raw, `id="form-error">Too many tickets`) {
		t.Errorf("form: %d", resp.code)
	}
}

func TestSupportPages(t *testing.T) {
	var logs syncBuffer
	f := newSupportFixture(t, &logs)
	c := f.client(t)
	r := c.do("GET", "/support/new", "", "")
	for _, want := range []string{`autocomplete="email"`, `autocomplete="username"`, `name="type"`, `name="message"`, "Lost or new phone / authenticator"} {
		if r.code != 200 || !strings.Contains(r.raw, want) {
			t.Errorf("/support/new: %d, lacks %q", r.code, want)
		}
	}
	for _, page := range []string{"/login"} {
		if r := c.do("GET", page, "", ""); !strings.Contains(r.raw, `href="/support/new"`) || !strings.Contains(r.raw, "Need help?") {
			t.Errorf("%s has no Need help? link", page)
		}
	}
	if r := f.signedIn(t, "alice").do("GET", "/settings/security", "", ""); !strings.Contains(r.raw, `href="/support/new"`) {
		t.Errorf("/settings/security has no Need help? link")
	}

	r = c.do("POST", "/support/new", "application/x-www-form-urlencoded", url.Values{"email": {"not-an-address"}, "type": {"other"}, "message": {"keep me"}}.Encode())
	if r.code != 400 || !strings.Contains(r.raw, "valid email") || !strings.Contains(r.raw, "keep me") || !strings.Contains(r.raw, `<p class="error" id="email-error">Enter a valid email`) {
		t.Errorf("form error: %d", r.code)
	}
	r = c.do("POST", "/support/new", "application/x-www-form-urlencoded", url.Values{"email": {"alice@example.com"}, "type": {"lost_phone"}, "message": {"My phone is gone."}}.Encode())
	loc := r.header.Get("Location")
	if r.code != 303 || !strings.HasPrefix(loc, "/support/t/") || !strings.HasSuffix(loc, "?created=1") {
		t.Fatalf("create by form: %d %q", r.code, loc)
	}
	token := strings.TrimSuffix(strings.TrimPrefix(loc, "/support/t/"), "?created=1")
	r = c.do("GET", loc, "", "")
	if r.code != 200 || !strings.Contains(r.raw, "Your ticket number is <strong>#1001</strong>") || !strings.Contains(r.raw, "My phone is gone.") {
		t.Errorf("confirmation: %d", r.code)
	}
	r = c.do("POST", "/support/t/"+token, "application/x-www-form-urlencoded", "message=")
	if r.code != 400 || !strings.Contains(r.raw, "Describe") {
		t.Errorf("empty message: %d", r.code)
	}
	r = c.do("POST", "/support/t/"+token, "application/x-www-form-urlencoded", "message=Any+news%3F")
	if r.code != 303 {
		t.Fatalf("add message: %d", r.code)
	}
	if r := c.do("GET", "/support/t/"+token, "", ""); !strings.Contains(r.raw, "Any news?") {
		t.Errorf("the added message is not shown")
	}
	// The token never reaches a log line.
	log := logs.String()
	if strings.Contains(log, token) || !strings.Contains(log, "path=/support/t/[redacted]") {
		t.Errorf("the log shows the tracking token or lacks the redacted path:\n%s", log)
	}
}

func TestDeskAuthorization(t *testing.T) {
	f := newSupportFixture(t, io.Discard)
	ctx := context.Background()
	tk, err := f.desk.Create(ctx, login.Client{}, support.NewTicket{Email: "root@example.com", Username: "root", Type: "lost_phone", Message: "reset me"})
	if err != nil {
		t.Fatal(err)
	}
	id := strconv.FormatInt(tk.Ticket.ID, 10)
	user := f.signedIn(t, "alice")
	anon := f.client(t)
	patterns := web.DeskPatterns()
	if len(patterns) < 8 {
		t.Fatalf("only %d desk routes", len(patterns))
	}
	for _, p := range patterns {
		method, path, _ := strings.Cut(p, " ")
		path = strings.ReplaceAll(path, "{id}", id)
		t.Run(p, func(t *testing.T) {
			body := "reason=x&status=closed&message=x&check=callback&factor=totp:1&username=x"
			if r := user.do(method, path, "application/x-www-form-urlencoded", body); r.code != 403 {
				t.Errorf("user: %s %s = %d, want 403", method, path, r.code)
			}
			if r := anon.do(method, path, "application/x-www-form-urlencoded", body); r.code != 303 || !strings.HasPrefix(r.header.Get("Location"), "/login") {
				t.Errorf("signed out: %s %s = %d, want a redirect to /login", method, path, r.code)
			}
		})
	}
	if got, _ := f.db.FindTicketByID(ctx, tk.Ticket.ID); got.Status != latchkey.TicketNew || len(got.Checks) != 0 {
		t.Errorf("a user changed the ticket: %+v", got)
	}
	// Each refusal is audited, as on the rest of /admin.
	denied, _ := f.db.QueryAuditEvents(ctx, latchkey.AuditQuery{Action: latchkey.ActionAdminDenied})
	if len(denied) != len(patterns) || denied[0].Username != "alice" {
		t.Errorf("%d refusals audited, want %d by alice", len(denied), len(patterns))
	}

	// A support agent sees the admin's ticket but cannot act on the admin.
	agent := f.signedIn(t, "sam")
	if r := agent.do("GET", "/admin/tickets", "", ""); r.code != 200 || !strings.Contains(r.raw, "#1001") {
		t.Errorf("queue for an agent: %d", r.code)
	}
	r := agent.do("GET", "/admin/tickets/"+id, "", "")
	if r.code != 200 || !strings.Contains(r.raw, `id="cannot-act"`) || strings.Contains(r.raw, "/reset-mfa") {
		t.Errorf("ticket page for an admin's ticket: %d, want the refusal and no reset form", r.code)
	}
	// Nor the admin's account: no sign-ins (addresses, times), methods, email or role.
	if !strings.Contains(r.raw, `id="account-restricted"`) || strings.Contains(r.raw, "Recent sign-ins") || strings.Contains(r.raw, `id="factors"`) || strings.Contains(r.raw, `id="account-username"`) || strings.Contains(r.raw, "<dt>Role</dt>") {
		t.Error("an agent's page for an admin's ticket shows the admin's account")
	}
	form := url.Values{"check": {"callback", "manager", "question"}}.Encode()
	if r := agent.do("POST", "/admin/tickets/"+id+"/checks", "application/x-www-form-urlencoded", form); r.code != 303 {
		t.Fatalf("checks: %d %s", r.code, r.raw)
	}
	for _, action := range []string{"/reset-mfa", "/remove-factor"} {
		if r := agent.do("POST", "/admin/tickets/"+id+action, "application/x-www-form-urlencoded", "reason=asked+nicely&factor=totp:1"); r.code != 403 || !strings.Contains(r.raw, "administrator or a support agent") {
			t.Errorf("agent %s on an admin = %d, want 403", action, r.code)
		}
	}
	tk2, _ := f.desk.Create(ctx, login.Client{}, support.NewTicket{Email: "kim@example.com", Username: "kim", Type: "lost_phone", Message: "reset me"})
	id2 := strconv.FormatInt(tk2.Ticket.ID, 10)
	agent.do("POST", "/admin/tickets/"+id2+"/checks", "application/x-www-form-urlencoded", form)
	if r := agent.do("POST", "/admin/tickets/"+id2+"/reset-mfa", "application/x-www-form-urlencoded", "reason=x"); r.code != 403 {
		t.Errorf("agent reset of another agent = %d, want 403", r.code)
	}
	ev, _ := f.db.FindAuditEvents(ctx, latchkey.AuditFilter{})
	refused := 0
	for _, e := range ev {
		if e.Action == latchkey.ActionTicketRefused && e.Outcome == latchkey.OutcomeDenied && e.TicketID != 0 {
			refused++
		}
	}
	if refused < 3 {
		t.Errorf("%d refusals audited, want 3", refused)
	}
	for _, bad := range []string{"/admin/tickets/9999", "/admin/tickets/x", "/admin/tickets?status=bogus", "/admin/tickets?age=5y"} {
		if r := agent.do("GET", bad, "", ""); r.code != 404 && r.code != 400 {
			t.Errorf("GET %s = %d, want 404 or 400", bad, r.code)
		}
	}
}

func TestDeskActions(t *testing.T) {
	f := newSupportFixture(t, io.Discard)
	ctx := context.Background()
	known, _ := f.desk.Create(ctx, login.Client{}, support.NewTicket{Email: "alice@example.com", Type: "account_change", Message: "Please change my email."})
	unknown, _ := f.desk.Create(ctx, login.Client{}, support.NewTicket{Email: "new@example.com", Username: "newbie", Type: "account_change", Message: "I need an account."})
	agent := f.signedIn(t, "sam")
	form := "application/x-www-form-urlencoded"
	kid, uid := strconv.FormatInt(known.Ticket.ID, 10), strconv.FormatInt(unknown.Ticket.ID, 10)

	r := agent.do("GET", "/admin/tickets/"+kid, "", "")
	if r.code != 200 || !strings.Contains(r.raw, `id="account-username">alice<`) || !strings.Contains(r.raw, `id="no-factors"`) || !strings.Contains(r.raw, "Matched by email") {
		t.Errorf("ticket of a known address: %d", r.code)
	}
	r = agent.do("GET", "/admin/tickets/"+uid, "", "")
	if r.code != 200 || !strings.Contains(r.raw, `id="no-account"`) || strings.Contains(r.raw, "/invite") {
		t.Errorf("ticket of an unknown address without invitations: %d (the create-user action must be hidden)", r.code)
	}

	if r := agent.do("POST", "/admin/tickets/"+kid+"/reply", form, "message=+&status=waiting"); r.code != 400 || !strings.Contains(r.raw, "Describe") {
		t.Errorf("empty answer: %d", r.code)
	}
	if r := agent.do("POST", "/admin/tickets/"+kid+"/status", form, "status=bogus"); r.code != 400 {
		t.Errorf("unknown status: %d", r.code)
	}
	if r := agent.do("POST", "/admin/tickets/"+kid+"/checks", form, "check=bogus"); r.code != 400 {
		t.Errorf("unknown check: %d", r.code)
	}
	if r := agent.do("POST", "/admin/tickets/"+kid+"/reset-mfa", form, "reason=x"); r.code != 403 || !strings.Contains(r.raw, "identity checklist") {
		t.Errorf("reset before the checks: %d", r.code)
	}
	alice, _ := f.db.FindUserByUsername(ctx, "alice")
	app := &latchkey.TOTPCredential{UserID: alice.ID, Name: "Phone", Secret: bytes.Repeat([]byte{1}, 20)}
	if err := f.db.CreateTOTPCredential(ctx, app); err != nil {
		t.Fatal(err)
	}
	if err := f.db.ConfirmTOTPCredential(ctx, app.ID, 1, time.Now(), nil, false); err != nil {
		t.Fatal(err)
	}
	if r := agent.do("POST", "/admin/tickets/"+kid+"/checks", form, "check=callback&check=manager&check=question"); r.code != 303 {
		t.Errorf("checks: %d", r.code)
	}
	if r := agent.do("GET", "/admin/tickets/"+kid, "", ""); !strings.Contains(r.raw, `id="agent-no-mfa"`) || strings.Contains(r.raw, "/reset-mfa") {
		t.Error("an agent signed in without a second factor is offered the reset")
	}
	if r := agent.do("POST", "/admin/tickets/"+kid+"/reset-mfa", form, "reason=x"); r.code != 403 || !strings.Contains(r.raw, "second factor") {
		t.Errorf("reset by an agent without MFA: %d", r.code)
	}
	if fs, _ := f.svc.Factors(ctx, alice); len(fs) != 1 {
		t.Errorf("after refused resets alice has %d factors, want 1", len(fs))
	}
	if r := agent.do("POST", "/admin/tickets/"+uid+"/invite", form, "username=newbie&reason=x"); r.code != 403 {
		t.Errorf("invite without the admin console: %d", r.code)
	}
	if r := agent.do("POST", "/admin/tickets/9999/status", form, "status=closed"); r.code != 404 {
		t.Errorf("status of a missing ticket: %d", r.code)
	}
	r = agent.do("POST", "/admin/tickets/"+kid+"/status", form, "status=closed&reason=duplicate+of+another")
	if r.code != 303 || r.header.Get("Location") != "/admin/tickets/"+kid+"?done=status" {
		t.Fatalf("close: %d %q", r.code, r.header.Get("Location"))
	}
	if got, _ := f.db.FindTicketByID(ctx, known.Ticket.ID); got.Status != latchkey.TicketClosed {
		t.Errorf("status = %q, want closed", got.Status)
	}
	r = agent.do("GET", "/admin/tickets?status=closed", "", "")
	if !strings.Contains(r.raw, "/admin/tickets/"+kid+`"`) || strings.Contains(r.raw, "/admin/tickets/"+uid+`"`) {
		t.Errorf("closed filter does not show exactly the closed ticket")
	}
	ev, _ := f.db.FindAuditEvents(ctx, latchkey.AuditFilter{})
	last := ev[len(ev)-1]
	if last.Action != latchkey.ActionTicketStatus || last.TicketID != known.Ticket.ID || last.Actor != "sam" || last.UserID != 0 || !strings.Contains(last.Detail, "duplicate of another") {
		t.Errorf("last audit event = %+v", last)
	}
}

// TestDeskResetMFANoFactor: the ticket page of an active account without a second factor
// offers no MFA action (there is nothing to reset); a reset posted by hand, with every check
// done and the agent's second factor, is refused with 409 and a message that says so, and
// writes nothing: no mfa.reset entry, no mail to the user, the checks stand.
func TestDeskResetMFANoFactor(t *testing.T) {
	f := newSupportFixture(t, io.Discard)
	ctx := context.Background()
	tk, err := f.desk.Create(ctx, login.Client{}, support.NewTicket{Email: "alice@example.com", Username: "alice", Type: "lost_phone", Message: "I lost my phone."})
	if err != nil {
		t.Fatal(err)
	}
	ticket := "/admin/tickets/" + strconv.FormatInt(tk.Ticket.ID, 10)
	agent := f.mfaSignedIn(t, "sam")
	form := "application/x-www-form-urlencoded"
	if r := agent.do("POST", ticket+"/checks", form, "check=callback&check=manager&check=question"); r.code != http.StatusSeeOther {
		t.Fatalf("checks: %d %s", r.code, r.raw)
	}
	if r := agent.do("GET", ticket, "", ""); r.code != 200 || !strings.Contains(r.raw, `id="no-factors"`) || strings.Contains(r.raw, "/reset-mfa") {
		t.Errorf("the ticket of alice, who has no factor: %d, offers a reset or does not say she has none", r.code)
	}
	r := agent.do("POST", ticket+"/reset-mfa", form, "reason=lost+phone")
	m := regexp.MustCompile(`(?s)<div class="alert" role="alert" id="form-error">(.*?)</div>`).FindStringSubmatch(r.raw)
	if r.code != http.StatusConflict || m == nil || !strings.HasPrefix(html.UnescapeString(m[1]), "alice has no second factor, so there is nothing to reset") {
		t.Errorf("a reset posted by hand: %d, error %q; want 409 and why", r.code, m)
	}
	ev, _ := f.db.FindAuditEvents(ctx, latchkey.AuditFilter{})
	for _, e := range ev {
		if e.Action == latchkey.ActionMFAReset {
			t.Errorf("the refused reset was audited: %+v", *e)
		}
	}
	if got := f.mails.subjects("alice@example.com"); len(got) != 1 {
		t.Errorf("mails to alice %q, want the ticket's confirmation only", got)
	}
	if got, _ := f.db.FindTicketByID(ctx, tk.Ticket.ID); len(got.Checks) != 3 {
		t.Errorf("the refused reset used the checks up: %v", got.Checks)
	}
}

// TestDeskInvite checks the create-user action with the admin console's invitations
// ((*login.Service).InviteUser): the account is created and gets its activation mail.
func TestDeskInvite(t *testing.T) {
	var f *supportFixture
	f = newSupportFixture(t, io.Discard, func(o *support.Options) {
		o.Inviter = inviterFunc(func(ctx context.Context, c login.Client, actor *latchkey.User, actorMFA bool, username, email string, role latchkey.Role) (*latchkey.User, error) {
			if role != latchkey.RoleUser {
				t.Errorf("the desk asked for an account with role %q, want user", role)
			}
			return f.svc.InviteUser(ctx, c, actor, actorMFA, username, email, role)
		})
	})
	ctx := context.Background()
	tk, _ := f.desk.Create(ctx, login.Client{}, support.NewTicket{Email: "new@example.com", Username: "newbie", Type: "account_change", Message: "I need an account."})
	id := strconv.FormatInt(tk.Ticket.ID, 10)
	agent := f.signedIn(t, "sam")
	if r := agent.do("GET", "/admin/tickets/"+id, "", ""); !strings.Contains(r.raw, `action="/admin/tickets/`+id+`/invite"`) {
		t.Fatal("no create-user action for a ticket without an account")
	}
	if r := agent.do("POST", "/admin/tickets/"+id+"/invite", "application/x-www-form-urlencoded", "username=newbie&reason="); r.code != 400 {
		t.Errorf("invite without a reason: %d", r.code)
	}
	if r := agent.do("POST", "/admin/tickets/"+id+"/invite", "application/x-www-form-urlencoded", "username=newbie&reason=new+starter"); r.code != 303 {
		t.Fatalf("invite: %d %s", r.code, r.raw)
	}
	if u, err := f.db.FindUserByUsername(ctx, "newbie"); err != nil || u.Email != "new@example.com" || u.Role != latchkey.RoleUser {
		t.Errorf("invited user = %+v, %v", u, err)
	}
	if subj := f.mails.subjects("new@example.com"); len(subj) != 2 {
		t.Errorf("mails to the requester: %q, want the ticket confirmation and the activation mail", subj)
	}
	f.mails.mu.Lock()
	for _, m := range f.mails.msgs {
		if m.To == "new@example.com" && strings.Contains(m.Text+m.HTML, "sam") {
			t.Errorf("a mail to the requester names the agent's account:\n%s", m.Text)
		}
	}
	f.mails.mu.Unlock()
	if r := agent.do("GET", "/admin/tickets/"+id, "", ""); !strings.Contains(r.raw, `id="account-username">newbie<`) || strings.Contains(r.raw, "/invite") {
		t.Error("after the invitation the ticket does not show the new account")
	}
}

// TestDeskInviteMailFails: when the account a ticket asks for is created but its activation
// mail cannot be sent (a real SMTP server refuses the recipient), the agent is taken back to
// the ticket, which now shows the account, with a notice that says so and names what can be
// done: an agent asks an administrator, an administrator gets the account's page, where the
// new link is sent; the account's note says the same, not when the unsent link expires. No
// error page, and the trail links the account to the ticket.
func TestDeskInviteMailFails(t *testing.T) {
	f, smtp := newMailFailingDesk(t)
	ctx := context.Background()
	form := "application/x-www-form-urlencoded"
	for _, tt := range []struct {
		agent, email, username string
		want, notWant          string // in the notice
	}{
		{"sam", "new@example.com", "newbie", "Ask an administrator to send a new activation link", `id="account-page"`},
		{"root", "new2@example.com", "newbie2", `id="account-page"`, "Ask an administrator"},
	} {
		t.Run(tt.agent, func(t *testing.T) {
			tk, err := f.desk.Create(ctx, login.Client{}, support.NewTicket{Email: tt.email, Username: tt.username, Type: "account_change", Message: "I need an account."})
			if err != nil {
				t.Fatal(err)
			}
			id := strconv.FormatInt(tk.Ticket.ID, 10)
			agent := f.signedIn(t, tt.agent)
			r := agent.do("POST", "/admin/tickets/"+id+"/invite", form, "username="+tt.username+"&reason=new+starter")
			if r.code != http.StatusSeeOther || r.header.Get("Location") != "/admin/tickets/"+id+"?done=invite-mail-failed" {
				t.Fatalf("invite with the mail refused: %d %q, want 303 to the ticket\n%s", r.code, r.header.Get("Location"), r.raw)
			}
			u, err := f.db.FindUserByUsername(ctx, tt.username)
			if err != nil || u.Email != tt.email {
				t.Fatalf("the account: %+v, %v", u, err)
			}
			r = agent.do("GET", r.header.Get("Location"), "", "")
			notice := regexp.MustCompile(`(?s)<div class="notice[^"]*" role="status" id="invite-mail-failed">.*?</div>`).FindString(r.raw)
			if r.code != 200 || notice == "" {
				t.Fatalf("ticket page after the failed mail: %d, no notice", r.code)
			}
			if !strings.Contains(notice, "The account "+tt.username+" was created, but its activation mail could not be sent.") ||
				!strings.Contains(notice, tt.want) || strings.Contains(notice, tt.notWant) {
				t.Errorf("notice for %s = %s\nwant %q and not %q", tt.agent, notice, tt.want, tt.notWant)
			}
			if !strings.Contains(r.raw, `id="account-username">`+tt.username+`<`) {
				t.Error("the ticket page does not show the new account")
			}
			// The account's note says the link never went out, not when it expires.
			note := regexp.MustCompile(`(?s)<p class="muted small" id="account-invited">.*?</p>`).FindString(r.raw)
			if !strings.Contains(note, "the activation mail could not be sent, so the user has no link to set a password with yet;") ||
				strings.Contains(note, "expire") || (tt.agent == "root") != strings.Contains(note, `href="/admin/users/`+strconv.FormatInt(int64(u.ID), 10)+`"`) {
				t.Errorf("account note for %s = %s", tt.agent, note)
			}
			if tt.agent == "root" {
				// The notice's link leads to the page whose button sends a new link.
				if !strings.Contains(notice, `href="/admin/users/`+strconv.FormatInt(int64(u.ID), 10)+`"`) {
					t.Errorf("the notice does not link to %s's page: %s", tt.username, notice)
				}
				if p := agent.do("GET", "/admin/users/"+strconv.FormatInt(int64(u.ID), 10), "", ""); p.code != 200 || !strings.Contains(p.raw, `action="/admin/users/`+strconv.FormatInt(int64(u.ID), 10)+`/invitation"`) {
					t.Errorf("the account's page: %d, without the form that sends a new link", p.code)
				}
			}
			// Nothing else pretends the mail went out.
			if strings.Contains(r.raw, "gets an email to set a password") {
				t.Error("the ticket page says the user gets an email")
			}
			ev, _ := f.db.FindAuditEvents(ctx, latchkey.AuditFilter{UserID: &u.ID})
			var linked bool
			for _, e := range ev {
				linked = linked || (e.Action == latchkey.ActionTicketUserAdded && e.TicketID == tk.Ticket.ID && strings.Contains(e.Detail, "activation mail not sent"))
			}
			if !linked {
				t.Errorf("no %s entry says the account of ticket %d was created without its mail", latchkey.ActionTicketUserAdded, tk.Ticket.ID)
			}
		})
	}
	for _, m := range smtp.Messages() {
		if strings.HasPrefix(m.To, "new") {
			t.Errorf("the SMTP server accepted a mail to %s", m.To)
		}
	}
}

// TestDeskInviteMailFailedRemembered: after the activation mail of an account created from a
// ticket could not be sent, the ticket page, visited again (no ?done= in the address), still
// says that the mail could not be sent and who can send a new link, not when the unsent link
// expires, and so does the admin console's page of the account, where the administrator sends
// it; once a new link went out, both say when it expires again, and the old address of the
// outcome no longer shows the notice.
func TestDeskInviteMailFailedRemembered(t *testing.T) {
	refuse := &atomic.Bool{}
	refuse.Store(true)
	f, _ := newMailRefusingDesk(t, refuse)
	ctx := context.Background()
	tk, err := f.desk.Create(ctx, login.Client{}, support.NewTicket{Email: "new@example.com", Username: "newbie", Type: "account_change", Message: "I need an account."})
	if err != nil {
		t.Fatal(err)
	}
	ticket := "/admin/tickets/" + strconv.FormatInt(tk.Ticket.ID, 10)
	agent := f.signedIn(t, "sam")
	r := agent.do("POST", ticket+"/invite", "application/x-www-form-urlencoded", "username=newbie&reason=new+starter")
	if r.code != http.StatusSeeOther || r.header.Get("Location") != ticket+"?done=invite-mail-failed" {
		t.Fatalf("invite with the mail refused: %d %q", r.code, r.header.Get("Location"))
	}
	u, err := f.db.FindUserByUsername(ctx, "newbie")
	if err != nil {
		t.Fatal(err)
	}
	userPage := "/admin/users/" + strconv.FormatInt(int64(u.ID), 10)
	noteRE := regexp.MustCompile(`(?s)<p class="muted small" id="account-invited">.*?</p>`)
	stateRE := regexp.MustCompile(`(?s)<p class="muted" id="invite-state">(.*?)</p>`)
	admin := f.signedIn(t, "root")
	for _, c := range []struct {
		who  string
		c    *apiClient
		want string
	}{{"agent", agent, "an administrator can send a new one from the account's page."}, {"administrator", admin, `send a new one from <a href="` + userPage + `">the account's page</a>.`}} {
		r := c.c.do("GET", ticket, "", "")
		note := noteRE.FindString(r.raw)
		if r.code != 200 || !strings.Contains(note, "Waiting for activation: the activation mail could not be sent, so the user has no link to set a password with yet;") ||
			!strings.Contains(note, c.want) || strings.Contains(note, "expire") {
			t.Errorf("%s, the ticket visited again: %d, note %s", c.who, r.code, note)
		}
		if strings.Contains(r.raw, `id="invite-mail-failed"`) {
			t.Errorf("%s, the ticket visited again shows the notice of the action", c.who)
		}
	}
	r = admin.do("GET", userPage, "", "")
	state := stateRE.FindStringSubmatch(r.raw)
	if r.code != 200 || state == nil || state[1] != "The activation mail could not be sent, so the user has no link to set a password with yet. Send a new activation link." {
		t.Errorf("the account's page: %d, says %q", r.code, state)
	}
	if !strings.Contains(r.raw, "The user cannot sign in until they set a password with a new activation link.") {
		t.Error("the account's sign-in methods do not say that a new link is needed")
	}

	// The administrator sends a new link, which goes out.
	refuse.Store(false)
	if r := admin.do("POST", userPage+"/invitation", "application/x-www-form-urlencoded", ""); r.code != http.StatusSeeOther {
		t.Fatalf("new link: %d %s", r.code, r.raw)
	}
	end := f.clock.Now().Add(login.InvitationTTL).UTC().Format("2 Jan 2006, 15:04 MST")
	r = agent.do("GET", ticket+"?done=invite-mail-failed", "", "")
	if note := noteRE.FindString(r.raw); !strings.Contains(note, "The link expires on "+end+".") || strings.Contains(note, "could not be sent") {
		t.Errorf("the ticket after a new link: note %s, want the link's end %s", note, end)
	}
	if strings.Contains(r.raw, `id="invite-mail-failed"`) {
		t.Error("the old address of the outcome shows the notice after a new link went out")
	}
	r = admin.do("GET", userPage, "", "")
	if state := stateRE.FindStringSubmatch(r.raw); state == nil || !strings.HasPrefix(state[1], "The activation link expires ") {
		t.Errorf("the account's page after a new link says %q, want when it expires", state)
	}
}

// TestDeskAccountAwaitingActivation: the ticket page of an account created from the ticket
// says that its owner has not activated it yet, in the admin console's words (Invited, Link
// expired), with when the link ends and who can send a new one, and says Active only once the
// owner has set a password with the link.
func TestDeskAccountAwaitingActivation(t *testing.T) {
	var f *supportFixture
	f = newSupportFixture(t, io.Discard, func(o *support.Options) {
		o.Inviter = inviterFunc(func(ctx context.Context, c login.Client, actor *latchkey.User, actorMFA bool, username, email string, role latchkey.Role) (*latchkey.User, error) {
			return f.svc.InviteUser(ctx, c, actor, actorMFA, username, email, role)
		})
	})
	ctx := context.Background()
	state := regexp.MustCompile(`id="account-state">([^<]*)<`)
	note := regexp.MustCompile(`(?s)<p class="muted small" id="account-invited">.*?</p>`)
	page := func(t *testing.T, c *apiClient, ticket string) (string, string, string) {
		t.Helper()
		r := c.do("GET", ticket, "", "")
		m := state.FindStringSubmatch(r.raw)
		if r.code != 200 || m == nil {
			t.Fatalf("GET %s: %d, no account state", ticket, r.code)
		}
		return m[1], note.FindString(r.raw), r.raw
	}

	tk, err := f.desk.Create(ctx, login.Client{}, support.NewTicket{Email: "new@example.com", Username: "newbie", Type: "account_change", Message: "I need an account."})
	if err != nil {
		t.Fatal(err)
	}
	ticket := "/admin/tickets/" + strconv.FormatInt(tk.Ticket.ID, 10)
	agent := f.signedIn(t, "sam")
	if r := agent.do("POST", ticket+"/invite", "application/x-www-form-urlencoded", "username=newbie&reason=new+starter"); r.code != http.StatusSeeOther {
		t.Fatalf("invite: %d %s", r.code, r.raw)
	}
	inv, err := f.db.FindUserByUsername(ctx, "newbie")
	if err != nil {
		t.Fatal(err)
	}
	end := f.clock.Now().Add(login.InvitationTTL).UTC().Format("2 Jan 2006, 15:04 MST")
	if st, n, _ := page(t, agent, ticket); st != "Invited" || !strings.Contains(n, "Waiting for activation") || !strings.Contains(n, "The link expires on "+end+".") {
		t.Errorf("state of the invited account = %q, note %q; want Invited, waiting for activation until %s", st, n, end)
	}

	// Past the link's end: the agent is told to ask an administrator, who gets the link to the
	// page that sends a new one.
	f.clock.Add(login.InvitationTTL + time.Minute)
	agent = f.signedIn(t, "sam") // the clock's jump ended the session
	if st, n, _ := page(t, agent, ticket); st != "Link expired" || !strings.Contains(n, "The link expired on "+end) ||
		!strings.Contains(n, "an administrator can send a new one") || strings.Contains(n, "/admin/users/") {
		t.Errorf("agent, link expired: state %q, note %q", st, n)
	}
	admin := f.signedIn(t, "root")
	userPage := "/admin/users/" + strconv.FormatInt(int64(inv.ID), 10)
	if st, n, _ := page(t, admin, ticket); st != "Link expired" || !strings.Contains(n, `href="`+userPage+`"`) {
		t.Errorf("administrator, link expired: state %q, note %q", st, n)
	}
	if r := admin.do("POST", userPage+"/invitation", "application/x-www-form-urlencoded", ""); r.code != http.StatusSeeOther {
		t.Fatalf("new link: %d %s", r.code, r.raw)
	}
	if st, _, _ := page(t, agent, ticket); st != "Invited" {
		t.Errorf("state with a new link = %q, want Invited", st)
	}

	// The owner activates the account with the new link: now it is active.
	f.mails.mu.Lock()
	link := linkRE.FindString(f.mails.msgs[len(f.mails.msgs)-1].Text)
	f.mails.mu.Unlock()
	if link == "" {
		t.Fatal("no activation link in the last mail")
	}
	if _, err := f.svc.Activate(ctx, login.Client{}, "", strings.SplitN(link, "token=", 2)[1], "a long and unusual passphrase"); err != nil {
		t.Fatal(err)
	}
	if st, n, raw := page(t, agent, ticket); st != "Active" || n != "" || strings.Contains(raw, "Waiting for activation") {
		t.Errorf("state of the activated account = %q, note %q; want Active and no note", st, n)
	}
	// An account that was never invited (alice, created with a password) is Active.
	tk2, err := f.desk.Create(ctx, login.Client{}, support.NewTicket{Email: "alice@example.com", Username: "alice", Type: "lost_phone", Message: "I lost my phone."})
	if err != nil {
		t.Fatal(err)
	}
	alice := "/admin/tickets/" + strconv.FormatInt(tk2.Ticket.ID, 10)
	if st, n, _ := page(t, agent, alice); st != "Active" || n != "" {
		t.Errorf("alice: state %q, note %q; want Active", st, n)
	}
}

// newMailFailingDesk is a support fixture whose desk creates users with the admin console's
// invitations, and whose sign-in service sends its mail to a real SMTP server that refuses
// every recipient whose address starts with "new".
func newMailFailingDesk(t *testing.T) (*supportFixture, *mailtest.Server) {
	t.Helper()
	refuse := &atomic.Bool{}
	refuse.Store(true)
	return newMailRefusingDesk(t, refuse)
}

// newMailRefusingDesk is newMailFailingDesk whose SMTP server refuses those recipients only
// while refuse is set.
func newMailRefusingDesk(t *testing.T, refuse *atomic.Bool) (*supportFixture, *mailtest.Server) {
	t.Helper()
	smtp := mailtest.StartServerWith(t, mailtest.Options{Reject: func(to string) error {
		if refuse.Load() && strings.HasPrefix(to, "new") {
			return errors.New("mailbox unavailable")
		}
		return nil
	}})
	sender, err := mail.New(mail.Options{SMTPURL: smtp.URL()})
	if err != nil {
		t.Fatal(err)
	}
	var f *supportFixture
	f = newSupportFixtureWith(t, io.Discard, func(o *login.Options) { o.Mailer = sender }, func(o *support.Options) {
		o.Inviter = inviterFunc(func(ctx context.Context, c login.Client, actor *latchkey.User, actorMFA bool, username, email string, role latchkey.Role) (*latchkey.User, error) {
			return f.svc.InviteUser(ctx, c, actor, actorMFA, username, email, role)
		})
	})
	return f, smtp
}

type inviterFunc func(ctx context.Context, c login.Client, actor *latchkey.User, actorMFA bool, username, email string, role latchkey.Role) (*latchkey.User, error)

func (f inviterFunc) InviteUser(ctx context.Context, c login.Client, actor *latchkey.User, actorMFA bool, username, email string, role latchkey.Role) (*latchkey.User, error) {
	return f(ctx, c, actor, actorMFA, username, email, role)
}

// TestDeskQueuePages: a queue longer than a page pages through every ticket (a flood of new
// ones cannot hide the old), and can list the oldest first.
func TestDeskQueuePages(t *testing.T) {
	f := newSupportFixture(t, io.Discard)
	ctx := context.Background()
	for i := range 105 {
		tk := &latchkey.Ticket{Email: fmt.Sprintf("u%d@example.com", i), Type: "other", Subject: "Other", TrackingHash: []byte(fmt.Sprintf("h%03d", i))}
		if err := f.db.CreateTicket(ctx, tk, &latchkey.TicketMessage{Author: latchkey.AuthorRequester, Body: "help"}, latchkey.TicketLimit{}); err != nil {
			t.Fatal(err)
		}
	}
	agent := f.signedIn(t, "sam")
	rows := regexp.MustCompile(`<a href="/admin/tickets/(\d+)">`)
	r := agent.do("GET", "/admin/tickets", "", "")
	first := rows.FindAllStringSubmatch(r.raw, -1)
	if r.code != 200 || len(first) != 100 || first[0][1] != "1105" || !strings.Contains(r.raw, "page 1 of 2") || !strings.Contains(r.raw, `id="next-page"`) {
		t.Fatalf("first page: %d, %d rows", r.code, len(first))
	}
	next := regexp.MustCompile(`id="next-page" href="([^"]+)"`).FindStringSubmatch(r.raw)
	r = agent.do("GET", html.UnescapeString(next[1]), "", "")
	second := rows.FindAllStringSubmatch(r.raw, -1)
	if r.code != 200 || len(second) != 5 || second[4][1] != "1001" || !strings.Contains(r.raw, `id="prev-page"`) {
		t.Errorf("second page: %d, %d rows", r.code, len(second))
	}
	r = agent.do("GET", "/admin/tickets?sort=oldest", "", "")
	if oldest := rows.FindAllStringSubmatch(r.raw, -1); len(oldest) != 100 || oldest[0][1] != "1001" {
		t.Errorf("oldest first: %d rows", len(oldest))
	}
	for _, q := range []string{"page=0", "page=x", "sort=random"} {
		if r := agent.do("GET", "/admin/tickets?"+q, "", ""); r.code != 400 {
			t.Errorf("?%s: %d, want 400", q, r.code)
		}
	}
}
