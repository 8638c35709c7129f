package web_test

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/totp"
)

// TestFactorListOverHTTP drives the Security page's one list through the JSON API and the
// forms: list, make primary across kinds, rename the app and a key, refusals that change
// nothing, and a stale session sent to re-authenticate before removing a key (JSON: an
// error; page: a redirect that comes back), then removing it fresh.
func TestFactorListOverHTTP(t *testing.T) {
	f := newFixture(t, "http://localhost:8443") // a host name: security keys are on
	ctx := context.Background()
	c := f.client(t)
	form := func(path string, v url.Values) response {
		return c.do("POST", path, "application/x-www-form-urlencoded", v.Encode())
	}
	if r := c.post("/api/v1/login", map[string]string{"username": "alice", "password": pw}); r.code != 200 {
		t.Fatalf("login: %d %s", r.code, r.raw)
	}
	secret := f.enrolTOTP(t, c)
	alice := mustUser(t, f)
	k := &latchkey.WebAuthnCredential{UserID: alice.ID, Name: "Blue key", CredentialID: []byte("blue-credential"), Data: []byte("{}")}
	if err := f.db.CreateWebAuthnCredential(ctx, k, nil, false); err != nil {
		t.Fatal(err)
	}

	list := func() []map[string]any {
		t.Helper()
		r := c.do("GET", "/api/v1/account/factors", "", "")
		if r.code != 200 {
			t.Fatalf("factors: %d %s", r.code, r.raw)
		}
		var out []map[string]any
		for _, x := range r.body["factors"].([]any) {
			out = append(out, x.(map[string]any))
		}
		if r.body["recovery_codes_left"] != float64(10) {
			t.Errorf("recovery_codes_left %v", r.body["recovery_codes_left"])
		}
		return out
	}
	fs := list()
	if len(fs) != 2 || fs[0]["kind"] != "totp" || fs[0]["primary"] != true || fs[1]["id"] != fmt.Sprintf("webauthn:%d", k.ID) || fs[1]["type"] != "Security key" {
		t.Fatalf("factors %v", fs)
	}
	appRef := fs[0]["id"].(string)
	var appID int64
	fmt.Sscanf(appRef, "totp:%d", &appID)

	// Make the key primary over JSON; refusals change nothing.
	for _, tc := range []struct {
		body string
		code int
		err  string
	}{
		{`{"factor":`, 400, "invalid_request"},
		{`{"factor":7}`, 400, ""},
		{`{}`, 400, "invalid_request"},
		{`{"factor":"yubikey"}`, 400, "invalid_request"},
		{`{"factor":"webauthn:999"}`, 404, "not_found"},
	} {
		r := c.do("POST", "/api/v1/account/factors/primary", "application/json", tc.body)
		if r.code != tc.code || (tc.err != "" && r.errCode() != tc.err) {
			t.Errorf("primary %s: %d %s", tc.body, r.code, r.raw)
		}
	}
	if fs := list(); fs[0]["kind"] != "totp" {
		t.Fatalf("a refused request changed the order: %v", fs)
	}
	r := c.post("/api/v1/account/factors/primary", map[string]string{"factor": fmt.Sprintf("webauthn:%d", k.ID)})
	if r.code != 200 {
		t.Fatalf("primary: %d %s", r.code, r.raw)
	}
	if fs := list(); fs[0]["kind"] != "webauthn" || fs[0]["primary"] != true || fs[1]["primary"] != false {
		t.Fatalf("after primary: %v", fs)
	}

	// Renames.
	if r := c.do("PATCH", fmt.Sprintf("/api/v1/account/totp/%d", appID), "application/json", `{"name":"Work phone"}`); r.code != 200 {
		t.Fatalf("rename app: %d %s", r.code, r.raw)
	}
	if r := c.do("PATCH", fmt.Sprintf("/api/v1/account/totp/%d", appID), "application/json", `{"name":""}`); r.code != 400 || r.errCode() != "invalid_request" {
		t.Fatalf("empty name: %d %s", r.code, r.raw)
	}
	// A zero-width space or a right-to-left override would make the name read as another.
	for _, name := range []string{"Work\u200bphone", "Work \u202eenohp"} {
		if r := c.do("PATCH", fmt.Sprintf("/api/v1/account/totp/%d", appID), "application/json", `{"name":"`+name+`"}`); r.code != 400 || r.errCode() != "invalid_request" {
			t.Fatalf("name %s: %d %s", name, r.code, r.raw)
		}
	}
	if r := c.do("PATCH", "/api/v1/account/totp/999", "application/json", `{"name":"x"}`); r.code != 404 {
		t.Fatalf("unknown app: %d %s", r.code, r.raw)
	}
	if r := c.do("PATCH", fmt.Sprintf("/api/v1/account/webauthn/%d", k.ID), "application/json", `{"name":"Blue YubiKey"}`); r.code != 200 {
		t.Fatalf("rename key: %d %s", r.code, r.raw)
	}
	fs = list()
	if fs[0]["name"] != "Blue YubiKey" || fs[1]["name"] != "Work phone" {
		t.Fatalf("after renames: %v", fs)
	}

	// The page: one list, primary first, and the form back to the app as primary.
	page := c.do("GET", "/settings/security", "", "")
	for _, want := range []string{`id="factors"`, `id="factor-webauthn-` + fmt.Sprint(k.ID), "Blue YubiKey", "Work phone", `name="factor" value="` + appRef + `"`, "Make primary"} {
		if !strings.Contains(page.raw, want) {
			t.Errorf("security page lacks %q", want)
		}
	}
	if r := form("/settings/security/primary", url.Values{"factor": {appRef}}); r.code != 303 || r.header.Get("Location") != "/settings/security?done=primary#factors" {
		t.Fatalf("primary form: %d %q", r.code, r.header.Get("Location"))
	}
	if r := form(fmt.Sprintf("/settings/security/totp/%d/rename", appID), url.Values{"name": {""}}); r.code != 400 || !strings.Contains(r.raw, "Give it a name") {
		t.Fatalf("empty rename form: %d", r.code)
	}
	if fs := list(); fs[0]["kind"] != "totp" {
		t.Fatalf("after the primary form: %v", fs)
	}

	// A stale session must re-authenticate before removing a key.
	f.clock.Add(11 * time.Minute)
	if r := c.do("DELETE", fmt.Sprintf("/api/v1/account/webauthn/%d", k.ID), "", ""); r.code != 403 || r.errCode() != latchkey.EReauthenticate {
		t.Fatalf("stale delete: %d %s", r.code, r.raw)
	}
	if r := form(fmt.Sprintf("/settings/security/keys/%d/remove", k.ID), nil); r.code != 303 || r.header.Get("Location") != "/reauth?next=%2Fsettings%2Fsecurity%23factors" {
		t.Fatalf("stale remove form: %d %q", r.code, r.header.Get("Location"))
	}
	if keys, _ := f.db.FindWebAuthnCredentials(ctx, alice.ID); len(keys) != 1 {
		t.Fatal("a stale session removed the key")
	}
	// The password, then a second factor (full re-authentication), and back.
	if r := form("/reauth", url.Values{"password": {pw}, "next": {"/settings/security#factors"}}); r.code != 303 || r.header.Get("Location") != "/login/code?next=%2Fsettings%2Fsecurity%23factors" {
		t.Fatalf("reauth: %d %q", r.code, r.header.Get("Location"))
	}
	if r := c.do("DELETE", fmt.Sprintf("/api/v1/account/webauthn/%d", k.ID), "", ""); r.code != 401 {
		t.Fatalf("delete with the password alone: %d %s", r.code, r.raw)
	}
	if r := form("/login/code", url.Values{"code": {totp.Code(secret, totp.Step(f.clock.Now()))}, "next": {"/settings/security#factors"}}); r.code != 303 || r.header.Get("Location") != "/settings/security#factors" {
		t.Fatalf("second factor: %d %q %s", r.code, r.header.Get("Location"), r.raw)
	}
	if r := c.do("DELETE", fmt.Sprintf("/api/v1/account/webauthn/%d", k.ID), "", ""); r.code != 200 || r.body["removed"] != true {
		t.Fatalf("fresh delete: %d %s", r.code, r.raw)
	}
	if s := f.mails.subjects("alice@example.com"); !slices.Contains(s, "A security key was removed") {
		t.Errorf("mails %v", s)
	}
	if fs := list(); len(fs) != 1 || fs[0]["kind"] != "totp" {
		t.Fatalf("after removal: %v", fs)
	}
}
