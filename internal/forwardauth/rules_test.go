package forwardauth

import (
	"strings"
	"testing"
)

func mustCompile(t testing.TB, rules []Rule, def Policy) *Rules {
	t.Helper()
	rs, err := Compile(rules, def)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

var sample = []Rule{
	{Hosts: []string{"status.example.com"}, Policy: Bypass},
	{Hosts: []string{"app.example.com"}, Paths: []string{"/healthz$", "/static/"}, Policy: Bypass},
	{Hosts: []string{"*.internal.example.com"}, Groups: []string{"admin"}, Policy: MFA},
	{Hosts: []string{"*.internal.example.com"}, Policy: Deny},
	{Hosts: []string{"wiki.example.com"}, Policy: Password},
}

func TestDecide(t *testing.T) {
	rs := mustCompile(t, sample, MFA)
	for _, tc := range []struct {
		host, path string
		signedIn   bool
		groups     []string
		want       Policy
	}{
		{"status.example.com", "/", false, nil, Bypass},
		{"STATUS.example.com:443", "/anything", false, nil, Bypass},
		{"app.example.com", "/healthz", false, nil, Bypass},
		{"app.example.com", "/healthz/more", false, nil, MFA},      // exact path only
		{"app.example.com", "/static/app.css", false, nil, Bypass}, // prefix
		{"app.example.com", "/", true, nil, MFA},                   // default
		{"db.internal.example.com", "/", false, nil, Password},     // a group rule: sign in first
		{"db.internal.example.com", "/", true, []string{"admin"}, MFA},
		{"db.internal.example.com", "/", true, []string{"user"}, Deny}, // falls to the next rule
		{"internal.example.com", "/", true, []string{"admin"}, MFA},    // the apex is not a subdomain
		{"evil-internal.example.com", "/", true, []string{"admin"}, MFA},
		{"wiki.example.com", "/page", false, nil, Password},
		{"wiki.example.com.evil.test", "/", false, nil, MFA},
	} {
		if got := rs.Decide(tc.host, tc.path, tc.signedIn, tc.groups); got != tc.want {
			t.Errorf("Decide(%q, %q, %v, %v) = %s, want %s", tc.host, tc.path, tc.signedIn, tc.groups, got, tc.want)
		}
	}
}

func TestCompileRefusesBadRules(t *testing.T) {
	for _, tc := range []struct {
		rules []Rule
		def   Policy
		want  string
	}{
		{nil, "maybe", "default policy"},
		{[]Rule{{Policy: "allow"}}, MFA, `rule 1: policy "allow"`},
		{[]Rule{{Hosts: []string{"https://app.example.com"}, Policy: MFA}}, MFA, "host"},
		{[]Rule{{Hosts: []string{"a*.example.com"}, Policy: MFA}}, MFA, "host"},
		{[]Rule{{Paths: []string{"admin"}, Policy: MFA}}, MFA, "must start with /"},
	} {
		_, err := Compile(tc.rules, tc.def)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Compile(%+v, %q) = %v, want an error about %q", tc.rules, tc.def, err, tc.want)
		}
	}
}

func BenchmarkDecide(b *testing.B) {
	rs := mustCompile(b, sample, MFA)
	groups := []string{"user"}
	b.ReportAllocs()
	for b.Loop() {
		if rs.Decide("wiki.example.com:443", "/some/page", true, groups) != Password {
			b.Fatal("wrong decision")
		}
	}
}
