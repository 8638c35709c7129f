package web

import (
	"bytes"
	"context"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/oidc"
)

// oidcCrossOriginBypass are the protocol endpoints that single-page apps call from their own
// origin, with no cookie: they are authenticated by client credentials, PKCE or bearer tokens,
// never by the session, so the cross-origin protection must let them through (crossOrigin).
// RP-initiated logout is POSTed by the application's page too (RP-Initiated Logout 1.0 §2):
// pageEndSession lets a cross-site POST do only what a GET does, and takes confirm=yes only
// from Latchkey's own page.
var oidcCrossOriginBypass = []string{"POST " + oidc.PathToken, "POST " + oidc.PathRevoke, "POST " + oidc.PathUserinfo, "POST " + oidc.PathIntrospect,
	"POST " + oidc.PathEndSession}

// mountOIDC serves the OpenID Connect provider: discovery at
// /.well-known/openid-configuration (the issuer is the public URL), the protocol endpoints
// under /oidc/, the page its authorize endpoint sends the browser to, the consent and
// step-up pages, and the user's connected applications. Without a provider it mounts nothing.
func (s *Server) mountOIDC(mux *http.ServeMux) {
	if s.oidc == nil {
		return
	}
	h := s.oidcHandler()
	mux.Handle("GET "+oidc.PathDiscovery, h)
	mux.Handle("/oidc/", h)
	mux.Handle(oidc.PathAuthorize, s.authorizePage(h))
	mux.Handle("GET /oidc/login", s.page(s.pageOIDCLogin))
	mux.Handle("POST /oidc/consent", s.page(s.pageOIDCConsent))
	mux.Handle("POST /oidc/stepup", s.page(s.pageOIDCStepUp))
	mux.Handle("POST /settings/security/applications/{client_id}/revoke", s.pageAuthed(s.pageRevokeApplication))
	mux.Handle("GET /api/v1/account/applications", s.apiAuthed(s.apiApplications))
	mux.Handle("DELETE /api/v1/account/applications/{client_id}", s.apiAuthed(s.apiRevokeApplication))
}

// oidcHandler is the provider's handler, told the client's address and browser.
func (s *Server) oidcHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := client(r)
		s.oidc.Handler().ServeHTTP(w, r.WithContext(oidc.WithClient(r.Context(), c.IP, c.UserAgent)))
	})
}

func init() {
	flashes["app-revoked"] = "Access revoked. The application will ask for your permission again."
}

// oidcView is what the consent and step-up pages show.
type oidcView struct {
	ID      string   // the authorization request
	App     string   // the client's name
	Can     []string // what the scopes allow, in plain words
	Methods []string // step-up: the user's second factors (none: set one up)
	Again   bool     // step-up: the session's second factor is older than the app allows
}

// pageOIDCLogin is where an authorization request meets Latchkey's sign-in: with a session
// that satisfies the request the browser goes back to the client with a code; otherwise to
// the sign-in page, the password confirmation (prompt=login, max_age), the consent page of a
// third-party client or the step-up page, and back here.
func (s *Server) pageOIDCLogin(w http.ResponseWriter, r *http.Request) error {
	id := r.URL.Query().Get("id")
	d, u, err := s.oidcDecide(r, id)
	if err != nil {
		return err
	}
	return s.oidcNext(w, r, id, d, u)
}

// oidcDecide runs Authorize for request id with the browser's session (none when signed out).
func (s *Server) oidcDecide(r *http.Request, id string) (*oidc.Decision, *latchkey.User, error) {
	sess, u, err := s.oidcSession(r)
	if err != nil {
		return nil, nil, err
	}
	d, err := s.oidc.Authorize(s.oidcContext(r), id, sess, u)
	return d, u, err
}

// oidcSession returns the signed-in session, or nils when there is none.
func (s *Server) oidcSession(r *http.Request) (*latchkey.Session, *latchkey.User, error) {
	sess, u, err := s.login.Authenticate(r.Context(), s.token(r))
	if latchkey.ErrorCode(err) == latchkey.EUnauthenticated {
		return nil, nil, nil
	}
	return sess, u, err
}

func (s *Server) oidcContext(r *http.Request) context.Context {
	c := client(r)
	return oidc.WithClient(r.Context(), c.IP, c.UserAgent)
}

