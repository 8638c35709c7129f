package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/latchkey/latchkey/internal/browsertest"
	"github.com/latchkey/latchkey/internal/totp"
)

// webApp is a small web application that signs its users in with Latchkey, written with
// coreos/go-oidc and x/oauth2 the way an application team would: GET / sends a visitor
// without the app's own session to the provider (authorization code with PKCE S256, state
// and nonce), GET /callback verifies the answer and shows who signed in and how.
type webApp struct {
	t        *testing.T
	name     string
	srv      *httptest.Server
	conf     oauth2.Config
	verifier *gooidc.IDTokenVerifier

	mu       sync.Mutex
	pending  map[string]string // state → PKCE verifier
	sessions map[string]idClaims
}

func newWebApp(t *testing.T, s *testServer, name string, extra ...string) *webApp {
	t.Helper()
	a := &webApp{t: t, name: name, pending: map[string]string{}, sessions: map[string]idClaims{}}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.srv.Close)
	var out, errb strings.Builder
	args := append([]string{"client", "create", "--data", s.data, "--id", name, "--name", name, "--redirect-uri", a.srv.URL + "/callback", "--first-party"}, extra...)
	if err := run(context.Background(), args, env(nil), nil, &out, &errb); err != nil {
		t.Fatalf("client create %s: %v\n%s", name, err, errb.String())
	}
	var secret string
	if m := secretRe.FindStringSubmatch(out.String()); m != nil {
		secret = m[1]
	}
	p, err := gooidc.NewProvider(context.Background(), oidcIssuer(s))
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	a.verifier = p.Verifier(&gooidc.Config{ClientID: name})
	a.conf = oauth2.Config{ClientID: name, ClientSecret: secret, Endpoint: p.Endpoint(), RedirectURL: a.srv.URL + "/callback",
		Scopes: []string{gooidc.ScopeOpenID, "profile", "email"}}
	return a
}

func randomHex() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (a *webApp) serve(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/":
		if c, err := r.Cookie("app_" + a.name); err == nil {
			a.mu.Lock()
			claims, ok := a.sessions[c.Value]
			a.mu.Unlock()
			if ok {
				a.page(w, claims)
				return
			}
		}
		state, verifier := randomHex(), oauth2.GenerateVerifier()
		a.mu.Lock()
		a.pending[state] = verifier
		a.mu.Unlock()
		http.Redirect(w, r, a.conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), gooidc.Nonce("n-"+state)), http.StatusFound)
	case "/callback":
		q := r.URL.Query()
		a.mu.Lock()
		verifier, ok := a.pending[q.Get("state")]
		delete(a.pending, q.Get("state"))
		a.mu.Unlock()
		if !ok || q.Get("code") == "" {
			http.Error(w, "bad callback: "+q.Get("error")+" "+q.Get("error_description"), http.StatusBadRequest)
			return
		}
		tok, err := a.conf.Exchange(r.Context(), q.Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			http.Error(w, "exchange: "+err.Error(), http.StatusBadGateway)
			return
		}
		raw, _ := tok.Extra("id_token").(string)
		idt, err := a.verifier.Verify(r.Context(), raw)
		if err != nil {
			http.Error(w, "id token: "+err.Error(), http.StatusBadGateway)
			return
		}
		var claims idClaims
		if err := idt.Claims(&claims); err != nil || claims.Nonce != "n-"+q.Get("state") {
			http.Error(w, "id token claims or nonce", http.StatusBadGateway)
			return
		}
		sid := randomHex()
		a.mu.Lock()
		a.sessions[sid] = claims
		a.mu.Unlock()
		http.SetCookie(w, &http.Cookie{Name: "app_" + a.name, Value: sid, Path: "/", HttpOnly: true})
		http.Redirect(w, r, "/", http.StatusFound)
	default:
		http.NotFound(w, r)
	}
}

