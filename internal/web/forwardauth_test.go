package web_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/latchkey/latchkey/internal/forwardauth"
	"github.com/latchkey/latchkey/internal/totp"
	"github.com/latchkey/latchkey/internal/web"
)

var gateRules = []forwardauth.Rule{
	{Hosts: []string{"status.example.com"}, Policy: forwardauth.Bypass},
	{Hosts: []string{"secret.example.com"}, Policy: forwardauth.Deny},
	{Hosts: []string{"ops.example.com"}, Groups: []string{"admin"}, Policy: forwardauth.MFA},
	{Hosts: []string{"ops.example.com"}, Policy: forwardauth.Deny},
	{Hosts: []string{"wiki.example.com"}, Policy: forwardauth.Password},
}

// gate serves the forward-auth endpoint with gateRules on the fixture's services.
func gate(t testing.TB, f *fixture) *httptest.Server {
	t.Helper()
	rules, err := forwardauth.Compile(gateRules, forwardauth.MFA)
	if err != nil {
		t.Fatal(err)
	}
	pu, _ := url.Parse(f.srv.URL)
	srv := httptest.NewServer(web.New(web.Options{Login: f.svc, Push: f.push, DB: f.db, PublicURL: pu, Now: f.clock.Now, ForwardAuth: rules}))
	t.Cleanup(srv.Close)
	return srv
}

type gateAnswer struct {
	code                int
	user, email, groups string
	location            string
}

func ask(t testing.TB, srv *httptest.Server, cookie *http.Cookie, headers map[string]string) gateAnswer {
	t.Helper()
	return askAt(t, srv, "", cookie, headers)
}

// askAt asks the gate at path; "" picks the endpoint of the headers: /auth/nginx for
// X-Original-URL, /auth/forward for X-Forwarded-*.
func askAt(t testing.TB, srv *httptest.Server, path string, cookie *http.Cookie, headers map[string]string) gateAnswer {
	t.Helper()
	if path == "" {
		path = "/auth/forward"
		if _, ok := headers["X-Original-URL"]; ok {
			path = "/auth/nginx"
		}
	}
	req, _ := http.NewRequest("GET", srv.URL+path, nil)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return gateAnswer{resp.StatusCode, resp.Header.Get("Remote-User"), resp.Header.Get("Remote-Email"), resp.Header.Get("Remote-Groups"), resp.Header.Get("Location")}
}

func nginx(u string) map[string]string { return map[string]string{"X-Original-URL": u} }

// TestForwardAuth: the gate's answers for anonymous, password-only and MFA sessions, the
// nginx way (401) and the Traefik way (302), bypass, deny and a group rule.
func TestForwardAuth(t *testing.T) {
	f := newFixture(t, "")
	srv := gate(t, f)
	c := f.client(t)

	if a := ask(t, srv, nil, nil); a.code != 400 {
		t.Errorf("no original URL: %d", a.code)
	}
	if a := askAt(t, srv, "/auth/nginx", nil, nil); a.code != 400 {
		t.Errorf("no original URL, nginx: %d", a.code)
	}
	if a := ask(t, srv, nil, nginx("https://status.example.com/")); a.code != 200 || a.user != "" {
		t.Errorf("bypass: %+v", a)
	}
	if a := ask(t, srv, nil, nginx("https://secret.example.com/")); a.code != 403 {
		t.Errorf("deny: %+v", a)
	}
	if a := ask(t, srv, nil, nginx("https://app.example.com/x")); a.code != 401 || a.location != f.srv.URL+"/login" {
		t.Errorf("anonymous, nginx: %+v", a)
	}
	traefik := map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "app.example.com", "X-Forwarded-Uri": "/x"}
	if a := ask(t, srv, nil, traefik); a.code != 302 || a.location != f.srv.URL+"/login" {
		t.Errorf("anonymous, traefik: %+v", a)
	}
	if a := ask(t, srv, nil, nginx("https://ops.example.com/")); a.code != 401 {
		t.Errorf("anonymous on a group rule: %+v", a)
	}

	// Password only (alice has no second factor; MFA is optional).
	if r := c.post("/api/v1/login", map[string]string{"username": "alice", "password": pw}); r.body["state"] != "authenticated" {
		t.Fatalf("login: %s", r.raw)
	}
	if a := ask(t, srv, c.sessionCookie(), nginx("https://wiki.example.com/page")); a.code != 200 || a.user != "alice" || a.email != "alice@example.com" || a.groups != "user" {
		t.Errorf("password rule, signed in: %+v", a)
	}
	if a := ask(t, srv, c.sessionCookie(), nginx("https://app.example.com/")); a.code != 403 || a.user != "" {
		t.Errorf("MFA rule, password only: %+v", a)
	}
	if a := ask(t, srv, c.sessionCookie(), nginx("https://ops.example.com/")); a.code != 403 {
		t.Errorf("a group rule for admins, a user: %+v", a)
	}

	// With a second factor.
	secret := f.enrolTOTP(t, c)
	step := totp.Step(f.clock.Now())
	c.post("/api/v1/logout", nil)
	c.post("/api/v1/login", map[string]string{"username": "alice", "password": pw})
	if r := c.post("/api/v1/login/totp", map[string]string{"code": totp.Code(secret, step+1)}); r.body["state"] != "authenticated" {
		t.Fatalf("totp: %s", r.raw)
	}
	if a := ask(t, srv, c.sessionCookie(), nginx("https://app.example.com/")); a.code != 200 || a.user != "alice" {
		t.Errorf("MFA rule with MFA: %+v", a)
	}
	if a := ask(t, srv, c.sessionCookie(), traefik); a.code != 200 || a.user != "alice" {
		t.Errorf("MFA rule with MFA, traefik: %+v", a)
	}
	c.post("/api/v1/logout", nil)
	if a := ask(t, srv, c.sessionCookie(), nginx("https://app.example.com/")); a.code != 401 {
		t.Errorf("after logout: %+v", a)
	}
}

