package web

import (
	"fmt"
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

// TestDuplicateKey: a key given twice in one object is found at any depth, compared as
// encoding/json matches fields (case and Unicode simple folding, escapes decoded), in small
// objects and in large ones (the set past 16 keys); the same key in different objects, a
// value equal to a key, and text that is not JSON are not duplicates.
func TestDuplicateKey(t *testing.T) {
	many := func(extra string) string {
		var b strings.Builder
		b.WriteString(`{`)
		for i := range 40 {
			fmt.Fprintf(&b, `"k%d":%d,`, i, i)
		}
		b.WriteString(extra + `}`)
		return b.String()
	}
	for _, tt := range []struct {
		body string
		key  string
	}{
		{`{"a":1,"a":2}`, "a"},
		{`{"code":"1","Code":"2"}`, "Code"},
		{`{"k":1,"\u212a":2}`, "\u212a"}, // KELVIN SIGN folds to k
		{`{"user\u006eame":1,"username":2}`, "username"},
		{`{"x":{"a":[1,{"b":1,"b":2}]}}`, "b"},
		{`[{"a":1},{"a":2,"c":{},"a":3}]`, "a"},
		{many(`"K7":1`), "K7"},
		{many(`"deep":{"z":1,"Z":2}`), "Z"},
		{`{"a":1,"b":{"a":1},"c":[{"a":1}]}`, ""},
		{`{"a":"a","b":"a"}`, ""},
		{many(`"k40":1`), ""},
		{`{"a":1,`, ""},
		{`{"a":1,"a"`, "a"},
		{`"a"`, ""},
		{``, ""},
		{`{} {"a":1,"a":2}`, ""}, // trailing data: the decoder refuses it
	} {
		k, ok := duplicateKey([]byte(tt.body))
		if ok != (tt.key != "") || k != tt.key {
			t.Errorf("duplicateKey(%.60q) = %q, %v; want %q", tt.body, k, ok, tt.key)
		}
	}
}
