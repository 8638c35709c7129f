package web_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/audit"
	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/oidc"
	"github.com/latchkey/latchkey/internal/password"
	"github.com/latchkey/latchkey/internal/push"
	"github.com/latchkey/latchkey/internal/sqlstore"
	"github.com/latchkey/latchkey/internal/totp"
	"github.com/latchkey/latchkey/internal/web"
)

// The workday session across applications, with an injected clock and two relying parties
// written with coreos/go-oidc and x/oauth2.

// wdDay is today in Madrid, read once: the workday tests all count from it, so that a
// run across Madrid's midnight does not mix two days (it did, in CI on 2026-11-23).
var wdDay = time.Now().In(madrid())

func madrid() *time.Location {
	loc, err := time.LoadLocation("Europe/Madrid")
	if err != nil {
		panic(err)
	}
	return loc
}

// madridAt returns h:m in Madrid, the default zone of the workday fixture, days after
// tomorrow. The fixture's clock starts tomorrow at 09:00 there: ahead of the real time, so that
// the cookie jar (which uses the real time) keeps the session cookies.
func madridAt(days, h, m int) time.Time {
	return time.Date(wdDay.Year(), wdDay.Month(), wdDay.Day()+1+days, h, m, 0, 0, madrid()).UTC()
}

var wdStart = madridAt(0, 9, 0)

type wdFixture struct {
	t      *testing.T
	srv    *httptest.Server
	db     *sqlstore.DB
	svc    *login.Service
	oidc   *oidc.Provider
	clock  *clock
	secret []byte // alice's TOTP secret
	logout chan string
	bcl    string // the back-channel logout endpoint of the test relying parties
}

