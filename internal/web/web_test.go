package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/audit"
	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/mail"
	"github.com/latchkey/latchkey/internal/password"
	"github.com/latchkey/latchkey/internal/push"
	"github.com/latchkey/latchkey/internal/sqlstore"
	"github.com/latchkey/latchkey/internal/totp"
	"github.com/latchkey/latchkey/internal/web"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// recMailer keeps the messages sent.
type recMailer struct {
	mu   sync.Mutex
	msgs []mail.Message
}

func (m *recMailer) Send(_ context.Context, msg mail.Message) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.msgs = append(m.msgs, msg)
	return nil
}

// subjects returns the subjects of the mails sent to to.
func (m *recMailer) subjects(to string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, msg := range m.msgs {
		if msg.To == to {
			out = append(out, msg.Subject)
		}
	}
	return out
}

type fixture struct {
	srv   *httptest.Server
	db    *sqlstore.DB
	svc   *login.Service
	push  *push.Service
	mails *recMailer
	clock *clock
}

const pw = "correct horse battery staple"

func newFixture(tb testing.TB, public string) *fixture { return newFixtureLog(tb, public, io.Discard) }

func newFixtureLog(tb testing.TB, public string, logw io.Writer) *fixture {
	tb.Helper()
	return newFixtureStore(tb, public, logw, nil)
}

// newFixtureStore is newFixtureLog with the sign-in service's store wrapped by wrap (when not
// nil), for tests that count what the service reads, and the handler's options changed by
// tune.
func newFixtureStore(tb testing.TB, public string, logw io.Writer, wrap func(*sqlstore.DB) login.Store, tune ...func(*web.Options)) *fixture {
	tb.Helper()
	ctx := context.Background()
	c := &clock{t: time.Now().UTC()}
	db, err := sqlstore.Open(ctx, filepath.Join(tb.TempDir(), "web.db"), sqlstore.Options{SecretsKey: make([]byte, 32), Now: c.Now})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	srv := httptest.NewUnstartedServer(nil)
	if public == "" {
		public = "http://" + srv.Listener.Addr().String()
	}
	pu, _ := url.Parse(public)
	mails := &recMailer{}
	rec := audit.New(db, nil, c.Now)
	pusher := push.New(push.Options{Store: db, Mailer: mails, Audit: rec, Hub: push.NewHub(), Now: c.Now, Key: bytes.Repeat([]byte{9}, 32), PublicURL: strings.TrimSuffix(pu.String(), "/")})
	var store login.Store = db
	if wrap != nil {
		store = wrap(db)
	}
	svc := login.New(login.Options{
		Store:      store,
		Hasher:     password.New(password.Options{Params: password.Params{Memory: 1024, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}}),
		Mailer:     mails,
		Audit:      rec,
		Now:        c.Now,
		SessionKey: bytes.Repeat([]byte{7}, 32),
		Pusher:     pusher,
		PublicURL:  strings.TrimSuffix(pu.String(), "/"), // security keys on for a host name, off for an IP
	})
	opt := web.Options{Login: svc, Push: pusher, DB: db, PublicURL: pu, Now: c.Now, MaxBody: 4096, Logger: slog.New(slog.NewTextHandler(logw, nil))}
	for _, f := range tune {
		f(&opt)
	}
	h := web.New(opt)
	srv.Config.Handler = h
	srv.Start()
	tb.Cleanup(srv.Close)
	tb.Cleanup(h.Shutdown)
	if _, err := svc.CreateUser(ctx, login.Client{}, login.NewUser{Username: "alice", Email: "alice@example.com", Password: pw}); err != nil {
		tb.Fatal(err)
	}
	return &fixture{srv: srv, db: db, svc: svc, push: pusher, mails: mails, clock: c}
}

// apiClient is a cookie-keeping JSON client, like a same-origin browser script.
type apiClient struct {
	tb   testing.TB
	base string
	hc   *http.Client
}

