package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/latchkey/latchkey/internal/totp"
)

// rp is a relying party written with coreos/go-oidc and x/oauth2, independent of the
// provider's library.
type rp struct {
	t        *testing.T
	conf     oauth2.Config
	verifier *gooidc.IDTokenVerifier
	provider *gooidc.Provider
}

// secretRe reads the secret from the JSON that `latchkey client create` prints.
var secretRe = regexp.MustCompile(`"client_secret":"([^"]*)"`)

// newRP registers a first-party client with `latchkey client create` and discovers the
// provider.
func newRP(t *testing.T, s *testServer, id string, extra ...string) *rp {
	t.Helper()
	return newRPWith(t, s, id, append([]string{"--first-party"}, extra...)...)
}

// newRPWith registers a client with exactly the extra flags given (a third-party client
// without --first-party).
func newRPWith(t *testing.T, s *testServer, id string, extra ...string) *rp {
	t.Helper()
	redirect := "http://127.0.0.1:1/" + id + "/callback"
	var out, errb strings.Builder
	args := append([]string{"client", "create", "--data", s.data, "--id", id, "--name", "App " + id, "--redirect-uri", redirect}, extra...)
	if err := run(context.Background(), args, env(nil), nil, &out, &errb); err != nil {
		t.Fatalf("client create: %v\n%s", err, errb.String())
	}
	var secret string
	if m := secretRe.FindStringSubmatch(out.String()); m != nil {
		secret = m[1]
	}
	p, err := gooidc.NewProvider(context.Background(), s.url)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	return &rp{t: t, provider: p, verifier: p.Verifier(&gooidc.Config{ClientID: id}), conf: oauth2.Config{
		ClientID: id, ClientSecret: secret, Endpoint: p.Endpoint(), RedirectURL: redirect,
		Scopes: []string{gooidc.ScopeOpenID, "profile", "email", gooidc.ScopeOfflineAccess},
	}}
}

// oidcBrowser keeps cookies and stops at the relying party's redirect URI.
type oidcBrowser struct {
	t    *testing.T
	base string
	hc   *http.Client
	// consent is the answer on a consent page ("allow" or "deny"); "" fails the test there.
	consent string
	// enroll, when set, sets up a factor on the rollout page (step-up without a factor);
	// the browser then continues to next.
	enroll func(next string)
	// recovery, when set, is given on the recovery page in place of a code.
	recovery string
}

var (
	formIDRe   = regexp.MustCompile(`name="id" value="([^"]+)"`)
	continueRe = regexp.MustCompile(`id="continue" href="([^"]+)"`)
)

func newOIDCBrowser(t *testing.T, base string) *oidcBrowser {
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &oidcBrowser{t: t, base: base, hc: hc}
}

// result is where the provider sent the browser back to the relying party.
type result struct {
	code, state, err string
	pages            []string // the Latchkey pages the browser went through
}