func newWorkdayFixture(t *testing.T, mod func(*login.Options)) *wdFixture {
	t.Helper()
	ctx := context.Background()
	c := &clock{t: wdStart.Add(-time.Hour)}
	db, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "web.db"), sqlstore.Options{SecretsKey: make([]byte, 32), Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	madrid, _ := time.LoadLocation("Europe/Madrid")
	workday, _ := login.ParseWorkday("19:00")
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	mails := &recMailer{}
	rec := audit.New(db, nil, c.Now)
	pusher := push.New(push.Options{Store: db, Mailer: mails, Audit: rec, Hub: push.NewHub(), Now: c.Now, Key: make([]byte, 32), PublicURL: base})
	opt := login.Options{
		Store: db, Hasher: password.New(password.Options{Params: password.Params{Memory: 1024, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}}),
		Mailer: mails, Audit: rec, Now: c.Now, SessionKey: make([]byte, 32), Pusher: pusher,
		WorkdayEnd: workday, TimeZone: madrid,
	}
	if mod != nil {
		mod(&opt)
	}
	svc := login.New(opt)
	p, err := oidc.New(oidc.Options{Store: db, Issuer: base, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	pu, _ := url.Parse(base)
	h := web.New(web.Options{Login: svc, Push: pusher, DB: db, PublicURL: pu, Now: c.Now, OIDC: p, Logger: slog.New(slog.DiscardHandler)})
	srv.Config.Handler = h
	srv.Start()
	t.Cleanup(srv.Close)
	t.Cleanup(p.WaitLogouts)

	f := &wdFixture{t: t, srv: srv, db: db, svc: svc, oidc: p, clock: c, logout: make(chan string, 16)}
	rp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/backchannel-logout" {
			http.NotFound(w, r)
			return
		}
		f.logout <- r.PostFormValue("logout_token")
	}))
	t.Cleanup(rp.Close)
	f.bcl = rp.URL + "/backchannel-logout"

	u, err := svc.CreateUser(ctx, login.Client{}, login.NewUser{Username: "alice", Email: "alice@example.com", Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	res, err := svc.Login(ctx, login.Client{}, "", "alice", pw)
	if err != nil {
		t.Fatal(err)
	}
	en, err := svc.BeginTOTP(ctx, login.Client{}, res.Session, u)
	if err != nil {
		t.Fatal(err)
	}
	f.secret, _ = totp.Decode(en.Secret)
	if _, err := svc.ConfirmTOTP(ctx, login.Client{}, res.Session, u, totp.Code(f.secret, totp.Step(c.Now()))); err != nil {
		t.Fatal(err)
	}
	if err := svc.Logout(ctx, login.Client{}, res.Token); err != nil {
		t.Fatal(err)
	}
	c.t = wdStart
	return f
}

// wdRP is a relying party written with coreos/go-oidc and x/oauth2.
type wdRP struct {
	t        *testing.T
	conf     oauth2.Config
	verifier *gooidc.IDTokenVerifier
	provider *gooidc.Provider
	logoutTo string
}

func (f *wdFixture) rp(id string, backchannel bool) *wdRP {
	f.t.Helper()
	return f.newRP(id, backchannel, true)
}

// thirdPartyRP is rp for a third-party client (one that asks for consent), with a
// back-channel logout URI, which alice has allowed already: her sign-ins go straight
// through, as after Allow on the consent page.
func (f *wdFixture) thirdPartyRP(id string) *wdRP {
	f.t.Helper()
	r := f.newRP(id, true, false)
	alice, err := f.db.FindUserByUsername(context.Background(), "alice")
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.db.SaveOIDCConsent(context.Background(), &latchkey.OIDCConsent{UserID: alice.ID, ClientID: id, Scopes: r.conf.Scopes}); err != nil {
		f.t.Fatal(err)
	}
	return r
}

func (f *wdFixture) newRP(id string, backchannel, firstParty bool) *wdRP {
	f.t.Helper()
	ctx := context.Background()
	nc := oidc.NewClient{ID: id, RedirectURIs: []string{"http://127.0.0.1:1/" + id + "/callback"}, PostLogoutRedirectURIs: []string{"http://127.0.0.1:1/" + id + "/signed-out"}, FirstParty: firstParty}
	if backchannel {
		nc.BackchannelLogoutURI = f.bcl
	}
	_, secret, err := f.oidc.CreateClient(ctx, nc)
	if err != nil {
		f.t.Fatal(err)
	}
	p, err := gooidc.NewProvider(ctx, f.srv.URL)
	if err != nil {
		f.t.Fatalf("discovery: %v", err)
	}
	return &wdRP{t: f.t, provider: p, verifier: p.Verifier(&gooidc.Config{ClientID: id}), logoutTo: nc.PostLogoutRedirectURIs[0], conf: oauth2.Config{
		ClientID: id, ClientSecret: secret, Endpoint: p.Endpoint(), RedirectURL: nc.RedirectURIs[0],
		Scopes: []string{gooidc.ScopeOpenID, "profile", gooidc.ScopeOfflineAccess},
	}}
}

type wdClaims struct {
	Subject  string   `json:"sub"`
	AMR      []string `json:"amr"`
	ACR      string   `json:"acr"`
	AuthTime int64    `json:"auth_time"`
	SID      string   `json:"sid"`
}

type wdSignIn struct {
	pages  []string // the Latchkey pages the browser was sent to
	tok    *oauth2.Token
	idt    string
	claims wdClaims
}

// wdBrowser keeps cookies and stops at the relying party's address.
// wdBrowser is a browser of a test (or subtest) t: its helpers fail t, never the fixture's
// test, so that a failure in a subtest is reported as such.
type wdBrowser struct {
	f  *wdFixture
	t  *testing.T
	hc *http.Client
}

func (f *wdFixture) browser(t *testing.T) *wdBrowser {
	jar, _ := cookiejar.New(nil)
	return &wdBrowser{f: f, t: t, hc: &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *wdBrowser) form(path string, v url.Values) *http.Request {
	req, _ := http.NewRequest("POST", b.f.srv.URL+path, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req
}

// do sends req from the browser and returns the answer and its body, read and closed.
func (b *wdBrowser) do(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := b.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, body
}

// signIn runs the authorization code flow with PKCE for r, typing alice's password and the
// current TOTP code when Latchkey asks, and returns the verified ID token's claims.
func (b *wdBrowser) signIn(r *wdRP, user string) wdSignIn {
	t := b.t
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	req, _ := http.NewRequest("GET", r.conf.AuthCodeURL("st-"+r.conf.ClientID, oauth2.S256ChallengeOption(verifier)), nil)
	var out wdSignIn
	for range 20 {
		resp, body := b.do(t, req)
		loc := resp.Header.Get("Location")
		if resp.StatusCode/100 != 3 || loc == "" {
			t.Fatalf("%s %s: %d without redirect\n%s", req.Method, req.URL, resp.StatusCode, body)
		}
		u, _ := req.URL.Parse(loc)
		if !strings.HasPrefix(u.String(), b.f.srv.URL) {
			code := u.Query().Get("code")
			if code == "" || u.Query().Get("state") != "st-"+r.conf.ClientID {
				t.Fatalf("back at the client without a code: %s", u)
			}
			tok, err := r.conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatalf("exchange: %v", err)
			}
			out.tok = tok
			out.idt, _ = tok.Extra("id_token").(string)
			idt, err := r.verifier.Verify(context.Background(), out.idt)
			if err != nil {
				t.Fatalf("verify id token: %v", err)
			}
			if err := idt.Claims(&out.claims); err != nil {
				t.Fatal(err)
			}
			return out
		}
		out.pages = append(out.pages, u.Path)
		next := u.Query().Get("next")
		switch u.Path {
		case "/login":
			req = b.form("/login", url.Values{"username": {user}, "password": {pw}, "next": {next}})
		case "/login/code":
			req = b.form("/login/code", url.Values{"code": {totp.Code(b.f.secret, totp.Step(b.f.clock.Now()))}, "next": {next}})
		default:
			req, _ = http.NewRequest("GET", u.String(), nil)
		}
	}
	t.Fatal("too many redirects")
	return out
}

// signedIn reports whether the browser's session counts as signed in.
func (b *wdBrowser) signedIn() bool {
	b.t.Helper()
	resp, err := b.hc.Get(b.f.srv.URL + "/api/v1/session")
	if err != nil {
		b.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

func asked(pages []string) string {
	switch {
	case slices.Contains(pages, "/login/code"):
		return "password and code"
	case slices.Contains(pages, "/login"):
		return "password"
	}
	return "nothing"
}

func TestWorkdayAcrossApplications(t *testing.T) {
	f := newWorkdayFixture(t, nil)
	rp1, rp2 := f.rp("rp1", false), f.rp("rp2", false)
	b := f.browser(t)

	first := b.signIn(rp1, "alice")
	if got := asked(first.pages); got != "password and code" {
		t.Fatalf("RP1 asked %s, want password and code", got)
	}
	if !slices.Contains(first.claims.AMR, "mfa") || !slices.Contains(first.claims.AMR, "otp") || first.claims.ACR != "mfa" {
		t.Errorf("RP1 ID token amr %v acr %q, want otp and mfa", first.claims.AMR, first.claims.ACR)
	}
	if len(first.claims.SID) != 32 {
		t.Errorf("RP1 ID token sid = %q, want the session's 128-bit public ID", first.claims.SID)
	}
	mfaAt := wdStart.Unix()

	f.clock.Add(20 * time.Minute)
	second := b.signIn(rp2, "alice")
	if got := asked(second.pages); got != "nothing" {
		t.Errorf("RP2 asked %s, want nothing (the workday sign-in)", got)
	}
	if !slices.Contains(second.claims.AMR, "mfa") || second.claims.AuthTime != mfaAt || second.claims.SID != first.claims.SID {
		t.Errorf("RP2 ID token amr %v auth_time %d sid %q; want mfa, %d, %q", second.claims.AMR, second.claims.AuthTime, second.claims.SID, mfaAt, first.claims.SID)
	}

	// Idle for more than an hour: only the password; the second factor is remembered.
	f.clock.Add(61 * time.Minute)
	if b.signedIn() {
		t.Fatal("still signed in after the idle timeout")
	}
	idle := b.signIn(rp2, "alice")
	if got := asked(idle.pages); got != "password" {
		t.Errorf("after the idle timeout RP2 asked %s, want the password only", got)
	}
	if !slices.Contains(idle.claims.AMR, "mfa") || !slices.Contains(idle.claims.AMR, "otp") || idle.claims.SID != first.claims.SID {
		t.Errorf("after the idle timeout: amr %v sid %q; want otp and mfa kept in the same session", idle.claims.AMR, idle.claims.SID)
	}
	if want := f.clock.Now().Unix(); idle.claims.AuthTime != want {
		t.Errorf("after the idle timeout: auth_time %d, want the new password time %d", idle.claims.AuthTime, want)
	}

	// Past the workday end (19:00 in Madrid): password and code again.
	f.clock.t = madridAt(0, 19, 0).Add(time.Second)
	if b.signedIn() {
		t.Fatal("still signed in after the workday end")
	}
	// RP1's refresh token still works (offline_access), but its ID token no longer claims
	// the second factor.
	refreshed, err := rp1.conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: first.tok.RefreshToken}).Token()
	if err != nil {
		t.Fatalf("refresh after the workday end: %v", err)
	}
	raw, _ := refreshed.Extra("id_token").(string)
	idt, err := rp1.verifier.Verify(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	var rc wdClaims
	idt.Claims(&rc)
	if slices.Contains(rc.AMR, "mfa") || slices.Contains(rc.AMR, "otp") || !slices.Contains(rc.AMR, "pwd") || rc.AuthTime != mfaAt {
		t.Errorf("refreshed ID token after the workday end: amr %v auth_time %d; want pwd without a second factor, %d", rc.AMR, rc.AuthTime, mfaAt)
	}
	late := b.signIn(rp1, "alice")
	if got := asked(late.pages); got != "password and code" {
		t.Errorf("after the workday end RP1 asked %s, want password and code", got)
	}
	if late.claims.SID == first.claims.SID {
		t.Error("after the workday end the session kept its sid: it should be a new session")
	}
}

func TestWorkdayCappedByMaxAge(t *testing.T) {
	// No inactivity in the way: the session is only bounded by its absolute end.
	f := newWorkdayFixture(t, func(o *login.Options) { o.IdleTimeout = 48 * time.Hour })
	rp1, rp2 := f.rp("rp1", false), f.rp("rp2", false)
	b := f.browser(t)
	start := madridAt(0, 20, 0) // after the workday
	f.clock.t = start
	if got := asked(b.signIn(rp1, "alice").pages); got != "password and code" {
		t.Fatalf("RP1 asked %s", got)
	}
	// The next workday end (19:00) is 23 h away: max_age (12 h) ends the session first.
	f.clock.t = start.Add(12*time.Hour - time.Minute)
	if got := asked(b.signIn(rp2, "alice").pages); got != "nothing" {
		t.Errorf("before max_age RP2 asked %s, want nothing", got)
	}
	f.clock.t = start.Add(12*time.Hour + time.Second)
	if got := asked(b.signIn(rp2, "alice").pages); got != "password and code" {
		t.Errorf("after max_age RP2 asked %s, want password and code", got)
	}
}

// logoutClaims are the claims of a back-channel logout token.
type logoutClaims struct {
	Issuer   string                     `json:"iss"`
	Audience string                     `json:"aud"`
	IssuedAt int64                      `json:"iat"`
	JTI      string                     `json:"jti"`
	Subject  string                     `json:"sub"`
	SID      string                     `json:"sid"`
	Expiry   int64                      `json:"exp"`
	Events   map[string]json.RawMessage `json:"events"`
	Nonce    *string                    `json:"nonce"`
	// Names are the claims the token has.
	Names map[string]bool `json:"-"`
}

// adminSignsOut has an admin (created here, once per fixture) sign every session of
// username out from the console.
func (f *wdFixture) adminSignsOut(t *testing.T, username string) {
	t.Helper()
	ctx := context.Background()
	admin, err := f.svc.CreateUser(ctx, login.Client{}, login.NewUser{Username: "root", Email: "root@example.com", Role: latchkey.RoleAdmin, Password: "an admin's long passphrase"})
	if err != nil {
		t.Fatal(err)
	}
	u, err := f.db.FindUserByUsername(ctx, username)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.AdminRevokeSessions(ctx, login.Client{}, admin, "", u.ID); err != nil {
		t.Fatal(err)
	}
}

// receiveLogout waits for a logout token at the test relying parties' endpoint, verifies its
// signature with the provider's JWKS and returns its claims.
func (f *wdFixture) receiveLogout(t *testing.T, rp *wdRP) logoutClaims {
	t.Helper()
	var raw string
	select {
	case raw = <-f.logout:
	case <-time.After(10 * time.Second):
		t.Fatal("no back-channel logout within 10 s")
	}
	var disc struct {
		JWKS string `json:"jwks_uri"`
	}
	if err := rp.provider.Claims(&disc); err != nil {
		t.Fatal(err)
	}
	payload, err := gooidc.NewRemoteKeySet(context.Background(), disc.JWKS).VerifySignature(context.Background(), raw)
	if err != nil {
		t.Fatalf("logout token signature: %v", err)
	}
	var c logoutClaims
	var all map[string]json.RawMessage
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(payload, &all); err != nil {
		t.Fatal(err)
	}
	c.Names = map[string]bool{}
	for k := range all {
		c.Names[k] = true
	}
	return c
}

// receiveLogouts takes len(want) logout tokens at rp's endpoint and checks that each is a
// well-formed token for sub, for one of want's "client sid" keys (sid empty for sub alone),
// none twice, every one of want there, and no other token after them.
func (f *wdFixture) receiveLogouts(t *testing.T, rp *wdRP, sub string, want map[string]bool) {
	t.Helper()
	got := map[string]bool{}
	for range want {
		c := f.receiveLogout(t, rp)
		key := c.Audience + " " + c.SID
		if got[key] {
			t.Errorf("logout token for %q twice", key)
		}
		got[key] = true
		if !want[key] || c.Issuer != f.srv.URL || c.Subject != sub || c.JTI == "" || c.IssuedAt != f.clock.Now().Unix() ||
			c.Expiry != c.IssuedAt+120 || c.Nonce != nil || c.Names["sid"] != (c.SID != "") {
			t.Errorf("logout token claims = %+v", c)
		}
		if _, ok := c.Events["http://schemas.openid.net/event/backchannel-logout"]; !ok || len(c.Events) != 1 {
			t.Errorf("logout token events = %v", c.Events)
		}
	}
	f.oidc.WaitLogouts()
	for len(f.logout) > 0 {
		c := f.receiveLogout(t, rp)
		t.Errorf("an extra logout token: aud %s sid %q", c.Audience, c.SID)
	}
	for key := range want {
		if !got[key] {
			t.Errorf("no logout token for %q; got %v", key, got)
		}
	}
}

func TestBackchannelLogout(t *testing.T) {
	f := newWorkdayFixture(t, nil)
	rp1, rp2 := f.rp("rp1", true), f.rp("rp2", false)
	var disc struct {
		Supported bool `json:"backchannel_logout_supported"`
		Session   bool `json:"backchannel_logout_session_supported"`
	}
	if err := rp1.provider.Claims(&disc); err != nil || !disc.Supported || !disc.Session {
		t.Errorf("discovery: backchannel_logout_supported %v, _session_supported %v (%v)", disc.Supported, disc.Session, err)
	}
	b := f.browser(t)
	in1 := b.signIn(rp1, "alice")
	in2 := b.signIn(rp2, "alice")

	resp, _ := b.do(t, b.form("/logout", nil))
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /logout: %d", resp.StatusCode)
	}
	c := f.receiveLogout(t, rp1)
	if c.Issuer != f.srv.URL || c.Audience != "rp1" || c.Subject != in1.claims.Subject || c.SID != in1.claims.SID || c.JTI == "" || c.IssuedAt == 0 || c.Nonce != nil {
		t.Errorf("logout token claims = %+v", c)
	}
	if _, ok := c.Events["http://schemas.openid.net/event/backchannel-logout"]; !ok || len(c.Events) != 1 {
		t.Errorf("logout token events = %v", c.Events)
	}
	select {
	case extra := <-f.logout:
		t.Errorf("a second logout token (rp2 did not register for back-channel logout): %s", extra)
	default:
	}
	// The refresh tokens given in the session are revoked, for every client.
	for name, x := range map[string]struct {
		rp *wdRP
		in wdSignIn
	}{"rp1": {rp1, in1}, "rp2": {rp2, in2}} {
		if x.rp.refreshes(x.in) {
			t.Errorf("%s: the refresh token still works after logout", name)
		}
	}
}

func TestBackchannelLogoutOnRevoke(t *testing.T) {
	f := newWorkdayFixture(t, nil)
	rp1 := f.rp("rp1", true)
	laptop, phone := f.browser(t), f.browser(t)
	in := phone.signIn(rp1, "alice")
	f.clock.Add(time.Minute)
	laptop.signIn(rp1, "alice")
	// From the laptop, sign out the phone's session.
	req, _ := http.NewRequest("DELETE", f.srv.URL+"/api/v1/account/sessions/"+in.claims.SID, nil)
	resp, _ := laptop.do(t, req)
	if resp.StatusCode != 200 {
		t.Fatalf("DELETE session: %d", resp.StatusCode)
	}
	if c := f.receiveLogout(t, rp1); c.SID != in.claims.SID {
		t.Errorf("logout token sid = %q, want the phone's %q", c.SID, in.claims.SID)
	}
	if phone.signedIn() || !laptop.signedIn() {
		t.Errorf("after revoking the phone: phone signed in %v, laptop %v; want false, true", phone.signedIn(), laptop.signedIn())
	}
}

func TestRPInitiatedLogout(t *testing.T) {
	f := newWorkdayFixture(t, nil)
	rp1 := f.rp("rp1", true)
	endSession := f.srv.URL + "/oidc/end_session"
	get := func(b *wdBrowser, q url.Values) (*http.Response, string) {
		b.t.Helper()
		req, _ := http.NewRequest("GET", endSession+"?"+q.Encode(), nil)
		resp, body := b.do(b.t, req)
		return resp, string(body)
	}

	t.Run("with id_token_hint", func(t *testing.T) {
		b := f.browser(t)
		in := b.signIn(rp1, "alice")
		resp, _ := get(b, url.Values{"id_token_hint": {in.idt}, "post_logout_redirect_uri": {rp1.logoutTo}, "state": {"bye-1"}})
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != rp1.logoutTo+"?state=bye-1" {
			t.Fatalf("end_session: %d to %q, want 303 to %s?state=bye-1", resp.StatusCode, resp.Header.Get("Location"), rp1.logoutTo)
		}
		if b.signedIn() {
			t.Error("the Latchkey session survived RP-initiated logout")
		}
		if c := f.receiveLogout(t, rp1); c.SID != in.claims.SID {
			t.Errorf("logout token sid = %q, want %q", c.SID, in.claims.SID)
		}
	})

	t.Run("without id_token_hint asks first", func(t *testing.T) {
		f.clock.Add(time.Minute)
		b := f.browser(t)
		b.signIn(rp1, "alice")
		q := url.Values{"client_id": {"rp1"}, "post_logout_redirect_uri": {rp1.logoutTo}, "state": {"bye-2"}}
		resp, body := get(b, q)
		if resp.StatusCode != 200 || !strings.Contains(body, "Sign out?") || !strings.Contains(body, `name="confirm" value="yes"`) {
			t.Fatalf("end_session without a hint: %d\n%s", resp.StatusCode, body)
		}
		if !b.signedIn() {
			t.Fatal("a GET without id_token_hint signed the user out")
		}
		q.Set("confirm", "yes")
		resp, _ = b.do(t, b.form("/oidc/end_session", q))
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != rp1.logoutTo+"?state=bye-2" {
			t.Fatalf("confirmed end_session: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		if b.signedIn() {
			t.Error("still signed in after confirming")
		}
		f.receiveLogout(t, rp1)
	})

	t.Run("POST from the application's page", func(t *testing.T) {
		f.clock.Add(time.Minute)
		b := f.browser(t)
		in := b.signIn(rp1, "alice")
		post := func(q url.Values) (*http.Response, string) {
			t.Helper()
			req := b.form("/oidc/end_session", q)
			req.Header.Set("Origin", "https://rp1.test")
			req.Header.Set("Sec-Fetch-Site", "cross-site")
			resp, body := b.do(t, req)
			return resp, string(body)
		}
		// A cross-site confirm=yes without a hint is not a confirmation: the user is asked.
		resp, body := post(url.Values{"client_id": {"rp1"}, "post_logout_redirect_uri": {rp1.logoutTo}, "confirm": {"yes"}})
		if resp.StatusCode != 200 || !strings.Contains(body, "Sign out?") || !b.signedIn() {
			t.Fatalf("cross-site confirm=yes: %d, signed in %v; want the confirmation page\n%s", resp.StatusCode, b.signedIn(), body)
		}
		// With the hint, the application's POST signs the user out like its GET does.
		resp, body = post(url.Values{"id_token_hint": {in.idt}, "post_logout_redirect_uri": {rp1.logoutTo}, "state": {"bye-3"}})
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != rp1.logoutTo+"?state=bye-3" || b.signedIn() {
			t.Fatalf("cross-site POST with id_token_hint: %d to %q, signed in %v\n%s", resp.StatusCode, resp.Header.Get("Location"), b.signedIn(), body)
		}
		f.receiveLogout(t, rp1)
	})

	t.Run("id_token_hint of an earlier session asks first", func(t *testing.T) {
		f.clock.Add(time.Minute)
		b := f.browser(t)
		old := b.signIn(rp1, "alice")
		b.do(t, b.form("/logout", nil))
		f.receiveLogout(t, rp1)
		f.clock.Add(time.Minute)
		b.signIn(rp1, "alice")
		resp, body := get(b, url.Values{"id_token_hint": {old.idt}, "post_logout_redirect_uri": {rp1.logoutTo}})
		if resp.StatusCode != 200 || !strings.Contains(body, "Sign out?") || !b.signedIn() {
			t.Errorf("end_session with an earlier session's hint: %d, signed in %v; want the confirmation page", resp.StatusCode, b.signedIn())
		}
	})

	// An idle session, whose second factor the workday remembers, ends like a signed-in one:
	// a link on another site without a hint only asks, and the next sign-in still needs the
	// password alone; with the hint it ends, and the next sign-in asks for the code again.
	t.Run("idle session asks first", func(t *testing.T) {
		f.clock.Add(time.Minute)
		b := f.browser(t)
		in := b.signIn(rp1, "alice")
		f.clock.Add(61 * time.Minute)
		req, _ := http.NewRequest("GET", endSession+"?"+url.Values{"client_id": {"rp1"}, "post_logout_redirect_uri": {rp1.logoutTo}}.Encode(), nil)
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		req.Header.Set("Sec-Fetch-Mode", "navigate")
		resp, body := b.do(t, req)
		if resp.StatusCode != 200 || !strings.Contains(string(body), "still remembers your last sign-in") || !strings.Contains(string(body), `name="confirm" value="yes"`) {
			t.Fatalf("cross-site end_session of an idle session: %d %q\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
		}
		again := b.signIn(rp1, "alice")
		if got := asked(again.pages); got != "password" {
			t.Fatalf("after the cross-site link the sign-in asked %s, want the password only (the second factor remembered)", got)
		}
		f.clock.Add(61 * time.Minute)
		if resp, _ := get(b, url.Values{"id_token_hint": {in.idt}, "post_logout_redirect_uri": {rp1.logoutTo}}); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("end_session of an idle session with the hint: %d", resp.StatusCode)
		}
		f.receiveLogout(t, rp1)
		if got := asked(b.signIn(rp1, "alice").pages); got != "password and code" {
			t.Errorf("after the application's logout the sign-in asked %s, want password and code", got)
		}
	})

	t.Run("unregistered post_logout_redirect_uri", func(t *testing.T) {
		f.clock.Add(time.Minute)
		b := f.browser(t)
		in := b.signIn(rp1, "alice")
		for _, q := range []url.Values{
			{"id_token_hint": {in.idt}, "post_logout_redirect_uri": {"https://evil.example/"}},
			{"client_id": {"rp1"}, "post_logout_redirect_uri": {rp1.logoutTo + "/x"}},
			{"post_logout_redirect_uri": {rp1.logoutTo}},
			{"id_token_hint": {"not.a.token"}},
		} {
			resp, body := get(b, q)
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("end_session?%s: %d, want 400\n%s", q.Encode(), resp.StatusCode, body)
			}
		}
		if !b.signedIn() {
			t.Error("a refused end_session signed the user out")
		}
	})
}

func TestSessionsAPI(t *testing.T) {
	f := newWorkdayFixture(t, nil)
	rp1 := f.rp("rp1", false)
	laptop, phone := f.browser(t), f.browser(t)
	laptop.signIn(rp1, "alice")
	f.clock.Add(time.Minute)
	phoneIn := phone.signIn(rp1, "alice")
	call := func(b *wdBrowser, method, path string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, f.srv.URL+path, nil)
		req.Header.Set("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0")
		resp, raw := b.do(t, req)
		var m map[string]any
		json.Unmarshal(raw, &m)
		return resp.StatusCode, m
	}
	code, m := call(laptop, "GET", "/api/v1/account/sessions")
	if code != 200 {
		t.Fatalf("GET sessions: %d %v", code, m)
	}
	list, _ := m["sessions"].([]any)
	if len(list) != 2 || m["until"] != "workday_end" || m["time_zone"] != "Europe/Madrid" || m["idle_timeout_seconds"] != 3600.0 {
		t.Fatalf("sessions = %v", m)
	}
	if until, _ := time.Parse(time.RFC3339, m["signed_in_until"].(string)); !until.Equal(madridAt(0, 19, 0)) {
		t.Errorf("signed_in_until = %v, want 19:00 in Madrid", m["signed_in_until"])
	}
	cur := list[0].(map[string]any)
	if cur["current"] != true || list[1].(map[string]any)["current"] != false || cur["device"] != "Go program" || cur["mfa"] != true {
		t.Errorf("sessions[0] = %v, want the current one first", cur)
	}
	if code, _ := call(laptop, "DELETE", "/api/v1/account/sessions/0123456789abcdef0123456789abcdef"); code != 404 {
		t.Errorf("DELETE unknown session: %d, want 404", code)
	}
	if code, _ := call(laptop, "DELETE", "/api/v1/account/sessions/"+phoneIn.claims.SID); code != 200 {
		t.Errorf("DELETE phone session: %d", code)
	}
	if phone.signedIn() {
		t.Error("the phone is still signed in")
	}
	if code, _ := call(phone, "GET", "/api/v1/account/sessions"); code != 401 {
		t.Errorf("revoked session lists sessions: %d, want 401", code)
	}
	f.clock.Add(time.Minute) // a new TOTP code
	phone.signIn(rp1, "alice")
	if code, m := call(laptop, "POST", "/api/v1/account/sessions/revoke-all"); code != 200 || m["revoked"] != 2.0 {
		t.Errorf("revoke-all: %d %v", code, m)
	}
	if laptop.signedIn() || phone.signedIn() {
		t.Error("sign out everywhere left a session signed in")
	}
	if code, _ := call(laptop, "POST", "/api/v1/account/sessions/revoke-all"); code != 401 {
		t.Errorf("revoke-all signed out: %d, want 401", code)
	}
	// The time zone: an IANA name, or a precise 400.
	f.clock.Add(time.Minute)
	laptop.signIn(rp1, "alice")
	put := func(body string) (int, map[string]any) {
		req, _ := http.NewRequest("PUT", f.srv.URL+"/api/v1/account/time-zone", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, raw := laptop.do(t, req)
		var m map[string]any
		json.Unmarshal(raw, &m)
		return resp.StatusCode, m
	}
	for _, bad := range []string{`{"time_zone":"Mars/Olympus"}`, `{"time_zone":""}`, `{"zone":"UTC"}`} {
		if code, m := put(bad); code != 400 {
			t.Errorf("PUT time-zone %s: %d %v, want 400", bad, code, m)
		}
	}
	if code, m := put(`{"time_zone":"Asia/Tokyo"}`); code != 200 || m["time_zone"] != "Asia/Tokyo" {
		t.Errorf("PUT time-zone: %d %v", code, m)
	}
	if _, m := call(laptop, "GET", "/api/v1/account/sessions"); m["time_zone"] != "Asia/Tokyo" {
		t.Errorf("time_zone after the change = %v", m["time_zone"])
	}
	// Signing out the current session by ID signs this browser out.
	_, m = call(laptop, "GET", "/api/v1/account/sessions")
	own := m["sessions"].([]any)[0].(map[string]any)["id"].(string)
	if code, m := call(laptop, "DELETE", "/api/v1/account/sessions/"+own); code != 200 || m["signed_out"] != true {
		t.Errorf("DELETE own session: %d %v", code, m)
	}
	if laptop.signedIn() {
		t.Error("still signed in after signing out the current session by ID")
	}

	// The audit trail has both.
	events, err := f.db.FindAuditEvents(context.Background(), latchkey.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range events {
		actions = append(actions, e.Action)
	}
	for _, want := range []string{latchkey.ActionSessionRevoked, latchkey.ActionSessionsRevokedAll} {
		if !slices.Contains(actions, want) {
			t.Errorf("audit trail lacks %q", want)
		}
	}
}

// TestSlowBackchannelNeverBlocksLogout: a client whose back-channel endpoint hangs does not
// hold up the sign-out.
func TestSlowBackchannelNeverBlocksLogout(t *testing.T) {
	f := newWorkdayFixture(t, nil)
	release := make(chan struct{})
	reached := make(chan struct{}, 1)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached <- struct{}{}
		<-release
	}))
	// Cleanups run last-in first-out: release the handler, then the provider's wait, then close.
	t.Cleanup(slow.Close)
	t.Cleanup(f.oidc.WaitLogouts)
	t.Cleanup(func() { close(release) })
	f.bcl = slow.URL + "/hang"
	rp := f.rp("slow", true)
	b := f.browser(t)
	b.signIn(rp, "alice")
	start := time.Now()
	resp, _ := b.do(t, b.form("/logout", nil))
	if d := time.Since(start); resp.StatusCode != http.StatusSeeOther || d > 2*time.Second {
		t.Errorf("POST /logout: %d after %v; want 303 at once", resp.StatusCode, d)
	}
	if b.signedIn() {
		t.Error("still signed in")
	}
	select {
	case <-reached:
	case <-time.After(10 * time.Second):
		t.Error("the back-channel logout was never sent")
	}
}

