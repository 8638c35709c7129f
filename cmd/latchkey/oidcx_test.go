package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/sqlstore"
	"github.com/latchkey/latchkey/internal/totp"
)

// auditActions returns the server's audit trail as "action outcome detail" lines.
func auditActions(t *testing.T, s *testServer) []string {
	t.Helper()
	cfg := defaultConfig()
	cfg.Data = s.data
	_, secrets, err := cfg.keys()
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlstore.Open(context.Background(), filepath.Join(s.data, "latchkey.db"), sqlstore.Options{SecretsKey: secrets})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	events, err := db.FindAuditEvents(context.Background(), latchkey.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range events {
		out = append(out, e.Action+" "+e.Outcome+" "+e.Detail)
	}
	return out
}

func wantAudit(t *testing.T, lines []string, prefix string) {
	t.Helper()
	if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, prefix) }) {
		t.Errorf("no audit entry %q in\n%s", prefix, strings.Join(lines, "\n"))
	}
}

func (b *oidcBrowser) get(path string) (int, string) {
	b.t.Helper()
	resp, err := b.hc.Get(b.base + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestOIDCConsent(t *testing.T) {
	s := startServer(t, "alice")
	partner := newRPWith(t, s, "partner")
	partner.conf.Scopes = []string{"openid", "email"}
	br := newOIDCBrowser(t, s.url)
	none := func() string { t.Fatal("no code expected"); return "" }

	// Deny: access_denied at the client, nothing stored.
	br.consent = "deny"
	u, _ := partner.authURL()
	if res := br.authorize(u, none); res.err != "access_denied" || res.code != "" || !slices.Contains(res.pages, "consent") {
		t.Fatalf("Deny: %+v", res)
	}
	// Allow: a code; the same or fewer scopes then go straight through.
	br.consent = "allow"
	u, verifier := partner.authURL()
	res := br.authorize(u, none)
	if res.code == "" || !slices.Contains(res.pages, "consent") {
		t.Fatalf("Allow: %+v", res)
	}
	partner.exchange(res.code, verifier)
	br.consent = ""
	if res := br.authorize(must(partner.authURL()), none); res.code == "" || slices.Contains(res.pages, "consent") {
		t.Errorf("same scopes after Allow: %+v", res)
	}
	fewer := partner.conf.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("scope", "openid"))
	if res := br.authorize(fewer, none); res.code == "" || slices.Contains(res.pages, "consent") {
		t.Errorf("fewer scopes: %+v", res)
	}
	// New scopes: asked again (prompt=none cannot ask: consent_required). prompt=consent: asked.
	partner.conf.Scopes = append(partner.conf.Scopes, "offline_access")
	u, _ = partner.authURL(oauth2.SetAuthURLParam("prompt", "none"))
	if res := br.authorize(u, none); res.err != "consent_required" {
		t.Errorf("new scope with prompt=none: %+v, want consent_required", res)
	}
	br.consent = "allow"
	u, verifier = partner.authURL()
	if res = br.authorize(u, none); res.code == "" || !slices.Contains(res.pages, "consent") {
		t.Fatalf("new scope: %+v, want the consent page", res)
	}
	tok, _ := partner.exchange(res.code, verifier)
	if res := br.authorize(must(partner.authURL(oauth2.SetAuthURLParam("prompt", "consent"))), none); !slices.Contains(res.pages, "consent") {
		t.Errorf("prompt=consent: %+v, want the consent page", res)
	}

	// A first-party client never shows it.
	br.consent = ""
	own := newRP(t, s, "own")
	if res := br.authorize(must(own.authURL()), none); res.code == "" {
		t.Errorf("first-party client: %+v", res)
	}

	// The Security page and the API list the application, in plain words.
	if code, page := br.get("/settings/security"); code != 200 || !strings.Contains(page, "Connected applications") || !strings.Contains(page, "App partner") ||
		!strings.Contains(page, "stay signed in (offline access)") || !strings.Contains(page, "Revoke access") || strings.Contains(page, "App own") {
		t.Errorf("Security page: %d\n%s", code, page)
	}
	code, body := br.get("/api/v1/account/applications")
	var apps struct {
		Applications []struct {
			ClientID string    `json:"client_id"`
			Name     string    `json:"name"`
			Scopes   []string  `json:"scopes"`
			Can      []string  `json:"can"`
			Since    time.Time `json:"since"`
		} `json:"applications"`
	}
	if err := json.Unmarshal([]byte(body), &apps); code != 200 || err != nil || len(apps.Applications) != 1 || apps.Applications[0].ClientID != "partner" ||
		!slices.Contains(apps.Applications[0].Can, "see your email address") || time.Since(apps.Applications[0].Since) > time.Minute {
		t.Fatalf("GET applications: %d %s", code, body)
	}

	// Revoking from another site is refused; from the page it works, revokes the refresh
	// token, and the next sign-in asks again.
	del := func(site string) int {
		req, _ := http.NewRequest("DELETE", s.url+"/api/v1/account/applications/partner", nil)
		if site != "" {
			req.Header.Set("Sec-Fetch-Site", site)
			req.Header.Set("Origin", "https://evil.example")
		}
		resp, err := br.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := del("cross-site"); code != http.StatusForbidden {
		t.Errorf("cross-site DELETE: %d, want 403", code)
	}
	if code := del(""); code != http.StatusOK {
		t.Fatalf("DELETE: %d", code)
	}
	if code := del(""); code != http.StatusNotFound {
		t.Errorf("DELETE again: %d, want 404", code)
	}
	if _, err := partner.conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
		t.Errorf("refresh token still works after revoking access")
	}
	br.consent = "deny"
	if res := br.authorize(must(partner.authURL()), none); !slices.Contains(res.pages, "consent") {
		t.Errorf("after revoking: %+v, want the consent page", res)
	}

	lines := auditActions(t, s)
	for _, want := range []string{
		"oidc.client_created success client: partner", "oidc.consent_granted success client: partner", "oidc.authorize success client: partner",
		"oidc.authorize denied client: partner; access_denied", "oidc.authorize denied client: partner; consent_required",
		"oidc.code_exchanged success client: partner", "oidc.consent_revoked success client: partner",
	} {
		wantAudit(t, lines, want)
	}
}

func must(u, _ string) string { return u }

// TestOIDCCrossOriginEndpoints: a single-page app on another origin exchanges its code and
// calls userinfo, revocation and introspection without being stopped by the cross-origin
// protection, and can read the answers (CORS without credentials). Pages stay protected.
func TestOIDCCrossOriginEndpoints(t *testing.T) {
	s := startServer(t, "alice")
	spa := newRP(t, s, "spa", "--public")
	br := newOIDCBrowser(t, s.url)
	u, verifier := spa.authURL()
	res := br.authorize(u, nil)
	if res.code == "" {
		t.Fatalf("authorize: %+v", res)
	}
	crossSite := func(method, path string, form url.Values, bearer string) (*http.Response, map[string]any) {
		req, _ := http.NewRequest(method, s.url+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "https://spa.example")
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		req.Header.Set("Sec-Fetch-Mode", "cors")
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("%s %s: CORS headers %v", method, path, resp.Header)
		}
		return resp, m
	}
	resp, tok := crossSite("POST", "/oidc/token", url.Values{"grant_type": {"authorization_code"}, "code": {res.code}, "client_id": {"spa"},
		"redirect_uri": {spa.conf.RedirectURL}, "code_verifier": {verifier}}, "")
	access, _ := tok["access_token"].(string)
	if resp.StatusCode != 200 || access == "" {
		t.Fatalf("cross-site token request: %d %v", resp.StatusCode, tok)
	}
	if resp, m := crossSite("POST", "/oidc/userinfo", url.Values{}, access); resp.StatusCode != 200 || m["sub"] == nil {
		t.Errorf("cross-site userinfo: %d %v", resp.StatusCode, m)
	}
	if resp, m := crossSite("POST", "/oidc/introspect", url.Values{"token": {access}, "client_id": {"spa"}}, ""); resp.StatusCode == http.StatusForbidden {
		t.Errorf("cross-site introspection refused by the cross-origin protection: %v", m)
	}
	if resp, m := crossSite("POST", "/oidc/revoke", url.Values{"token": {access}, "client_id": {"spa"}}, ""); resp.StatusCode != 200 {
		t.Errorf("cross-site revocation: %d %v", resp.StatusCode, m)
	}
	// A refused request: a clear OAuth error, and the library's log line reaches the server's
	// log (not the process's default logger), without the code.
	if resp, m := crossSite("POST", "/oidc/token", url.Values{"grant_type": {"authorization_code"}, "code": {"bogus-code-x"}, "client_id": {"spa"},
		"redirect_uri": {spa.conf.RedirectURL}, "code_verifier": {verifier}}, ""); resp.StatusCode != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("bogus code: %d %v", resp.StatusCode, m)
	}
	if l := s.log(); !strings.Contains(l, `msg="request error"`) || strings.Contains(l, "bogus-code-x") {
		t.Errorf("server log after a refused token request:\n%s", l)
	}
	// The preflight of a browser.
	req, _ := http.NewRequest("OPTIONS", s.url+"/oidc/token", nil)
	req.Header.Set("Origin", "https://spa.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "content-type")
	pre, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	pre.Body.Close()
	if pre.StatusCode/100 != 2 || pre.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("preflight: %d %v", pre.StatusCode, pre.Header)
	}
	// Pages and the rest of the provider are still protected.
	for _, path := range []string{"/oidc/consent", "/oidc/stepup", "/login"} {
		req, _ := http.NewRequest("POST", s.url+path, strings.NewReader("id=x"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "https://evil.example")
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("cross-site POST %s: %d, want 403", path, resp.StatusCode)
		}
	}
}

func TestOIDCLoginHint(t *testing.T) {
	s := startServer(t, "alice")
	r := newRP(t, s, "app")
	br := newOIDCBrowser(t, s.url)
	u, _ := r.authURL(oauth2.SetAuthURLParam("login_hint", "alice"))
	loc := u
	for range 5 {
		resp, err := br.hc.Get(loc)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		next, _ := resp.Request.URL.Parse(resp.Header.Get("Location"))
		loc = next.String()
		if next.Path == "/login" {
			break
		}
	}
	lu, _ := url.Parse(loc)
	if lu.Path != "/login" || lu.Query().Get("login_hint") != "alice" {
		t.Fatalf("sign-in redirect %q, want /login with login_hint", loc)
	}
	_, page := br.get(lu.RequestURI())
	if !strings.Contains(page, `autocomplete="username"`) || !strings.Contains(page, `value="alice"`) {
		t.Errorf("sign-in page does not fill in the hint:\n%s", page)
	}
	// A hint with a quote is escaped, one with a control character dropped.
	_, page = br.get("/login?login_hint=" + url.QueryEscape(`"><b>x`))
	if strings.Contains(page, `"><b>x`) {
		t.Errorf("hint not escaped:\n%s", page)
	}
}

// TestOIDCStepUp: a password-only session meets a client that demands MFA: the user goes
// through the second step of sign-in and back to the client, which gets amr mfa.
func TestOIDCStepUp(t *testing.T) {
	s := startServer(t, "alice")
	plain := newRP(t, s, "plain")
	strict := newRP(t, s, "strict", "--require-mfa")
	br := newOIDCBrowser(t, s.url)
	if res := br.authorize(must(plain.authURL()), nil); res.code == "" {
		t.Fatalf("password sign-in: %+v", res)
	}
	// alice adds an authenticator app in another session: this one stays password-only.
	secret, T, recovery := enrolTOTPRecovery(t, s.url)
	codes := 0
	u, verifier := strict.authURL()
	res := br.authorize(u, func() string { codes++; return totp.Code(secret, T+1) })
	if res.code == "" || codes != 1 || !slices.Contains(res.pages, "stepup") || !slices.Contains(res.pages, "/login/code") {
		t.Fatalf("step-up: %+v, %d codes", res, codes)
	}
	_, c := strict.exchange(res.code, verifier)
	if c.ACR != "mfa" || !slices.Contains(c.AMR, "mfa") || !slices.Contains(c.AMR, "otp") {
		t.Errorf("ID token after step-up: %+v", c)
	}
	// acr_values=mfa on the other client now goes straight through.
	if res := br.authorize(must(plain.authURL(oauth2.SetAuthURLParam("acr_values", "mfa"))), nil); res.code == "" || len(res.pages) != 1 {
		t.Errorf("acr_values=mfa after step-up: %+v", res)
	}
	wantAudit(t, auditActions(t, s), "login.step_up success next: second_factor")

	// prompt=login: the password given again is all the ID token claims; the second factor
	// from before is not part of the new sign-in.
	u, verifier = plain.authURL(oauth2.SetAuthURLParam("prompt", "login"))
	if res = br.authorize(u, nil); res.code == "" || !slices.Contains(res.pages, "/reauth") || slices.Contains(res.pages, "stepup") {
		t.Fatalf("prompt=login: %+v", res)
	}
	if _, c := plain.exchange(res.code, verifier); c.ACR != "pwd" || slices.Contains(c.AMR, "otp") || slices.Contains(c.AMR, "mfa") || !slices.Contains(c.AMR, "pwd") {
		t.Errorf("ID token after a password-only re-login claims the old second factor: %+v", c)
	}
	// max_age=0 with acr_values=mfa: the password, then the second factor again, both fresh.
	since := time.Now().Add(-time.Second).Unix()
	br.recovery = recovery[0]
	u, verifier = plain.authURL(oauth2.SetAuthURLParam("max_age", "0"), oauth2.SetAuthURLParam("acr_values", "mfa"))
	if res = br.authorize(u, nil); res.code == "" || !slices.Contains(res.pages, "/reauth") || !slices.Contains(res.pages, "stepup") || !slices.Contains(res.pages, "/login/code") {
		t.Fatalf("max_age=0 with acr_values=mfa: %+v", res)
	}
	if _, c := plain.exchange(res.code, verifier); c.ACR != "mfa" || !slices.Contains(c.AMR, "mfa") || c.AuthTime < since {
		t.Errorf("ID token after a fresh password and second factor: %+v", c)
	}
}

