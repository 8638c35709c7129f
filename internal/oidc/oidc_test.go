package oidc_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/audit"
	"github.com/latchkey/latchkey/internal/oidc"
	"github.com/latchkey/latchkey/internal/sqlstore"
	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
)

var t0 = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

type fixture struct {
	db      *sqlstore.DB
	p       *oidc.Provider
	now     time.Time
	user    *latchkey.User
	secrets map[string]string
}

// verifier is the PKCE code verifier of every request in these tests.
var verifier = strings.Repeat("v", 43)

func challenge() string {
	h := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

func setup(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{now: t0, secrets: map[string]string{}}
	clock := func() time.Time { return f.now }
	db, err := sqlstore.Open(context.Background(), filepath.Join(t.TempDir(), "db"), sqlstore.Options{SecretsKey: bytes.Repeat([]byte{1}, 32), Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f.db = db
	if f.p, err = oidc.New(oidc.Options{Store: db, Issuer: "http://id.test", Now: clock, Audit: audit.New(db, nil, clock)}); err != nil {
		t.Fatal(err)
	}
	f.user = &latchkey.User{Username: "alice", Email: "alice@example.com", Role: latchkey.RoleUser, PasswordHash: "x"}
	if err := db.CreateUser(context.Background(), f.user); err != nil {
		t.Fatal(err)
	}
	for _, nc := range []oidc.NewClient{
		{ID: "app", RedirectURIs: []string{"https://app.test/cb"}, FirstParty: true},
		{ID: "strict", RedirectURIs: []string{"https://strict.test/cb"}, RequireMFA: true, FirstParty: true},
		{ID: "third", Name: "Third App", RedirectURIs: []string{"https://third.test/cb"}},
	} {
		_, secret, err := f.p.CreateClient(context.Background(), nc)
		if err != nil {
			t.Fatal(err)
		}
		f.secrets[nc.ID] = secret
	}
	return f
}

// start sends an authorization request to the provider's handler and returns the request
// ID from the login redirect.
func (f *fixture) start(t *testing.T, client string, params url.Values) string {
	t.Helper()
	q := url.Values{"client_id": {client}, "redirect_uri": {"https://" + client + ".test/cb"}, "response_type": {"code"}, "scope": {"openid"},
		"code_challenge": {challenge()}, "code_challenge_method": {"S256"}}
	for k, v := range params {
		q[k] = v
	}
	rec := httptest.NewRecorder()
	f.p.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "http://id.test/oidc/authorize?"+q.Encode(), nil))
	loc, _ := url.Parse(rec.Header().Get("Location"))
	if rec.Code != http.StatusFound || loc == nil || loc.Path != "/oidc/login" {
		t.Fatalf("authorize: %d to %q\n%s", rec.Code, rec.Header().Get("Location"), rec.Body)
	}
	return loc.Query().Get("id")
}

func TestAuthorizeDecisions(t *testing.T) {
	mfaAt := t0.Add(-30 * time.Minute)
	pwd := &latchkey.Session{AMR: []string{latchkey.AMRPassword}, PasswordAt: t0.Add(-time.Hour)}
	mfa := &latchkey.Session{AMR: []string{latchkey.AMRPassword, latchkey.AMROTP, latchkey.AMRMFA}, PasswordAt: t0.Add(-time.Hour), MFAAt: &mfaAt}
	tests := []struct {
		name   string
		client string
		params url.Values
		sess   *latchkey.Session
		want   oidc.Step
	}{
		{"no session", "app", nil, nil, oidc.StepSignIn},
		{"no session, prompt=none", "app", url.Values{"prompt": {"none"}}, nil, oidc.StepError},
		{"signed in", "app", nil, pwd, oidc.StepDone},
		{"prompt=login", "app", url.Values{"prompt": {"login"}}, mfa, oidc.StepReauthenticate},
		{"max_age within", "app", url.Values{"max_age": {"7200"}}, pwd, oidc.StepDone},
		{"max_age exceeded", "app", url.Values{"max_age": {"60"}}, pwd, oidc.StepReauthenticate},
		{"max_age exceeded, prompt=none", "app", url.Values{"max_age": {"60"}, "prompt": {"none"}}, pwd, oidc.StepError},
		{"client requires MFA, password only", "strict", nil, pwd, oidc.StepMFARequired},
		{"client requires MFA, with MFA", "strict", nil, mfa, oidc.StepDone},
		{"acr_values=mfa, password only", "app", url.Values{"acr_values": {"mfa"}}, pwd, oidc.StepMFARequired},
		{"acr_values=mfa, prompt=none", "app", url.Values{"acr_values": {"mfa"}, "prompt": {"none"}}, pwd, oidc.StepError},
		{"acr_values=mfa, with MFA", "app", url.Values{"acr_values": {"mfa"}}, mfa, oidc.StepDone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := setup(t)
			id := f.start(t, tt.client, tt.params)
			var u *latchkey.User
			if tt.sess != nil {
				u = f.user
			}
			d, err := f.p.Authorize(context.Background(), id, tt.sess, u)
			if err != nil || d.Step != tt.want {
				t.Fatalf("Authorize = %+v, %v; want step %d", d, err, tt.want)
			}
			r, err := f.db.FindOIDCAuthRequestByID(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Done(); got != (tt.want == oidc.StepDone) {
				t.Errorf("request done = %v after step %d", got, d.Step)
			}
			if tt.want == oidc.StepDone {
				wantACR, wantTime := latchkey.ACRPassword, tt.sess.PasswordAt
				if tt.sess == mfa {
					wantACR, wantTime = latchkey.ACRMFA, mfaAt
				}
				if r.ACR != wantACR || !r.AuthTime.Equal(wantTime) || len(r.AMR) != len(tt.sess.AMR) {
					t.Errorf("completed request: acr %q, auth_time %v, amr %v", r.ACR, r.AuthTime, r.AMR)
				}
			}
		})
	}
}

func TestPromptLoginSatisfiedByANewPassword(t *testing.T) {
	f := setup(t)
	id := f.start(t, "app", url.Values{"prompt": {"login"}})
	f.now = t0.Add(10 * time.Second)
	fresh := &latchkey.Session{AMR: []string{latchkey.AMRPassword}, PasswordAt: f.now}
	if d, err := f.p.Authorize(context.Background(), id, fresh, f.user); err != nil || d.Step != oidc.StepDone {
		t.Fatalf("after re-authentication: %+v, %v", d, err)
	}
}

// TestMaxAgeAppliesToTheSecondFactor: a password given again for max_age renews the password
// only. A second factor older than max_age is not claimed, and a request that needs one
// steps up again.
func TestMaxAgeAppliesToTheSecondFactor(t *testing.T) {
	mfaAt := t0.Add(-30 * time.Minute)
	// The password was given again just now; the second factor is half an hour old.
	reauthed := &latchkey.Session{AMR: []string{latchkey.AMRPassword, latchkey.AMROTP, latchkey.AMRMFA}, PasswordAt: t0, MFAAt: &mfaAt}
	tests := []struct {
		name     string
		params   url.Values
		want     oidc.Step
		acr      string
		amr      []string
		authTime time.Time
		since    time.Time
	}{
		{"within max_age", url.Values{"max_age": {"3600"}, "acr_values": {"mfa"}}, oidc.StepDone, latchkey.ACRMFA, reauthed.AMR, t0, time.Time{}},
		{"older, MFA not asked for", url.Values{"max_age": {"600"}}, oidc.StepDone, latchkey.ACRPassword, []string{latchkey.AMRPassword}, t0, time.Time{}},
		{"older, acr_values=mfa", url.Values{"max_age": {"600"}, "acr_values": {"mfa"}}, oidc.StepMFARequired, "", nil, time.Time{}, t0.Add(-10 * time.Minute)},
		{"max_age=0, acr_values=mfa", url.Values{"max_age": {"0"}, "acr_values": {"mfa"}}, oidc.StepMFARequired, "", nil, time.Time{}, t0},
		{"older, prompt=none", url.Values{"max_age": {"600"}, "acr_values": {"mfa"}, "prompt": {"none"}}, oidc.StepError, "", nil, time.Time{}, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := setup(t)
			id := f.start(t, "app", tt.params)
			d, err := f.p.Authorize(context.Background(), id, reauthed, f.user)
			if err != nil || d.Step != tt.want || !d.MFASince.Equal(tt.since) || d.StaleMFA != (tt.want == oidc.StepMFARequired) {
				t.Fatalf("Authorize = %+v, %v; want step %d, since %v", d, err, tt.want, tt.since)
			}
			if tt.want == oidc.StepError && d.Err.(*zoidc.Error).ErrorType != zoidc.LoginRequired {
				t.Errorf("prompt=none with an old second factor: %v, want login_required", d.Err)
			}
			r, err := f.db.FindOIDCAuthRequestByID(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != oidc.StepDone {
				if r.Done() {
					t.Error("request completed")
				}
				return
			}
			if r.ACR != tt.acr || !r.AuthTime.Equal(tt.authTime) || !slices.Equal(r.AMR, tt.amr) {
				t.Errorf("completed request: acr %q, auth_time %v, amr %v; want %q, %v, %v", r.ACR, r.AuthTime, r.AMR, tt.acr, tt.authTime, tt.amr)
			}
		})
	}
	// After the step-up, the new factor counts.
	f := setup(t)
	id := f.start(t, "app", url.Values{"max_age": {"0"}, "acr_values": {"mfa"}})
	f.now = t0.Add(20 * time.Second)
	fresh := f.now
	stepped := &latchkey.Session{AMR: reauthed.AMR, PasswordAt: t0.Add(10 * time.Second), MFAAt: &fresh}
	if d, err := f.p.Authorize(context.Background(), id, stepped, f.user); err != nil || d.Step != oidc.StepDone {
		t.Fatalf("after a fresh second factor: %+v, %v", d, err)
	}
	if r, _ := f.db.FindOIDCAuthRequestByID(context.Background(), id); r.ACR != latchkey.ACRMFA || !r.AuthTime.Equal(fresh) {
		t.Errorf("completed request: acr %q, auth_time %v", r.ACR, r.AuthTime)
	}
}

func TestExpiredRequest(t *testing.T) {
	f := setup(t)
	id := f.start(t, "app", nil)
	f.now = t0.Add(11 * time.Minute)
	if _, err := f.p.Authorize(context.Background(), id, nil, nil); latchkey.ErrorCode(err) != latchkey.ENotFound {
		t.Errorf("expired request: %v, want not found", err)
	}
	if _, err := f.p.Authorize(context.Background(), "nope", nil, nil); latchkey.ErrorCode(err) != latchkey.ENotFound {
		t.Errorf("unknown request: %v, want not found", err)
	}
}

func TestCreateClient(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	for _, bad := range []string{"http://app.example/cb", "ftp://x/cb", "https://app.test/cb#frag", "/relative", "app.test/cb"} {
		if _, _, err := f.p.CreateClient(ctx, oidc.NewClient{ID: "x", RedirectURIs: []string{bad}}); latchkey.ErrorCode(err) != latchkey.EInvalid {
			t.Errorf("redirect URI %q: %v, want invalid", bad, err)
		}
	}
	for _, bad := range []string{"", "a/b", "a b", "a?b", "é", strings.Repeat("x", 65)} {
		if _, _, err := f.p.CreateClient(ctx, oidc.NewClient{ID: bad, RedirectURIs: []string{"https://app.test/cb"}}); latchkey.ErrorCode(err) != latchkey.EInvalid {
			t.Errorf("client ID %q: %v, want invalid", bad, err)
		}
	}
	c, secret, err := f.p.CreateClient(ctx, oidc.NewClient{ID: "loop", RedirectURIs: []string{"http://127.0.0.1:8000/cb", "http://localhost/cb"}})
	if err != nil || len(secret) < 40 || c.SecretHash == "" || strings.Contains(c.SecretHash, secret) {
		t.Errorf("confidential client: %+v, secret %q, %v", c, secret, err)
	}
	c, secret, err = f.p.CreateClient(ctx, oidc.NewClient{ID: "spa", Public: true, RedirectURIs: []string{"https://spa.test/cb"}})
	if err != nil || secret != "" || c.SecretHash != "" || !c.Public {
		t.Errorf("public client: %+v, secret %q, %v", c, secret, err)
	}
	if _, _, err := f.p.CreateClient(ctx, oidc.NewClient{ID: "spa", RedirectURIs: []string{"https://spa.test/cb"}}); latchkey.ErrorCode(err) != latchkey.EConflict {
		t.Errorf("duplicate ID: %v", err)
	}
}

func TestKeyRotation(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	jwks := func() []string {
		rec := httptest.NewRecorder()
		f.p.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "http://id.test/oidc/keys", nil))
		var kids []string
		for _, part := range strings.Split(rec.Body.String(), `"kid":"`)[1:] {
			kids = append(kids, part[:strings.Index(part, `"`)])
		}
		return kids
	}
	if kids := jwks(); len(kids) != 0 {
		t.Fatalf("JWKS before any key: %v", kids)
	}
	k1, err := f.p.RotateKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.now = t0.Add(time.Minute)
	k2, err := f.p.RotateKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if kids := jwks(); len(kids) != 2 || kids[0] != k2.ID || kids[1] != k1.ID {
		t.Fatalf("JWKS after rotation = %v, want [%s %s]", kids, k2.ID, k1.ID)
	}
	// The retired key goes once every token it signed has expired (ID tokens: 1 h).
	f.now = t0.Add(2 * time.Hour)
	if kids := jwks(); len(kids) != 1 || kids[0] != k2.ID {
		t.Errorf("JWKS two hours later = %v, want [%s]", kids, k2.ID)
	}
	// After 30 days the active key is replaced on first use.
	f.now = t0.Add(31 * 24 * time.Hour)
	id := f.start(t, "app", nil)
	if _, err := f.p.Authorize(ctx, id, &latchkey.Session{AMR: []string{"pwd"}, PasswordAt: f.now}, f.user); err != nil {
		t.Fatal(err)
	}
	tok := f.exchange(t, "app", id)
	keys, err := f.db.FindOIDCSigningKeys(ctx, f.now)
	if err != nil || len(keys) != 2 || keys[0].ID == k2.ID || keys[1].ID != k2.ID || keys[1].RetiredAt == nil || keys[0].RetiredAt != nil {
		t.Fatalf("keys after first use past 30 days = %+v, %v", keys, err)
	}
	if !strings.Contains(tok, `"id_token"`) {
		t.Errorf("token response %s", tok)
	}
}