func (f *fixture) client(tb testing.TB) *apiClient {
	jar, _ := cookiejar.New(nil)
	return &apiClient{tb: tb, base: f.srv.URL, hc: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type response struct {
	code   int
	header http.Header
	body   map[string]any
	raw    string
}

func (r response) errCode() string {
	e, _ := r.body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func (c *apiClient) do(method, path, contentType, body string) response {
	c.tb.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.tb.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.tb.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return response{code: resp.StatusCode, header: resp.Header, body: m, raw: string(raw)}
}

func (c *apiClient) post(path string, v any) response {
	c.tb.Helper()
	b, _ := json.Marshal(v)
	return c.do("POST", path, "application/json", string(b))
}

func (c *apiClient) sessionCookie() *http.Cookie {
	u, _ := url.Parse(c.base)
	for _, ck := range c.hc.Jar.Cookies(u) {
		if strings.Contains(ck.Name, "latchkey_session") {
			return ck
		}
	}
	return nil
}

func TestAPISignInWithTOTP(t *testing.T) {
	f := newFixture(t, "")
	c := f.client(t)
	if r := c.do("GET", "/api/v1/session", "", ""); r.code != 401 || r.errCode() != "unauthenticated" {
		t.Fatalf("session before sign-in: %d %s", r.code, r.raw)
	}
	r := c.post("/api/v1/login", map[string]string{"username": "alice", "password": pw})
	if r.code != 200 || r.body["state"] != "authenticated" {
		t.Fatalf("login: %d %s", r.code, r.raw)
	}
	r = c.post("/api/v1/account/totp", nil)
	if r.code != 200 {
		t.Fatalf("begin totp: %d %s", r.code, r.raw)
	}
	uri, _ := r.body["otpauth_uri"].(string)
	if !strings.HasPrefix(uri, "otpauth://totp/Latchkey:alice?") || !strings.HasPrefix(r.body["qr_png"].(string), "data:image/png;base64,") {
		t.Fatalf("begin totp body: %s", r.raw)
	}
	key, err := totp.ParseURI(uri)
	if err != nil {
		t.Fatal(err)
	}
	step := totp.Step(f.clock.Now())
	r = c.post("/api/v1/account/totp/confirm", map[string]string{"code": totp.Code(key.Secret, step)})
	if r.code != 200 || r.body["enabled"] != true || len(r.body["recovery_codes"].([]any)) != 10 {
		t.Fatalf("confirm: %d %s", r.code, r.raw)
	}
	if r := c.post("/api/v1/logout", nil); r.code != 200 {
		t.Fatalf("logout: %d %s", r.code, r.raw)
	}
	r = c.post("/api/v1/login", map[string]string{"username": "alice", "password": pw})
	if r.code != 200 || r.body["state"] != "second_factor" {
		t.Fatalf("login with totp: %d %s", r.code, r.raw)
	}
	if m := r.body["methods"].([]any); len(m) != 2 || m[0] != "totp" || m[1] != "recovery" {
		t.Errorf("methods = %v", m)
	}
	if r := c.do("GET", "/api/v1/session", "", ""); r.code != 401 {
		t.Fatalf("session between steps: %d", r.code)
	}
	if r := c.post("/api/v1/login/totp", map[string]string{"code": totp.Code(key.Secret, step)}); r.code != 401 || r.errCode() != "invalid_code" {
		t.Fatalf("replayed code: %d %s", r.code, r.raw)
	}
	r = c.post("/api/v1/login/totp", map[string]string{"code": totp.Code(key.Secret, step+1)})
	if r.code != 200 || r.body["state"] != "authenticated" {
		t.Fatalf("login/totp: %d %s", r.code, r.raw)
	}
	r = c.do("GET", "/api/v1/session", "", "")
	if r.code != 200 || r.body["mfa"] != true {
		t.Fatalf("session: %d %s", r.code, r.raw)
	}
	if user := r.body["user"].(map[string]any); user["username"] != "alice" {
		t.Errorf("session user = %v", user)
	}
	r = c.do("DELETE", "/api/v1/account/totp", "application/json", `{"password":"wrong"}`)
	if r.code != 401 || r.errCode() != "invalid_credentials" {
		t.Fatalf("disable with wrong password: %d %s", r.code, r.raw)
	}
	r = c.do("DELETE", "/api/v1/account/totp", "application/json", `{"password":"`+pw+`"}`)
	if r.code != 200 || r.body["enabled"] != false {
		t.Fatalf("disable: %d %s", r.code, r.raw)
	}
}

func TestBadInput(t *testing.T) {
	f := newFixture(t, "")
	c := f.client(t)
	tests := []struct {
		name, path, ctype, body string
		code                    int
		errCode, msg            string
	}{
		{"malformed JSON", "/api/v1/login", "application/json", `{"username":`, 400, "invalid_request", "not valid JSON"},
		{"syntax error", "/api/v1/login", "application/json", `{username:"a"}`, 400, "invalid_request", "not valid JSON"},
		{"empty body", "/api/v1/login", "application/json", ``, 400, "invalid_request", "empty"},
		{"not an object", "/api/v1/login", "application/json", `[1,2]`, 400, "invalid_request", "JSON object"},
		{"wrong type", "/api/v1/login", "application/json", `{"username":42,"password":"x"}`, 400, "invalid_request", `"username" must be a string`},
		{"unknown field", "/api/v1/login", "application/json", `{"username":"a","password":"b","admin":true}`, 400, "invalid_request", `"admin" is not known`},
		{"wrong type, number", "/api/v1/login/push", "application/json", `{"device_id":"1"}`, 400, "invalid_request", `"device_id" must be a whole number`},
		{"field twice", "/api/v1/login", "application/json", `{"username":"a","password":"b","username":"c"}`, 400, "invalid_request", `"username" appears more than once`},
		{"field twice, another case", "/api/v1/login", "application/json", `{"username":"a","password":"b","USERNAME":"c"}`, 400, "invalid_request", `"USERNAME" appears more than once`},
		{"field twice, escaped", "/api/v1/login", "application/json", `{"username":"a","password":"b","user\u006eame":"c"}`, 400, "invalid_request", `"username" appears more than once`},
		{"trailing data", "/api/v1/login", "application/json", `{"username":"a","password":"b"} {}`, 400, "invalid_request", "single JSON object"},
		{"empty fields", "/api/v1/login", "application/json", `{"username":"","password":""}`, 400, "invalid_request", `"username", "password"`},
		{"form instead of JSON", "/api/v1/login", "application/x-www-form-urlencoded", `username=a&password=b`, 415, "unsupported_media_type", "application/json"},
		{"oversize", "/api/v1/login", "application/json", `{"username":"` + strings.Repeat("a", 5000) + `","password":"x"}`, 413, "payload_too_large", "too large"},
		{"non-digit code", "/api/v1/login/totp", "application/json", `{"code":"12a456"}`, 401, "flow_expired", ""},
		{"unknown endpoint", "/api/v1/nope", "application/json", `{}`, 404, "not_found", "/api/v1/nope"},
		// Signed out, an account endpoint says so before anything about the body.
		{"reauthenticate signed out, form", "/api/v1/account/reauthenticate", "application/x-www-form-urlencoded", `password=x`, 401, "unauthenticated", ""},
		{"reauthenticate signed out, empty", "/api/v1/account/reauthenticate", "application/json", `{}`, 401, "unauthenticated", ""},
		{"password signed out, malformed", "/api/v1/account/password", "application/json", `{"current_password":`, 401, "unauthenticated", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.do("POST", tt.path, tt.ctype, tt.body)
			if r.code != tt.code || r.errCode() != tt.errCode {
				t.Fatalf("POST %s %s = %d %s, want %d %s", tt.path, tt.body, r.code, r.raw, tt.code, tt.errCode)
			}
			msg, _ := r.body["error"].(map[string]any)["message"].(string)
			if !strings.Contains(msg, tt.msg) {
				t.Errorf("message %q does not mention %q", msg, tt.msg)
			}
		})
	}
	// None of it changed anything: no session, no throttle counted.
	if ck := c.sessionCookie(); ck != nil {
		t.Errorf("bad input set a session cookie")
	}
	if th, _ := f.db.FindThrottle(context.Background(), "user:a"); th.Failures != 0 {
		t.Errorf("bad input counted %d failures", th.Failures)
	}
}

// TestFormFieldTwice: a page's form with a field given twice, in the body or in the query, is
// refused with the field's name and signs no one in, whichever value a reader would take; a
// multipart body is refused; the one field meant to repeat (the desk's checklist, tested in
// TestDeskActions) still does.
func TestFormFieldTwice(t *testing.T) {
	f := newSupportFixture(t, io.Discard)
	c := f.client(t)
	const form = "application/x-www-form-urlencoded"
	tests := []struct {
		name, path, ctype, body string
		code                    int
		msg                     string
	}{
		{"username twice", "/login", form, "username=nobody&password=x&username=alice", 400, "&#34;username&#34; more than once"},
		{"password twice", "/login", form, "username=alice&password=wrong&password=" + url.QueryEscape(pw), 400, "&#34;password&#34; more than once"},
		{"next twice in the query", "/login?next=/a&next=/b", form, "username=alice&password=" + url.QueryEscape(pw), 400, "&#34;next&#34; more than once"},
		{"ticket field twice", "/support/new", form, "email=a%40example.com&type=other&message=hi&email=b%40example.com", 400, "&#34;email&#34; more than once"},
		{"multipart", "/login", "multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nalice\r\n--x--\r\n", 415, "application/x-www-form-urlencoded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.do("POST", tt.path, tt.ctype, tt.body)
			if r.code != tt.code || !strings.Contains(r.raw, tt.msg) {
				t.Fatalf("POST %s %q = %d, want %d with %q:\n%.2000s", tt.path, tt.body, r.code, tt.code, tt.msg, r.raw)
			}
		})
	}
	if ck := c.sessionCookie(); ck != nil {
		t.Errorf("a form with a field twice set a session cookie")
	}
	for _, k := range []string{"user:alice", "user:nobody"} {
		if th, _ := f.db.FindThrottle(context.Background(), k); th.Failures != 0 {
			t.Errorf("%s: a refused form counted %d failures", k, th.Failures)
		}
	}
	if _, n, err := f.db.FindTickets(context.Background(), latchkey.TicketFilter{}); err != nil || n != 0 {
		t.Errorf("a refused ticket form opened %d tickets (%v)", n, err)
	}
	// The same forms, each field once, do what they say.
	if r := c.do("POST", "/login?next=/a", form, "username=alice&password="+url.QueryEscape(pw)); r.code != 303 || c.sessionCookie() == nil {
		t.Fatalf("the sign-in form, each field once: %d %.500s", r.code, r.raw)
	}
}

// TestMethodNotAllowed: an API path that exists, asked with another method, answers 405 in
// JSON with the methods it takes in Allow and in the message; a path that does not exist
// answers 404, whatever the method.
func TestMethodNotAllowed(t *testing.T) {
	f := newFixture(t, "")
	c := f.client(t)
	tests := []struct{ method, path, allow, use string }{
		{"PUT", "/api/v1/login", "POST", "use POST."},
		{"GET", "/api/v1/login/totp", "POST", "use POST."},
		{"POST", "/api/v1/session", "GET, HEAD", "use GET."},
		{"PATCH", "/api/v1/account/totp", "POST, DELETE", "use POST or DELETE."},
		{"GET", "/api/v1/login/push/abc", "", ""},
	}
	for _, tt := range tests {
		r := c.do(tt.method, tt.path, "application/json", `{}`)
		if tt.allow == "" {
			// GET /api/v1/login/push/{id} is a route: not a 405, whatever it answers.
			if r.code == 405 || r.code == 404 && r.errCode() == "not_found" && strings.Contains(r.raw, "no API endpoint") {
				t.Errorf("%s %s = %d %s, want its route's answer", tt.method, tt.path, r.code, r.raw)
			}
			continue
		}
		msg, _ := r.body["error"].(map[string]any)["message"].(string)
		if r.code != 405 || r.errCode() != "method_not_allowed" || r.header.Get("Allow") != tt.allow || !strings.HasSuffix(msg, tt.use) {
			t.Errorf("%s %s = %d Allow %q %s, want 405 method_not_allowed, Allow %q, a message ending %q", tt.method, tt.path, r.code, r.header.Get("Allow"), r.raw, tt.allow, tt.use)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: Content-Type %q", tt.method, tt.path, ct)
		}
	}
	for _, m := range []string{"GET", "POST", "PUT", "DELETE"} {
		if r := c.do(m, "/api/v1/nope", "application/json", `{}`); r.code != 404 || r.errCode() != "not_found" || r.header.Get("Allow") != "" {
			t.Errorf("%s /api/v1/nope = %d Allow %q %s, want 404 not_found", m, r.code, r.header.Get("Allow"), r.raw)
		}
	}
}

func TestCodeValidationInSecondStep(t *testing.T) {
	f := newFixture(t, "")
	c := f.client(t)
	c.post("/api/v1/login", map[string]string{"username": "alice", "password": pw})
	c.post("/api/v1/account/totp", nil)
	// A signed-in session with a pending enrolment: non-digit codes are refused clearly.
	for _, bad := range []string{"12a456", "１２３４５６", "1234567", " "} {
		r := c.post("/api/v1/account/totp/confirm", map[string]string{"code": bad})
		if r.code != 400 || r.errCode() != "invalid_request" {
			t.Errorf("confirm(%q) = %d %s, want 400 invalid_request", bad, r.code, r.raw)
		}
	}
	if st, _ := f.svc.Status(context.Background(), mustUser(t, f)); st.TOTPEnabled {
		t.Error("bad codes enabled TOTP")
	}
}

func mustUser(t *testing.T, f *fixture) *latchkey.User {
	u, err := f.db.FindUserByUsername(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestThrottledAnswersRetryAfter(t *testing.T) {
	f := newFixture(t, "")
	c := f.client(t)
	var r response
	for range 7 {
		r = c.post("/api/v1/login", map[string]string{"username": "alice", "password": "wrong"})
	}
	if r.code != 429 || r.errCode() != "throttled" {
		t.Fatalf("after 7 failures: %d %s", r.code, r.raw)
	}
	if ra := r.header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("Retry-After = %q", ra)
	}
	// The HTML form answers the same way, with the message on the page.
	r = c.do("POST", "/login", "application/x-www-form-urlencoded", url.Values{"username": {"alice"}, "password": {pw}}.Encode())
	if r.code != 429 || r.header.Get("Retry-After") == "" || !strings.Contains(r.raw, "Too many attempts") {
		t.Errorf("HTML login while throttled: %d Retry-After %q", r.code, r.header.Get("Retry-After"))
	}
}

func TestCrossSiteRefused(t *testing.T) {
	f := newFixture(t, "")
	c := f.client(t)
	c.post("/api/v1/login", map[string]string{"username": "alice", "password": pw})
	for _, tt := range []struct {
		name   string
		header map[string]string
	}{
		{"sec-fetch-site cross-site", map[string]string{"Sec-Fetch-Site": "cross-site"}},
		{"foreign origin", map[string]string{"Origin": "https://evil.example"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, path := range []string{"/api/v1/account/totp", "/api/v1/logout", "/logout", "/settings/security/totp"} {
				req, _ := http.NewRequest("POST", f.srv.URL+path, strings.NewReader("{}"))
				req.Header.Set("Content-Type", "application/json")
				for k, v := range tt.header {
					req.Header.Set(k, v)
				}
				resp, err := c.hc.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 403 {
					t.Errorf("cross-site POST %s = %d, want 403", path, resp.StatusCode)
				}
			}
		})
	}
	// Nothing happened: still signed in, no enrolment started.
	if r := c.do("GET", "/api/v1/session", "", ""); r.code != 200 {
		t.Errorf("session after refused cross-site requests: %d", r.code)
	}
	creds, _ := f.db.FindTOTPCredentials(context.Background(), mustUser(t, f).ID)
	if len(creds) != 0 {
		t.Errorf("a cross-site request created %d TOTP credentials", len(creds))
	}
	// Same-origin requests from a browser pass.
	req, _ := http.NewRequest("POST", f.srv.URL+"/api/v1/account/totp", nil)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("same-origin POST = %d, want 200", resp.StatusCode)
	}
}

func TestCookieFlags(t *testing.T) {
	for _, tt := range []struct {
		public, name string
		secure       bool
	}{
		{"", "latchkey_session", false},
		{"https://login.example.com", "__Host-latchkey_session", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.public)
			c := f.client(t)
			r := c.post("/api/v1/login", map[string]string{"username": "alice", "password": pw})
			resp := &http.Response{Header: r.header}
			cookies := resp.Cookies()
			if len(cookies) != 1 {
				t.Fatalf("cookies = %v", cookies)
			}
			ck := cookies[0]
			if ck.Name != tt.name || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Secure != tt.secure || ck.Path != "/" {
				t.Errorf("cookie = %+v, want name %s HttpOnly SameSite=Lax Secure=%v Path=/", ck, tt.name, tt.secure)
			}
			if len(ck.Value) < 43 { // 256 bits in base64url
				t.Errorf("session token has %d characters, want ≥ 43", len(ck.Value))
			}
		})
	}
}

