package main

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/latchkey/latchkey/internal/browsertest"
	"github.com/latchkey/latchkey/internal/totp"
)

// browserRP is a relying party on its own origin that a real browser is sent back to: its
// callback exchanges the code (go-oidc, x/oauth2) and shows how the user signed in.
type browserRP struct {
	srv      *httptest.Server
	conf     oauth2.Config
	verifier string
}

func newBrowserRP(t *testing.T, s *testServer, id string, flags ...string) *browserRP {
	t.Helper()
	r := &browserRP{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		q := req.URL.Query()
		if e := q.Get("error"); e != "" {
			fmt.Fprintf(w, `<!doctype html><title>RP</title><p id="result">error=%s</p>`, html.EscapeString(e))
			return
		}
		ctx := req.Context()
		p, err := gooidc.NewProvider(ctx, s.url)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		conf := r.conf
		conf.Endpoint = p.Endpoint()
		tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(r.verifier))
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		raw, _ := tok.Extra("id_token").(string)
		idt, err := p.Verifier(&gooidc.Config{ClientID: id}).Verify(ctx, raw)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		var c idClaims
		idt.Claims(&c)
		fmt.Fprintf(w, `<!doctype html><title>RP</title><p id="result">acr=%s amr=%s</p>`, html.EscapeString(c.ACR), html.EscapeString(strings.Join(c.AMR, ",")))
	}))
	t.Cleanup(r.srv.Close)
	var out, errb strings.Builder
	args := append([]string{"client", "create", "--data", s.data, "--id", id, "--name", "App " + id, "--redirect-uri", r.srv.URL + "/cb"}, flags...)
	if err := run(context.Background(), args, env(nil), nil, &out, &errb); err != nil {
		t.Fatalf("client create: %v\n%s", err, errb.String())
	}
	m := secretRe.FindStringSubmatch(out.String())
	r.conf = oauth2.Config{ClientID: id, ClientSecret: m[1], RedirectURL: r.srv.URL + "/cb", Scopes: []string{"openid", "email", "offline_access"}}
	return r
}

func (r *browserRP) authURL(s *testServer, opts ...oauth2.AuthCodeOption) string {
	r.verifier = oauth2.GenerateVerifier()
	c := r.conf
	c.Endpoint = oauth2.Endpoint{AuthURL: s.url + "/oidc/authorize"}
	return c.AuthCodeURL("st", append(opts, oauth2.S256ChallengeOption(r.verifier))...)
}

