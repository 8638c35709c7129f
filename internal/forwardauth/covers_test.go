package forwardauth

import "testing"

func TestCovers(t *testing.T) {
	rs := mustCompile(t, append([]Rule{{Paths: []string{"/any/"}, Policy: Bypass}}, sample...), MFA)
	for _, tc := range []struct {
		host string
		want bool
	}{
		{"status.example.com", true},
		{"STATUS.Example.com:8443", true},
		{"db.internal.example.com", true},
		{"a.b.internal.example.com", true},
		{"internal.example.com", false}, // "*." is subdomains only
		{"wiki.example.com", true},
		{"example.com", false},
		{"evil.com", false},
		{"wiki.example.com.evil.com", false},
		{"evilwiki.example.com", false},
		{"xinternal.example.com", false},
		{"", false},
	} {
		if got := rs.Covers(tc.host); got != tc.want {
			t.Errorf("Covers(%q) = %v, want %v", tc.host, got, tc.want)
		}
	}
	if empty := mustCompile(t, []Rule{{Policy: Password}}, MFA); empty.Covers("anything.example.com") {
		t.Error("a rule without hosts covers every host; want none")
	}
}
