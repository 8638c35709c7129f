package web

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/login"
)

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latchkey_http_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "latchkey_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// statusWriter remembers the status code and size of a response.
type statusWriter struct {
	http.ResponseWriter
	code  int
	bytes int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += n
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// observe writes one access line per request and records metrics. The query string is never
// logged: one-time links carry tokens there.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		d := s.now().Sub(start)
		if sw.code == 0 {
			sw.code = http.StatusOK
		}
		route := r.Pattern
		if route == "" || route == "/" || route == apiPrefix {
			route = "unmatched" // the catch-alls: no route took the path (one label, whatever the path)
		}
		s.metrics.requests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
		s.metrics.duration.WithLabelValues(route).Observe(d.Seconds())
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "http request",
			slog.String("method", r.Method),
			slog.String("path", redactPath(r.URL.Path)),
			slog.Int("status", sw.code),
			slog.Int("bytes", sw.bytes),
			slog.Duration("duration", d),
			slog.String("ip", clientIP(r)),
			slog.String("user_agent", r.UserAgent()),
		)
	})
}

func (s *Server) recover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic serving request", "path", redactPath(r.URL.Path), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				http.Error(w, "internal error", http.StatusInternalServerError)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// csp is the content security policy of every answer. form-action 'self' also governs the
// redirects that follow a form's submission, so a sign-in that ends at another site (an
// OIDC client, a forward-auth application) finishes through a small page that continues by
// itself (oidcRespond, /auth/return).
const csp = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// securityHeaders sets a strict content security policy (no inline scripts, no external
// resources) and keeps pages out of frames and caches.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		if !strings.HasPrefix(r.URL.Path, "/static/") {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// crossOrigin refuses cross-site state-changing requests (Sec-Fetch-Site / Origin checks of
// net/http's CrossOriginProtection). GET, HEAD and OPTIONS never change state here.
func crossOrigin(next http.Handler) http.Handler {
	p := http.NewCrossOriginProtection()
	for _, pattern := range oidcCrossOriginBypass {
		p.AddInsecureBypassPattern(pattern)
	}
	p.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := latchkey.Errorf(latchkey.EForbidden, "This request came from another site and was refused.")
		if isAPI(r) {
			writeJSONError(w, err)
			return
		}
		http.Error(w, latchkey.ErrorMessage(err), http.StatusForbidden)
	}))
	return p.Handler(next)
}

// limitBody bounds every request body.
func (s *Server) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > s.maxBody {
			err := latchkey.Errorf(latchkey.ETooLarge, "The request body is too large (at most %d bytes).", s.maxBody)
			if isAPI(r) {
				writeJSONError(w, err)
			} else {
				http.Error(w, latchkey.ErrorMessage(err), http.StatusRequestEntityTooLarge)
			}
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.maxBody)
		next.ServeHTTP(w, r)
	})
}

func isAPI(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/api/") }

// clientIP is the client's address: the TCP peer's, or, behind a trusted proxy, the one the
// proxy reports (realIP has already put it in RemoteAddr).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func client(r *http.Request) login.Client {
	return login.Client{IP: clientIP(r), UserAgent: userAgent(r)}
}

// maxUserAgent bounds the User-Agent kept in sessions, challenges and the audit trail.
const maxUserAgent = 512

// userAgent is the request's User-Agent as Latchkey keeps it: at most maxUserAgent bytes of
// valid UTF-8 without control characters (each replaced by U+FFFD). Anyone can send any
// bytes there, and PostgreSQL refuses NUL and invalid UTF-8 in text: a failed sign-in's
// audit entry would be lost. A clean header (every browser's) is returned as it is.
func userAgent(r *http.Request) string {
	ua := r.UserAgent()
	clean := len(ua) <= maxUserAgent
	for i := 0; clean && i < len(ua); i++ {
		clean = ua[i] >= 0x20 && ua[i] < 0x7f
	}
	if clean {
		return ua
	}
	var b strings.Builder
	for _, c := range strings.ToValidUTF8(ua, "\uFFFD") {
		if c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) {
			c = '\uFFFD'
		}
		if b.Len()+utf8.RuneLen(c) > maxUserAgent {
			break
		}
		b.WriteRune(c)
	}
	return b.String()
}

// cookieConfig names and flags the session cookie: under TLS it is Secure with the __Host-
// prefix (bound to this exact host, path /). With a cookie domain (forward-auth across
// subdomains) it carries Domain= and, since __Host- forbids that, the __Secure- prefix.
type cookieConfig struct {
	name   string
	secure bool
	domain string
}

func newCookieConfig(public *url.URL, domain string) cookieConfig {
	switch {
	case public.Scheme == "https" && domain != "":
		return cookieConfig{name: "__Secure-latchkey_session", secure: true, domain: domain}
	case public.Scheme == "https":
		return cookieConfig{name: "__Host-latchkey_session", secure: true}
	}
	return cookieConfig{name: "latchkey_session", domain: domain}
}

func (s *Server) token(r *http.Request) string {
	c, err := r.Cookie(s.cookie.name)
	if err != nil {
		return ""
	}
	return c.Value
}

func (s *Server) setSession(w http.ResponseWriter, res *login.Result) {
	http.SetCookie(w, &http.Cookie{
		Name: s.cookie.name, Value: res.Token, Path: "/", Domain: s.cookie.domain, HttpOnly: true, Secure: s.cookie.secure,
		SameSite: http.SameSiteLaxMode, Expires: res.Session.ExpiresAt,
	})
}

func (s *Server) clearSession(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name: s.cookie.name, Value: "", Path: "/", Domain: s.cookie.domain, HttpOnly: true, Secure: s.cookie.secure,
		SameSite: http.SameSiteLaxMode, MaxAge: -1, Expires: time.Unix(0, 0),
	})
}

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}

func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.db.Ping(r.Context()); err != nil {
		s.log.ErrorContext(r.Context(), "readiness: database unreachable", "err", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "database unreachable")
		return
	}
	fmt.Fprintln(w, "ready")
}
