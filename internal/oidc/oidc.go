// Package oidc is Latchkey's OpenID Connect provider, built on zitadel/oidc's op package: the
// library speaks the protocol (discovery, authorize, token, userinfo, JWKS, revocation,
// end_session); this package stores its state through latchkey.OIDCStore and decides, for an
// authorization request and a Latchkey session, whether the user may continue, must sign in,
// must confirm the password (prompt=login, max_age), lacks the second factor the client
// demands, or must allow a third-party client the scopes it asks for (consent).
//
// Rules kept here: PKCE S256 for public clients and never "plain"; exact redirect URIs; codes
// single use, a reused code revokes every token issued from it; refresh tokens rotate and a
// reused one revokes its grant; ID tokens carry auth_time, amr and acr; signing keys rotate
// and stay published until the tokens they signed have expired.
package oidc

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/cors"
	"github.com/zitadel/oidc/v3/pkg/op"

	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/audit"
)

// Store is what the provider persists and reads.
type Store interface {
	latchkey.OIDCStore
	latchkey.OIDCConsentStore
	// FindUserByID returns ENotFound when there is no such user.
	FindUserByID(ctx context.Context, id latchkey.UserID) (*latchkey.User, error)
	// FindSessionBySID returns ENotFound when there is no session with that public ID.
	FindSessionBySID(ctx context.Context, sid string) (*latchkey.Session, error)
}

// Options configure a Provider. Zero durations take the defaults shown.
type Options struct {
	Store Store
	// Issuer is the provider's URL, e.g. https://id.example.com: Latchkey's public URL.
	// Discovery is at Issuer/.well-known/openid-configuration and the protocol endpoints
	// under Issuer/oidc/ (Paths). An http:// issuer is accepted (for development and tests).
	Issuer string
	// Audit records grants, code exchanges, reuse of codes and refresh tokens, consents and
	// new clients; nil records nothing.
	Audit *audit.Recorder
	// CryptoKey encrypts authorization codes and access tokens (AES-256-GCM).
	CryptoKey [32]byte
	// LoginPath is where the authorize endpoint sends the browser, with ?id=<request ID>
	// (default "/oidc/login").
	LoginPath string
	// Algorithm signs ID tokens: "ES256" (default) or "RS256".
	Algorithm string
	// KeyRotation is the age at which a new signing key replaces the current one (default 30 days).
	KeyRotation     time.Duration
	RequestTTL      time.Duration // an authorization request (default 10 minutes)
	CodeTTL         time.Duration // an authorization code (default 1 minute)
	AccessTokenTTL  time.Duration // default 15 minutes
	IDTokenTTL      time.Duration // default 1 hour
	RefreshTokenTTL time.Duration // default 30 days
	Logger          *slog.Logger
	Now             func() time.Time
	// HTTPClient sends back-channel logout tokens (default: a client with a 5 s timeout).
	HTTPClient *http.Client
}

// codeReuseWindow is how long a used authorization request is kept, so that a second use of
// its code is recognised and its tokens revoked.
const codeReuseWindow = 24 * time.Hour

// Provider is the OpenID Connect provider. It is safe for concurrent use.
type Provider struct {
	opt Options
	op  *op.Provider
	st  *storage
	log *slog.Logger
	// logouts delivers back-channel logout tokens (logout.go).
	logouts logoutSender
	// rotating makes this node's requests that find the signing key stale or missing take
	// turns at rotating it (keys.go); signer is the active key, parsed, reused while it is
	// the active one.
	rotating sync.Mutex
	signer   atomic.Pointer[signingKey]
}

