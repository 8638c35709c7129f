package web_test

import (
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/forwardauth"
	"github.com/latchkey/latchkey/internal/web"
)

// gateWith serves the fixture's services with gateRules and the given public URL and cookie
// domain.
func gateWith(t testing.TB, f *fixture, public, cookieDomain string) *httptest.Server {
	t.Helper()
	rules, err := forwardauth.Compile(gateRules, forwardauth.MFA)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	if public == "" {
		public = "http://" + srv.Listener.Addr().String()
	}
	pu, _ := url.Parse(public)
	srv.Config.Handler = web.New(web.Options{Login: f.svc, Push: f.push, DB: f.db, PublicURL: pu, Now: f.clock.Now, ForwardAuth: rules, CookieDomain: cookieDomain})
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

func clientOf(t testing.TB, srv *httptest.Server) *apiClient {
	jar, _ := cookiejar.New(nil)
	return &apiClient{tb: t, base: srv.URL, hc: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// TestForwardAuthReturnsToApplication: the gate sends a signed-out visitor of a configured
// application to the sign-in page with the way back, and after the password the browser
// lands on the application's address; an address the configuration does not name is dropped.
func TestForwardAuthReturnsToApplication(t *testing.T) {
	f := newFixture(t, "")
	srv := gateWith(t, f, "", "")
	const app = "https://wiki.example.com/page?id=7"
	a := ask(t, srv, nil, nginx(app))
	if want := srv.URL + "/login?rd=" + url.QueryEscape(app); a.code != 401 || a.location != want {
		t.Fatalf("anonymous on wiki: %+v, want 401 to %s", a, want)
	}
	if a := ask(t, srv, nil, nginx("https://unnamed.example.com/x")); a.code != 401 || a.location != srv.URL+"/login" {
		t.Errorf("anonymous on a host no rule names: %+v, want 401 to /login without rd", a)
	}

	c := clientOf(t, srv)
	r := c.do("GET", strings.TrimPrefix(a.location, srv.URL), "", "")
	next := "/auth/return?to=" + url.QueryEscape(app)
	if r.code != 200 || !strings.Contains(r.raw, `name="next" value="`+strings.ReplaceAll(next, "&", "&amp;")+`"`) {
		t.Fatalf("sign-in page: %d; want a hidden next %q in\n%s", r.code, next, r.raw)
	}
	form := url.Values{"username": {"alice"}, "password": {pw}, "next": {next}}
	r = c.do("POST", "/login", "application/x-www-form-urlencoded", form.Encode())
	if r.code != http.StatusSeeOther || r.header.Get("Location") != next {
		t.Fatalf("POST /login: %d Location %q, want 303 %q", r.code, r.header.Get("Location"), next)
	}
	// A page that refreshes to the application, not a redirect: see pageReturn.
	r = c.do("GET", next, "", "")
	if r.code != http.StatusOK || r.header.Get("Refresh") != "0; url="+app || !strings.Contains(r.raw, `href="`+strings.ReplaceAll(app, "&", "&amp;")+`"`) {
		t.Fatalf("GET %s: %d Refresh %q, want 200, Refresh to %q and a link\n%s", next, r.code, r.header.Get("Refresh"), app, r.raw)
	}
	// Already signed in, the sign-in page goes straight back.
	r = c.do("GET", "/login?rd="+url.QueryEscape(app), "", "")
	if r.code != http.StatusSeeOther || r.header.Get("Location") != next {
		t.Errorf("signed in, GET /login?rd=app: %d Location %q, want %q", r.code, r.header.Get("Location"), next)
	}

	for _, evil := range []string{"https://evil.com/", "//evil.com", "https://wiki.example.com.evil.com/", "javascript:alert(1)", `https:\\evil.com`, "https://alice@evil.com/"} {
		for _, param := range []string{"rd", "next"} {
			r := c.do("GET", "/login?"+param+"="+url.QueryEscape(evil), "", "")
			if r.code != http.StatusSeeOther || r.header.Get("Location") != "/settings/security" {
				t.Errorf("GET /login?%s=%s: %d Location %q, want 303 /settings/security", param, evil, r.code, r.header.Get("Location"))
			}
		}
		r := c.do("GET", "/auth/return?to="+url.QueryEscape(evil), "", "")
		if r.code != http.StatusSeeOther || r.header.Get("Location") != "/" {
			t.Errorf("GET /auth/return?to=%s: %d Location %q, want 303 /", evil, r.code, r.header.Get("Location"))
		}
	}
	anon := clientOf(t, srv)
	if r := anon.do("GET", "/login?rd="+url.QueryEscape("https://evil.com/"), "", ""); r.code != 200 || strings.Contains(r.raw, "evil") {
		t.Errorf("sign-in page with an evil rd: %d, the page mentions it: %v", r.code, strings.Contains(r.raw, "evil"))
	}
}

// TestCookieDomain: with session.cookie_domain the cookie carries Domain= (so it reaches the
// applications on sibling hosts), under TLS with the __Secure- prefix since __Host- forbids a
// domain; without it, the cookie stays host-only.
func TestCookieDomain(t *testing.T) {
	f := newFixture(t, "")
	for _, tt := range []struct {
		name, public, domain string
		want                 []string
		wantNot              []string
	}{
		{"https with domain", "https://auth.example.com", "example.com",
			[]string{"__Secure-latchkey_session=", "Domain=example.com", "Secure", "HttpOnly", "SameSite=Lax", "Path=/"}, []string{"__Host-"}},
		{"http with domain", "", "example.com",
			[]string{"latchkey_session=", "Domain=example.com", "HttpOnly", "SameSite=Lax"}, []string{"__Host-", "__Secure-", "Secure"}},
		{"https host-only", "https://auth.example.com", "",
			[]string{"__Host-latchkey_session=", "Secure", "HttpOnly", "Path=/"}, []string{"Domain="}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := clientOf(t, gateWith(t, f, tt.public, tt.domain))
			for _, step := range []struct {
				path string
				body map[string]string
			}{{"/api/v1/login", map[string]string{"username": "alice", "password": pw}}, {"/api/v1/logout", nil}} {
				r := c.post(step.path, step.body)
				sc := r.header.Get("Set-Cookie")
				for _, w := range tt.want {
					if !strings.Contains(sc, w) {
						t.Errorf("%s: Set-Cookie %q lacks %q", step.path, sc, w)
					}
				}
				for _, w := range tt.wantNot {
					if strings.Contains(sc, w) {
						t.Errorf("%s: Set-Cookie %q has %q", step.path, sc, w)
					}
				}
			}
		})
	}
}