// TestBackchannelLogoutOnAccountRules: sessions ended by an account rule, not by the user's
// own sign-out (here an admin signing alice out everywhere; password changes, resets and
// disabling go through the same path in login), end for the applications too.
func TestBackchannelLogoutOnAccountRules(t *testing.T) {
	f := newWorkdayFixture(t, nil)
	rp1 := f.rp("rp1", true)
	phone := f.browser(t)
	in := phone.signIn(rp1, "alice")
	f.adminSignsOut(t, "alice")
	if c := f.receiveLogout(t, rp1); c.SID != in.claims.SID {
		t.Errorf("logout token sid = %q, want the phone's %q", c.SID, in.claims.SID)
	}
	if phone.signedIn() {
		t.Error("alice is still signed in after the admin signed her out")
	}
}

// TestSignOutEverywhereRevokesOfflineTokens: "Sign out everywhere" and an admin's sign-out
// revoke every token of the account, also the offline_access refresh token given in
// yesterday's session, which had ended by itself and which no session list names any more.
func TestSignOutEverywhereRevokesOfflineTokens(t *testing.T) {
	for _, how := range []string{"revoke-all", "admin"} {
		t.Run(how, func(t *testing.T) {
			f := newWorkdayFixture(t, nil)
			rp1 := f.rp("rp1", false)
			b := f.browser(t)
			yesterday := b.signIn(rp1, "alice")
			f.clock.t = madridAt(1, 9, 0)
			today := b.signIn(rp1, "alice")
			if today.claims.SID == yesterday.claims.SID {
				t.Fatal("the next morning's sign-in kept yesterday's session")
			}
			switch how {
			case "revoke-all":
				req, _ := http.NewRequest("POST", f.srv.URL+"/api/v1/account/sessions/revoke-all", nil)
				req.Header.Set("Sec-Fetch-Site", "same-origin")
				resp, _ := b.do(t, req)
				if resp.StatusCode != 200 {
					t.Fatalf("revoke-all: %d", resp.StatusCode)
				}
			case "admin":
				f.adminSignsOut(t, "alice")
			}
			if rp1.refreshes(today) {
				t.Error("today's refresh token still works")
			}
			if rp1.refreshes(yesterday) {
				t.Error("yesterday's offline refresh token still works after signing out everywhere")
			}
		})
	}
}