func (a *webApp) page(w http.ResponseWriter, c idClaims) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, `<!doctype html><html lang="en"><head><title>%[1]s</title><style>body{font:16px system-ui;margin:3rem}</style></head>
<body><h1 id="hello">%[1]s: signed in</h1><p>Subject <code id="sub">%[2]s</code>, methods <code id="amr">%[3]s</code>, level <code id="acr">%[4]s</code></p></body></html>`,
		html.EscapeString(a.name), html.EscapeString(c.Subject), html.EscapeString(strings.Join(c.AMR, " ")), html.EscapeString(c.ACR))
}

// TestBrowserWorkdaySSO is journey 5 in a real Chromium: the user opens application A,
// signs in to Latchkey with the password and a code, and lands in A; application B then
// gets its code with no Latchkey page at all; both ID tokens say the sign-in was
// multi-factor.
func TestBrowserWorkdaySSO(t *testing.T) {
	s := startServer(t, "alice")
	secret, T := enrolTOTP(t, s.url)
	appA := newWebApp(t, s, "app-a", "--require-mfa")
	appB := newWebApp(t, s, "app-b", "--require-mfa")
	ctx := browsertest.New(t, 2*time.Minute)

	// Record every Latchkey page the browser is sent to.
	var mu sync.Mutex
	var seen []string
	err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok && strings.HasPrefix(e.Request.URL, s.url) {
			if u, err := url.Parse(e.Request.URL); err == nil {
				mu.Lock()
				seen = append(seen, e.Request.Method+" "+u.Path)
				mu.Unlock()
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	pages := func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := slices.Clone(seen)
		seen = nil
		return out
	}

	do(t, ctx, "open application A",
		chromedp.Navigate(appA.srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), "alice"),
		chromedp.SendKeys(chromedp.CSS("#password"), alicePassword),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("#code")),
	)
	browsertest.Screenshot(t, ctx, "journey5-01-code")
	do(t, ctx, "enter the code",
		chromedp.SendKeys(chromedp.CSS("#code"), totp.Code(secret, T+1)),
		chromedp.Submit(chromedp.CSS("#code")),
		chromedp.WaitVisible(chromedp.CSS("#hello")),
	)
	browsertest.Screenshot(t, ctx, "journey5-02-app-a")
	if got := text(t, ctx, "#hello"); got != "app-a: signed in" {
		t.Fatalf("application A shows %q", got)
	}
	a := pages()
	if !slices.Contains(a, "GET /login") || !slices.Contains(a, "POST /login/code") {
		t.Errorf("application A's sign-in did not go through the password and code pages: %v", a)
	}
	amrA := strings.Fields(text(t, ctx, "#amr"))
	if !slices.Contains(amrA, "mfa") || !slices.Contains(amrA, "otp") || !slices.Contains(amrA, "pwd") {
		t.Errorf("application A's ID token amr = %v, want pwd otp mfa", amrA)
	}

	do(t, ctx, "open application B", chromedp.Navigate(appB.srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#hello")))
	browsertest.Screenshot(t, ctx, "journey5-03-app-b")
	if got := text(t, ctx, "#hello"); got != "app-b: signed in" {
		t.Fatalf("application B shows %q", got)
	}
	for _, p := range pages() {
		if _, path, _ := strings.Cut(p, " "); strings.HasPrefix(path, "/login") || strings.HasPrefix(path, "/reauth") {
			t.Errorf("application B went through a Latchkey page (%s): single sign-on should need none", p)
		}
	}
	if amrB := strings.Fields(text(t, ctx, "#amr")); !slices.Contains(amrB, "mfa") {
		t.Errorf("application B's ID token amr = %v, want mfa", amrB)
	}
	if subA, subB := appA.sessionsSubject(), appB.sessionsSubject(); subA == "" || subA != subB {
		t.Errorf("subjects A %q, B %q: want the same user", subA, subB)
	}
}

// sessionsSubject returns the subject of the app's (only) session.
func (a *webApp) sessionsSubject() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.sessions {
		return c.Subject
	}
	return ""
}

// oidcIssuer is the provider's issuer as relying parties configure it.
func oidcIssuer(s *testServer) string { return s.url }