// TestForwardAuthJudgesTheAddressAsTheApplicationWill: each endpoint reads only its proxy's
// headers (a client's X-Original-URL through Traefik, or X-Forwarded-Host through nginx,
// changes nothing); the host is judged in canonical form (case, port, trailing dot), and an
// address a proxy and its application could read otherwise (user information, dot segments,
// "//", backslashes) is refused with 400.
func TestForwardAuthJudgesTheAddressAsTheApplicationWill(t *testing.T) {
	f := newFixture(t, "")
	srv := gate(t, f)
	c := f.client(t)
	if r := c.post("/api/v1/login", map[string]string{"username": "alice", "password": pw}); r.body["state"] != "authenticated" {
		t.Fatalf("login: %s", r.raw)
	}
	alice := c.sessionCookie()
	fwd := func(host, uri string) map[string]string {
		return map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": host, "X-Forwarded-Uri": uri}
	}
	// The client adds the other proxy's header: it is not read.
	traefik := fwd("secret.example.com", "/")
	traefik["X-Original-URL"] = "https://status.example.com/"
	if a := askAt(t, srv, "/auth/forward", nil, traefik); a.code != 403 {
		t.Errorf("X-Original-URL through Traefik naming a bypass host: %d, want 403 (the deny host)", a.code)
	}
	ngx := nginx("https://secret.example.com/")
	ngx["X-Forwarded-Host"] = "status.example.com"
	if a := askAt(t, srv, "/auth/nginx", nil, ngx); a.code != 403 {
		t.Errorf("X-Forwarded-Host through nginx naming a bypass host: %d, want 403", a.code)
	}
	// The host in canonical form.
	for _, u := range []string{"https://secret.example.com./", "https://SECRET.Example.COM:8443/", "https://secret.example.com.:443/x"} {
		if a := ask(t, srv, alice, nginx(u)); a.code != 403 {
			t.Errorf("%s: %d, want 403 (the deny host)", u, a.code)
		}
	}
	if a := ask(t, srv, alice, fwd("secret.example.com.", "/")); a.code != 403 {
		t.Errorf("X-Forwarded-Host with a trailing dot: %d, want 403", a.code)
	}
	// Addresses refused outright, signed in or not.
	for _, u := range []string{
		"https://secret.example.com@status.example.com/",
		"https://status.example.com/../x",
		"https://wiki.example.com/public/../secret",
		"https://wiki.example.com/public/%2e%2e/secret",
		"https://wiki.example.com/public/..;/secret",
		"https://wiki.example.com//secret",
		"https://wiki.example.com/./secret",
		"https://wiki.example.com/a\\b",
		"https://wiki.example.com/public%2F..%2Fsecret",
		"https://status..example.com/",
		"https://status.example.com%00/",
	} {
		for _, cookie := range []*http.Cookie{nil, alice} {
			if a := ask(t, srv, cookie, nginx(u)); a.code != 400 || a.user != "" {
				t.Errorf("%s (signed in %v): %+v, want 400", u, cookie != nil, a)
			}
		}
	}
	if a := ask(t, srv, nil, fwd("status.example.com", "/public/../admin")); a.code != 400 {
		t.Errorf("X-Forwarded-Uri with dot segments: %d, want 400", a.code)
	}
	// What browsers send still works: a dot inside a name, ";" parameters, an encoded slash.
	for _, u := range []string{"https://wiki.example.com/docs/v1.2/..hidden", "https://wiki.example.com/a;jsessionid=1/b", "https://wiki.example.com/group%2Fproject", "https://wiki.example.com"} {
		if a := ask(t, srv, alice, nginx(u)); a.code != 200 || a.user != "alice" {
			t.Errorf("%s: %+v, want 200", u, a)
		}
	}
}

// BenchmarkForwardAuth is one gate check of a signed-in session through the HTTP handler and
// SQLite (no network): the cost behind every proxied request.
func BenchmarkForwardAuth(b *testing.B) {
	f := newFixture(b, "")
	rules, _ := forwardauth.Compile(gateRules, forwardauth.Password)
	pu, _ := url.Parse(f.srv.URL)
	h := web.New(web.Options{Login: f.svc, Push: f.push, DB: f.db, PublicURL: pu, Now: f.clock.Now, ForwardAuth: rules})
	c := f.client(b)
	c.post("/api/v1/login", map[string]string{"username": "alice", "password": pw})
	cookie := c.sessionCookie()
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("GET", "/auth/nginx", nil)
		req.Header.Set("X-Original-URL", "https://wiki.example.com/page")
		req.AddCookie(cookie)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("%d", w.Code)
		}
	}
}