// oidcNext carries out a decision for request id.
func (s *Server) oidcNext(w http.ResponseWriter, r *http.Request, id string, d *oidc.Decision, u *latchkey.User) error {
	here := "/oidc/login?id=" + url.QueryEscape(id)
	switch d.Step {
	case oidc.StepDone:
		s.oidcRespond(w, r, id, nil, d.Client)
	case oidc.StepError:
		s.oidcRespond(w, r, id, d.Err, d.Client)
	case oidc.StepSignIn:
		http.Redirect(w, r, loginURL(here, d.LoginHint), http.StatusSeeOther)
	case oidc.StepReauthenticate:
		http.Redirect(w, r, withNext("/reauth", here), http.StatusSeeOther)
	case oidc.StepConsent:
		return s.render(w, http.StatusOK, "consent", &view{Title: "Allow " + d.Client.Name + "?", User: u, Data: oidcView{ID: id, App: d.Client.Name, Can: oidc.DescribeScopes(d.Scopes)}})
	case oidc.StepMFARequired:
		// A page with a button, not a redirect: turning the session into a second step
		// changes state, which a GET (this one comes from the application) never does.
		methods, err := s.login.Factors(r.Context(), u)
		if err != nil {
			return err
		}
		v := oidcView{ID: id, App: d.Client.Name, Again: d.StaleMFA}
		for _, f := range methods {
			if !f.Pending && !slices.Contains(v.Methods, f.Type) {
				v.Methods = append(v.Methods, f.Type)
			}
		}
		return s.render(w, http.StatusOK, "stepup", &view{Title: d.Client.Name + " needs two-step verification", User: u, Data: v})
	}
	return nil
}

