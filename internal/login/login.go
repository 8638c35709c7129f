// Package login owns the sign-in flow and the account-security rules: the password step,
// second factors (TOTP, recovery codes), throttling, sessions and their rotation, recent
// re-authentication, TOTP enrolment and removal, password changes and first-admin setup.
//
// It is the one place where Latchkey decides who is signed in. The HTTP layer translates
// requests into calls on a *Service; storage only persists.
package login

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/go-webauthn/webauthn/webauthn"
	"golang.org/x/text/unicode/norm"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/audit"
	"github.com/latchkey/latchkey/internal/mail"
	"github.com/latchkey/latchkey/internal/password"
	"github.com/latchkey/latchkey/internal/ratelimit"
)

// MFA policies.
const (
	MFAOptional = "optional"
	MFARequired = "required"
)

// Store is the storage the sign-in service needs.
type Store interface {
	latchkey.UserStore
	latchkey.DeviceStore
	latchkey.WebAuthnStore
	latchkey.TOTPStore
	latchkey.RecoveryCodeStore
	latchkey.SessionStore
	latchkey.ThrottleStore
	latchkey.SecondFactorStore // the end of a sign-in in one transaction
	latchkey.SettingStore
	latchkey.InvitationStore // admin console: activation links (invite.go)
	latchkey.AdminStore      // admin console: last-admin rule, sessions (admin.go)
}

// Options configures a Service. Zero durations take the defaults shown.
type Options struct {
	Store  Store
	Hasher *password.Hasher
	Policy password.Policy
	Mailer mail.Sender
	Audit  *audit.Recorder
	Logger *slog.Logger
	Now    func() time.Time // default time.Now
	Rand   io.Reader        // default crypto/rand.Reader
	// SessionKey keys the hashes of session tokens and recovery codes, so a database dump
	// alone yields neither. At least 32 bytes.
	SessionKey []byte
	// MFA is MFAOptional or MFARequired.
	MFA string
	// Issuer names the service in authenticator apps ("Latchkey").
	Issuer string
	// PublicURL is where users reach the server; used in emails.
	PublicURL string
	// FlowTTL bounds an unfinished sign-in (default 10 minutes).
	FlowTTL time.Duration
	// MaxAge bounds a signed-in session (default 12 hours).
	MaxAge time.Duration
	// IdleTimeout ends a session that saw no request for this long (default 1 hour). A
	// session with a second-factor proof that still stands is not forgotten: the next
	// sign-in in that browser asks only the password.
	IdleTimeout time.Duration
	// WorkdayEnd is the local time at which a second-factor proof ends (see ParseWorkday);
	// the zero Workday: the proof stands for MaxAge.
	WorkdayEnd Workday
	// TimeZone is the zone of users who have not chosen one (default UTC).
	TimeZone *time.Location
	// ReauthWindow is how recent the last password check must be for sensitive actions
	// (default 10 minutes).
	ReauthWindow time.Duration
	Throttle     ThrottleOptions // default DefaultThrottle
	// Pusher sends push sign-in requests to Latch devices (internal/push); nil disables push.
	Pusher Pusher
	// WebAuthn configures security keys; they are available when PublicURL is set.
	WebAuthn WebAuthnOptions
	// Methods lists the second factors users may enrol (MethodTOTP, MethodPush,
	// MethodWebAuthn); empty means all of them.
	Methods []string
}

// Service is the sign-in and account-security service. It is safe for concurrent use.
type Service struct {
	opt Options
	ip  *ratelimit.Limiter
	log *slog.Logger
	wa  *webauthn.WebAuthn // nil without a public URL
	// seal seals passkey ceremonies into their IDs (ceremony.go), made once by sealOnce.
	seal     cipher.AEAD
	sealOnce sync.Once
	// waOff is why wa is nil with a public URL (WebAuthnOff).
	waOff error
	// ended is told about sessions that account rules end (ended.go).
	ended endedHook
	// macs holds HMAC-SHA256 states keyed with the session key (keyedHash, token.go).
	macs sync.Pool
}