// exchange completes request id at the token endpoint and returns the response body.
func (f *fixture) exchange(t *testing.T, client, id string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	f.p.Handler().ServeHTTP(rec, f.tokenRequest(client, f.code(t, id)))
	if rec.Code != http.StatusOK {
		t.Fatalf("token: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// code completes request id and returns the authorization code of its redirect.
func (f *fixture) code(t *testing.T, id string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	f.p.Respond(rec, httptest.NewRequest("GET", "http://id.test/oidc/login?id="+id, nil), id, nil)
	loc, _ := url.Parse(rec.Header().Get("Location"))
	code := loc.Query().Get("code")
	if code == "" {
		t.Fatalf("no code: %d %q", rec.Code, rec.Header().Get("Location"))
	}
	return code
}

// tokenRequest is client's request to exchange code at the token endpoint.
func (f *fixture) tokenRequest(client, code string) *http.Request {
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://" + client + ".test/cb"}, "code_verifier": {verifier}}
	req := httptest.NewRequest("POST", "http://id.test/oidc/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(client, f.secrets[client])
	return req
}

// TestRefusedExchangeLeavesTheCode: an exchange the token endpoint refuses (no or a wrong
// client secret, another client, a wrong code_verifier or redirect_uri) does not use the code
// up, so whoever intercepted a code cannot cancel the sign-in with it, and no reuse is
// recorded; the client's own exchange then gets its tokens, and a second one is a reuse.
func TestRefusedExchangeLeavesTheCode(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	id := f.start(t, "app", nil)
	if _, err := f.p.Authorize(ctx, id, &latchkey.Session{AMR: []string{"pwd"}, PasswordAt: t0}, f.user); err != nil {
		t.Fatal(err)
	}
	code := f.code(t, id)
	for name, change := range map[string]func(*http.Request, url.Values){
		"no client authentication": func(r *http.Request, _ url.Values) { r.Header.Del("Authorization") },
		"wrong secret":             func(r *http.Request, _ url.Values) { r.SetBasicAuth("app", "wrong") },
		"another client":           func(r *http.Request, _ url.Values) { r.SetBasicAuth("third", f.secrets["third"]) },
		"wrong code_verifier":      func(_ *http.Request, v url.Values) { v.Set("code_verifier", strings.Repeat("w", 43)) },
		"wrong redirect_uri":       func(_ *http.Request, v url.Values) { v.Set("redirect_uri", "https://app.test/cb2") },
	} {
		req := f.tokenRequest("app", code)
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://app.test/cb"}, "code_verifier": {verifier}}
		change(req, form)
		req.Body = io.NopCloser(strings.NewReader(form.Encode()))
		req.ContentLength = int64(len(form.Encode()))
		rec := httptest.NewRecorder()
		f.p.Handler().ServeHTTP(rec, req)
		if rec.Code == http.StatusOK {
			t.Fatalf("%s: exchange accepted: %s", name, rec.Body)
		}
	}
	if a := f.actions(t); slices.Contains(a, latchkey.ActionOIDCCodeReused) {
		t.Fatalf("refused exchanges recorded a reuse: %v", a)
	}
	rec := httptest.NewRecorder()
	f.p.Handler().ServeHTTP(rec, f.tokenRequest("app", code))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "access_token") {
		t.Fatalf("the client's exchange after the refused ones: %d %s", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	f.p.Handler().ServeHTTP(rec, f.tokenRequest("app", code))
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "invalid_grant") {
		t.Fatalf("second exchange: %d %s", rec.Code, rec.Body)
	}
	f.audited(t, latchkey.ActionOIDCCodeReused, latchkey.OutcomeDenied, "tokens revoked: 1")
	// Expired: a code past its minute is refused, and not as a reuse.
	id = f.start(t, "app", nil)
	if _, err := f.p.Authorize(ctx, id, &latchkey.Session{AMR: []string{"pwd"}, PasswordAt: t0}, f.user); err != nil {
		t.Fatal(err)
	}
	code = f.code(t, id)
	f.now = f.now.Add(61 * time.Second)
	rec = httptest.NewRecorder()
	f.p.Handler().ServeHTTP(rec, f.tokenRequest("app", code))
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "invalid_grant") {
		t.Fatalf("expired code: %d %s", rec.Code, rec.Body)
	}
}

// TestIDTokenHintOfAnotherUser: with prompt=none, a request whose id_token_hint names alice
// gets login_required while bob is signed in in the browser, and a code while alice is.
func TestIDTokenHintOfAnotherUser(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	id := f.start(t, "app", nil)
	pwd := &latchkey.Session{AMR: []string{latchkey.AMRPassword}, PasswordAt: f.now}
	if _, err := f.p.Authorize(ctx, id, pwd, f.user); err != nil {
		t.Fatal(err)
	}
	var tok struct {
		IDToken string `json:"id_token"`
	}
	if err := json.Unmarshal([]byte(f.exchange(t, "app", id)), &tok); err != nil || tok.IDToken == "" {
		t.Fatalf("id token: %v", err)
	}
	bob := &latchkey.User{Username: "bob", Email: "bob@example.com", Role: latchkey.RoleUser, PasswordHash: "x"}
	if err := f.db.CreateUser(ctx, bob); err != nil {
		t.Fatal(err)
	}
	hinted := url.Values{"prompt": {"none"}, "id_token_hint": {tok.IDToken}}
	d, err := f.p.Authorize(ctx, f.start(t, "app", hinted), pwd, bob)
	if err != nil || d.Step != oidc.StepError || d.Err.(*zoidc.Error).ErrorType != zoidc.LoginRequired {
		t.Fatalf("prompt=none, hint for alice, bob signed in: %+v, %v; want login_required", d, err)
	}
	if d, err := f.p.Authorize(ctx, f.start(t, "app", hinted), pwd, f.user); err != nil || d.Step != oidc.StepDone {
		t.Fatalf("prompt=none, hint for alice, alice signed in: %+v, %v", d, err)
	}
}

// TestCodeOfAnEndedSessionOrDisabledUser: a code issued before its session ended (logout,
// revocation) or before its user was disabled is refused as invalid_grant at the exchange,
// while a code of the live session of an active user is exchanged.
func TestCodeOfAnEndedSessionOrDisabledUser(t *testing.T) {
	tests := []struct {
		name string
		end  func(t *testing.T, f *fixture, sess *latchkey.Session)
		ok   bool
	}{
		{"session live", func(*testing.T, *fixture, *latchkey.Session) {}, true},
		{"logout", func(t *testing.T, f *fixture, sess *latchkey.Session) {
			if err := f.db.DeleteSession(context.Background(), sess.ID); err != nil {
				t.Fatal(err)
			}
			f.p.EndSessions(context.Background(), sess)
		}, false},
		{"session expired", func(_ *testing.T, f *fixture, _ *latchkey.Session) { f.now = t0.Add(30 * time.Second) }, false},
		{"user disabled", func(t *testing.T, f *fixture, _ *latchkey.Session) {
			disabled := true
			if _, err := f.db.UpdateUser(context.Background(), f.user.ID, latchkey.UserUpdate{Disabled: &disabled}); err != nil {
				t.Fatal(err)
			}
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := setup(t)
			ctx := context.Background()
			sess := &latchkey.Session{ID: "s1", SID: "sid1", UserID: f.user.ID, State: latchkey.StateAuthenticated, AMR: []string{"pwd"},
				PasswordAt: t0, CreatedAt: t0, LastSeenAt: t0, ExpiresAt: t0.Add(20 * time.Second)}
			if err := f.db.CreateSession(ctx, sess); err != nil {
				t.Fatal(err)
			}
			id := f.start(t, "app", url.Values{"scope": {"openid offline_access"}})
			if _, err := f.p.Authorize(ctx, id, sess, f.user); err != nil {
				t.Fatal(err)
			}
			code := f.code(t, id)
			tt.end(t, f, sess)
			rec := httptest.NewRecorder()
			f.p.Handler().ServeHTTP(rec, f.tokenRequest("app", code))
			if tt.ok {
				if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "refresh_token") {
					t.Fatalf("exchange: %d %s, want 200 with a refresh token", rec.Code, rec.Body)
				}
				return
			}
			if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "invalid_grant") {
				t.Fatalf("exchange: %d %s, want 400 invalid_grant", rec.Code, rec.Body)
			}
		})
	}
}

// TestRotationDoesNotProlongGrantsWithoutSID: a refresh token older than sids (migration
// 0009; here given in a session without one) keeps its expiry when it rotates, so that
// such grants, whose revocation signs the user out of every session at the client, are gone
// one refresh token lifetime after the upgrade; a grant with a sid gets the full lifetime
// at every rotation, as before.
func TestRotationDoesNotProlongGrantsWithoutSID(t *testing.T) {
	for _, sid := range []string{"", "sid1"} {
		t.Run("sid="+sid, func(t *testing.T) {
			f := setup(t)
			ctx := context.Background()
			sess := &latchkey.Session{ID: "s1", SID: sid, UserID: f.user.ID, State: latchkey.StateAuthenticated, AMR: []string{"pwd"},
				PasswordAt: t0, CreatedAt: t0, LastSeenAt: t0, ExpiresAt: t0.Add(time.Hour)}
			if sid != "" {
				if err := f.db.CreateSession(ctx, sess); err != nil {
					t.Fatal(err)
				}
			}
			id := f.start(t, "app", url.Values{"scope": {"openid offline_access"}})
			if _, err := f.p.Authorize(ctx, id, sess, f.user); err != nil {
				t.Fatal(err)
			}
			var tok struct {
				RefreshToken string `json:"refresh_token"`
			}
			if err := json.Unmarshal([]byte(f.exchange(t, "app", id)), &tok); err != nil || tok.RefreshToken == "" {
				t.Fatalf("token response: %v", err)
			}
			refresh := func() int {
				t.Helper()
				form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}
				req := httptest.NewRequest("POST", "http://id.test/oidc/token", strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.SetBasicAuth("app", f.secrets["app"])
				rec := httptest.NewRecorder()
				f.p.Handler().ServeHTTP(rec, req)
				if rec.Code == http.StatusOK {
					if err := json.Unmarshal(rec.Body.Bytes(), &tok); err != nil || tok.RefreshToken == "" {
						t.Fatalf("refresh response %s", rec.Body)
					}
				}
				return rec.Code
			}
			// The first token lasts 30 days; rotated on day 20, it lasts until day 30 without
			// a sid, until day 50 with one.
			f.now = t0.Add(20 * 24 * time.Hour)
			if code := refresh(); code != http.StatusOK {
				t.Fatalf("refresh on day 20: %d", code)
			}
			f.now = t0.Add(30*24*time.Hour + time.Minute)
			want := http.StatusOK
			if sid == "" {
				want = http.StatusBadRequest
			}
			if code := refresh(); code != want {
				t.Errorf("refresh just after day 30: %d, want %d", code, want)
			}
		})
	}
}

// TestGrantsWithoutSIDRefreshAsAfterTheSession: a refresh token older than sids (migration
// 0009) names no session that could be found to last, so the workday rule treats its session
// as ended: without offline_access it no longer refreshes (invalid_grant), and with it the
// new tokens claim the password alone (amr without otp and mfa, acr pwd). A grant whose
// session lasts keeps its second factor, with or without offline_access.
func TestGrantsWithoutSIDRefreshAsAfterTheSession(t *testing.T) {
	tests := []struct {
		name     string
		sid      string
		offline  bool
		wantCode int
		wantACR  string
		// otherUser: the session of the grant's sid is another user's.
		otherUser bool
	}{
		{"no sid, offline_access", "", true, http.StatusOK, latchkey.ACRPassword, false},
		{"no sid, no offline_access", "", false, http.StatusBadRequest, "", false},
		{"session lasts, offline_access", "sid1", true, http.StatusOK, latchkey.ACRMFA, false},
		{"session lasts, no offline_access", "sid1", false, http.StatusOK, latchkey.ACRMFA, false},
		{"another user's session, offline_access", "sid1", true, http.StatusOK, latchkey.ACRPassword, true},
		{"another user's session, no offline_access", "sid1", false, http.StatusBadRequest, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := setup(t)
			ctx := context.Background()
			mfaAt := t0
			if tt.sid != "" {
				owner := f.user.ID
				if tt.otherUser {
					bob := &latchkey.User{Username: "bob", Email: "bob@example.com", Role: latchkey.RoleUser, PasswordHash: "x"}
					if err := f.db.CreateUser(ctx, bob); err != nil {
						t.Fatal(err)
					}
					owner = bob.ID
				}
				sess := &latchkey.Session{ID: "s1", SID: tt.sid, UserID: owner, State: latchkey.StateAuthenticated,
					AMR: []string{latchkey.AMRPassword, latchkey.AMROTP, latchkey.AMRMFA}, PasswordAt: t0, MFAAt: &mfaAt,
					CreatedAt: t0, LastSeenAt: t0, ExpiresAt: t0.Add(8 * time.Hour)}
				if err := f.db.CreateSession(ctx, sess); err != nil {
					t.Fatal(err)
				}
			}
			// The grant is written as the store holds it (a refresh token without
			// offline_access cannot be had through the token endpoint any more).
			scopes := []string{"openid"}
			if tt.offline {
				scopes = append(scopes, "offline_access")
			}
			g := latchkey.OIDCGrant{GrantID: "g1", ClientID: "app", UserID: f.user.ID, Scopes: scopes, Audience: []string{"app"},
				AMR: []string{latchkey.AMRPassword, latchkey.AMROTP, latchkey.AMRMFA}, ACR: latchkey.ACRMFA, AuthTime: t0, SID: tt.sid}
			token := "refresh-" + strings.Repeat("r", 40)
			h := sha256.Sum256([]byte(token))
			rt := &latchkey.OIDCRefreshToken{ID: "sha256:" + hex.EncodeToString(h[:]), OIDCGrant: g, CreatedAt: t0, ExpiresAt: t0.Add(30 * 24 * time.Hour)}
			if err := f.db.CreateOIDCTokens(ctx, &latchkey.OIDCAccessToken{ID: "at1", OIDCGrant: g, RefreshTokenID: rt.ID, CreatedAt: t0, ExpiresAt: t0.Add(15 * time.Minute)},
				rt, latchkey.OIDCTokenUse{}, t0); err != nil {
				t.Fatal(err)
			}
			f.now = t0.Add(time.Hour)
			form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}}
			req := httptest.NewRequest("POST", "http://id.test/oidc/token", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth("app", f.secrets["app"])
			rec := httptest.NewRecorder()
			f.p.Handler().ServeHTTP(rec, req)
			if rec.Code != tt.wantCode {
				t.Fatalf("refresh: %d %s, want %d", rec.Code, rec.Body, tt.wantCode)
			}
			if tt.wantCode != http.StatusOK {
				// The library sends invalid_grant without the store's description ("The
				// sign-in session has ended."), as for a session that ended.
				if !strings.Contains(rec.Body.String(), "invalid_grant") {
					t.Errorf("refresh: %s, want invalid_grant", rec.Body)
				}
				return
			}
			c := idClaims(t, rec.Body.String())
			var amr []string
			for _, m := range c["amr"].([]any) {
				amr = append(amr, m.(string))
			}
			wantAMR := []string{latchkey.AMRPassword}
			if tt.wantACR == latchkey.ACRMFA {
				wantAMR = g.AMR
			}
			if c["acr"] != tt.wantACR || !slices.Equal(amr, wantAMR) {
				t.Errorf("refreshed ID token acr %v amr %v, want %s %v", c["acr"], amr, tt.wantACR, wantAMR)
			}
		})
	}
}
