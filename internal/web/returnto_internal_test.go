package web

import (
	"net/url"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/forwardauth"
)

func returnServer(t testing.TB, cookieDomain string) *Server {
	t.Helper()
	rules, err := forwardauth.Compile([]forwardauth.Rule{
		{Hosts: []string{"app.example.com", "*.apps.example.org"}, Policy: forwardauth.MFA},
		{Hosts: []string{"app.localhost", "127.0.0.1"}, Policy: forwardauth.Password},
		{Paths: []string{"/open/"}, Policy: forwardauth.Bypass}, // no hosts: trusts none
	}, forwardauth.MFA)
	if err != nil {
		t.Fatal(err)
	}
	return &Server{forwardAuth: rules, cookie: newCookieConfig(&url.URL{Scheme: "https", Host: "auth.example.net"}, cookieDomain)}
}

// TestReturnURL: only an application the configuration names is a way back after sign-in;
// every classic open-redirect trick falls back to nothing.
func TestReturnURL(t *testing.T) {
	s := returnServer(t, "corp.example.net")
	for _, tt := range []struct{ in, want string }{
		{"https://app.example.com/wiki?page=1", "https://app.example.com/wiki?page=1"},
		{"https://app.example.com:8443/", "https://app.example.com:8443/"},
		{"https://APP.example.com/x#frag", "https://APP.example.com/x"},
		{"https://grafana.apps.example.org/d/1", "https://grafana.apps.example.org/d/1"},
		{"https://corp.example.net/", "https://corp.example.net/"},         // the cookie domain itself
		{"https://hr.corp.example.net/x", "https://hr.corp.example.net/x"}, // and below it
		{"http://app.localhost:8080/", "http://app.localhost:8080/"},       // http on loopback
		{"http://127.0.0.1:9000/x", "http://127.0.0.1:9000/x"},

		{"", ""},
		{"//evil.com", ""},
		{"///evil.com", ""},
		{"https://evil.com", ""},
		{"https://evil.com/https://app.example.com/", ""},
		{"https://app.example.com.evil.com/", ""},
		{"https://app.example.com./", ""},
		{"https://evilapp.example.com/", ""},
		{"https://apps.example.org/", ""}, // *.domain is subdomains only
		{"https://xcorp.example.net/", ""},
		{"https://corp.example.net.evil.com/", ""},
		{"http://app.example.com/", ""}, // http off loopback
		{"javascript:alert(1)", ""},
		{"JavaScript://app.example.com/%0aalert(1)", ""},
		{"data:text/html,<script>alert(1)</script>", ""},
		{"ftp://app.example.com/", ""},
		{"https:app.example.com", ""},
		{"https:/app.example.com/", ""},
		{`https:\\app.example.com`, ""},
		{`https://app.example.com\@evil.com`, ""},
		{`https://evil.com\.app.example.com`, ""},
		{"https://app.example.com@evil.com/", ""},
		{"https://user:pw@app.example.com/", ""},
		{"https://evil.com#@app.example.com", ""},
		{"https://evil.com?@app.example.com", ""},
		{"https://app.example.com\t.evil.com/", ""},
		{"https://app.example.com/\r\nSet-Cookie: x=y", ""},
		{"https://app.example.com%2f@evil.com/", ""},
		{" https://app.example.com/", ""},
		{"/local/path", ""}, // local paths are safeNext's business
	} {
		if got := s.returnURL(tt.in); got != tt.want {
			t.Errorf("returnURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := returnServer(t, "").returnURL("https://hr.corp.example.net/"); got != "" {
		t.Errorf("without a cookie domain, returnURL(hr.corp.example.net) = %q, want \"\"", got)
	}
}

func TestLoginNext(t *testing.T) {
	s := returnServer(t, "")
	for _, tt := range []struct{ query, want string }{
		{"next=/settings/security", "/settings/security"},
		{"rd=https%3A%2F%2Fapp.example.com%2Fx%3Fa%3D1", "/auth/return?to=https%3A%2F%2Fapp.example.com%2Fx%3Fa%3D1"},
		{"next=https%3A%2F%2Fapp.example.com%2F", "/auth/return?to=https%3A%2F%2Fapp.example.com%2F"},
		{"rd=https%3A%2F%2Fevil.com%2F", ""},
		{"next=%2F%2Fevil.com", ""},
		{"rd=javascript%3Aalert(1)", ""},
	} {
		q, _ := url.ParseQuery(tt.query)
		if got := s.loginNext(q); got != tt.want {
			t.Errorf("loginNext(%s) = %q, want %q", tt.query, got, tt.want)
		}
	}
}

// FuzzReturnURL: whatever a link carries in rd or next, the way back after sign-in is a
// local path, or an absolute https (http on loopback) address without user info whose host a
// rule names, and it reads back as the same address.
func FuzzReturnURL(f *testing.F) {
	for _, seed := range []string{
		"https://app.example.com/x?y=1", "//evil.com", `https:\\evil.com`, "https://app.example.com@evil.com/",
		"http://app.localhost:8080/", "javascript:alert(1)", "https://a.apps.example.org/", "/settings/security",
		"https://APP.example.com:443/%2e%2e/", "https://[::1]:80/", "http://127.0.0.1/x",
	} {
		f.Add(seed)
	}
	s := returnServer(f, "corp.example.net")
	f.Fuzz(func(t *testing.T, raw string) {
		if got := s.returnURL(raw); got != "" {
			u, err := url.Parse(got)
			if err != nil || u.User != nil || u.Opaque != "" || u.Fragment != "" {
				t.Fatalf("returnURL(%q) = %q: not a clean absolute URL (%v)", raw, got, err)
			}
			host := u.Hostname()
			if u.Scheme != "https" && !(u.Scheme == "http" && loopbackHost(strings.ToLower(host))) {
				t.Fatalf("returnURL(%q) = %q: scheme %q", raw, got, u.Scheme)
			}
			if !s.forwardAuth.Covers(host) && !s.cookieDomainCovers(strings.ToLower(host)) {
				t.Fatalf("returnURL(%q) = %q: host %q is not named", raw, got, host)
			}
			if again := s.returnURL(got); again != got {
				t.Fatalf("returnURL(returnURL(%q)) = %q, want %q", raw, again, got)
			}
		}
		for _, key := range []string{"next", "rd"} {
			n := s.loginNext(url.Values{key: {raw}})
			if n != "" && safeNext(n) != n {
				t.Fatalf("loginNext(%s=%q) = %q: not a local path", key, raw, n)
			}
		}
	})
}