// New returns a Provider.
func New(opt Options) (*Provider, error) {
	if opt.Store == nil || opt.Issuer == "" {
		return nil, errors.New("oidc: Store and Issuer are required")
	}
	if opt.LoginPath == "" {
		opt.LoginPath = "/oidc/login"
	}
	if opt.Algorithm == "" {
		opt.Algorithm = AlgES256
	}
	if opt.Algorithm != AlgES256 && opt.Algorithm != AlgRS256 {
		return nil, errors.New("oidc: the signing algorithm must be ES256 or RS256")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opt.KeyRotation, 30*24*time.Hour)
	def(&opt.RequestTTL, 10*time.Minute)
	def(&opt.CodeTTL, time.Minute)
	def(&opt.AccessTokenTTL, 15*time.Minute)
	def(&opt.IDTokenTTL, time.Hour)
	def(&opt.RefreshTokenTTL, 30*24*time.Hour)
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.HTTPClient == nil {
		opt.HTTPClient = &http.Client{Timeout: logoutTimeout}
	}
	p := &Provider{opt: opt, log: opt.Logger, logouts: logoutSender{hc: opt.HTTPClient}}
	p.st = &storage{p: p, db: opt.Store}
	cfg := &op.Config{
		CryptoKey:             opt.CryptoKey,
		CodeMethodS256:        true,
		AuthMethodPost:        true,
		GrantTypeRefreshToken: true,
		SupportedScopes:       []string{zoidc.ScopeOpenID, zoidc.ScopeProfile, zoidc.ScopeEmail, zoidc.ScopeOfflineAccess},
		SupportedClaims:       []string{"sub", "aud", "exp", "iat", "iss", "auth_time", "nonce", "acr", "amr", "at_hash", "c_hash", "azp", "name", "preferred_username", "email", "email_verified", "sid"},
		// Back-channel logout with the session ID (logout.go); RP-initiated logout ends on
		// Latchkey's signed-out page when the client names no registered return address.
		BackChannelLogoutSupported:        true,
		BackChannelLogoutSessionSupported: true,
		DefaultLogoutRedirectURI:          signedOutURL(opt.Issuer),
	}
	var opts []op.Option
	if strings.HasPrefix(opt.Issuer, "http://") {
		opts = append(opts, op.WithAllowInsecure())
	}
	opts = append(opts,
		op.WithCustomAuthEndpoint(op.NewEndpoint(PathAuthorize)),
		op.WithCustomTokenEndpoint(op.NewEndpoint(PathToken)),
		op.WithCustomIntrospectionEndpoint(op.NewEndpoint(PathIntrospect)),
		op.WithCustomUserinfoEndpoint(op.NewEndpoint(PathUserinfo)),
		op.WithCustomRevocationEndpoint(op.NewEndpoint(PathRevoke)),
		op.WithCustomEndSessionEndpoint(op.NewEndpoint(PathEndSession)),
		op.WithCustomKeysEndpoint(op.NewEndpoint(PathKeys)),
		// The library always serves a device authorization endpoint; Latchkey offers no
		// device grant, and Handler answers this path with a 404 (guard.go).
		op.WithCustomDeviceAuthorizationEndpoint(op.NewEndpoint(pathDeviceAuthorization)),
		op.WithCORSOptions(&corsOptions),
	)
	o, err := op.NewProvider(cfg, p.st, op.StaticIssuer(strings.TrimSuffix(opt.Issuer, "/")), opts...)
	if err != nil {
		return nil, err
	}
	p.op = o
	return p, nil
}

// Paths of the protocol endpoints, relative to the issuer. Discovery is at
// /.well-known/openid-configuration.
const (
	PathDiscovery  = "/.well-known/openid-configuration"
	PathAuthorize  = "/oidc/authorize"
	PathToken      = "/oidc/token"
	PathIntrospect = "/oidc/introspect"
	PathUserinfo   = "/oidc/userinfo"
	PathRevoke     = "/oidc/revoke"
	PathEndSession = "/oidc/end_session"
	PathKeys       = "/oidc/keys"
)

// corsOptions: single-page apps call the token, userinfo, revocation and introspection
// endpoints, and read discovery, from their own origin with no cookie: any origin may read
// the answers, and no credentials (cookies) are ever allowed cross-origin.
var corsOptions = cors.Options{
	AllowedOrigins:   []string{"*"},
	AllowedMethods:   []string{http.MethodGet, http.MethodHead, http.MethodPost},
	AllowedHeaders:   []string{"Accept", "Accept-Language", "Authorization", "Content-Type"},
	AllowCredentials: false,
}

// Handler serves the protocol endpoints: mount it, unstripped, at PathDiscovery and under
// /oidc/. Whatever the library logs about a request goes to Options.Logger (see LogHandler).
// Discovery, the device authorization path, the token endpoint's JWT bearer grant and the
// introspection endpoint's refusals are Latchkey's own answers (guard.go). It never serves
// RP-initiated logout: PathEndSession is a 404 for GET and POST and a 405 for any other
// method, so the server routes GET and POST there to its own page (ParseEndSession, then
// EndSessions for the back-channel logouts) in front of it.
func (p *Provider) Handler() http.Handler {
	lib := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.op.ServeHTTP(w, r.WithContext(p.logContext(r.Context())))
	})
	return p.guard(lib)
}

func (p *Provider) now() time.Time { return p.opt.Now() }

// Step is what the browser must do next for an authorization request.
type Step int

