package web

import (
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestUserAgentKeptAsText: the User-Agent kept in sessions, challenges and the audit trail is
// valid UTF-8 without control characters, at most maxUserAgent bytes; a browser's is kept as
// it is.
func TestUserAgentKeptAsText(t *testing.T) {
	for in, want := range map[string]string{
		"Mozilla/5.0 (X11; Linux x86_64) Chrome/130": "Mozilla/5.0 (X11; Linux x86_64) Chrome/130",
		"Mozilla\xff":            "Mozilla\uFFFD",
		"x\x00y\x1bz":            "x\uFFFDy\uFFFDz",
		"Safari ünïcödé":         "Safari ünïcödé",
		"a\u0085b":               "a\uFFFDb",
		strings.Repeat("é", 300): strings.Repeat("é", 256),
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("User-Agent", in)
		got := userAgent(r)
		if got != want || !utf8.ValidString(got) || len(got) > maxUserAgent {
			t.Errorf("userAgent(%q) = %q, want %q", in, got, want)
		}
	}
}

func BenchmarkUserAgent(b *testing.B) {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36")
	b.ReportAllocs()
	for b.Loop() {
		_ = userAgent(r)
	}
}