// TestBrowserOIDCConsentAndStepUp: in a real Chromium, a third-party application asks for
// consent (login_hint fills in the username; Allow returns to it with a code), a client that
// demands MFA takes a password-only session through the second step and back, the Security
// page lists the connected application and revokes it, and Deny returns access_denied.
func TestBrowserOIDCConsentAndStepUp(t *testing.T) {
	s := startServer(t, "alice")
	partner := newBrowserRP(t, s, "partner")
	strict := newBrowserRP(t, s, "strict", "--first-party", "--require-mfa")
	ctx := browsertest.New(t, 3*time.Minute)
	shot := func(name string) { browsertest.Screenshot(t, ctx, "oidcx-"+name) }

	// The third-party application: sign-in with the hint, then the consent page.
	do(t, ctx, "open partner", chromedp.Navigate(partner.authURL(s, oauth2.SetAuthURLParam("login_hint", "alice"))), chromedp.WaitVisible(chromedp.CSS("#password")))
	if v := attr(t, ctx, "#username", "value"); v != "alice" {
		t.Errorf("username filled with %q, want the login_hint", v)
	}
	do(t, ctx, "password",
		chromedp.SendKeys(chromedp.CSS("#password"), alicePassword),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/oidc/consent"]`)),
	)
	shot("01-consent")
	if h := text(t, ctx, "h1"); h != "App partner wants to:" {
		t.Errorf("consent heading %q", h)
	}
	if items := text(t, ctx, ".consent-list"); !strings.Contains(items, "know who you are") || !strings.Contains(items, "see your email address") ||
		!strings.Contains(items, "stay signed in (offline access)") || strings.Contains(items, "username") {
		t.Errorf("consent items %q", items)
	}
	do(t, ctx, "allow", chromedp.Click(chromedp.CSS(`button[value="allow"]`)), chromedp.WaitVisible(chromedp.CSS("#result")))
	if got := text(t, ctx, "#result"); got != "acr=pwd amr=pwd" {
		t.Fatalf("partner after Allow: %q", got)
	}

	// alice adds an authenticator app elsewhere; this browser's session is password-only.
	secret, T := enrolTOTP(t, s.url)
	do(t, ctx, "open strict", chromedp.Navigate(strict.authURL(s)), chromedp.WaitVisible(chromedp.CSS(`form[action="/oidc/stepup"]`)))
	shot("02-step-up")
	if h := text(t, ctx, "h1"); h != "App strict needs two-step verification" {
		t.Errorf("step-up heading %q", h)
	}
	do(t, ctx, "continue", chromedp.Click(chromedp.CSS(`form[action="/oidc/stepup"] button`)), chromedp.WaitVisible(chromedp.CSS("#code")))
	shot("03-step-up-code")
	enterCode(t, ctx, totp.Code(secret, T+1), "#result")
	if got := text(t, ctx, "#result"); !strings.HasPrefix(got, "acr=mfa ") || !strings.Contains(got, "mfa") || !strings.Contains(got, "otp") {
		t.Fatalf("strict after step-up: %q", got)
	}

	// The Security page lists the application; Revoke access takes it away.
	do(t, ctx, "security", chromedp.Navigate(s.url+"/settings/security"), chromedp.WaitVisible(chromedp.CSS("#applications")))
	shot("04-connected-applications")
	if got := text(t, ctx, "#app-partner"); !strings.Contains(got, "App partner") || !strings.Contains(got, "see your email address") {
		t.Errorf("connected application %q", got)
	}
	do(t, ctx, "revoke", chromedp.Click(chromedp.CSS(`#app-partner button`)), chromedp.WaitVisible(chromedp.CSS(".flash, [role=status]")), chromedp.WaitNotPresent(chromedp.CSS("#app-partner")))
	shot("05-revoked")

	// Asked again; Deny returns access_denied to the application.
	do(t, ctx, "open partner again", chromedp.Navigate(partner.authURL(s)), chromedp.WaitVisible(chromedp.CSS(`form[action="/oidc/consent"]`)))
	do(t, ctx, "deny", chromedp.Click(chromedp.CSS(`button[value="deny"]`)), chromedp.WaitVisible(chromedp.CSS("#result")))
	if got := text(t, ctx, "#result"); got != "error=access_denied" {
		t.Errorf("partner after Deny: %q", got)
	}

	// On a phone.
	do(t, ctx, "phone consent", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), chromedp.Navigate(partner.authURL(s)), chromedp.WaitVisible(chromedp.CSS(`form[action="/oidc/consent"]`)))
	shot("06-consent-phone")
}

// TestBrowserOIDCStepUpSetUp: a user without a second factor opens a client that demands
// MFA: the page says so, sets up an authenticator app on the spot, and continues to the
// client with an MFA sign-in.
func TestBrowserOIDCStepUpSetUp(t *testing.T) {
	s := startServer(t, "alice")
	strict := newBrowserRP(t, s, "strict", "--first-party", "--require-mfa")
	ctx := browsertest.New(t, 2*time.Minute)
	shot := func(name string) { browsertest.Screenshot(t, ctx, "oidcx-setup-"+name) }

	do(t, ctx, "open strict", chromedp.Navigate(strict.authURL(s)), chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), "alice"),
		chromedp.SendKeys(chromedp.CSS("#password"), alicePassword),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/oidc/stepup"]`)),
	)
	shot("01-no-factor")
	if got := text(t, ctx, "main"); !strings.Contains(got, "has no second sign-in method yet") {
		t.Errorf("step-up page without a factor: %q", got)
	}
	do(t, ctx, "set up", chromedp.Click(chromedp.CSS(`form[action="/oidc/stepup"] button`)), chromedp.WaitVisible(chromedp.CSS(`form[action="/login/enroll/totp"] button`)))
	shot("02-choose")
	do(t, ctx, "authenticator app", chromedp.Click(chromedp.CSS(`form[action="/login/enroll/totp"] button`)), chromedp.WaitVisible(chromedp.CSS("#qr")))
	secret := scanQR(t, ctx)
	enterCode(t, ctx, totp.Code(secret, totp.Step(time.Now())), `a.button[href^="/oidc/login"]`)
	shot("03-recovery-codes")
	do(t, ctx, "continue", chromedp.Click(chromedp.CSS(`a.button[href^="/oidc/login"]`)), chromedp.WaitVisible(chromedp.CSS("#result")))
	if got := text(t, ctx, "#result"); !strings.HasPrefix(got, "acr=mfa ") || !strings.Contains(got, "otp") {
		t.Fatalf("strict after setting up a factor: %q", got)
	}
}
