package web

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/latchkey/latchkey"
)

// FuzzDecode feeds arbitrary bodies to the JSON decoder of the API: it must never panic, and
// must either decode or return a domain error with a client status (never an internal one).
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"username":"a","password":"b"}`, `{"code":"123456"}`, `{`, `[]`, `{"username":1}`, `{} {}`, ``, `null`, `"x"`, `{"username":"\u0000"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest("POST", "/api/v1/login", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		var req struct {
			Username string `json:"username"`
			Password string `json:"password"`
			Code     string `json:"code"`
		}
		err := decode(r, &req)
		if err != nil && status(latchkey.ErrorCode(err)) >= 500 {
			t.Fatalf("decode(%q) = %v: an internal error for client input", body, err)
		}
	})
}

func TestSafeNext(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/settings/security", "/settings/security"},
		{"/a?b=c", "/a?b=c"},
		{"", ""},
		{"https://evil.example", ""},
		{"//evil.example", ""},
		{"/\\evil.example", ""},
		{"javascript:alert(1)", ""},
		{"/ok\r\nSet-Cookie: x", ""},
		{"relative", ""},
	}
	for _, tt := range tests {
		if got := safeNext(tt.in); got != tt.want {
			t.Errorf("safeNext(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
