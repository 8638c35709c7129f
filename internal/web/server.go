// Package web is Latchkey's HTTP layer: the JSON API under /api/v1, the server-rendered pages,
// health and metrics. It translates requests into calls on the services and their results
// into responses; it holds no security rule of its own beyond transport concerns (cookies,
// cross-origin protection, body limits, headers).
package web

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/forwardauth"
	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/oidc"
	"github.com/latchkey/latchkey/internal/push"
	"github.com/latchkey/latchkey/internal/support"
)

// Pinger reports whether the database is reachable.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Options are the dependencies of the HTTP handler.
type Options struct {
	Login *login.Service
	// Push serves the Latch devices and push approval; required.
	Push      *push.Service
	DB        Pinger
	Logger    *slog.Logger
	PublicURL *url.URL
	// Registry receives the HTTP metrics and is served at /metrics. Nil creates a new one.
	Registry *prometheus.Registry
	// MaxBody bounds request bodies (default 64 KiB).
	MaxBody int64
	Now     func() time.Time
	// OIDC is the OpenID Connect provider, served under /oidc; nil leaves it out.
	OIDC *oidc.Provider
	// ForwardAuth are the rules of the forward-auth gate (GET /auth/forward); nil means every
	// address needs MFA.
	ForwardAuth *forwardauth.Rules
	// TrustedProxies are the reverse proxies whose X-Forwarded-For is believed (realip.go);
	// empty: the TCP peer is the client.
	TrustedProxies []netip.Prefix
	// Admin is the admin console (admin.go); without a Store it is not mounted.
	Admin AdminOptions
	// Support is the support desk (/support, /admin/tickets); nil leaves it out.
	Support *support.Service
	// CookieDomain, when set, gives the session cookie Domain= so that it reaches the
	// applications on sibling hosts behind forward-auth; "" keeps it host-only.
	CookieDomain string
	// StreamPing is how often a device's event stream sends a comment line while it has no
	// event (default 15 s): it keeps proxies from closing an idle stream, and a stream whose
	// client went away ends at the first ping after (docs/device-protocol.md).
	StreamPing time.Duration
}

// Server is the HTTP handler of Latchkey.
type Server struct {
	login       *login.Service
	push        *push.Service
	db          Pinger
	log         *slog.Logger
	publicURL   *url.URL
	cookie      cookieConfig
	maxBody     int64
	now         func() time.Time
	reg         *prometheus.Registry
	metrics     *metrics
	pages       *pages
	handler     http.Handler
	oidc        *oidc.Provider
	forwardAuth *forwardauth.Rules
	admin       AdminOptions
	support     *support.Service
	// stop is closed by Shutdown: streams and long polls return.
	stop     chan struct{}
	stopOnce sync.Once
	// busyLogged is when (Unix seconds) a refused device wait was last logged.
	busyLogged atomic.Int64
	// pingEvery is Options.StreamPing.
	pingEvery time.Duration
}

// Shutdown ends the device event streams and long polls in flight, so that a graceful
// shutdown of the HTTP server does not wait for them.
func (s *Server) Shutdown() { s.stopOnce.Do(func() { close(s.stop) }) }

// New returns the handler with every route registered.
func New(opt Options) *Server {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Registry == nil {
		opt.Registry = prometheus.NewRegistry()
	}
	if opt.MaxBody <= 0 {
		opt.MaxBody = 64 << 10
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.PublicURL == nil {
		opt.PublicURL = &url.URL{Scheme: "http", Host: "127.0.0.1:8080"}
	}
	if opt.StreamPing <= 0 {
		opt.StreamPing = pingEvery
	}
	if opt.ForwardAuth == nil {
		opt.ForwardAuth, _ = forwardauth.Compile(nil, forwardauth.MFA)
	}
	s := &Server{
		login:     opt.Login,
		push:      opt.Push,
		db:        opt.DB,
		log:       opt.Logger,
		publicURL: opt.PublicURL,
		cookie:    newCookieConfig(opt.PublicURL, opt.CookieDomain),
		maxBody:   opt.MaxBody,
		now:       opt.Now,
		reg:       opt.Registry,
		metrics:   newMetrics(opt.Registry),
		pages:     loadPages(),
		stop:      make(chan struct{}),
		oidc:      opt.OIDC,

		forwardAuth: opt.ForwardAuth,
		admin:       opt.Admin,
		support:     opt.Support,
		pingEvery:   opt.StreamPing,
	}
	if opt.OIDC != nil && opt.Login != nil {
		// Sessions that account rules end (password change, resets, a disabled user, an
		// admin's sign-out) end for the applications too, with every token of the account
		// but those of the session the rule kept (the password changer's).
		opt.Login.OnSessionsEnded(func(ctx context.Context, userID latchkey.UserID, kept string, ended []*latchkey.Session) {
			opt.OIDC.EndAllSessions(ctx, userID, kept, ended...)
		})
	}
	if opt.Push != nil {
		hub := opt.Push.Hub()
		opt.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "latchkey_device_connections", Help: "Device event streams and long polls open on this node.",
		}, func() float64 { return float64(hub.Waits()) }))
	}
	s.handler = realIP(opt.TrustedProxies, s.routes())
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }
