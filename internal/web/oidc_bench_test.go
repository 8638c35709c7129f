package web_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/oidc"
	"github.com/latchkey/latchkey/internal/web"
)

// BenchmarkOIDCAuthorizationCode is one authorization-code flow of a relying party for a
// browser that is already signed in (the second application of the workday): the authorize
// request, Latchkey's session check, the redirect back with a code, and the token exchange
// with PKCE and the client secret, which returns a signed ID token. The real provider on
// SQLite, through the HTTP handler (no network).
func BenchmarkOIDCAuthorizationCode(b *testing.B) {
	f := newFixture(b, "")
	pu, _ := url.Parse(f.srv.URL)
	p, err := oidc.New(oidc.Options{Store: f.db, Issuer: f.srv.URL + "/oidc", Now: f.clock.Now})
	if err != nil {
		b.Fatal(err)
	}
	const redirect = "https://app.example.com/cb"
	_, secret, err := p.CreateClient(context.Background(), oidc.NewClient{ID: "app", RedirectURIs: []string{redirect}, FirstParty: true})
	if err != nil {
		b.Fatal(err)
	}
	h := web.New(web.Options{Login: f.svc, Push: f.push, DB: f.db, PublicURL: pu, Now: f.clock.Now, OIDC: p})
	c := f.client(b)
	if r := c.post("/api/v1/login", map[string]string{"username": "alice", "password": pw}); r.body["state"] != "authenticated" {
		b.Fatalf("login: %s", r.raw)
	}
	cookie := c.sessionCookie()
	verifier := strings.Repeat("v", 43)
	sum := sha256.Sum256([]byte(verifier))
	authorize := "/oidc/authorize?" + url.Values{"client_id": {"app"}, "redirect_uri": {redirect}, "response_type": {"code"},
		"scope": {"openid email"}, "state": {"st"}, "nonce": {"n"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}.Encode()

	flow := func() {
		target := authorize
		var code string
		for hops := 0; code == ""; hops++ {
			if hops == 8 {
				b.Fatalf("no code after 8 redirects, at %s", target)
			}
			req := httptest.NewRequest("GET", target, nil)
			req.AddCookie(cookie)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			loc, err := url.Parse(w.Header().Get("Location"))
			if w.Code/100 != 3 || err != nil {
				b.Fatalf("GET %s: %d\n%s", target, w.Code, w.Body)
			}
			if strings.HasPrefix(loc.String(), redirect) {
				code = loc.Query().Get("code")
				if code == "" || loc.Query().Get("state") != "st" {
					b.Fatalf("back at the client without a code: %s", loc)
				}
				break
			}
			target = loc.RequestURI()
		}
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}, "code_verifier": {verifier}}
		req := httptest.NewRequest("POST", "/oidc/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("app", secret)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		var tok struct {
			IDToken string `json:"id_token"`
		}
		if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &tok) != nil || tok.IDToken == "" {
			b.Fatalf("token: %d\n%s", w.Code, w.Body)
		}
	}
	flow() // the signing key is created on first use
	b.ReportAllocs()
	for b.Loop() {
		flow()
	}
}