// authorize follows the flow from authURL; on the sign-in pages it types the password and,
// when asked, the code from codeFn. It stops at the relying party's redirect URI.
func (b *oidcBrowser) authorize(authURL string, codeFn func() string) result {
	b.t.Helper()
	var res result
	req, _ := http.NewRequest("GET", authURL, nil)
	for range 20 {
		resp, err := b.hc.Do(req)
		if err != nil {
			b.t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if m := continueRe.FindSubmatch(body); resp.StatusCode == http.StatusOK && m != nil {
			// The page that continues to the client after a form (meta refresh).
			loc = html.UnescapeString(string(m[1]))
			resp.StatusCode = http.StatusFound
		}
		if m := formIDRe.FindSubmatch(body); resp.StatusCode == http.StatusOK && m != nil {
			// The consent page, or the step-up page: answer it like a person would.
			id := string(m[1])
			switch {
			case strings.Contains(string(body), `action="/oidc/consent"`):
				if b.consent == "" {
					b.t.Fatalf("unexpected consent page\n%s", body)
				}
				res.pages = append(res.pages, "consent")
				req = b.form("/oidc/consent", url.Values{"id": {id}, "decision": {b.consent}})
				continue
			case strings.Contains(string(body), `action="/oidc/stepup"`):
				res.pages = append(res.pages, "stepup")
				req = b.form("/oidc/stepup", url.Values{"id": {id}})
				continue
			}
		}
		if resp.StatusCode/100 != 3 || loc == "" {
			b.t.Fatalf("%s %s: %d without redirect\n%s", req.Method, req.URL, resp.StatusCode, body)
		}
		u, err := req.URL.Parse(loc)
		if err != nil {
			b.t.Fatal(err)
		}
		if !strings.HasPrefix(u.String(), b.base) {
			q := u.Query()
			res.code, res.state, res.err = q.Get("code"), q.Get("state"), q.Get("error")
			return res
		}
		res.pages = append(res.pages, u.Path)
		next := u.Query().Get("next")
		switch u.Path {
		case "/login":
			req = b.form("/login", url.Values{"username": {"alice"}, "password": {alicePassword}, "next": {next}})
		case "/login/code":
			if b.recovery != "" {
				req = b.form("/login/recovery", url.Values{"code": {b.recovery}, "next": {next}})
				break
			}
			req = b.form("/login/code", url.Values{"code": {codeFn()}, "next": {next}})
		case "/reauth":
			req = b.form("/reauth", url.Values{"password": {alicePassword}, "next": {next}})
		case "/login/enroll":
			if b.enroll == nil {
				b.t.Fatalf("unexpected rollout page")
			}
			b.enroll(next)
			req, _ = http.NewRequest("GET", b.base+next, nil)
		default:
			req, _ = http.NewRequest("GET", u.String(), nil)
		}
	}
	b.t.Fatal("too many redirects")
	return res
}

func (b *oidcBrowser) form(path string, v url.Values) *http.Request {
	req, _ := http.NewRequest("POST", b.base+path, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req
}

// authURL returns an authorization URL with PKCE S256 and the verifier.
func (r *rp) authURL(opts ...oauth2.AuthCodeOption) (string, string) {
	v := oauth2.GenerateVerifier()
	return r.conf.AuthCodeURL("st-"+r.conf.ClientID, append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(v), gooidc.Nonce("n-" + r.conf.ClientID)}, opts...)...), v
}

type idClaims struct {
	Subject  string   `json:"sub"`
	AMR      []string `json:"amr"`
	ACR      string   `json:"acr"`
	AuthTime int64    `json:"auth_time"`
	Nonce    string   `json:"nonce"`
}

// exchange trades a code for tokens and verifies the ID token.
func (r *rp) exchange(code, verifier string) (*oauth2.Token, idClaims) {
	r.t.Helper()
	tok, err := r.conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		r.t.Fatalf("exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := r.verifier.Verify(context.Background(), raw)
	if err != nil {
		r.t.Fatalf("verify id token: %v", err)
	}
	var c idClaims
	if err := idt.Claims(&c); err != nil {
		r.t.Fatal(err)
	}
	return tok, c
}

// userinfo reports whether the access token is accepted at the userinfo endpoint.
func (r *rp) userinfo(tok *oauth2.Token) (*gooidc.UserInfo, error) {
	return r.provider.UserInfo(context.Background(), oauth2.StaticTokenSource(tok))
}

// enrolTOTP gives alice an authenticator app and returns its secret and the last step used.
func enrolTOTP(t *testing.T, base string) ([]byte, int64) {
	t.Helper()
	secret, T, _ := enrolTOTPRecovery(t, base)
	return secret, T
}

// enrolTOTPRecovery is enrolTOTP that also returns the recovery codes.
func enrolTOTPRecovery(t *testing.T, base string) ([]byte, int64, []string) {
	t.Helper()
	ba := newBrowserAPI(t, base)
	if st := ba.login(); st != "authenticated" {
		t.Fatalf("login state %q", st)
	}
	code, en := ba.call("POST", "/api/v1/account/totp", nil)
	if code != 200 {
		t.Fatalf("enrol: %d %v", code, en)
	}
	key, err := totp.ParseURI(en["otpauth_uri"].(string))
	if err != nil {
		t.Fatal(err)
	}
	T := totp.Step(time.Now())
	code, m := ba.call("POST", "/api/v1/account/totp/confirm", map[string]string{"code": totp.Code(key.Secret, T)})
	if code != 200 {
		t.Fatalf("confirm: %d %v", code, m)
	}
	var recovery []string
	list, _ := m["recovery_codes"].([]any)
	for _, c := range list {
		recovery = append(recovery, c.(string))
	}
	return key.Secret, T, recovery
}

func TestOIDCTwoRelyingParties(t *testing.T) {
	s := startServer(t, "alice")
	secret, T := enrolTOTP(t, s.url)
	rp1 := newRP(t, s, "rp1", "--require-mfa")
	rp2 := newRP(t, s, "rp2")
	br := newOIDCBrowser(t, s.url)
	codes := 0
	codeFn := func() string { codes++; return totp.Code(secret, T+1) }

	// RP1: password and TOTP.
	authURL, verifier := rp1.authURL()
	res := br.authorize(authURL, codeFn)
	if res.code == "" || res.state != "st-rp1" || codes != 1 || !slices.Contains(res.pages, "/login/code") {
		t.Fatalf("RP1 sign-in: %+v, %d codes typed", res, codes)
	}
	tok1, c1 := rp1.exchange(res.code, verifier)
	if !slices.Contains(c1.AMR, "mfa") || !slices.Contains(c1.AMR, "otp") || !slices.Contains(c1.AMR, "pwd") || c1.ACR != "mfa" || c1.AuthTime == 0 || c1.Nonce != "n-rp1" {
		t.Errorf("RP1 ID token claims = %+v", c1)
	}
	if time.Since(time.Unix(c1.AuthTime, 0)) > time.Minute {
		t.Errorf("auth_time %v is not the sign-in", time.Unix(c1.AuthTime, 0))
	}
	ui, err := rp1.userinfo(tok1)
	if err != nil || ui.Subject != c1.Subject || ui.Email != "alice@example.com" {
		t.Errorf("userinfo = %+v, %v", ui, err)
	}

	// RP2: no prompt at all, MFA shown in amr.
	authURL, verifier = rp2.authURL()
	res = br.authorize(authURL, codeFn)
	if res.code == "" || len(res.pages) != 1 || codes != 1 {
		t.Fatalf("RP2: %+v (pages %v), %d codes typed; want a code with no prompt", res, res.pages, codes)
	}
	_, c2 := rp2.exchange(res.code, verifier)
	if !slices.Contains(c2.AMR, "mfa") || c2.ACR != "mfa" || c2.Subject != c1.Subject || c2.AuthTime != c1.AuthTime {
		t.Errorf("RP2 ID token claims = %+v (RP1 %+v)", c2, c1)
	}

	// prompt=none with the session: a code. Without one: login_required.
	authURL, _ = rp2.authURL(oauth2.SetAuthURLParam("prompt", "none"))
	if res = br.authorize(authURL, codeFn); res.code == "" {
		t.Errorf("prompt=none with a session: %+v", res)
	}
	if res = newOIDCBrowser(t, s.url).authorize(authURL, codeFn); res.err != "login_required" || res.code != "" {
		t.Errorf("prompt=none without a session: %+v, want login_required", res)
	}

	// prompt=login: the password again (not the code), and a later auth_time.
	time.Sleep(1100 * time.Millisecond) // auth_time has a resolution of one second
	authURL, verifier = rp2.authURL(oauth2.SetAuthURLParam("prompt", "login"))
	res = br.authorize(authURL, codeFn)
	if res.code == "" || !slices.Contains(res.pages, "/reauth") || codes != 1 {
		t.Fatalf("prompt=login: %+v", res)
	}
	_, c3 := rp2.exchange(res.code, verifier)
	if c3.AuthTime <= c1.AuthTime {
		t.Errorf("prompt=login: auth_time %d, not after %d", c3.AuthTime, c1.AuthTime)
	}
	// max_age=3600 is satisfied by that sign-in; max_age=0 is not.
	authURL, _ = rp2.authURL(oauth2.SetAuthURLParam("max_age", "3600"))
	if res = br.authorize(authURL, codeFn); res.code == "" || len(res.pages) != 1 {
		t.Errorf("max_age=3600: %+v", res)
	}
	authURL, _ = rp2.authURL(oauth2.SetAuthURLParam("max_age", "0"), oauth2.SetAuthURLParam("prompt", "none"))
	if res = br.authorize(authURL, codeFn); res.err != "login_required" {
		t.Errorf("max_age=0 with prompt=none: %+v, want login_required", res)
	}
}

func TestOIDCRefusals(t *testing.T) {
	s := startServer(t, "alice")
	conf := newRP(t, s, "conf")
	pub := newRP(t, s, "spa", "--public")
	if pub.conf.ClientSecret != "" || conf.conf.ClientSecret == "" {
		t.Fatalf("secrets: public %q, confidential %q", pub.conf.ClientSecret, conf.conf.ClientSecret)
	}
	br := newOIDCBrowser(t, s.url)
	none := func() string { t.Fatal("no code expected"); return "" }

	// A public client without PKCE, or with plain, is refused before any sign-in.
	noPKCE := pub.conf.AuthCodeURL("st")
	plain := pub.conf.AuthCodeURL("st", oauth2.SetAuthURLParam("code_challenge", strings.Repeat("a", 43)), oauth2.SetAuthURLParam("code_challenge_method", "plain"))
	for name, u := range map[string]string{"no PKCE": noPKCE, "plain": plain} {
		if res := br.authorize(u, none); res.err != "invalid_request" || len(res.pages) != 0 {
			t.Errorf("public client, %s: %+v, want invalid_request", name, res)
		}
	}
	// plain is refused for confidential clients too.
	plain = conf.conf.AuthCodeURL("st", oauth2.SetAuthURLParam("code_challenge", strings.Repeat("a", 43)), oauth2.SetAuthURLParam("code_challenge_method", "plain"))
	if res := br.authorize(plain, none); res.err != "invalid_request" {
		t.Errorf("confidential client, plain: %+v", res)
	}

	// A redirect URI that is not registered exactly: an error page, no redirect.
	for _, bad := range []string{"http://127.0.0.1:1/conf/callback/x", "http://127.0.0.1:2/conf/callback", "https://evil.example/conf/callback"} {
		c := conf.conf
		c.RedirectURL = bad
		u, _ := (&rp{conf: c}).authURL()
		resp, err := br.hc.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
			t.Errorf("redirect_uri %s: %d to %q, want 400 without redirect", bad, resp.StatusCode, resp.Header.Get("Location"))
		}
		// A person's browser gets Latchkey's page, saying why in plain words.
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(body), "not registered for it") {
			t.Errorf("redirect_uri %s: %s page:\n%s", bad, resp.Header.Get("Content-Type"), body)
		}
	}
	// So does a client that is not registered at all.
	resp, err := br.hc.Get(s.url + "/oidc/authorize?client_id=nope&response_type=code&scope=openid&redirect_uri=" + url.QueryEscape("https://evil.example/cb"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(string(body), "not registered with Latchkey") || strings.Contains(string(body), "client by id") {
		t.Errorf("unknown client: %d to %q (%s):\n%s", resp.StatusCode, resp.Header.Get("Location"), resp.Header.Get("Content-Type"), body)
	}

	// The public client with S256 signs in (alice has no second factor).
	u, verifier := pub.authURL()
	res := br.authorize(u, none)
	if res.code == "" {
		t.Fatalf("public client with S256: %+v", res)
	}
	_, c := pub.exchange(res.code, verifier)
	if c.ACR != "pwd" || slices.Contains(c.AMR, "mfa") {
		t.Errorf("password-only claims = %+v", c)
	}
	// Without the verifier, the token endpoint refuses (another code).
	u, _ = pub.authURL()
	res = br.authorize(u, none)
	if _, err := pub.conf.Exchange(context.Background(), res.code); err == nil {
		t.Errorf("exchange without code_verifier succeeded")
	}

	// Code reuse: refused, and the tokens issued from that code are revoked.
	u, verifier = conf.authURL()
	res = br.authorize(u, none)
	tok, _ := conf.exchange(res.code, verifier)
	if _, err := conf.userinfo(tok); err != nil {
		t.Fatalf("userinfo before reuse: %v", err)
	}
	if _, err := conf.conf.Exchange(context.Background(), res.code, oauth2.VerifierOption(verifier)); !isOAuthError(err, "invalid_grant") {
		t.Errorf("second exchange of a code: %v, want invalid_grant", err)
	}
	if _, err := conf.userinfo(tok); err == nil {
		t.Errorf("access token still accepted after its code was reused")
	}
	if _, err := conf.conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
		t.Errorf("refresh token still accepted after its code was reused")
	}

	// A client that requires MFA, for a password-only session: interaction_required with
	// prompt=none (the step-up page otherwise: TestOIDCStepUp, TestOIDCStepUpWithoutFactor).
	mfa := newRP(t, s, "strict", "--require-mfa")
	u, _ = mfa.authURL(oauth2.SetAuthURLParam("prompt", "none"))
	if res := br.authorize(u, none); res.err != "interaction_required" {
		t.Errorf("require-mfa, prompt=none, password-only session: %+v", res)
	}
	u, _ = conf.authURL(oauth2.SetAuthURLParam("acr_values", "mfa"), oauth2.SetAuthURLParam("prompt", "none"))
	if res := br.authorize(u, none); res.err != "interaction_required" {
		t.Errorf("acr_values=mfa, prompt=none, password-only session: %+v", res)
	}
}

