package web

import (
	"net"
	"net/http"
	"net/url"
	"strings"
)

// After sign-in the browser may go back to an application behind forward-auth, which lives on
// another host. The absolute address travels through the sign-in pages as a local "next" path,
// /auth/return?to=URL, so every step keeps following only local paths (safeNext); the address
// itself is checked twice, when the sign-in page receives it and when /auth/return follows it.

// returnURL returns raw, normalised, if it is an absolute address the browser may be sent to
// after sign-in: https (http only on a loopback host), no user info, and a host that a
// forward-auth rule names (exactly or through *.domain) or that the cookie domain covers.
// Anything else returns "".
func (s *Server) returnURL(raw string) string {
	if raw == "" || len(raw) > 4096 || strings.ContainsAny(raw, "\\ \t\r\n") {
		return ""
	}
	for _, c := range raw {
		if c < 0x20 || c == 0x7f {
			return ""
		}
	}
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || u.User != nil || u.Host == "" || !strings.HasPrefix(raw, u.Scheme+"://") {
		return ""
	}
	host := strings.ToLower(u.Hostname())
	if host == "" || strings.HasSuffix(host, ".") {
		return ""
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !loopbackHost(host) {
			return ""
		}
	default:
		return ""
	}
	if !s.forwardAuth.Covers(host) && !s.cookieDomainCovers(host) {
		return ""
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}

func (s *Server) cookieDomainCovers(host string) bool {
	d := s.cookie.domain
	return d != "" && (host == d || strings.HasSuffix(host, "."+d))
}

// loopbackHost reports whether host is this machine: localhost, *.localhost (RFC 6761) or a
// loopback address.
func loopbackHost(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// loginNext is where the sign-in page continues to: a local path from "next", or an
// application's address from "next" or "rd" (Authelia's name, which proxies send) wrapped as
// /auth/return?to=…; "" for anything else.
func (s *Server) loginNext(q url.Values) string {
	for _, raw := range []string{q.Get("next"), q.Get("rd")} {
		if n := safeNext(raw); n != "" {
			return n
		}
		if abs := s.returnURL(raw); abs != "" {
			return returnPath(abs)
		}
	}
	return ""
}

func returnPath(abs string) string { return "/auth/return?to=" + url.QueryEscape(abs) }

// pageReturn sends the browser back to an application after sign-in, to the address in "to"
// if returnURL accepts it, else to the home page. It answers with a page that refreshes to the
// application rather than a redirect: the sign-in form's POST redirects here, and the pages'
// Content-Security-Policy (form-action 'self') makes browsers refuse a form's redirect chain
// that leaves this origin.
func (s *Server) pageReturn(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Cache-Control", "no-store")
	to := s.returnURL(r.URL.Query().Get("to"))
	if to == "" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return nil
	}
	u, _ := url.Parse(to)
	w.Header().Set("Refresh", "0; url="+to)
	return s.render(w, http.StatusOK, "return", &view{Title: "Signed in", Data: returnView{URL: to, Host: u.Host}})
}

type returnView struct{ URL, Host string }
