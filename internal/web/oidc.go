package web

import (
	"net/http"
	"net/url"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/oidc"
)

// mountOIDC serves the OpenID Connect provider under /oidc (discovery at
// /oidc/.well-known/openid-configuration) and the page its authorize endpoint sends the
// browser to. Without a provider it mounts nothing.
func (s *Server) mountOIDC(mux *http.ServeMux) {
	if s.oidc == nil {
		return
	}
	mux.Handle("/oidc/", http.StripPrefix("/oidc", s.oidc.Handler()))
	mux.Handle("GET /oidc/login", s.page(s.pageOIDCLogin))
}

// pageOIDCLogin is where an authorization request meets Latchkey's sign-in: with a session
// that satisfies the request the browser goes back to the client with a code; otherwise to
// the sign-in page, or the password confirmation (prompt=login, max_age), and back here.
func (s *Server) pageOIDCLogin(w http.ResponseWriter, r *http.Request) error {
	id := r.URL.Query().Get("id")
	sess, u, err := s.login.Authenticate(r.Context(), s.token(r))
	if latchkey.ErrorCode(err) == latchkey.EUnauthenticated {
		sess, u = nil, nil
	} else if err != nil {
		return err
	}
	d, err := s.oidc.Authorize(r.Context(), id, sess, u)
	if err != nil {
		return err
	}
	here := "/oidc/login?id=" + url.QueryEscape(id)
	switch d.Step {
	case oidc.StepDone:
		s.oidc.Respond(w, r, id, nil)
	case oidc.StepError:
		s.oidc.Respond(w, r, id, d.Err)
	case oidc.StepSignIn:
		http.Redirect(w, r, withNext("/login", here), http.StatusSeeOther)
	case oidc.StepReauthenticate:
		http.Redirect(w, r, withNext("/reauth", here), http.StatusSeeOther)
	case oidc.StepMFARequired:
		return latchkey.Errorf(latchkey.EForbidden, "This application requires two-step verification. Sign out, then sign in again with your second factor (or add one on the Security page first).")
	}
	return nil
}
