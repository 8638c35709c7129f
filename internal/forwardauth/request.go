package forwardauth

import (
	"net/url"
	"strings"
)

// Target is the address of a proxied request as the rules judge it: a host name in canonical
// form and a path that names one resource however the client spelled it.
type Target struct {
	Host string // lower case, no port, no trailing dot
	Path string // decoded, without dot segments, empty segments or backslashes
}

// Check reads the proxied request's URL u and returns what the rules judge, or false when the
// address is one a proxy and its application may read differently from the rules:
//   - user information ("https://secret.example.com@status.example.com/") or a host that is
//     not a plain name or address;
//   - a path with dot segments ("/public/../admin", also as "%2e%2e" or "..;" for servers
//     that cut path parameters), empty segments ("//admin", "/./admin") or backslashes:
//     nginx, with proxy_pass and no URI, hands the application the client's raw path, which
//     the application resolves after the gate judged the spelling.
//
// Browsers never send such addresses (they resolve dot segments themselves), so refusing them
// costs no one; deciding on a resolved path instead would still leave a mismatch with an
// application that resolves differently. The host's case, a port and a trailing dot
// ("secret.example.com." is secret.example.com, RFC 1034 §3.1) are made canonical.
func Check(u *url.URL) (Target, bool) {
	if u == nil || u.User != nil || u.Opaque != "" {
		return Target{}, false
	}
	host, ok := CanonicalHost(u.Host)
	if !ok {
		return Target{}, false
	}
	p := u.Path
	if p == "" {
		p = "/"
	}
	if p[0] != '/' || strings.ContainsRune(p, '\\') {
		return Target{}, false
	}
	rest := p[1:]
	for rest != "" {
		seg, tail, more := strings.Cut(rest, "/")
		if seg == "" && more {
			return Target{}, false // "//"
		}
		if param, _, _ := strings.Cut(seg, ";"); param == "." || param == ".." {
			return Target{}, false
		}
		rest = tail
	}
	return Target{Host: host, Path: p}, true
}

// CanonicalHost is h (a URL's host, perhaps with a port) in the form the rules compare: lower
// case, without the port and a trailing dot; false when it is not a host name (letters,
// digits, '-', '.', '_') or a bracketed IPv6 address.
func CanonicalHost(h string) (string, bool) {
	h = hostOnly(h)
	if strings.HasPrefix(h, "[") {
		if !strings.HasSuffix(h, "]") || len(h) < 3 || strings.ContainsFunc(h[1:len(h)-1], func(r rune) bool {
			return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F' || r == ':' || r == '.')
		}) {
			return "", false
		}
		return strings.ToLower(h), true
	}
	h = strings.TrimSuffix(h, ".")
	if h == "" || strings.HasPrefix(h, ".") || strings.Contains(h, "..") {
		return "", false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return "", false
		}
	}
	return strings.ToLower(h), true
}
