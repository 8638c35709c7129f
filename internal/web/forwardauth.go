package web

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/forwardauth"
)

// forwardAuthGate is the gate for reverse proxies: with nginx set (GET /auth/nginx, nginx's
// auth_request) it reads the original request from X-Original-URL only, and answers 401
// towards the sign-in page; otherwise (GET /auth/forward, Traefik forwardAuth, Caddy
// forward_auth) from X-Forwarded-Proto/-Host/-Uri only, and answers 302. Each endpoint reads
// only the headers its proxy sets: a proxy passes the client's other headers through, so a
// header it does not set is the client's to choose (one that named a bypass host opened any
// other). The address is judged in canonical form (forwardauth.Check), and refused with 400
// when a proxy and its application could read it otherwise. It decides with the configured
// rules and answers 200 with the identity headers, or 403. It hashes nothing and, on the
// common path, writes nothing: a session read and a user read (the activity time is written
// at most once a minute).
func (s *Server) forwardAuthGate(nginx bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { s.handleForwardAuth(w, r, nginx) }
}

func (s *Server) handleForwardAuth(w http.ResponseWriter, r *http.Request, nginx bool) {
	w.Header().Set("Cache-Control", "no-store")
	orig, ok := originalURL(r, nginx)
	if !ok {
		if nginx {
			http.Error(w, "forward-auth (nginx) needs the original request in X-Original-URL", http.StatusBadRequest)
		} else {
			http.Error(w, "forward-auth needs the original request in X-Forwarded-Host and X-Forwarded-Uri (nginx: use /auth/nginx with X-Original-URL)", http.StatusBadRequest)
		}
		return
	}
	target, ok := forwardauth.Check(orig)
	if !ok {
		http.Error(w, "This address is not one the gate can judge: no user information, dot segments (. or ..), // or backslashes.", http.StatusBadRequest)
		return
	}
	rules := s.forwardAuth
	switch rules.Decide(target.Host, target.Path, false, nil) {
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
	switch rules.Decide(target.Host, target.Path, true, []string{string(u.Role)}) {
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

// originalURL reads the proxied request's URL from the headers of the proxy the endpoint
// serves: X-Original-URL for nginx, X-Forwarded-Proto/-Host/-Uri for the others.
func originalURL(r *http.Request, nginx bool) (*url.URL, bool) {
	if nginx {
		raw := r.Header.Get("X-Original-URL")
		u, err := url.Parse(raw)
		if raw == "" || err != nil || u.Host == "" {
			return nil, false
		}
		return u, true
	}
	host := r.Header.Get("X-Forwarded-Host")
	if host == "" {
		return nil, false
	}
	proto := strings.ToLower(r.Header.Get("X-Forwarded-Proto"))
	if proto != "http" {
		proto = "https"
	}
	u, err := url.Parse(proto + "://" + host + cmpOr(r.Header.Get("X-Forwarded-Uri"), "/"))
	if err != nil || u.Host == "" {
		return nil, false
	}
	return u, true
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
