package web_test

import (
	"strings"
	"testing"
)

// TestFormActionOnSignInPages: browsers apply a page's form-action to every redirect that
// follows the form's submission, and a sign-in ends with a redirect to the application
// that asked for it (cmd/latchkey's TestBrowserWorkdaySSO fails in Chromium otherwise). The
// sign-in pages go without form-action; every other page keeps form-action 'self'.
func TestFormActionOnSignInPages(t *testing.T) {
	f := newFixture(t, "")
	c := f.client(t)
	for path, want := range map[string]bool{
		"/login":             false,
		"/login/code":        false,
		"/login/recovery":    false,
		"/login/enroll":      false,
		"/reauth":            false,
		"/oidc/login":        false,
		"/setup":             true,
		"/settings/security": true,
		"/loginx":            true,
		"/":                  true,
	} {
		csp := c.do("GET", path, "", "").header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: CSP %q lacks the base policy", path, csp)
		}
		if got := strings.Contains(csp, "form-action 'self'"); got != want {
			t.Errorf("%s: form-action 'self' present = %v, want %v (CSP %q)", path, got, want, csp)
		}
	}
}