// New returns a Service. It panics on a missing dependency, which is a wiring bug.
func New(opt Options) *Service {
	if opt.Store == nil || opt.Hasher == nil || opt.Mailer == nil || opt.Audit == nil {
		panic("login: Store, Hasher, Mailer and Audit are required")
	}
	if len(opt.SessionKey) < 32 {
		panic("login: SessionKey must have at least 32 bytes")
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Rand == nil {
		opt.Rand = rand.Reader
	}
	if opt.Policy == (password.Policy{}) {
		opt.Policy = password.DefaultPolicy
	}
	if opt.MFA == "" {
		opt.MFA = MFAOptional
	}
	if opt.Issuer == "" {
		opt.Issuer = "Latchkey"
	}
	opt.FlowTTL = cmpOr(opt.FlowTTL, 10*time.Minute)
	opt.MaxAge = cmpOr(opt.MaxAge, 12*time.Hour)
	opt.IdleTimeout = cmpOr(opt.IdleTimeout, time.Hour)
	opt.ReauthWindow = cmpOr(opt.ReauthWindow, 10*time.Minute)
	if opt.TimeZone == nil {
		opt.TimeZone = time.UTC
	}
	if opt.Throttle == (ThrottleOptions{}) {
		opt.Throttle = DefaultThrottle
	}
	svc := &Service{opt: opt, ip: ratelimit.New(opt.Throttle.IPBurst, opt.Throttle.IPRefill), log: opt.Logger}
	key := bytes.Clone(opt.SessionKey)
	svc.macs.New = func() any { return &macState{mac: hmac.New(sha256.New, key)} }
	if opt.PublicURL != "" {
		// WebAuthn needs a domain name: with an IP address as the public URL's host (the
		// default local start on 127.0.0.1) security keys are off, and WebAuthnOff says why
		// (the server logs it at its start; the command-line tools, which serve no page, do
		// not).
		svc.wa, svc.waOff = newWebAuthn(opt.WebAuthn, opt.PublicURL, opt.Issuer)
	}
	return svc
}

// WebAuthnOff returns why security keys are off although the service has a public URL
// (the relying party ID is not a domain name, as with the default start on 127.0.0.1), or
// nil.
func (s *Service) WebAuthnOff() error { return s.waOff }

func cmpOr(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Client describes where a request comes from, for throttling, audit and notifications.
type Client struct {
	IP        string
	UserAgent string
}

// Result is the outcome of a sign-in step.
type Result struct {
	// Token is the new session token for the cookie; the previous one no longer works.
	Token   string
	Session *latchkey.Session
	User    *latchkey.User
	// State is the session's state after the step.
	State latchkey.SessionState
	// Methods lists the second factors (or, for StateEnroll, the methods to enrol) available.
	Methods []string
	// RecoveryCodes, when set, are new recovery codes to show the user once.
	RecoveryCodes []string
}

// Common messages. Every authentication failure of a kind reads the same.
const (
	msgBadCredentials = "The username or password is incorrect."
	msgBadCode        = "That code didn't work. Check the code and try again."
	msgFlowExpired    = "Your sign-in took too long or was already completed. Please sign in again."
	msgSignIn         = "Please sign in."
)

var (
	errBadCredentials = &latchkey.Error{Code: latchkey.EInvalidCredentials, Message: msgBadCredentials}
	errBadCode        = &latchkey.Error{Code: latchkey.EInvalidCode, Message: msgBadCode}
	errFlowExpired    = &latchkey.Error{Code: latchkey.EFlowExpired, Message: msgFlowExpired}
	errUnauthed       = &latchkey.Error{Code: latchkey.EUnauthenticated, Message: msgSignIn}
	errBadPassword    = &latchkey.Error{Code: latchkey.EInvalidCredentials, Message: "The password is incorrect."}
	// errUsedRecoveryCode answers a recovery code of the user's set that was used already,
	// at sign-in and in Reset all MFA alike.
	errUsedRecoveryCode = &latchkey.Error{Code: latchkey.EInvalidCode, Message: "This recovery code has already been used. Use another one."}
)

// NormalizeUsername returns the canonical form of a username: NFKC, trimmed, lower case.
func NormalizeUsername(s string) string {
	return strings.ToLower(strings.TrimSpace(norm.NFKC.String(s)))
}

// ValidUsername reports whether a normalised username is acceptable: 1–64 characters,
// letters, digits and . _ - @, the letters of one alphabet among Latin, Greek and Cyrillic
// (UTS #39's "highly restrictive" rule for those three): "аdmin" with a Cyrillic а beside
// the administrator "admin" would read as the same name on every page, mail and audit entry.
func ValidUsername(s string) bool {
	if s == "" || len([]rune(s)) > 64 {
		return false
	}
	var scripts [3]bool
	for _, r := range s {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune("._-@", r) {
			return false
		}
		for i, t := range confusableScripts {
			if unicode.Is(t, r) {
				scripts[i] = true
			}
		}
	}
	n := 0
	for _, seen := range scripts {
		if seen {
			n++
		}
	}
	return n <= 1
}

// confusableScripts are the alphabets whose letters look alike (a/а/α, o/о/ο, p/р/ρ): a
// username takes its letters from one of them at most.
var confusableScripts = [3]*unicode.RangeTable{unicode.Latin, unicode.Greek, unicode.Cyrillic}

func userKey(username string) string { return latchkey.ThrottleKeyUser(username) }

// newToken returns 32 random bytes, URL-safe base64 encoded (256 bits).
func (s *Service) newToken() (string, error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(s.opt.Rand, b); err != nil {
		return "", fmt.Errorf("read random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// keyedHash returns HMAC-SHA256(session key, purpose ‖ 0 ‖ value).
func (s *Service) keyedHash(purpose, value string) []byte {
	m := s.mac(purpose, value)
	defer s.macs.Put(m)
	return bytes.Clone(m.sum[:])
}

// keyedHex is keyedHash in hex. It allocates the string alone: it is on the path of every
// signed-in request (two per session token, token.go).
func (s *Service) keyedHex(purpose, value string) string {
	m := s.mac(purpose, value)
	defer s.macs.Put(m)
	var out [2 * sha256.Size]byte
	hex.Encode(out[:], m.sum[:])
	return string(out[:])
}

// macState is an HMAC keyed with the session key and its buffers, kept in Service.macs.
type macState struct {
	mac hash.Hash
	in  []byte
	sum [sha256.Size]byte
}

// mac computes the keyed hash of purpose and value into a pooled state's sum; the caller
// returns the state to s.macs.
func (s *Service) mac(purpose, value string) *macState {
	m := s.macs.Get().(*macState)
	m.mac.Reset()
	m.in = append(append(append(m.in[:0], purpose...), 0), value...)
	m.mac.Write(m.in)
	m.mac.Sum(m.sum[:0])
	return m
}

func (s *Service) now() time.Time { return s.opt.Now().UTC() }

func (s *Service) audit(ctx context.Context, c Client, u *latchkey.User, username, action, outcome, detail string) {
	s.auditBy(ctx, c, nil, u, username, action, outcome, detail)
}

// auditBy is audit for an action that actor took from the admin console or the support
// desk (nil: the user's own, or nobody's): the entry names both (latchkey.AuditEvent.Actor).
func (s *Service) auditBy(ctx context.Context, c Client, actor, u *latchkey.User, username, action, outcome, detail string) {
	e := *event(c, actor, u, username, action, outcome, detail)
	// A failure to audit is logged by the recorder; the user's request still completes, since
	// refusing every sign-in while the audit table is unavailable would be a denial of service.
	_ = s.opt.Audit.Record(ctx, e)
}

// event is the audit entry of an action concerning u (nil: username, or nobody) taken by
// actor (nil: u's own, or nobody's), for the store to append in the action's own transaction.
func event(c Client, actor, u *latchkey.User, username, action, outcome, detail string) *latchkey.AuditEvent {
	e := &latchkey.AuditEvent{Username: username, Action: action, Outcome: outcome, IP: c.IP, UserAgent: c.UserAgent, Detail: detail}
	if u != nil {
		e.UserID, e.Username = u.ID, u.Username
	}
	if actor != nil {
		e.ActorID, e.Actor = actor.ID, actor.Username
	}
	return e
}

// attempt is one guess at a credential, counted before it is checked: the per-IP token and
// the account's failure counter are taken up front, so that concurrent guesses cannot all pass
// a check that only some of them should (check and count in one step). A guess that fails
// stays counted; one that succeeds is refunded.
type attempt struct {
	key  string    // the account's throttle key
	n    int       // the account's failure count with this attempt
	prev time.Time // the account's last failure before this attempt
	ip   string
}

// reserve counts an attempt against key and the client's IP. It returns EThrottled while the
// account or the IP must wait; a locked account still gets its attempt (and locked true), so
// that the caller answers exactly like for a wrong credential.
func (s *Service) reserve(ctx context.Context, c Client, key string) (attempt, bool, error) {
	now := s.now()
	if err := s.ip.Take(c.IP, now); err != nil {
		return attempt{}, false, err
	}
	for range 20 {
		th, err := s.opt.Store.FindThrottle(ctx, key)
		if err != nil {
			s.ip.Refund(c.IP, now)
			return attempt{}, false, fmt.Errorf("find throttle: %w", err)
		}
		wait, locked := s.opt.Throttle.accountWait(th.Failures)
		if until := th.LastFailureAt.Add(wait); !locked && wait > 0 && now.Before(until) {
			s.ip.Refund(c.IP, now)
			return attempt{}, false, latchkey.Throttled(until.Sub(now))
		}
		ok, err := s.opt.Store.ReserveAttempt(ctx, key, th, now)
		if err != nil {
			s.ip.Refund(c.IP, now)
			return attempt{}, false, err
		}
		if ok {
			return attempt{key: key, n: th.Failures + 1, prev: th.LastFailureAt, ip: c.IP}, locked, nil
		}
		// Another attempt on this account counted first: look again.
	}
	s.ip.Refund(c.IP, now)
	return attempt{}, false, latchkey.Throttled(s.opt.Throttle.BaseWait)
}

// admit reserves an attempt at a credential of u and returns it. A locked account gets
// failure: the same answer as a wrong credential.
func (s *Service) admit(ctx context.Context, c Client, u *latchkey.User, action string, failure error) (attempt, error) {
	a, locked, err := s.reserve(ctx, c, userKey(u.Username))
	if err != nil {
		if latchkey.ErrorCode(err) == latchkey.EThrottled {
			s.audit(ctx, c, u, "", action, latchkey.OutcomeDenied, "throttled")
		}
		return attempt{}, err
	}
	if locked {
		s.audit(ctx, c, u, "", action, latchkey.OutcomeDenied, "account locked")
		return attempt{}, failure
	}
	return a, nil
}

// checkAccount returns an error when the account key is waiting or locked, without counting
// anything: for actions that are not guesses (starting a push).
func (s *Service) checkAccount(ctx context.Context, c Client, u *latchkey.User, action string, failure error) error {
	if err := s.ip.Check(c.IP, s.now()); err != nil {
		return err
	}
	th, err := s.opt.Store.FindThrottle(ctx, userKey(u.Username))
	if err != nil {
		return fmt.Errorf("find throttle: %w", err)
	}
	wait, locked := s.opt.Throttle.accountWait(th.Failures)
	if locked {
		s.audit(ctx, c, u, "", action, latchkey.OutcomeDenied, "account locked")
		return failure
	}
	if until := th.LastFailureAt.Add(wait); wait > 0 && s.now().Before(until) {
		return latchkey.Throttled(until.Sub(s.now()))
	}
	return nil
}

// fail settles an attempt that failed: it was counted when reserved; the lockout it causes is
// audited.
func (s *Service) fail(ctx context.Context, c Client, a attempt) {
	if a.n == s.opt.Throttle.LockAt {
		s.audit(ctx, c, nil, strings.TrimPrefix(a.key, "user:"), latchkey.ActionLockout, latchkey.OutcomeDenied, fmt.Sprintf("%d consecutive failures", a.n))
	}
}

// refund settles an attempt that succeeded: it no longer counts as a failure.
func (s *Service) refund(ctx context.Context, a attempt) {
	if a.key == "" {
		return
	}
	s.ip.Refund(a.ip, s.now())
	if err := s.opt.Store.RefundAttempt(ctx, a.key, a.n, a.prev); err != nil {
		s.log.ErrorContext(ctx, "refund attempt", "err", err)
	}
}

// abandon settles an attempt whose credential was never compared (the request ended, or
// the store failed, before the check): it was no guess, so neither the IP's token nor the
// account's failure counter stays taken. Otherwise a person whose browser gave up while the
// server waited for a hashing slot would count as having guessed wrong, and a flood of
// sign-ins that time out would drain the IP's bucket. The refund is written even though
// ctx has ended.
func (s *Service) abandon(ctx context.Context, a attempt) {
	s.refund(context.WithoutCancel(ctx), a)
}

// abandonIfEnded abandons a after a password verification that failed with err, when err
// says the request's context ended: password.Hasher returns a context error only while it
// waits for a hashing slot, before any comparison. Any other error (a malformed stored
// hash) leaves the attempt counted.
func (s *Service) abandonIfEnded(ctx context.Context, a attempt, err error) {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		s.abandon(ctx, a)
	}
}

// methods returns the second factors a user can use now, the primary factor's first. Each
// list is read once (readFactors), and the recovery codes only when there is a factor.
func (s *Service) methods(ctx context.Context, u *latchkey.User) ([]string, error) {
	l, err := s.readFactors(ctx, u)
	if err != nil {
		return nil, err
	}
	var m []string
	if slices.ContainsFunc(l.devs, func(d *latchkey.Device) bool { return d.State == latchkey.DeviceActive }) {
		m = append(m, latchkey.MethodPush)
	}
	if slices.ContainsFunc(l.creds, (*latchkey.TOTPCredential).Confirmed) {
		m = append(m, latchkey.MethodTOTP)
	}
	if len(l.keys) > 0 {
		m = append(m, latchkey.MethodWebAuthn)
	}
	if len(m) == 0 {
		return nil, nil
	}
	codes, err := s.opt.Store.FindRecoveryCodes(ctx, u.ID)
	if err != nil {
		return nil, fmt.Errorf("find recovery codes: %w", err)
	}
	if slices.ContainsFunc(codes, func(c *latchkey.RecoveryCode) bool { return c.UsedAt == nil }) {
		m = append(m, latchkey.MethodRecovery)
	}
	if p := primaryMethod(l.factors(u)); slices.Index(m, p) > 0 {
		m = append([]string{p}, slices.DeleteFunc(m, func(x string) bool { return x == p })...)
	}
	return m, nil
}

// Login performs the password step. oldToken, when not empty, is the caller's current session
// token; that session ends, so the session ID changes at every step. Unknown users, wrong
// passwords, disabled and locked accounts all return the same EInvalidCredentials after the
// same amount of hashing work.
func (s *Service) Login(ctx context.Context, c Client, oldToken, username, pw string) (*Result, error) {
	username = NormalizeUsername(username)
	if username == "" || pw == "" {
		return nil, latchkey.Errorf(latchkey.EInvalid, "Enter your username and password.")
	}
	key, locked, err := s.reserve(ctx, c, userKey(username))
	if err != nil {
		if latchkey.ErrorCode(err) == latchkey.EThrottled {
			s.audit(ctx, c, nil, username, latchkey.ActionLogin, latchkey.OutcomeDenied, "throttled")
		}
		return nil, err
	}
	u, err := s.opt.Store.FindUserByUsername(ctx, username)
	if err != nil && latchkey.ErrorCode(err) != latchkey.ENotFound {
		s.abandon(ctx, key)
		return nil, fmt.Errorf("find user: %w", err)
	}
	if u == nil {
		// An unknown user's attempt is settled like a known user's (abandoned when the
		// context ended before the hash, counted otherwise), so that the throttle does not
		// tell them apart.
		if err := s.opt.Hasher.VerifyDummy(ctx, pw); err != nil {
			s.abandonIfEnded(ctx, key, err)
			return nil, fmt.Errorf("verify password: %w", err)
		}
		s.fail(ctx, c, key)
		s.audit(ctx, c, nil, username, latchkey.ActionLogin, latchkey.OutcomeFailure, "unknown user")
		return nil, errBadCredentials
	}
	ok, rehash, err := s.opt.Hasher.Verify(ctx, pw, u.PasswordHash)
	if err != nil {
		s.abandonIfEnded(ctx, key, err)
		return nil, fmt.Errorf("verify password: %w", err)
	}
	if !ok || locked || u.Disabled {
		detail := "wrong password"
		if locked {
			detail = "account locked"
		} else if u.Disabled {
			detail = "account disabled"
		}
		s.fail(ctx, c, key)
		s.audit(ctx, c, u, "", latchkey.ActionLogin, latchkey.OutcomeFailure, detail)
		return nil, errBadCredentials
	}
	if rehash {
		s.rehash(ctx, u, pw)
	}
	methods, err := s.methods(ctx, u)
	if err != nil {
		s.refund(ctx, key)
		return nil, err
	}
	now := s.now()
	if old := s.remembered(ctx, oldToken, u, now); old != nil {
		s.refund(ctx, key)
		return s.resume(ctx, c, oldToken, old, u)
	}
	sess := &latchkey.Session{UserID: u.ID, AMR: []string{latchkey.AMRPassword}, PasswordAt: now, CreatedAt: now, LastSeenAt: now, IP: c.IP, UserAgent: c.UserAgent}
	switch {
	case len(methods) > 0:
		sess.State, sess.ExpiresAt = latchkey.StateSecondFactor, now.Add(s.opt.FlowTTL)
	case s.opt.MFA == MFARequired:
		sess.State, sess.ExpiresAt = latchkey.StateEnroll, now.Add(s.opt.FlowTTL)
		methods = s.EnrollMethods()
	default:
		sess.State, sess.ExpiresAt = latchkey.StateAuthenticated, now.Add(s.opt.MaxAge)
	}
	outcome := latchkey.OutcomeSuccess
	if sess.State != latchkey.StateAuthenticated {
		outcome = latchkey.OutcomePasswordOK
	}
	if s.ref(oldToken).ok {
		// A sign-in from a browser with a session: the old one is rotated (issue), apart
		// from the refund and the audit entry.
		s.refund(ctx, key)
		res, err := s.issue(ctx, oldToken, sess)
		if err != nil {
			return nil, err
		}
		res.User, res.Methods = u, methods
		if sess.State == latchkey.StateAuthenticated {
			s.succeed(ctx, c, u)
		}
		s.audit(ctx, c, u, "", latchkey.ActionLogin, outcome, "next: "+string(sess.State))
		return res, nil
	}
	res, err := s.start(ctx, c, key, sess, u, outcome)
	if err != nil {
		return nil, err
	}
	res.Methods = methods
	return res, nil
}

// start stores sess, the new session of a right password, under a new token, in one
// transaction with the refund of the password's attempt, the resets of a sign-in that needs
// no second factor (succeed) and the audit entry (Store.StartPasswordSession). When it fails,
// the attempt is refunded alone: the password was right.
func (s *Service) start(ctx context.Context, c Client, key attempt, sess *latchkey.Session, u *latchkey.User, outcome string) (*Result, error) {
	tok, ref, err := s.newSessionToken(tokenRef{})
	if err == nil {
		sess.ID, sess.Verifier = ref.id, ref.verifier
		sess.SID, err = s.newSID()
	}
	if err != nil {
		s.refund(ctx, key)
		return nil, err
	}
	ps := &latchkey.PasswordSignIn{RefundKey: key.key, RefundN: key.n, RefundPrev: key.prev, Session: sess,
		Audit: &latchkey.AuditEvent{Time: sess.CreatedAt, UserID: u.ID, Username: u.Username, Action: latchkey.ActionLogin,
			Outcome: outcome, IP: c.IP, UserAgent: c.UserAgent, Detail: "next: " + string(sess.State)}}
	if sess.State == latchkey.StateAuthenticated {
		ps.ResetThrottles = []string{userKey(u.Username), latchkey.ThrottleKeyPush(u.Username)}
	}
	if err := s.opt.Store.StartPasswordSession(ctx, ps); err != nil {
		s.refund(ctx, key)
		return nil, fmt.Errorf("store session: %w", err)
	}
	s.ip.Refund(key.ip, s.now())
	return &Result{Token: tok, Session: sess, State: sess.State, User: u}, nil
}

// resume signs u in again with the password alone in the session old, whose second-factor
// proof still stands: the AMR and MFAAt stay those of the proof, and so does the end of the
// session; the session ID rotates.
func (s *Service) resume(ctx context.Context, c Client, oldToken string, old *latchkey.Session, u *latchkey.User) (*Result, error) {
	now := s.now()
	next := *old
	next.PasswordAt, next.LastSeenAt = now, now
	if !slices.Contains(next.AMR, latchkey.AMRPassword) { // a passkey sign-in: now the password too
		next.AMR = append([]string{latchkey.AMRPassword}, next.AMR...)
	}
	next.IP, next.UserAgent = c.IP, c.UserAgent
	res, err := s.issue(ctx, oldToken, &next)
	if err != nil {
		return nil, err
	}
	res.User = u
	s.succeed(ctx, c, u)
	s.audit(ctx, c, u, "", latchkey.ActionLogin, latchkey.OutcomeSuccess, "next: authenticated (second factor of this workday remembered)")
	return res, nil
}

// succeed clears the failure counter and the count of pushes after a completed sign-in.
func (s *Service) succeed(ctx context.Context, c Client, u *latchkey.User) {
	for _, key := range []string{userKey(u.Username), latchkey.ThrottleKeyPush(u.Username)} {
		if err := s.opt.Store.ResetThrottle(ctx, key); err != nil {
			s.log.ErrorContext(ctx, "reset throttle", "key", key, "err", err)
		}
	}
}

func (s *Service) rehash(ctx context.Context, u *latchkey.User, pw string) {
	h, err := s.opt.Hasher.Hash(ctx, pw)
	if err == nil {
		_, err = s.opt.Store.UpdateUser(ctx, u.ID, latchkey.UserUpdate{PasswordHash: &h})
	}
	if err != nil {
		s.log.ErrorContext(ctx, "rehash password", "user_id", u.ID, "err", err)
		return
	}
	u.PasswordHash = h
}

// issue stores sess under a new token, ending the session of oldToken if there was one.
func (s *Service) issue(ctx context.Context, oldToken string, sess *latchkey.Session) (*Result, error) {
	tok, ref, err := s.newSessionToken(tokenRef{})
	if err != nil {
		return nil, err
	}
	sess.ID, sess.Verifier = ref.id, ref.verifier
	if sess.SID == "" {
		if sess.SID, err = s.newSID(); err != nil {
			return nil, err
		}
	}
	if old := s.ref(oldToken); old.ok {
		err = s.opt.Store.RotateSession(ctx, old.id, old.verifier, sess)
		if latchkey.ErrorCode(err) == latchkey.ENotFound {
			err = s.opt.Store.CreateSession(ctx, sess)
		}
	} else {
		err = s.opt.Store.CreateSession(ctx, sess)
	}
	if err != nil {
		return nil, fmt.Errorf("store session: %w", err)
	}
	return &Result{Token: tok, Session: sess, State: sess.State}, nil
}

// flow loads the unfinished sign-in of token, which must be in StateSecondFactor.
func (s *Service) flow(ctx context.Context, token string) (*latchkey.Session, *latchkey.User, error) {
	return s.flowIn(ctx, token, latchkey.StateSecondFactor)
}

// flowIn loads the unfinished sign-in of token, which must be in state and not expired, of a
// user who is not disabled.
func (s *Service) flowIn(ctx context.Context, token string, state latchkey.SessionState) (*latchkey.Session, *latchkey.User, error) {
	// One prepared read of the session and its user (as Authenticate does), where the
	// completion will write it.
	return s.flowWith(ctx, token, state, s.opt.Store.FindFlowWithUser)
}

// flowWithTOTP is flow, with the user's TOTP credentials read in the same query
// (Store.FindFlowWithTOTP): the TOTP step's one read.
func (s *Service) flowWithTOTP(ctx context.Context, token string) (*latchkey.Session, *latchkey.User, []*latchkey.TOTPCredential, error) {
	var creds []*latchkey.TOTPCredential
	sess, u, err := s.flowWith(ctx, token, latchkey.StateSecondFactor, func(ctx context.Context, id string) (*latchkey.Session, *latchkey.User, error) {
		sess, u, cs, err := s.opt.Store.FindFlowWithTOTP(ctx, id)
		creds = cs
		return sess, u, err
	})
	if err != nil {
		return nil, nil, nil, err
	}
	return sess, u, creds, nil
}

// flowWith is flowIn reading the session and its user with find.
func (s *Service) flowWith(ctx context.Context, token string, state latchkey.SessionState, find func(context.Context, string) (*latchkey.Session, *latchkey.User, error)) (*latchkey.Session, *latchkey.User, error) {
	if token == "" {
		return nil, nil, errFlowExpired
	}
	sess, u, err := s.findSessionWith(ctx, token, find)
	if latchkey.ErrorCode(err) == latchkey.ENotFound {
		return nil, nil, errFlowExpired
	} else if err != nil {
		return nil, nil, fmt.Errorf("find session: %w", err)
	}
	if err := s.checkFlow(sess, u, state); err != nil {
		return nil, nil, err
	}
	return sess, u, nil
}

// checkFlow returns errFlowExpired unless sess is in state and not expired, of a user who is
// not disabled.
func (s *Service) checkFlow(sess *latchkey.Session, u *latchkey.User, state latchkey.SessionState) error {
	if sess.State != state || !s.now().Before(sess.ExpiresAt) || u.Disabled {
		return errFlowExpired
	}
	return nil
}

// completion is what a finished second factor writes with the rotated session: the TOTP
// step it used (cred 0: none) and its success audit entry.
type completion struct {
	cred, step     int64
	push           string // the approved push challenge, completed with the sign-in
	recovery       []byte // the hash of the recovery code, spent with the sign-in
	action, detail string
	// admit, when set, checks the counter under admitKey inside the completion's
	// transaction (latchkey.SecondFactorCompletion.Admit).
	admitKey string
	admit    func(latchkey.Throttle) error
}

// complete turns a second-factor flow into a signed-in session under a new token. The TOTP
// step (if any), the rotation, the resets of the account's failure and push counters and
// the success audit entry are one transaction (CompleteSecondFactor): a sign-in is never
// signed in without its audit entry, and a failure writes none of it. A flow rotated or
// revoked meanwhile gives errFlowExpired; a TOTP step no longer newer than the last one
// gives EConflict.
func (s *Service) complete(ctx context.Context, c Client, token string, sess *latchkey.Session, u *latchkey.User, done completion, amr ...string) (*Result, error) {
	now := s.now()
	next := *sess
	next.State = latchkey.StateAuthenticated
	next.AMR = append([]string{latchkey.AMRPassword}, amr...)
	next.AMR = append(next.AMR, latchkey.AMRMFA)
	next.MFAAt = &now
	next.LastSeenAt = now
	next.ExpiresAt = s.mfaEnd(u, now)
	next.IP, next.UserAgent = c.IP, c.UserAgent
	// The same selector with a new verifier: the flow's cookie stops working, and its row
	// keeps its ID (token.go).
	old := s.ref(token)
	tok, ref, err := s.newSessionToken(old)
	if err != nil {
		return nil, err
	}
	next.ID, next.Verifier = ref.id, ref.verifier
	if next.SID == "" {
		if next.SID, err = s.newSID(); err != nil {
			return nil, err
		}
	}
	err = s.opt.Store.CompleteSecondFactor(ctx, &latchkey.SecondFactorCompletion{
		OldSessionID:     old.id,
		OldVerifier:      old.verifier,
		Session:          &next,
		TOTPCredentialID: done.cred,
		TOTPStep:         done.step,
		PushChallengeID:  done.push,
		RecoveryCodeHash: done.recovery,
		// Deleting a counter that is not there costs a statement, not a transaction.
		ResetThrottles: []string{userKey(u.Username), latchkey.ThrottleKeyPush(u.Username)},
		Audit: &latchkey.AuditEvent{Time: now, UserID: u.ID, Username: u.Username, Action: done.action,
			Outcome: latchkey.OutcomeSuccess, IP: c.IP, UserAgent: c.UserAgent, Detail: done.detail},
		AdmitKey: done.admitKey,
		Admit:    done.admit,
	})
	if err != nil && errors.Is(err, errAdmitLocked) {
		return nil, err
	}
	switch latchkey.ErrorCode(err) {
	case "":
		return &Result{Token: tok, Session: &next, State: next.State, User: u}, nil
	case latchkey.EThrottled:
		return nil, err
	case latchkey.ENotFound:
		return nil, errFlowExpired
	case latchkey.EConflict:
		return nil, err
	default:
		return nil, fmt.Errorf("complete sign-in: %w", err)
	}
}

// LoginTOTP completes a sign-in with a 6-digit code. A code is accepted once only: after time
// step T was used, codes for any step ≤ T are refused, also under concurrent requests.
func (s *Service) LoginTOTP(ctx context.Context, c Client, token, code string) (*Result, error) {
	sess, u, creds, err := s.flowWithTOTP(ctx, token)
	if err != nil {
		return nil, err
	}
	code, err = parseCode(code)
	if err != nil {
		return nil, err
	}
	// The code is checked first, without writing anything; what the answer reveals is decided
	// after, under the account's counter. A wrong code is counted (or throttled) by admit
	// before it is answered, as every guess. A right one is admitted inside the completion's
	// own transaction (one write for the whole step): a throttled account gets the same 429 as
	// for a wrong code, a locked one the same failure, and nothing is written for either.
	cred, step, replayed := s.matchTOTPCode(creds, code)
	if cred == nil {
		detail, action := "wrong code", latchkey.ActionLoginTOTP
		if replayed {
			detail, action = "code for a step already used", latchkey.ActionCodeReplayed
		}
		return nil, s.wrongCode(ctx, c, u, action, detail)
	}
	now := s.now()
	if err := s.ip.Take(c.IP, now); err != nil {
		return nil, err
	}
	admit := func(th latchkey.Throttle) error {
		wait, locked := s.opt.Throttle.accountWait(th.Failures)
		if locked {
			return errAdmitLocked
		}
		if until := th.LastFailureAt.Add(wait); wait > 0 && now.Before(until) {
			return latchkey.Throttled(until.Sub(now))
		}
		return nil
	}
	res, err := s.complete(ctx, c, token, sess, u, completion{cred: cred.ID, step: step, action: latchkey.ActionLoginTOTP, admitKey: userKey(u.Username), admit: admit}, latchkey.AMROTP)
	if err == nil {
		s.ip.Refund(c.IP, now)
		return res, nil
	}
	s.ip.Refund(c.IP, now) // the answer below counts the attempt, or it did not happen
	switch {
	case latchkey.ErrorCode(err) == latchkey.EThrottled:
		s.audit(ctx, c, u, "", latchkey.ActionLoginTOTP, latchkey.OutcomeDenied, "throttled")
		return nil, err
	case errors.Is(err, errAdmitLocked):
		// Counted and answered like a wrong code (admit audits the lock). Unless an
		// administrator unlocked the account in between: then the attempt is counted and
		// completed the way every other factor does it.
		key, err := s.admit(ctx, c, u, latchkey.ActionLoginTOTP, errBadCode)
		if err != nil {
			return nil, err
		}
		return s.completeTOTP(ctx, c, token, sess, u, key, cred, step)
	case latchkey.ErrorCode(err) == latchkey.EConflict:
		return nil, s.wrongCode(ctx, c, u, latchkey.ActionCodeReplayed, "concurrent use of the same code")
	default:
		return nil, err
	}
}

// errAdmitLocked ends a TOTP completion whose account is locked (see LoginTOTP).
var errAdmitLocked = errors.New("login: the account is locked")

// wrongCode counts a wrong code against the account and the client's IP, audits it under
// action with detail, and returns the answer: errBadCode, or EThrottled when the account or
// the IP must wait (then nothing is revealed about the code).
func (s *Service) wrongCode(ctx context.Context, c Client, u *latchkey.User, action, detail string) error {
	key, err := s.admit(ctx, c, u, latchkey.ActionLoginTOTP, errBadCode)
	if err != nil {
		return err
	}
	s.fail(ctx, c, key)
	s.audit(ctx, c, u, "", action, latchkey.OutcomeFailure, detail)
	return errBadCode
}

// completeTOTP completes a TOTP sign-in whose attempt key was reserved already.
func (s *Service) completeTOTP(ctx context.Context, c Client, token string, sess *latchkey.Session, u *latchkey.User, key attempt, cred *latchkey.TOTPCredential, step int64) (*Result, error) {
	// The step is recorded with the rotation: the replay guard holds in that transaction,
	// and the account's counter (this attempt included) is reset by it, so the attempt needs
	// no refund of its own in the database.
	res, err := s.complete(ctx, c, token, sess, u, completion{cred: cred.ID, step: step, action: latchkey.ActionLoginTOTP}, latchkey.AMROTP)
	switch {
	case err == nil:
		s.ip.Refund(key.ip, s.now())
		return res, nil
	case latchkey.ErrorCode(err) == latchkey.EConflict:
		s.fail(ctx, c, key)
		s.audit(ctx, c, u, "", latchkey.ActionCodeReplayed, latchkey.OutcomeFailure, "concurrent use of the same code")
		return nil, errBadCode
	case errors.Is(err, errFlowExpired):
		s.refund(ctx, key) // the code was right; the flow ended meanwhile
		return nil, err
	default:
		return nil, err
	}
}

// LoginRecovery completes a sign-in with a single-use recovery code and tells the user by email.
func (s *Service) LoginRecovery(ctx context.Context, c Client, token, code string) (*Result, error) {
	sess, u, err := s.flow(ctx, token)
	if err != nil {
		return nil, err
	}
	norm, err := normalizeRecoveryCode(code)
	if err != nil {
		return nil, err
	}
	key, err := s.admit(ctx, c, u, latchkey.ActionLoginRecovery, errBadCode)
	if err != nil {
		return nil, err
	}
	// The code is looked up first, without writing anything, and spent in the completion's
	// transaction (as a TOTP step is recorded): a sign-in that fails (its flow completed by
	// another request meanwhile, a double submit or a second tab) spends no code.
	hash := s.keyedHash("recovery", norm)
	codes, err := s.opt.Store.FindRecoveryCodes(ctx, u.ID)
	if err != nil {
		s.abandon(ctx, key)
		return nil, fmt.Errorf("find recovery codes: %w", err)
	}
	i := slices.IndexFunc(codes, func(rc *latchkey.RecoveryCode) bool { return subtle.ConstantTimeCompare(rc.Hash, hash) == 1 })
	switch {
	case i < 0:
		s.fail(ctx, c, key)
		s.audit(ctx, c, u, "", latchkey.ActionLoginRecovery, latchkey.OutcomeFailure, "unknown code")
		return nil, errBadCode
	case codes[i].UsedAt != nil:
		return nil, s.recoveryUsed(ctx, c, u, key)
	}
	// The attempt is settled after the completion, as a TOTP step's (completeTOTP): the
	// completion's transaction resets the account's counter, this attempt included, so a
	// sign-in gives back only the IP's token; a code spent meanwhile stays counted, against
	// the account and the IP, as a code used before; and a code that was not refused (the
	// flow ended meanwhile, or the write failed) is taken back.
	res, err := s.complete(ctx, c, token, sess, u, completion{recovery: hash, action: latchkey.ActionLoginRecovery}, latchkey.AMROTP)
	switch {
	case err == nil:
		s.ip.Refund(key.ip, s.now())
	case latchkey.ErrorCode(err) == latchkey.EConflict:
		// Spent meanwhile by another sign-in: counted as the code used before would be.
		return nil, s.recoveryUsed(ctx, c, u, key)
	default:
		s.refund(context.WithoutCancel(ctx), key) // also when the request's context ended
		return nil, err
	}
	left, _ := s.recoveryLeft(ctx, u.ID)
	s.notify(ctx, c, u, mail.RecoveryCodeUsed, left)
	return res, nil
}

// recoveryUsed counts and audits a recovery code that was used already, and returns the
// answer that says so.
func (s *Service) recoveryUsed(ctx context.Context, c Client, u *latchkey.User, key attempt) error {
	s.fail(ctx, c, key)
	s.audit(ctx, c, u, "", latchkey.ActionLoginRecovery, latchkey.OutcomeFailure, "code already used")
	return errUsedRecoveryCode
}

// Authenticate returns the signed-in session and user of token. Expired, idle, unfinished and
// unknown sessions, and sessions of disabled users, give EUnauthenticated; expired ones are
// deleted on the way, and so are idle ones, except those whose second-factor proof still
// stands (until ExpiresAt): the next sign-in in that browser asks only the password.
func (s *Service) Authenticate(ctx context.Context, token string) (*latchkey.Session, *latchkey.User, error) {
	if token == "" {
		return nil, nil, errUnauthed
	}
	// One query for the session and its user: this is on the path of every signed-in request
	// and of every forward-auth check.
	sess, u, err := s.findSession(ctx, token)
	if latchkey.ErrorCode(err) == latchkey.ENotFound {
		return nil, nil, errUnauthed
	} else if err != nil {
		return nil, nil, fmt.Errorf("find session: %w", err)
	}
	now := s.now()
	if sess.State != latchkey.StateAuthenticated {
		return nil, nil, errUnauthed
	}
	idle := now.Sub(sess.LastSeenAt) >= s.opt.IdleTimeout
	if idle && now.Before(sess.ExpiresAt) && hasMFA(sess) {
		return nil, nil, errUnauthed
	}
	if !now.Before(sess.ExpiresAt) || idle {
		if err := s.opt.Store.DeleteSession(ctx, sess.ID); err != nil {
			s.log.ErrorContext(ctx, "delete expired session", "err", err)
		}
		return nil, nil, errUnauthed
	}
	if u.Disabled {
		return nil, nil, errUnauthed
	}
	// Write the activity time at most once a minute: most requests then cost one read.
	if now.Sub(sess.LastSeenAt) >= time.Minute {
		if err := s.opt.Store.TouchSession(ctx, sess.ID, now); err != nil {
			s.log.ErrorContext(ctx, "touch session", "err", err)
		}
		sess.LastSeenAt = now
	}
	return sess, u, nil
}

// Flow returns the state of an unfinished or finished sign-in for the pages: the session of
// token in any state, and the methods a second-factor step offers.
func (s *Service) Flow(ctx context.Context, token string) (*latchkey.Session, []string, error) {
	sess, u, err := s.flow(ctx, token)
	if err != nil {
		return nil, nil, err
	}
	m, err := s.methods(ctx, u)
	return sess, m, err
}

// Logout ends the session of token on the server.
func (s *Service) Logout(ctx context.Context, c Client, token string) error {
	_, err := s.EndSession(ctx, c, token)
	return err
}

// EndSession ends the session of token on the server, like Logout, and returns it (nil when
// there was none), so that the caller can end what depends on it: the OIDC provider's tokens
// and back-channel logout.
func (s *Service) EndSession(ctx context.Context, c Client, token string) (*latchkey.Session, error) {
	if token == "" {
		return nil, nil
	}
	sess, err := s.findSessionOnly(ctx, token)
	if latchkey.ErrorCode(err) == latchkey.ENotFound {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("find session: %w", err)
	}
	if err := s.opt.Store.DeleteSession(ctx, sess.ID); err != nil {
		return nil, fmt.Errorf("delete session: %w", err)
	}
	if u, err := s.opt.Store.FindUserByID(ctx, sess.UserID); err == nil {
		s.audit(ctx, c, u, "", latchkey.ActionLogout, latchkey.OutcomeSuccess, "")
	}
	return sess, nil
}

// checkPassword verifies a signed-in user's password for a sensitive action, counting a
// failure against the account like a failed sign-in.
func (s *Service) checkPassword(ctx context.Context, c Client, u *latchkey.User, action, pw string) error {
	if pw == "" {
		return latchkey.Errorf(latchkey.EInvalid, "Enter your current password.")
	}
	key, err := s.admit(ctx, c, u, action, errBadPassword)
	if err != nil {
		return err
	}
	ok, _, err := s.opt.Hasher.Verify(ctx, pw, u.PasswordHash)
	if err != nil {
		s.abandonIfEnded(ctx, key, err)
		return fmt.Errorf("verify password: %w", err)
	}
	if !ok {
		s.fail(ctx, c, key)
		s.audit(ctx, c, u, "", action, latchkey.OutcomeFailure, "wrong password")
		return errBadPassword
	}
	s.refund(ctx, key)
	return nil
}

// Reauthenticate confirms the password of a signed-in user, so that sensitive actions are
// allowed for the next ReauthWindow, and rotates the session ID. It is the first half of a
// full re-authentication (ASVS 5.0 7.5.1): for a user with a second factor whose session has
// not given one within the window, the session becomes the second step of sign-in, as StepUp
// makes it (Result.State StateSecondFactor, with the methods), and completing that step with
// any of the user's factors gives it a fresh MFAAt. Until then the session is signed in for
// nothing, and it ends with the step (FlowTTL) if no factor is given.
func (s *Service) Reauthenticate(ctx context.Context, c Client, token string, pw string) (*Result, error) {
	sess, u, err := s.Authenticate(ctx, token)
	if err != nil {
		return nil, err
	}
	if err := s.checkPassword(ctx, c, u, latchkey.ActionReauthenticate, pw); err != nil {
		return nil, err
	}
	methods, err := s.factorDue(ctx, sess, u)
	if err != nil {
		return nil, err
	}
	now := s.now()
	next := *sess
	next.PasswordAt = now
	if len(methods) > 0 {
		s.secondStep(&next, c, now)
	}
	res, err := s.issue(ctx, token, &next)
	if err != nil {
		return nil, err
	}
	res.User = u
	detail := ""
	if next.State == latchkey.StateSecondFactor {
		res.Methods, detail = methods, "next: "+string(next.State)
	}
	s.audit(ctx, c, u, "", latchkey.ActionReauthenticate, latchkey.OutcomeSuccess, detail)
	return res, nil
}

// Recent reports whether the session was re-authenticated fully within the re-authentication
// window (ASVS 5.0 7.5.1): the password, and for a user with a second factor a factor as well
// (the session's MFAAt). It returns EReauthenticate otherwise. It reads the user's factors only
// when the password is recent and the second factor is not.
func (s *Service) Recent(ctx context.Context, sess *latchkey.Session, u *latchkey.User) error {
	if err := s.RecentPassword(sess); err != nil {
		return err
	}
	return s.RecentMFA(ctx, sess, u)
}

// RecentPassword is the password half of Recent: the session's last password check is within
// the window. On its own it is enough only where a second factor comes later anyway (a new
// Latch device that an existing one must approve).
func (s *Service) RecentPassword(sess *latchkey.Session) error {
	if s.now().Sub(sess.PasswordAt) > s.opt.ReauthWindow {
		return latchkey.Errorf(latchkey.EReauthenticate, "For your security, confirm your password to continue.")
	}
	return nil
}

// RecentMFA is Recent without the password, for the actions whose form asks for the password
// itself (turning off the authenticator app, new recovery codes, a new password): a user with
// a second factor must have given one within the window.
func (s *Service) RecentMFA(ctx context.Context, sess *latchkey.Session, u *latchkey.User) error {
	m, err := s.factorDue(ctx, sess, u)
	if err != nil {
		return err
	}
	if len(m) > 0 {
		return errReauthMFA
	}
	return nil
}

// factorDue returns the methods of the second factor that sess owes before a sensitive action:
// none when it gave one within the window or the user has none, else the user's methods (the
// ones Reauthenticate's second step offers, so that what RecentMFA asks for can be given).
func (s *Service) factorDue(ctx context.Context, sess *latchkey.Session, u *latchkey.User) ([]string, error) {
	if s.freshMFA(sess, s.now()) {
		return nil, nil
	}
	return s.methods(ctx, u)
}

// errReauthMFA asks for a full re-authentication: the password and a second factor.
var errReauthMFA = latchkey.Errorf(latchkey.EReauthenticate, "For your security, confirm it's you with your password and your second factor to continue.")

// freshMFA reports whether sess gave a second factor within the re-authentication window.
func (s *Service) freshMFA(sess *latchkey.Session, now time.Time) bool {
	return sess.MFAAt != nil && slices.Contains(sess.AMR, latchkey.AMRMFA) && now.Sub(*sess.MFAAt) <= s.opt.ReauthWindow
}

func (s *Service) notify(ctx context.Context, c Client, u *latchkey.User, tmpl func(string, mail.Data) (mail.Message, error), left int) {
	s.sendNotice(ctx, c, u, tmpl, mail.Data{RecoveryCodesLeft: left})
}

// sendNotice mails u the security notice tmpl with d, completed with u, the time and where
// from; a failure is logged (the change it tells of is made).
func (s *Service) sendNotice(ctx context.Context, c Client, u *latchkey.User, tmpl func(string, mail.Data) (mail.Message, error), d mail.Data) {
	d.Username, d.Time, d.IP, d.UserAgent, d.PublicURL = u.Username, s.now(), c.IP, c.UserAgent, s.opt.PublicURL
	m, err := tmpl(u.Email, d)
	if err == nil {
		err = s.opt.Mailer.Send(ctx, m)
	}
	if err != nil {
		s.log.ErrorContext(ctx, "send notification", "user_id", u.ID, "err", err)
	}
}