// oidcRespond sends the browser back to the client with the code (or the error). When the
// request comes from one of Latchkey's own pages (a form's POST, or the redirect after one:
// Sec-Fetch-Site same-origin), a redirect to the client's origin would be blocked by the
// pages' CSP form-action 'self', which browsers apply to the redirects that follow a form
// submission; the browser then gets a small page that continues by itself (meta refresh,
// which form-action does not govern) and a link. A navigation that comes from the client
// (single sign-on) gets the plain redirect, with no page in between.
func (s *Server) oidcRespond(w http.ResponseWriter, r *http.Request, id string, err error, c *latchkey.OIDCClient) {
	if r.Method == http.MethodGet && r.Header.Get("Sec-Fetch-Site") != "same-origin" {
		s.oidc.Respond(w, r, id, err)
		return
	}
	cw := &captureWriter{h: http.Header{}}
	s.oidc.Respond(cw, r, id, err)
	loc := cw.h.Get("Location")
	if cw.code/100 != 3 || loc == "" {
		for k, v := range cw.h {
			w.Header()[k] = v
		}
		w.WriteHeader(cw.code)
		_, _ = w.Write(cw.body.Bytes())
		return
	}
	name := "the application"
	if c != nil {
		name = c.Name
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Referrer-Policy", "no-referrer")
	_ = continuePage.Execute(w, struct{ URL, App string }{loc, name})
}

// continuePage takes the browser to the client. The URL is one the library built from a
// registered redirect URI; html/template still refuses anything but http(s) in it.
var continuePage = template.Must(template.New("continue").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="0; url={{.URL}}">
<title>Returning to {{.App}}</title>
<link rel="stylesheet" href="/static/style.css">
</head>
<body>
<main id="main" class="narrow"><section class="card"><h1>Returning to {{.App}}…</h1><p><a class="button" id="continue" href="{{.URL}}">Continue to {{.App}}</a></p></section></main>
</body>
</html>
`))

// captureWriter keeps a response to look at it before it is sent.
type captureWriter struct {
	h    http.Header
	code int
	body bytes.Buffer
}

func (c *captureWriter) Header() http.Header { return c.h }
func (c *captureWriter) WriteHeader(code int) {
	if c.code == 0 {
		c.code = code
	}
}
func (c *captureWriter) Write(b []byte) (int, error) {
	if c.code == 0 {
		c.code = http.StatusOK
	}
	return c.body.Write(b)
}

// loginURL is the sign-in page returning to next, with the request's login_hint to fill in
// the username (only that: the hint proves nothing).
func loginURL(next, hint string) string {
	u := withNext("/login", next)
	if hint = cleanHint(hint); hint != "" {
		u += "&login_hint=" + url.QueryEscape(hint)
	}
	return u
}

// cleanHint keeps a login_hint fit to show in the username field: at most 256 bytes, no
// control characters.
func cleanHint(h string) string {
	if len(h) > 256 {
		return ""
	}
	for _, c := range h {
		if c < 0x20 || c == 0x7f {
			return ""
		}
	}
	return h
}

// pageOIDCConsent takes the answer of the consent page (Allow or Deny).
func (s *Server) pageOIDCConsent(w http.ResponseWriter, r *http.Request) error {
	if err := form(r); err != nil {
		return err
	}
	id := r.PostFormValue("id")
	var allowed bool
	switch r.PostFormValue("decision") {
	case "allow":
		allowed = true
	case "deny":
	default:
		return latchkey.Errorf(latchkey.EInvalid, "Choose Allow or Deny.")
	}
	sess, u, err := s.oidcSession(r)
	if err != nil {
		return err
	}
	d, err := s.oidc.Consent(s.oidcContext(r), id, sess, u, allowed)
	if err != nil {
		return err
	}
	return s.oidcNext(w, r, id, d, u)
}

// pageOIDCStepUp turns the session into the second step of sign-in (or, for a user without
// a factor, the setup of one) and comes back to the request afterwards. The request decides
// again first: only while it still asks for a second factor the session lacks (none, or one
// older than its max_age) does the session step up.
func (s *Server) pageOIDCStepUp(w http.ResponseWriter, r *http.Request) error {
	if err := form(r); err != nil {
		return err
	}
	id := r.PostFormValue("id")
	here := "/oidc/login?id=" + url.QueryEscape(id)
	d, u, err := s.oidcDecide(r, id)
	if err != nil {
		return err
	}
	if d.Step != oidc.StepMFARequired {
		return s.oidcNext(w, r, id, d, u)
	}
	res, err := s.login.StepUp(r.Context(), client(r), s.token(r), d.MFASince)
	switch latchkey.ErrorCode(err) {
	case "":
	case latchkey.EUnauthenticated, latchkey.EConflict:
		// Signed out meanwhile, or the factor was given in another tab: the request decides.
		http.Redirect(w, r, here, http.StatusSeeOther)
		return nil
	default:
		return err
	}
	s.setSession(w, res)
	if res.State == latchkey.StateEnroll {
		http.Redirect(w, r, enrollURL(here), http.StatusSeeOther)
	} else {
		http.Redirect(w, r, withNext("/login/code", here), http.StatusSeeOther)
	}
	return nil
}

// application is a connected (third-party) application as the account API shows it.
type application struct {
	ClientID string    `json:"client_id"`
	Name     string    `json:"name"`
	Scopes   []string  `json:"scopes"`
	Can      []string  `json:"can"`
	Since    time.Time `json:"since"`
}

func (s *Server) applications(r *http.Request, u *latchkey.User) ([]application, error) {
	list := []application{}
	if s.oidc == nil {
		return list, nil
	}
	cs, err := s.oidc.Consents(r.Context(), u)
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		list = append(list, application{ClientID: c.ClientID, Name: c.ClientName, Scopes: c.Scopes, Can: oidc.DescribeScopes(c.Scopes), Since: c.CreatedAt})
	}
	return list, nil
}

func (s *Server) apiApplications(w http.ResponseWriter, r *http.Request, a *auth) (any, error) {
	list, err := s.applications(r, a.user)
	if err != nil {
		return nil, err
	}
	return map[string]any{"applications": list}, nil
}

func (s *Server) apiRevokeApplication(w http.ResponseWriter, r *http.Request, a *auth) (any, error) {
	if err := s.oidc.RevokeConsent(s.oidcContext(r), a.user, r.PathValue("client_id")); err != nil {
		return nil, err
	}
	return map[string]bool{"revoked": true}, nil
}

func (s *Server) pageRevokeApplication(w http.ResponseWriter, r *http.Request, a *auth) error {
	if err := s.oidc.RevokeConsent(s.oidcContext(r), a.user, r.PathValue("client_id")); err != nil {
		return err
	}
	http.Redirect(w, r, "/settings/security?done=app-revoked#applications", http.StatusSeeOther)
	return nil
}

// authorizePage serves the authorize endpoint (h) to a person's browser: a request the
// library cannot send back to its application (a client that is not registered, a
// redirect_uri it does not have), which the library answers in plain text, gets
// Latchkey's error page with the same status and the reason in plain words
// (authorizeReason). The requests it can send back go back to the application, as before.
func (s *Server) authorizePage(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		aw := &authorizeWriter{ResponseWriter: w}
		h.ServeHTTP(aw, r)
		if aw.status == 0 {
			return
		}
		_ = s.render(w, aw.status, "error", &view{Title: "This sign-in request cannot be used",
			Error: authorizeReason(aw.text.String()) + "Go back to the application and try again, or tell its administrator."})
	})
}

// authorizeReason says in plain words why the library refused an authorization request it
// could not send back, from its text (which is not shown: it may carry a store's error), or
// nothing when the text is not one it knows. The provider's own refusals before the library
// (a parameter given twice) say their reason, naming at most a parameter: that is shown.
func authorizeReason(text string) string {
	if reason, ok := oidc.RefusalReason(text); ok {
		return reason + " "
	}
	switch {
	case strings.Contains(text, "client by id"), strings.Contains(text, "client id"):
		return "The application that sent you here is not registered with Latchkey. "
	case strings.Contains(text, "redirect_uri"):
		return "The address the application asked to return to is not registered for it. "
	case strings.Contains(text, "response type"):
		return "The application asked for a kind of answer Latchkey does not give. "
	case strings.Contains(text, "scope"):
		return "The application did not say what it needs (its scope). "
	}
	return "The application that sent you here made a request Latchkey cannot answer. "
}

// authorizeWriter holds back the library's plain-text refusals (status 400 and above) for
// authorizePage; every other answer passes.
type authorizeWriter struct {
	http.ResponseWriter
	status int
	text   strings.Builder
}

func (w *authorizeWriter) WriteHeader(status int) {
	if status >= 400 && strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") {
		w.status = status
		return
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *authorizeWriter) Write(b []byte) (int, error) {
	if w.status != 0 {
		if w.text.Len() < 512 {
			w.text.Write(b)
		}
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}