// Steps.
const (
	// StepDone: the request is completed; Respond sends the code to the client.
	StepDone Step = iota
	// StepSignIn: the user must sign in (no session).
	StepSignIn
	// StepReauthenticate: the session is too old for the request (prompt=login or max_age):
	// the user confirms the password.
	StepReauthenticate
	// StepMFARequired: the client demands a second factor the session lacks: the user
	// steps up (the second step of sign-in), or adds a factor first.
	StepMFARequired
	// StepConsent: a third-party client asks for scopes the user has not allowed yet (or
	// prompt=consent): the user allows or denies (Consent).
	StepConsent
	// StepError: the client gets an error (Decision.Err) at its redirect URI.
	StepError
)

// Decision is the outcome of Authorize.
type Decision struct {
	Step Step
	// Err is the OAuth error for StepError (login_required, interaction_required, ...).
	Err error
	// LoginHint is the request's login_hint, for the sign-in page.
	LoginHint string
	// Client is the requesting client (for the consent and step-up pages).
	Client *latchkey.OIDCClient
	// Scopes are the scopes the request asks for (for the consent page).
	Scopes []string
	// MFASince, for StepMFARequired: the earliest second factor that counts (max_age); a
	// session whose factor is older steps up again (login.Service.StepUp's since). Zero:
	// any second factor counts.
	MFASince time.Time
	// StaleMFA, for StepMFARequired: the session has a second factor, older than MFASince.
	StaleMFA bool
}

// requiresMFA reports whether a client or the request's acr_values demand a second factor.
func requiresMFA(c *latchkey.OIDCClient, r *latchkey.OIDCAuthRequest) bool {
	return c.RequireMFA || slices.Contains(r.ACRValues, latchkey.ACRMFA) || slices.Contains(r.ACRValues, latchkey.ACRPAPEMultiFactor)
}

// mfaSince is the earliest second factor that counts for request r at now: with max_age,
// one within max_age or given after the request began (prompt=login sets max_age to 0);
// without, any (the zero time).
func mfaSince(r *latchkey.OIDCAuthRequest, now time.Time) time.Time {
	if r.MaxAge == nil {
		return time.Time{}
	}
	if t := now.Add(-*r.MaxAge); t.Before(r.CreatedAt) {
		return t
	}
	return r.CreatedAt
}

// passwordOnly is amr without the second factor's methods (otp, hwk, swk, mfa).
func passwordOnly(amr []string) []string {
	return slices.DeleteFunc(slices.Clone(amr), func(m string) bool {
		return m == latchkey.AMRMFA || m == latchkey.AMROTP || m == latchkey.AMRHardware || m == latchkey.AMRSoftwareKey
	})
}

// errConsentRequired is OIDC Core's consent_required, which the library does not define.
func errConsentRequired() *zoidc.Error {
	e := zoidc.ErrInteractionRequired().WithDescription("The user has not allowed this application yet.")
	e.ErrorType = "consent_required"
	return e
}

// answer is the user's answer on the consent page.
type answer int

const (
	noAnswer answer = iota
	allow
	deny
)

// Authorize decides what happens to the authorization request id for the signed-in session
// sess (nil when the browser has none) of user u, and completes the request when nothing
// stands in the way. An unknown or expired request gives ENotFound.
func (p *Provider) Authorize(ctx context.Context, id string, sess *latchkey.Session, u *latchkey.User) (*Decision, error) {
	return p.authorize(ctx, id, sess, u, noAnswer)
}

// Consent records the user's answer on the consent page for request id and decides like
// Authorize: with allowed, the consent is stored (the scopes asked for, added to those
// allowed before) and the request completed; otherwise the client gets access_denied. Every
// rule of Authorize is checked again: the answer counts only for a session that may
// complete the request.
func (p *Provider) Consent(ctx context.Context, id string, sess *latchkey.Session, u *latchkey.User, allowed bool) (*Decision, error) {
	a := deny
	if allowed {
		a = allow
	}
	return p.authorize(ctx, id, sess, u, a)
}