func TestHealthAndMetrics(t *testing.T) {
	f := newFixture(t, "")
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready", "/metrics": "latchkey_http_requests_total"} {
		f.client(t).do("GET", "/healthz", "", "")
		resp, err := http.Get(f.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("GET %s = %d %q, want 200 containing %q", path, resp.StatusCode, b, want)
		}
	}
	f.db.Close()
	resp, err := http.Get(f.srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Errorf("readyz with the database closed = %d, want 503", resp.StatusCode)
	}
}

// TestMetricsUnmatchedRoutes: requests that no route takes (a page or an API path) count
// under one label, "unmatched", and never under the path asked for: a scan of random paths
// must not make the metrics grow, nor read as requests of the home page.
func TestMetricsUnmatchedRoutes(t *testing.T) {
	f := newFixture(t, "")
	c := f.client(t)
	for _, p := range []string{"/no-such-page", "/api/v1/no-such-endpoint", "/settings/nothing"} {
		c.do("GET", p, "", "")
	}
	c.do("GET", "/", "", "")
	resp, err := http.Get(f.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := string(b)
	if !strings.Contains(m, `latchkey_http_requests_total{code="404",route="unmatched"} 3`) {
		t.Errorf("metrics lack 3 unmatched 404s:\n%s", grepLines(m, "latchkey_http_requests_total"))
	}
	for _, bad := range []string{`route="/",code="404"`, `code="404",route="/"`, `code="404",route="/api/"`, "no-such"} {
		if strings.Contains(m, bad) {
			t.Errorf("metrics contain %s:\n%s", bad, grepLines(m, "latchkey_http_requests_total"))
		}
	}
	if !strings.Contains(m, `latchkey_http_requests_total{code="303",route="GET /{$}"} 1`) {
		t.Errorf("the home page's redirect is not counted under its own route:\n%s", grepLines(m, "latchkey_http_requests_total"))
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestOpenRedirectRefused(t *testing.T) {
	f := newFixture(t, "")
	c := f.client(t)
	for _, next := range []string{"https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"} {
		form := url.Values{"username": {"alice"}, "password": {pw}, "next": {next}}
		r := c.do("POST", "/login", "application/x-www-form-urlencoded", form.Encode())
		if r.code != 303 || r.header.Get("Location") != "/settings/security" {
			t.Errorf("next=%q: %d Location %q, want 303 /settings/security", next, r.code, r.header.Get("Location"))
		}
	}
	form := url.Values{"username": {"alice"}, "password": {pw}, "next": {"/settings/account"}}
	if r := c.do("POST", "/login", "application/x-www-form-urlencoded", form.Encode()); r.header.Get("Location") != "/settings/account" {
		t.Errorf("local next: Location %q", r.header.Get("Location"))
	}
}

func TestNoSecretsInAccessLog(t *testing.T) {
	// One access line per request; the setup token travels in a query string, which is never
	// logged, and neither are passwords, codes or session cookies.
	var buf syncBuffer
	f := newFixtureLog(t, "", &buf)
	c := f.client(t)
	if r := c.do("GET", "/setup?token=SECRET-TOKEN-VALUE", "", ""); r.code != 404 {
		t.Errorf("setup with a forged token = %d, want 404", r.code)
	}
	c.post("/api/v1/login", map[string]string{"username": "alice", "password": pw})
	c.post("/api/v1/login/totp", map[string]string{"code": "654321"})
	c.do("GET", "/api/v1/session", "", "")
	log := buf.String()
	if n := strings.Count(log, "msg=\"http request\""); n != 4 {
		t.Errorf("%d access lines for 4 requests:\n%s", n, log)
	}
	if !strings.Contains(log, "path=/setup ") || !strings.Contains(log, "status=404") {
		t.Errorf("access log lacks the setup request:\n%s", log)
	}
	secrets := []string{"SECRET-TOKEN-VALUE", pw, "654321"}
	if ck := c.sessionCookie(); ck != nil {
		secrets = append(secrets, ck.Value)
	}
	for _, s := range secrets {
		if strings.Contains(log, s) {
			t.Errorf("the log contains the secret %q:\n%s", s, log)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}
func (b *syncBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.b.String() }

// BenchmarkSignInPasswordTOTP measures a full password + TOTP sign-in through the HTTP
// handler and a real SQLite store: two requests, throttle checks, session rotation, the
// replay guard and the audit entries. The fixture's hasher uses 1 MiB argon2id parameters,
// so this measures everything except the deliberate hashing cost, which BenchmarkHash in
// internal/password measures with the production parameters.
func BenchmarkSignInPasswordTOTP(b *testing.B) {
	f := newFixture(b, "")
	ctx := context.Background()
	u := mustUserB(b, f)
	res, err := f.svc.Login(ctx, login.Client{}, "", "alice", pw)
	if err != nil {
		b.Fatal(err)
	}
	en, err := f.svc.BeginTOTP(ctx, login.Client{}, res.Session, u)
	if err != nil {
		b.Fatal(err)
	}
	secret, _ := totp.Decode(en.Secret)
	if _, err := f.svc.ConfirmTOTP(ctx, login.Client{}, res.Session, u, totp.Code(secret, totp.Step(f.clock.Now()))); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		f.clock.Add(30 * time.Second) // a new code each time: the replay guard is real
		c := f.client(b)
		if r := c.post("/api/v1/login", map[string]string{"username": "alice", "password": pw}); r.code != 200 {
			b.Fatalf("login: %d %s", r.code, r.raw)
		}
		if r := c.post("/api/v1/login/totp", map[string]string{"code": totp.Code(secret, totp.Step(f.clock.Now()))}); r.code != 200 {
			b.Fatalf("totp: %d %s", r.code, r.raw)
		}
	}
}

func mustUserB(b *testing.B, f *fixture) *latchkey.User {
	u, err := f.db.FindUserByUsername(context.Background(), "alice")
	if err != nil {
		b.Fatal(err)
	}
	return u
}

// TestReauthenticationContinues: a stale session that starts enrolling is sent to confirm
// its password and then back to the enrolment page, where it continues.
func TestReauthenticationContinues(t *testing.T) {
	f := newFixture(t, "")
	c := f.client(t)
	form := func(path string, v url.Values) response {
		return c.do("POST", path, "application/x-www-form-urlencoded", v.Encode())
	}
	if r := form("/login", url.Values{"username": {"alice"}, "password": {pw}}); r.code != 303 {
		t.Fatalf("login: %d", r.code)
	}
	f.clock.Add(11 * time.Minute)
	r := form("/settings/security/totp", nil)
	if r.code != 303 || r.header.Get("Location") != "/reauth?next=%2Fsettings%2Fsecurity%2Ftotp" {
		t.Fatalf("stale start: %d Location %q", r.code, r.header.Get("Location"))
	}
	if creds, _ := f.db.FindTOTPCredentials(context.Background(), mustUser(t, f).ID); len(creds) != 0 {
		t.Fatal("a stale session started an enrolment")
	}
	if r := c.do("GET", "/settings/security/totp", "", ""); !strings.Contains(r.raw, `action="/settings/security/totp"`) || strings.Contains(r.raw, `id="qr"`) {
		t.Errorf("the enrolment page shows a secret to a stale session")
	}
	if r := form("/reauth", url.Values{"password": {"wrong"}, "next": {"/settings/security/totp"}}); r.code != 401 || !strings.Contains(r.raw, "The password is incorrect.") {
		t.Errorf("reauth with a wrong password: %d", r.code)
	}
	r = form("/reauth", url.Values{"password": {pw}, "next": {"/settings/security/totp"}})
	if r.code != 303 || r.header.Get("Location") != "/settings/security/totp" {
		t.Fatalf("reauth: %d Location %q", r.code, r.header.Get("Location"))
	}
	if r := form("/settings/security/totp", nil); r.code != 303 || r.header.Get("Location") != "/settings/security/totp" {
		t.Fatalf("start after reauth: %d %q", r.code, r.header.Get("Location"))
	}
	if r := c.do("GET", "/settings/security/totp", "", ""); !strings.Contains(r.raw, `id="qr"`) {
		t.Error("no QR code after re-authentication")
	}
}