// refreshes reports whether rp can still use the refresh token it was given in in (which a
// success rotates: ask once per sign-in).
func (rp *wdRP) refreshes(in wdSignIn) bool {
	_, err := rp.conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: in.tok.RefreshToken}).Token()
	return err == nil
}

// api sends a JSON request as the browser's own page would and returns the status.
func (b *wdBrowser) api(method, path string, body any) int {
	b.t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		b.t.Fatal(err)
	}
	req, _ := http.NewRequest(method, b.f.srv.URL+path, strings.NewReader(string(raw)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, msg := b.do(b.t, req)
	if resp.StatusCode != 200 {
		b.t.Logf("%s %s: %d %s", method, path, resp.StatusCode, msg)
	}
	return resp.StatusCode
}

// legacyRefreshToken gives the client clientID an offline_access refresh token of alice's, with
// its access token, of a grant made before sessions had IDs (migration 0009): no sid, valid for
// an hour from now.
func (f *wdFixture) legacyRefreshToken(t *testing.T, clientID string) {
	t.Helper()
	ctx := context.Background()
	alice, err := f.db.FindUserByUsername(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	g := latchkey.OIDCGrant{GrantID: "legacy", ClientID: clientID, UserID: alice.ID, Scopes: []string{"openid", "offline_access"}, Audience: []string{clientID}, AMR: []string{"pwd"}, ACR: "pwd", AuthTime: wdStart}
	if err := f.db.CreateOIDCTokens(ctx, &latchkey.OIDCAccessToken{ID: "legacy-at", OIDCGrant: g, RefreshTokenID: "legacy-rt", CreatedAt: wdStart, ExpiresAt: f.clock.Now().Add(time.Hour)},
		&latchkey.OIDCRefreshToken{ID: "legacy-rt", OIDCGrant: g, CreatedAt: wdStart, ExpiresAt: f.clock.Now().Add(time.Hour)}, latchkey.OIDCTokenUse{}, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
}

// TestAccountRulesKeepThisBrowsersApplications: an account rule that keeps the session it
// was made in (a password change, Reset all MFA, an administrator signing out their own other
// sessions) keeps that session's applications signed in too: the tokens given in it stay
// valid, while those of the other sessions and the offline_access token of yesterday's
// session (which had ended by itself) are revoked.
func TestAccountRulesKeepThisBrowsersApplications(t *testing.T) {
	ctx := context.Background()
	for _, how := range []string{"password change", "reset MFA", "admin's own sessions"} {
		t.Run(how, func(t *testing.T) {
			f := newWorkdayFixture(t, nil)
			rp1, rp2 := f.rp("rp1", false), f.rp("rp2", false)
			laptop, phone := f.browser(t), f.browser(t)
			yesterday := laptop.signIn(rp1, "alice")
			f.clock.t = madridAt(1, 9, 0)
			here := laptop.signIn(rp1, "alice")
			f.clock.Add(time.Minute)
			hereToo := laptop.signIn(rp2, "alice")
			f.clock.Add(time.Minute)
			there := phone.signIn(rp1, "alice")
			f.clock.Add(time.Minute)
			if here.claims.SID == yesterday.claims.SID || hereToo.claims.SID != here.claims.SID || there.claims.SID == here.claims.SID {
				t.Fatalf("sids: yesterday %q, here %q and %q, phone %q", yesterday.claims.SID, here.claims.SID, hereToo.claims.SID, there.claims.SID)
			}
			switch how {
			case "password change":
				if code := laptop.api("POST", "/api/v1/account/password", map[string]string{"current_password": pw, "new_password": "a new and rather long passphrase"}); code != 200 {
					t.Fatalf("change password: %d", code)
				}
			case "reset MFA":
				if code := laptop.api("POST", "/api/v1/account/mfa/reset", map[string]string{"password": pw, "code": totp.Code(f.secret, totp.Step(f.clock.Now()))}); code != 200 {
					t.Fatalf("reset MFA: %d", code)
				}
			case "admin's own sessions":
				admin := latchkey.RoleAdmin
				alice, err := f.db.FindUserByUsername(ctx, "alice")
				if err != nil {
					t.Fatal(err)
				}
				if alice, err = f.db.UpdateUser(ctx, alice.ID, latchkey.UserUpdate{Role: &admin}); err != nil {
					t.Fatal(err)
				}
				sess, err := f.db.FindSessionBySID(ctx, here.claims.SID)
				if err != nil {
					t.Fatal(err)
				}
				if err := f.svc.AdminRevokeSessions(ctx, login.Client{}, alice, sess.ID, alice.ID); err != nil {
					t.Fatal(err)
				}
			}
			f.oidc.WaitLogouts()
			if !laptop.signedIn() || phone.signedIn() {
				t.Fatalf("signed in: laptop %v, phone %v; want true, false", laptop.signedIn(), phone.signedIn())
			}
			if !rp1.refreshes(here) || !rp2.refreshes(hereToo) {
				t.Error("the applications of the session that stays signed in were signed out")
			}
			if rp1.refreshes(there) {
				t.Error("the phone's refresh token still works")
			}
			if rp1.refreshes(yesterday) {
				t.Error("yesterday's offline refresh token still works")
			}
		})
	}
}

// TestBackchannelLogoutOfEarlierSessions: an account-wide event tells, by back-channel
// logout, every client whose tokens it revokes, not only the clients of the sessions it just
// ended: rp1, whose only token is the offline_access refresh token of yesterday's session
// (which had ended by itself), gets a logout token for that session; rp3, whose token is
// older than session IDs, one with sub alone. Each client and session is told once, and the
// applications of a session the event keeps (the password changer's) are told nothing.
func TestBackchannelLogoutOfEarlierSessions(t *testing.T) {
	for _, how := range []string{"sign out everywhere", "password change", "admin"} {
		t.Run(how, func(t *testing.T) {
			f := newWorkdayFixture(t, nil)
			rp1, rp2, _ := f.rp("rp1", true), f.rp("rp2", true), f.rp("rp3", true)
			laptop, phone := f.browser(t), f.browser(t)
			yesterday := laptop.signIn(rp1, "alice")
			f.clock.t = madridAt(1, 9, 0)
			here := laptop.signIn(rp2, "alice")
			f.clock.Add(time.Minute)
			there := phone.signIn(rp2, "alice")
			if here.claims.SID == yesterday.claims.SID || there.claims.SID == here.claims.SID {
				t.Fatalf("sids: yesterday %q, laptop %q, phone %q", yesterday.claims.SID, here.claims.SID, there.claims.SID)
			}
			// A refresh token of rp3 given before sessions had IDs (migration 0009).
			f.legacyRefreshToken(t, "rp3")
			f.clock.Add(time.Minute)
			want := map[string]bool{"rp1 " + yesterday.claims.SID: true, "rp2 " + there.claims.SID: true, "rp3 ": true}
			switch how {
			case "sign out everywhere":
				if code := laptop.api("POST", "/api/v1/account/sessions/revoke-all", nil); code != 200 {
					t.Fatalf("revoke-all: %d", code)
				}
				want["rp2 "+here.claims.SID] = true
			case "password change":
				if code := laptop.api("POST", "/api/v1/account/password", map[string]string{"current_password": pw, "new_password": "a new and rather long passphrase"}); code != 200 {
					t.Fatalf("change password: %d", code)
				}
			case "admin":
				f.adminSignsOut(t, "alice")
				want["rp2 "+here.claims.SID] = true
			}
			f.receiveLogouts(t, rp1, yesterday.claims.Subject, want) // every RP shares the endpoint and the keys
			if rp1.refreshes(yesterday) {
				t.Error("yesterday's offline refresh token still works")
			}
		})
	}
}

// TestRevokingConsentLogsTheApplicationOut: revoking a third-party application's access
// (Settings › Security › Connected applications) tells the application, by back-channel
// logout, once for each session whose tokens it revoked: the laptop's (two sign-ins there),
// the phone's, and with sub alone for a token older than sids. The first-party application
// signed in in the same sessions is told nothing and keeps its tokens, and both browsers
// stay signed in to Latchkey.
func TestRevokingConsentLogsTheApplicationOut(t *testing.T) {
	f := newWorkdayFixture(t, nil)
	rp1, rp3 := f.rp("rp1", true), f.thirdPartyRP("rp3")
	laptop, phone := f.browser(t), f.browser(t)
	first := laptop.signIn(rp1, "alice")
	here := laptop.signIn(rp3, "alice")
	f.clock.Add(time.Minute)
	hereAgain := laptop.signIn(rp3, "alice")
	f.clock.Add(time.Minute)
	there := phone.signIn(rp3, "alice")
	if hereAgain.claims.SID != here.claims.SID || there.claims.SID == here.claims.SID || first.claims.SID != here.claims.SID {
		t.Fatalf("sids: rp1 %q, laptop %q and %q, phone %q", first.claims.SID, here.claims.SID, hereAgain.claims.SID, there.claims.SID)
	}
	// A refresh token of rp3 given before sessions had IDs (migration 0009).
	f.legacyRefreshToken(t, "rp3")
	f.clock.Add(time.Minute)
	if code := laptop.api("DELETE", "/api/v1/account/applications/rp3", nil); code != 200 {
		t.Fatalf("revoke rp3: %d", code)
	}
	want := map[string]bool{"rp3 " + here.claims.SID: true, "rp3 " + there.claims.SID: true, "rp3 ": true}
	f.receiveLogouts(t, rp3, here.claims.Subject, want)
	if rp3.refreshes(hereAgain) || rp3.refreshes(there) {
		t.Error("a refresh token of the revoked application still works")
	}
	if !rp1.refreshes(first) {
		t.Error("the first-party application lost its refresh token")
	}
	if !laptop.signedIn() || !phone.signedIn() {
		t.Errorf("signed in: laptop %v, phone %v; want both still signed in", laptop.signedIn(), phone.signedIn())
	}
	// Revoking again: 404, and no one is told anything.
	if code := laptop.api("DELETE", "/api/v1/account/applications/rp3", nil); code != http.StatusNotFound {
		t.Errorf("revoke rp3 again: %d, want 404", code)
	}
	f.oidc.WaitLogouts()
	if len(f.logout) > 0 {
		t.Errorf("revoking a revoked application sent %d logout tokens", len(f.logout))
	}
}

// TestEndSessionOtherMethods: the end_session endpoint takes GET and POST only. Any other
// method, with a valid id_token_hint of the browser's user and session, is a 405 naming
// them (Allow: GET, POST) and touches nothing: the browser stays signed in, the
// application keeps its tokens and is sent no logout. The library's own end_session
// handler, which the catch-all /oidc/ route reached with these methods, revoked the user's
// tokens for the client without a back-channel logout; HEAD, routed with GET, could sign
// the browser out.
func TestEndSessionOtherMethods(t *testing.T) {
	for _, method := range []string{"PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "PURGE"} {
		t.Run(method, func(t *testing.T) {
			f := newWorkdayFixture(t, nil)
			rp1 := f.rp("rp1", true)
			b := f.browser(t)
			in := b.signIn(rp1, "alice")
			q := url.Values{"id_token_hint": {in.idt}, "client_id": {"rp1"}, "post_logout_redirect_uri": {rp1.logoutTo}, "state": {"s"}}
			req, _ := http.NewRequest(method, f.srv.URL+"/oidc/end_session?"+q.Encode(), nil)
			resp, body := b.do(t, req)
			if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, POST" || resp.Header.Get("Location") != "" {
				t.Errorf("%s /oidc/end_session: %d, Allow %q, Location %q\n%s", method, resp.StatusCode, resp.Header.Get("Allow"), resp.Header.Get("Location"), body)
			}
			f.oidc.WaitLogouts()
			if len(f.logout) > 0 {
				c := f.receiveLogout(t, rp1)
				t.Errorf("%s /oidc/end_session sent a logout token: aud %s sid %q", method, c.Audience, c.SID)
			}
			if !b.signedIn() {
				t.Errorf("%s /oidc/end_session signed the browser out", method)
			}
			if !rp1.refreshes(in) {
				t.Errorf("%s /oidc/end_session revoked the application's tokens", method)
			}
		})
	}
}

// TestOIDCParameterTwice: through the server, an authorization request with a parameter
// given twice gets Latchkey's error page naming it (400, no redirect), and an RP-initiated
// logout with a parameter once in the query and once in the body a 400 page naming it, the
// session untouched.
func TestOIDCParameterTwice(t *testing.T) {
	f := newWorkdayFixture(t, nil)
	rp1 := f.rp("rp1", false)
	b := f.browser(t)
	b.signIn(rp1, "alice")
	auth, _ := url.Parse(rp1.conf.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	auth.RawQuery += "&redirect_uri=" + url.QueryEscape("http://127.0.0.1:1/rp1/%63allback")
	req, _ := http.NewRequest("GET", auth.String(), nil)
	resp, body := b.do(t, req)
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(string(body), "the parameter &#34;redirect_uri&#34; more than once") {
		t.Errorf("authorize with redirect_uri twice: %d to %q (%s)\n%s", resp.StatusCode, resp.Header.Get("Location"), resp.Header.Get("Content-Type"), body)
	}
	req = b.form("/oidc/end_session?state=a", url.Values{"client_id": {"rp1"}, "state": {"b"}, "confirm": {"yes"}})
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, body = b.do(t, req)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "the parameter &#34;state&#34; more than once") {
		t.Errorf("end_session with state in the query and the body: %d\n%s", resp.StatusCode, body)
	}
	if !b.signedIn() {
		t.Error("a refused end_session request signed the user out")
	}
}