func (p *Provider) authorize(ctx context.Context, id string, sess *latchkey.Session, u *latchkey.User, a answer) (*Decision, error) {
	r, err := p.st.request(ctx, id)
	if err != nil {
		return nil, err
	}
	if r.Done() {
		return &Decision{Step: StepDone}, nil
	}
	c, err := p.opt.Store.FindOIDCClientByID(ctx, r.ClientID)
	if err != nil {
		return nil, err
	}
	none := slices.Contains(r.Prompt, zoidc.PromptNone)
	d := &Decision{LoginHint: r.LoginHint, Client: c, Scopes: r.Scopes}
	refuse := func(e *zoidc.Error) (*Decision, error) {
		p.record(ctx, u, latchkey.ActionOIDCAuthorize, latchkey.OutcomeDenied, "client: "+c.ID+"; "+string(e.ErrorType))
		return &Decision{Step: StepError, Err: e, Client: c}, nil
	}
	switch {
	case sess == nil || u == nil:
		if none {
			return refuse(zoidc.ErrLoginRequired())
		}
		d.Step = StepSignIn
		return d, nil
	case none && r.HintUserID != 0 && r.HintUserID != u.ID:
		// OIDC Core §3.1.2.2: the user the id_token_hint names is not the one signed in.
		return refuse(zoidc.ErrLoginRequired().WithDescription("The signed-in user is not the one the id_token_hint names."))
	case r.MaxAge != nil && p.now().Sub(sess.PasswordAt) > *r.MaxAge && sess.PasswordAt.Before(r.CreatedAt):
		// Fresh enough: a password within max_age, or one given after the request began
		// (prompt=login sets max_age to 0).
		if none {
			return refuse(zoidc.ErrLoginRequired().WithDescription("The sign-in is older than max_age."))
		}
		d.Step = StepReauthenticate
		return d, nil
	}
	// A second factor counts for the request when it is as fresh as max_age asks of the
	// sign-in: a password given again for max_age (or prompt=login) renews the password,
	// never an old second factor.
	since := mfaSince(r, p.now())
	hasMFA := slices.Contains(sess.AMR, latchkey.AMRMFA)
	freshMFA := hasMFA && (since.IsZero() || sess.MFAAt != nil && !sess.MFAAt.Before(since))
	if requiresMFA(c, r) && !freshMFA {
		if none {
			if hasMFA {
				return refuse(zoidc.ErrLoginRequired().WithDescription("The two-step verification is older than max_age."))
			}
			return refuse(zoidc.ErrInteractionRequired().WithDescription("The client requires multi-factor authentication."))
		}
		d.Step, d.MFASince, d.StaleMFA = StepMFARequired, since, hasMFA
		return d, nil
	}
	switch a {
	case deny:
		return refuse(zoidc.ErrAccessDenied().WithDescription("The user denied the request."))
	case allow:
		if !c.FirstParty {
			if err := p.saveConsent(ctx, u, c, r.Scopes); err != nil {
				return nil, err
			}
		}
	default:
		if !c.FirstParty {
			ok, err := p.consented(ctx, u.ID, c.ID, r.Scopes)
			if err != nil {
				return nil, err
			}
			if !ok || slices.Contains(r.Prompt, zoidc.PromptConsent) {
				if none {
					return refuse(errConsentRequired())
				}
				d.Step = StepConsent
				return d, nil
			}
		}
	}
	acr, amr, authTime := latchkey.ACRPassword, sess.AMR, sess.PasswordAt
	switch {
	case freshMFA:
		acr = latchkey.ACRMFA
		if sess.MFAAt != nil && sess.MFAAt.After(authTime) {
			authTime = *sess.MFAAt
		}
	case hasMFA:
		// The second factor is older than max_age: the tokens claim only the password.
		amr = passwordOnly(amr)
	}
	err = p.opt.Store.CompleteOIDCAuthRequest(ctx, id, u.ID, sess.SID, amr, acr, authTime)
	switch latchkey.ErrorCode(err) {
	case "":
		p.record(ctx, u, latchkey.ActionOIDCAuthorize, latchkey.OutcomeSuccess, "client: "+c.ID+"; acr: "+acr)
	case latchkey.EConflict:
	default:
		return nil, err
	}
	return &Decision{Step: StepDone, Client: c}, nil
}

// Respond answers the client for request id: with the code when the request is completed,
// else with err (an OAuth error such as zoidc.ErrLoginRequired()) at its redirect URI.
func (p *Provider) Respond(w http.ResponseWriter, r *http.Request, id string, err error) {
	ctx := op.ContextWithIssuer(p.logContext(r.Context()), strings.TrimSuffix(p.opt.Issuer, "/"))
	r = r.WithContext(ctx)
	w = p.withIss(w)
	req, lerr := p.st.AuthRequestByID(ctx, id)
	if lerr != nil {
		op.AuthRequestError(w, r, nil, zoidc.ErrInvalidRequest().WithDescription("The authorization request is unknown or expired."), p.op)
		return
	}
	if err != nil {
		op.AuthRequestError(w, r, req, err, p.op)
		return
	}
	if !req.Done() {
		op.AuthRequestError(w, r, req, zoidc.ErrInteractionRequired(), p.op)
		return
	}
	op.AuthResponse(req, p.op, w, r)
}

