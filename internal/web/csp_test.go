package web_test

import (
	"strings"
	"testing"
)

// TestCSPEverywhere: every page, the sign-in steps included, has the strict policy with
// form-action 'self'. Sign-ins that end at another site continue through a page of their
// own (cmd/latchkey's TestBrowserWorkdaySSO shows it in Chromium).
func TestCSPEverywhere(t *testing.T) {
	f := newFixture(t, "")
	c := f.client(t)
	for _, path := range []string{"/login", "/login/code", "/login/recovery", "/login/enroll", "/reauth", "/oidc/login", "/setup", "/settings/security", "/", "/api/v1/session"} {
		csp := c.do("GET", path, "", "").header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "script-src 'self'", "form-action 'self'", "frame-ancestors 'none'", "base-uri 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %s", path, csp, want)
			}
		}
	}
}
