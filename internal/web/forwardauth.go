package web

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/forwardauth"
)

// handleForwardAuth is the gate for reverse proxies (nginx auth_request, Traefik forwardAuth,
// Caddy forward_auth): it reads the original request from X-Original-URL (nginx) or
// X-Forwarded-Proto/-Host/-Uri (Traefik, Caddy), decides with the configured rules and answers
// 200 with the identity headers, 401 (nginx) or 302 (the others) towards the sign-in page, or
// 403. It hashes nothing and, on the common path, writes nothing: a session read and a user
// read (the activity time is written at most once a minute).
func (s *Server) handleForwardAuth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	orig, nginx, ok := originalURL(r)
	if !ok {
		http.Error(w, "forward-auth needs the original request: X-Original-URL, or X-Forwarded-Host and X-Forwarded-Uri", http.StatusBadRequest)
		return
	}
	rules := s.forwardAuth
	switch rules.Decide(orig.Host, orig.Path, false, nil) {
	case forwardauth.Bypass:
		w.WriteHeader(http.StatusOK)
		return
	case forwardauth.Deny:
		http.Error(w, "Access to this address is not allowed.", http.StatusForbidden)
		return
	}
	sess, u, err := s.login.Authenticate(r.Context(), s.token(r))
	if err != nil {
		if latchkey.ErrorCode(err) != latchkey.EUnauthenticated {
			s.log.ErrorContext(r.Context(), "forward-auth", "err", err)
			http.Error(w, "Sign-in is unavailable right now.", http.StatusServiceUnavailable)
			return
		}
		login := s.signInURL(orig)
		w.Header().Set("Location", login)
		if nginx {
			http.Error(w, "Sign in first: "+login, http.StatusUnauthorized)
		} else {
			http.Redirect(w, r, login, http.StatusFound)
		}
		return
	}
	switch rules.Decide(orig.Host, orig.Path, true, []string{string(u.Role)}) {
	case forwardauth.Deny:
		http.Error(w, "Your account may not open this address.", http.StatusForbidden)
		return
	case forwardauth.MFA:
		if !slices.Contains(sess.AMR, latchkey.AMRMFA) {
			http.Error(w, "This application needs two-factor authentication: add a sign-in method on the Security page, then sign in again.", http.StatusForbidden)
			return
		}
	}
	h := w.Header()
	h.Set("Remote-User", u.Username)
	h.Set("Remote-Email", u.Email)
	h.Set("Remote-Groups", string(u.Role))
	w.WriteHeader(http.StatusOK)
}

// originalURL reads the proxied request's URL from the proxy's headers, and whether it came
// the nginx way (X-Original-URL, which wants 401 rather than a redirect).
func originalURL(r *http.Request) (*url.URL, bool, bool) {
	if raw := r.Header.Get("X-Original-URL"); raw != "" {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return nil, true, false
		}
		return u, true, true
	}
	host := r.Header.Get("X-Forwarded-Host")
	if host == "" {
		return nil, false, false
	}
	proto := strings.ToLower(r.Header.Get("X-Forwarded-Proto"))
	if proto != "http" {
		proto = "https"
	}
	u, err := url.Parse(proto + "://" + host + cmpOr(r.Header.Get("X-Forwarded-Uri"), "/"))
	if err != nil || u.Host == "" {
		return nil, false, false
	}
	return u, false, true
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// signInURL is the sign-in page, with the way back to orig when returnURL accepts it.
func (s *Server) signInURL(orig *url.URL) string {
	login := s.publicURL.JoinPath("/login").String()
	if back := s.returnURL(orig.String()); back != "" {
		login += "?rd=" + url.QueryEscape(back)
	}
	return login
}