// NewClient is what registering a client needs.
type NewClient struct {
	ID                     string
	Name                   string
	RedirectURIs           []string
	PostLogoutRedirectURIs []string
	Public                 bool
	FirstParty             bool
	RequireMFA             bool
	// BackchannelLogoutURI receives logout tokens (https://, or http:// on a loopback host).
	BackchannelLogoutURI string
	// CreatedBy is the administrator who registers it (the audit entry's user); nil from
	// the command line.
	CreatedBy *latchkey.User
}

// CreateClient registers a client and returns it with its secret (shown once; "" for a
// public client). Redirect URIs must be absolute https:// URLs, or http:// on a loopback
// host, without a fragment.
func (p *Provider) CreateClient(ctx context.Context, nc NewClient) (*latchkey.OIDCClient, string, error) {
	if !validClientID(nc.ID) {
		return nil, "", latchkey.Errorf(latchkey.EInvalid, "A client ID is required: up to 64 letters, digits, '.', '_', '-' or '~' (it appears in URLs).")
	}
	if nc.Name == "" {
		nc.Name = nc.ID
	}
	name, ok := latchkey.CleanName(nc.Name, 100)
	if !ok {
		return nil, "", latchkey.Errorf(latchkey.EInvalid, "The name must be 1 to 100 printable characters: it is shown on the consent page.")
	}
	nc.Name = name
	if len(nc.RedirectURIs) == 0 {
		return nil, "", latchkey.Errorf(latchkey.EInvalid, "At least one redirect URI is required.")
	}
	var bcl []string
	if nc.BackchannelLogoutURI != "" {
		bcl = []string{nc.BackchannelLogoutURI}
	}
	for _, list := range [][]string{nc.RedirectURIs, nc.PostLogoutRedirectURIs, bcl} {
		for _, u := range list {
			if err := checkRedirectURI(u); err != nil {
				return nil, "", err
			}
		}
	}
	c := &latchkey.OIDCClient{ID: nc.ID, Name: nc.Name, Public: nc.Public, RedirectURIs: nc.RedirectURIs, PostLogoutRedirectURIs: nc.PostLogoutRedirectURIs, FirstParty: nc.FirstParty, RequireMFA: nc.RequireMFA, BackchannelLogoutURI: nc.BackchannelLogoutURI}
	var secret string
	if !nc.Public {
		secret = randomToken()
		c.SecretHash = hashSecret(secret)
	}
	if err := p.opt.Store.CreateOIDCClient(ctx, c); err != nil {
		return nil, "", err
	}
	e := latchkey.AuditEvent{Action: latchkey.ActionOIDCClientCreated, Outcome: latchkey.OutcomeSuccess,
		Detail: fmt.Sprintf("client: %s; public: %t; first_party: %t; require_mfa: %t", c.ID, c.Public, c.FirstParty, c.RequireMFA)}
	if u := nc.CreatedBy; u != nil {
		e.UserID, e.Username, e.ActorID, e.Actor = u.ID, u.Username, u.ID, u.Username
	}
	p.recordEvent(ctx, e)
	return c, secret, nil
}

// signedOutURL is Latchkey's signed-out page on the issuer's host.
func signedOutURL(issuer string) string {
	u, err := url.Parse(issuer)
	if err != nil {
		return "/login?done=signed-out"
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: "/login", RawQuery: "done=signed-out"}).String()
}

func checkRedirectURI(raw string) error {
	u, err := url.Parse(raw)
	if err == nil && strings.Contains(u.Host, "*") {
		return latchkey.Errorf(latchkey.EInvalid, "The redirect URI %q has a wildcard: redirect URIs match exactly, so register each one.", raw)
	}
	bad := err != nil || u.Host == "" || u.Fragment != "" || strings.ContainsAny(raw, " \t\r\n")
	if !bad && u.Scheme == "http" {
		h := u.Hostname()
		bad = h != "localhost" && h != "127.0.0.1" && h != "::1"
	} else if !bad {
		bad = u.Scheme != "https"
	}
	if bad {
		return latchkey.Errorf(latchkey.EInvalid, "The redirect URI %q is not valid: use https://, or http:// on localhost, without a fragment.", raw)
	}
	return nil
}

// randomToken returns 256 random bits, base64url.
func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// hashSecret hashes a high-entropy secret (client secret, code, refresh token). A fast hash
// is enough: the secrets are 256 random bits, not passwords.
func hashSecret(s string) string {
	h := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(h[:])
}

// validClientID: 1–64 characters of RFC 3986's unreserved set, so that an ID can stand in a
// URL path (the Security page's "Revoke access", the admin console) without escaping.
func validClientID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-~", r)) {
			return false
		}
	}
	return true
}
