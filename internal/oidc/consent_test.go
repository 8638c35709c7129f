package oidc_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/audit"
	"github.com/latchkey/latchkey/internal/oidc"
)

// actions returns the audit trail as "action outcome" lines.
func (f *fixture) actions(t *testing.T) []string {
	t.Helper()
	events, err := f.db.FindAuditEvents(context.Background(), latchkey.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range events {
		out = append(out, e.Action+" "+e.Outcome)
	}
	return out
}

func (f *fixture) audited(t *testing.T, action, outcome, detail string) {
	t.Helper()
	events, err := f.db.FindAuditEvents(context.Background(), latchkey.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if e.Action == action && e.Outcome == outcome && strings.Contains(e.Detail, detail) {
			return
		}
	}
	t.Errorf("no audit event %s %s with %q in %v", action, outcome, detail, f.actions(t))
}

func TestConsent(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	sess := &latchkey.Session{AMR: []string{latchkey.AMRPassword}, PasswordAt: t0}
	step := func(params url.Values) (string, *oidc.Decision) {
		t.Helper()
		id := f.start(t, "third", params)
		d, err := f.p.Authorize(ctx, id, sess, f.user)
		if err != nil {
			t.Fatal(err)
		}
		return id, d
	}
	scopes := url.Values{"scope": {"openid email"}}

	// First time: the consent page, with the client and the scopes asked for.
	id, d := step(scopes)
	if d.Step != oidc.StepConsent || d.Client.Name != "Third App" || !slices.Equal(d.Scopes, []string{"openid", "email"}) {
		t.Fatalf("first request: %+v", d)
	}
	if got := oidc.DescribeScopes(d.Scopes); !slices.Equal(got, []string{"know who you are", "see your email address"}) {
		t.Errorf("DescribeScopes = %q", got)
	}
	if d, err := f.p.Consent(ctx, id, sess, f.user, true); err != nil || d.Step != oidc.StepDone {
		t.Fatalf("Allow: %+v, %v", d, err)
	}
	f.audited(t, latchkey.ActionOIDCConsentGranted, latchkey.OutcomeSuccess, "client: third")
	f.audited(t, latchkey.ActionOIDCAuthorize, latchkey.OutcomeSuccess, "client: third")

	// The same or fewer scopes: straight through. More: asked again. prompt=consent: asked.
	if _, d := step(scopes); d.Step != oidc.StepDone {
		t.Errorf("same scopes: step %d, want done", d.Step)
	}
	if _, d := step(url.Values{"scope": {"openid"}}); d.Step != oidc.StepDone {
		t.Errorf("fewer scopes: step %d, want done", d.Step)
	}
	if _, d := step(url.Values{"scope": {"openid email"}, "prompt": {"consent"}}); d.Step != oidc.StepConsent {
		t.Errorf("prompt=consent: step %d, want consent", d.Step)
	}
	more := url.Values{"scope": {"openid email profile"}}
	if _, d := step(more); d.Step != oidc.StepConsent {
		t.Errorf("a new scope: step %d, want consent", d.Step)
	}
	// prompt=none cannot show the page: consent_required.
	_, d = step(url.Values{"scope": {"openid email profile"}, "prompt": {"none"}})
	if d.Step != oidc.StepError || errType(d.Err) != "consent_required" {
		t.Errorf("prompt=none without consent: %+v, want consent_required", d)
	}
	// Deny: access_denied, audited, and nothing stored.
	id, _ = step(more)
	d, err := f.p.Consent(ctx, id, sess, f.user, false)
	if err != nil || d.Step != oidc.StepError || errType(d.Err) != "access_denied" {
		t.Fatalf("Deny: %+v, %v", d, err)
	}
	f.audited(t, latchkey.ActionOIDCAuthorize, latchkey.OutcomeDenied, "access_denied")
	if c, _ := f.db.FindOIDCConsent(ctx, f.user.ID, "third"); slices.Contains(c.Scopes, "profile") {
		t.Errorf("a denied scope was stored: %v", c.Scopes)
	}
	// Allowing the larger set keeps the old scopes and adds the new one.
	id, _ = step(more)
	if d, err := f.p.Consent(ctx, id, sess, f.user, true); err != nil || d.Step != oidc.StepDone {
		t.Fatalf("Allow more: %+v, %v", d, err)
	}
	list, err := f.p.Consents(ctx, f.user)
	if err != nil || len(list) != 1 || !slices.Equal(list[0].Scopes, []string{"email", "openid", "profile"}) {
		t.Fatalf("Consents = %+v, %v", list, err)
	}

	// The consent page's answer counts only for a session that may complete the request.
	id, _ = step(url.Values{"scope": {"openid"}, "acr_values": {"mfa"}})
	if d, err := f.p.Consent(ctx, id, sess, f.user, true); err != nil || d.Step != oidc.StepMFARequired {
		t.Errorf("Allow without the MFA the request demands: %+v, %v", d, err)
	}

	// Revoking: the consent and the client's tokens go; the next request asks again.
	id, _ = step(scopes)
	body := f.exchange(t, "third", id)
	if !strings.Contains(body, "access_token") {
		t.Fatalf("token response %s", body)
	}
	if err := f.p.RevokeConsent(ctx, f.user, "third"); err != nil {
		t.Fatal(err)
	}
	f.audited(t, latchkey.ActionOIDCConsentRevoked, latchkey.OutcomeSuccess, "client: third")
	if err := f.p.RevokeConsent(ctx, f.user, "third"); latchkey.ErrorCode(err) != latchkey.ENotFound {
		t.Errorf("revoking twice: %v, want not found", err)
	}
	if _, d := step(scopes); d.Step != oidc.StepConsent {
		t.Errorf("after revoking: step %d, want consent", d.Step)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.Unmarshal([]byte(body), &tok)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "http://id.test/oidc/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	f.p.Handler().ServeHTTP(rec, req)
	if rec.Code == http.StatusOK {
		t.Errorf("userinfo with a token of a revoked consent: %d %s", rec.Code, rec.Body)
	}
}

func errType(err error) string {
	var e *zoidc.Error
	if !errors.As(err, &e) {
		return ""
	}
	return string(e.ErrorType)
}

// idClaims decodes an ID token's payload without checking it (the relying-party tests in
// cmd/latchkey verify signatures with go-oidc).
func idClaims(t *testing.T, body string) map[string]any {
	t.Helper()
	var resp struct {
		IDToken string `json:"id_token"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil || resp.IDToken == "" {
		t.Fatalf("token response %s", body)
	}
	parts := strings.Split(resp.IDToken, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRefreshedIDTokenKeepsACRAndReuseIsAudited: a refresh while the session the grant was
// given in lasts gives an ID token with the first one's acr, and a reused refresh token is
// refused and audited.
func TestRefreshedIDTokenKeepsACRAndReuseIsAudited(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	mfaAt := t0
	sess := &latchkey.Session{ID: "s1", SID: "sid1", UserID: f.user.ID, State: latchkey.StateAuthenticated,
		AMR: []string{latchkey.AMRPassword, latchkey.AMROTP, latchkey.AMRMFA}, PasswordAt: t0, MFAAt: &mfaAt,
		CreatedAt: t0, LastSeenAt: t0, ExpiresAt: t0.Add(8 * time.Hour)}
	if err := f.db.CreateSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	id := f.start(t, "app", url.Values{"scope": {"openid offline_access"}})
	if _, err := f.p.Authorize(ctx, id, sess, f.user); err != nil {
		t.Fatal(err)
	}
	body := f.exchange(t, "app", id)
	if c := idClaims(t, body); c["acr"] != "mfa" {
		t.Fatalf("first ID token acr = %v", c["acr"])
	}
	f.audited(t, latchkey.ActionOIDCCodeExchanged, latchkey.OutcomeSuccess, "client: app")
	var tok struct {
		RefreshToken string `json:"refresh_token"`
	}
	json.Unmarshal([]byte(body), &tok)
	refresh := func(rt string) *httptest.ResponseRecorder {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
		req := httptest.NewRequest("POST", "http://id.test/oidc/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("app", f.secrets["app"])
		rec := httptest.NewRecorder()
		f.p.Handler().ServeHTTP(rec, req)
		return rec
	}
	rec := refresh(tok.RefreshToken)
	if rec.Code != http.StatusOK {
		t.Fatalf("refresh: %d %s", rec.Code, rec.Body)
	}
	c := idClaims(t, rec.Body.String())
	if c["acr"] != "mfa" || c["auth_time"] == nil {
		t.Errorf("refreshed ID token claims = %v, want acr mfa and auth_time", c)
	}
	var tok2 struct {
		RefreshToken string `json:"refresh_token"`
	}
	json.Unmarshal(rec.Body.Bytes(), &tok2)
	if tok2.RefreshToken == "" || tok2.RefreshToken == tok.RefreshToken {
		t.Fatalf("refresh did not rotate: %s", rec.Body)
	}
	if rec := refresh(tok.RefreshToken); rec.Code == http.StatusOK {
		t.Fatalf("reused refresh token accepted")
	}
	f.audited(t, latchkey.ActionOIDCRefreshReused, latchkey.OutcomeDenied, "client: app")
}

func TestCodeReuseAuditedAndClientCreated(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	f.audited(t, latchkey.ActionOIDCClientCreated, latchkey.OutcomeSuccess, "client: third")
	id := f.start(t, "app", nil)
	if _, err := f.p.Authorize(ctx, id, &latchkey.Session{AMR: []string{"pwd"}, PasswordAt: t0}, f.user); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	f.p.Respond(rec, httptest.NewRequest("GET", "http://id.test/oidc/login?id="+id, nil), id, nil)
	loc, _ := url.Parse(rec.Header().Get("Location"))
	form := url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "redirect_uri": {"https://app.test/cb"}, "code_verifier": {verifier}}
	for i := range 2 {
		req := httptest.NewRequest("POST", "http://id.test/oidc/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("app", f.secrets["app"])
		rec := httptest.NewRecorder()
		f.p.Handler().ServeHTTP(rec, req.WithContext(oidc.WithClient(req.Context(), "192.0.2.7", "rp/1.0")))
		if (rec.Code == http.StatusOK) != (i == 0) {
			t.Fatalf("exchange %d: %d %s", i+1, rec.Code, rec.Body)
		}
	}
	f.audited(t, latchkey.ActionOIDCCodeReused, latchkey.OutcomeDenied, "tokens revoked: 1")
	events, _ := f.db.FindAuditEvents(ctx, latchkey.AuditFilter{})
	last := events[len(events)-1]
	if last.IP != "192.0.2.7" || last.UserAgent != "rp/1.0" || last.UserID != f.user.ID {
		t.Errorf("code reuse event = %+v, want the client's IP and user agent and the user", last)
	}
}

func TestDiscoveryAtIssuerAndCORS(t *testing.T) {
	f := setup(t)
	rec := httptest.NewRecorder()
	f.p.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "http://id.test/.well-known/openid-configuration", nil))
	var disc map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &disc); err != nil {
		t.Fatalf("discovery: %d %s", rec.Code, rec.Body)
	}
	for k, want := range map[string]string{
		"issuer": "http://id.test", "authorization_endpoint": "http://id.test/oidc/authorize", "token_endpoint": "http://id.test/oidc/token",
		"userinfo_endpoint": "http://id.test/oidc/userinfo", "jwks_uri": "http://id.test/oidc/keys", "revocation_endpoint": "http://id.test/oidc/revoke",
		"introspection_endpoint": "http://id.test/oidc/introspect",
	} {
		if disc[k] != want {
			t.Errorf("discovery %s = %v, want %s", k, disc[k], want)
		}
	}
	// A single-page app on another origin may call the token endpoint and read the answer,
	// never with credentials.
	req := httptest.NewRequest("OPTIONS", "http://id.test/oidc/token", nil)
	req.Header.Set("Origin", "https://spa.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "content-type")
	rec = httptest.NewRecorder()
	f.p.Handler().ServeHTTP(rec, req)
	h := rec.Header()
	if h.Get("Access-Control-Allow-Origin") != "*" || h.Get("Access-Control-Allow-Credentials") != "" || !strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") {
		t.Errorf("preflight: %d %v", rec.Code, h)
	}
}

func TestLibraryLogsGoToTheProviderLogger(t *testing.T) {
	var buf, other bytes.Buffer
	f := setup(t)
	p, err := oidc.New(oidc.Options{Store: f.db, Issuer: "http://id.test", Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	old := slog.Default()
	slog.SetDefault(slog.New(oidc.LogHandler(slog.NewTextHandler(&other, nil))))
	t.Cleanup(func() { slog.SetDefault(old) })
	form := url.Values{"grant_type": {"authorization_code"}, "code": {"bogus"}, "redirect_uri": {"https://app.test/cb"}}
	req := httptest.NewRequest("POST", "http://id.test/oidc/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("app", f.secrets["app"])
	rec := httptest.NewRecorder()
	p.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest || !strings.Contains(buf.String(), "request error") || strings.Contains(buf.String(), "bogus") {
		t.Errorf("token error: %d; provider log %q", rec.Code, buf.String())
	}
	if other.Len() != 0 {
		t.Errorf("fallback log got %q", other.String())
	}
	slog.Info("not from a request")
	if !strings.Contains(other.String(), "not from a request") {
		t.Errorf("fallback log = %q", other.String())
	}
}

// TestRefreshWithFewerScopesRotates: a refresh that asks for fewer scopes than the grant's
// (scope=openid, without offline_access) still rotates the refresh token, so the old one
// cannot be used again unseen; the new one keeps the grant's scopes, offline_access with
// them (RFC 6749 §6), and refreshes again.
func TestRefreshWithFewerScopesRotates(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	id := f.start(t, "app", url.Values{"scope": {"openid email offline_access"}})
	if _, err := f.p.Authorize(ctx, id, &latchkey.Session{AMR: []string{"pwd"}, PasswordAt: t0}, f.user); err != nil {
		t.Fatal(err)
	}
	var tok struct {
		RefreshToken string `json:"refresh_token"`
		Scope        string `json:"scope"`
	}
	json.Unmarshal([]byte(f.exchange(t, "app", id)), &tok)
	refresh := func(rt, scope string) (int, string, string) {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
		if scope != "" {
			form.Set("scope", scope)
		}
		req := httptest.NewRequest("POST", "http://id.test/oidc/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("app", f.secrets["app"])
		rec := httptest.NewRecorder()
		f.p.Handler().ServeHTTP(rec, req)
		var r struct {
			RefreshToken string `json:"refresh_token"`
			Scope        string `json:"scope"`
		}
		json.Unmarshal(rec.Body.Bytes(), &r)
		return rec.Code, r.RefreshToken, r.Scope
	}
	code, rt2, scope := refresh(tok.RefreshToken, "openid")
	if code != http.StatusOK || rt2 == "" || rt2 == tok.RefreshToken || strings.Contains(scope, "email") {
		t.Fatalf("refresh with scope=openid: %d, refresh token %q (was %q), scope %q; want a new refresh token and no email", code, rt2, tok.RefreshToken, scope)
	}
	if code, _, _ := refresh(tok.RefreshToken, "openid"); code == http.StatusOK {
		t.Fatal("the refresh token used with scope=openid refreshed again")
	}
	f.audited(t, latchkey.ActionOIDCRefreshReused, latchkey.OutcomeDenied, "client: app")
	// The reuse revoked the grant, the new token with it: a fresh grant shows what the new
	// refresh token keeps.
	id = f.start(t, "app", url.Values{"scope": {"openid email offline_access"}})
	if _, err := f.p.Authorize(ctx, id, &latchkey.Session{AMR: []string{"pwd"}, PasswordAt: t0}, f.user); err != nil {
		t.Fatal(err)
	}
	json.Unmarshal([]byte(f.exchange(t, "app", id)), &tok)
	_, rt2, _ = refresh(tok.RefreshToken, "openid")
	code, rt3, scope := refresh(rt2, "")
	if code != http.StatusOK || rt3 == "" || !strings.Contains(scope, "email") || !strings.Contains(scope, "offline_access") {
		t.Errorf("refresh of the rotated token without scope: %d, refresh token %q, scope %q; want the grant's scopes", code, rt3, scope)
	}
}

// pairedRefreshReads is the real store whose refresh token reads, once armed, wait until two
// of them have read: two refreshes with the same token both find it unused.
type pairedRefreshReads struct {
	oidc.Store
	armed bool
	read  sync.WaitGroup
}

func (s *pairedRefreshReads) FindOIDCRefreshToken(ctx context.Context, id string) (*latchkey.OIDCRefreshToken, error) {
	rt, err := s.Store.FindOIDCRefreshToken(ctx, id)
	if s.armed {
		s.read.Done()
		s.read.Wait()
	}
	return rt, err
}

// TestConcurrentRefreshReuseRevokesTheGrant: two refreshes at once with the same token both
// read it unused; one rotates it, and the other, refused, is a reuse like a later one: the
// grant is revoked (the winner's new refresh token no longer works) and the reuse audited.
func TestConcurrentRefreshReuseRevokesTheGrant(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	store := &pairedRefreshReads{Store: f.db}
	clock := func() time.Time { return f.now }
	p, err := oidc.New(oidc.Options{Store: store, Issuer: "http://id.test", Now: clock, Audit: audit.New(f.db, nil, clock)})
	if err != nil {
		t.Fatal(err)
	}
	f.p = p
	id := f.start(t, "app", url.Values{"scope": {"openid offline_access"}})
	if _, err := f.p.Authorize(ctx, id, &latchkey.Session{AMR: []string{"pwd"}, PasswordAt: t0}, f.user); err != nil {
		t.Fatal(err)
	}
	var tok struct {
		RefreshToken string `json:"refresh_token"`
	}
	json.Unmarshal([]byte(f.exchange(t, "app", id)), &tok)
	refresh := func(rt string) *httptest.ResponseRecorder {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
		req := httptest.NewRequest("POST", "http://id.test/oidc/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("app", f.secrets["app"])
		rec := httptest.NewRecorder()
		f.p.Handler().ServeHTTP(rec, req)
		return rec
	}
	store.armed = true
	store.read.Add(2)
	var recs [2]*httptest.ResponseRecorder
	var wg sync.WaitGroup
	for i := range recs {
		wg.Go(func() { recs[i] = refresh(tok.RefreshToken) })
	}
	wg.Wait()
	store.armed = false
	won, lost := recs[0], recs[1]
	if won.Code != http.StatusOK {
		won, lost = lost, won
	}
	if won.Code != http.StatusOK || lost.Code != http.StatusBadRequest || !strings.Contains(lost.Body.String(), "invalid_grant") {
		t.Fatalf("concurrent refreshes: %d %s and %d %s, want one 200 and one invalid_grant", recs[0].Code, recs[0].Body, recs[1].Code, recs[1].Body)
	}
	var next struct {
		RefreshToken string `json:"refresh_token"`
	}
	json.Unmarshal(won.Body.Bytes(), &next)
	if rec := refresh(next.RefreshToken); rec.Code == http.StatusOK {
		t.Errorf("the winner's new refresh token still works after the reuse: %s", rec.Body)
	}
	f.audited(t, latchkey.ActionOIDCRefreshReused, latchkey.OutcomeDenied, "client: app")
}