// TestOIDCStepUpWithoutFactor: a user without a second factor is told the application needs
// one, sets one up, and continues to the application.
func TestOIDCStepUpWithoutFactor(t *testing.T) {
	s := startServer(t, "alice")
	strict := newRP(t, s, "strict", "--require-mfa")
	br := newOIDCBrowser(t, s.url)
	u, verifier := strict.authURL(oauth2.SetAuthURLParam("login_hint", "alice"))

	// Up to the step-up page, by hand, to read it.
	loc := u
	var lu *url.URL
	for range 3 {
		resp, err := br.hc.Get(loc)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		lu, _ = resp.Request.URL.Parse(resp.Header.Get("Location"))
		if loc = lu.String(); lu.Path == "/login" {
			break
		}
	}
	resp, err := br.hc.Do(br.form("/login", url.Values{"username": {"alice"}, "password": {alicePassword}, "next": {lu.Query().Get("next")}}))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	code, page := br.get(resp.Header.Get("Location"))
	if code != 200 || !strings.Contains(page, "App strict</span> needs two-step verification") || !strings.Contains(page, "Set up two-step verification") {
		t.Fatalf("step-up page without a factor: %d\n%s", code, page)
	}

	var secret []byte
	br.enroll = func(next string) {
		ba := &browserAPI{t: t, base: s.url, hc: br.hc}
		c, en := ba.call("POST", "/api/v1/account/totp", nil)
		if c != 200 {
			t.Fatalf("enrol during step-up: %d %v", c, en)
		}
		key, err := totp.ParseURI(en["otpauth_uri"].(string))
		if err != nil {
			t.Fatal(err)
		}
		secret = key.Secret
		resp, err := br.hc.Do(br.form("/login/enroll/totp/confirm", url.Values{"code": {totp.Code(secret, totp.Step(time.Now()))}, "next": {next}}))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), "recovery") {
			t.Fatalf("confirm during step-up: %d\n%s", resp.StatusCode, body)
		}
	}
	res := br.authorize(u, nil)
	if res.code == "" || !slices.Contains(res.pages, "stepup") || secret == nil {
		t.Fatalf("step-up with enrolment: %+v", res)
	}
	_, c := strict.exchange(res.code, verifier)
	if c.ACR != "mfa" || !slices.Contains(c.AMR, "mfa") {
		t.Errorf("ID token after enrolling during step-up: %+v", c)
	}
}