func TestOIDCRefreshAndKeyRotation(t *testing.T) {
	s := startServer(t, "alice")
	r := newRP(t, s, "app")
	br := newOIDCBrowser(t, s.url)
	u, verifier := r.authURL()
	res := br.authorize(u, func() string { t.Fatal("no code expected"); return "" })
	tok, c := r.exchange(res.code, verifier)
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token with offline_access")
	}

	// Rotation: the new refresh token works, the old one is refused, and using the old one
	// again revokes the new one too.
	ctx := context.Background()
	old := &oauth2.Token{RefreshToken: tok.RefreshToken}
	tok2, err := r.conf.TokenSource(ctx, old).Token()
	if err != nil || tok2.RefreshToken == "" || tok2.RefreshToken == tok.RefreshToken {
		t.Fatalf("refresh: %+v, %v", tok2, err)
	}
	if raw, _ := tok2.Extra("id_token").(string); raw != "" {
		idt, err := r.verifier.Verify(ctx, raw)
		var c2 idClaims
		if err != nil || idt.Claims(&c2) != nil || c2.AuthTime != c.AuthTime || c2.Subject != c.Subject || c2.ACR == "" || c2.ACR != c.ACR {
			t.Errorf("refreshed ID token: %+v, %v", c2, err)
		}
	}
	if _, err := r.conf.TokenSource(ctx, old).Token(); !isOAuthError(err, "invalid_grant") {
		t.Errorf("old refresh token: %v, want invalid_grant", err)
	}
	if _, err := r.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok2.RefreshToken}).Token(); err == nil {
		t.Errorf("the rotated token still works after the old one was replayed")
	}

	// Key rotation: the new key signs, the old one stays in the JWKS.
	before := jwks(t, s.url)
	if len(before) != 1 {
		t.Fatalf("JWKS before rotation: %v", before)
	}
	var out, errb strings.Builder
	if err := run(ctx, []string{"oidc", "rotate-key", "--data", s.data}, env(nil), nil, &out, &errb); err != nil {
		t.Fatalf("rotate-key: %v\n%s", err, errb.String())
	}
	after := jwks(t, s.url)
	if len(after) != 2 || !slices.Contains(after, before[0]) {
		t.Fatalf("JWKS after rotation: %v (before %v)", after, before)
	}
	u, verifier = r.authURL()
	res = br.authorize(u, nil)
	tok3, _ := r.exchange(res.code, verifier)
	raw, _ := tok3.Extra("id_token").(string)
	if kid := jwtKID(t, raw); kid == before[0] || !slices.Contains(after, kid) {
		t.Errorf("new ID token signed by %q; keys %v, old %q", kid, after, before[0])
	}
	// The token signed by the old key still verifies (a fresh verifier reads the JWKS).
	oldRaw, _ := tok.Extra("id_token").(string)
	p, err := gooidc.NewProvider(ctx, s.url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Verifier(&gooidc.Config{ClientID: "app"}).Verify(ctx, oldRaw); err != nil {
		t.Errorf("ID token of the retired key: %v", err)
	}
}

func jwks(t *testing.T, base string) []string {
	t.Helper()
	resp, err := http.Get(base + "/oidc/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct {
			KID string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, k := range set.Keys {
		ids = append(ids, k.KID)
	}
	return ids
}

func jwtKID(t *testing.T, raw string) string {
	t.Helper()
	h, _, _ := strings.Cut(raw, ".")
	var hdr struct {
		KID string `json:"kid"`
	}
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil || json.Unmarshal(b, &hdr) != nil {
		t.Fatalf("JWT header %q", h)
	}
	return hdr.KID
}

func isOAuthError(err error, code string) bool {
	var re *oauth2.RetrieveError
	return errors.As(err, &re) && re.ErrorCode == code
}
