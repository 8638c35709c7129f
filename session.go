package latchkey

import (
	"log/slog"
	"time"
)

// SessionState is where a session stands in the sign-in flow.
type SessionState string

// Session states.
const (
	// StateSecondFactor: the password was right, a second factor is still needed.
	StateSecondFactor SessionState = "second_factor"
	// StateEnroll: the password was right, policy requires MFA and the user has none yet.
	StateEnroll SessionState = "enroll"
	// StateAuthenticated: signed in.
	StateAuthenticated SessionState = "authenticated"
)

// Session is a server-side session. The browser holds a random token, "selector.verifier";
// the store sees only ID, a keyed hash of the selector, and Verifier, a keyed hash of the
// verifier, so a database dump reveals no usable session. Rotating the session after its
// second factor changes the verifier (the cookie) and keeps the ID.
type Session struct {
	ID string // hex keyed hash of the cookie token's selector (of the whole token before 0013)
	// Verifier is the hex keyed hash of the cookie token's verifier part; "" for a session
	// issued before the token had one. internal/login compares it in constant time: a
	// session is the token's only when both match.
	Verifier string
	// SID is the session's public identifier: 128 random bits, hex, kept when the session
	// rotates. It names the session in the session list, when revoking it, and in the OIDC
	// "sid" claim; knowing it gives no access.
	SID    string
	UserID UserID
	State  SessionState
	// AMR lists how the user authenticated (RFC 8176 values, e.g. "pwd", "otp", "mfa").
	AMR []string
	// PasswordAt is when the password was last verified (sign-in or re-authentication).
	PasswordAt time.Time
	// MFAAt is when a second factor was last verified; nil without one.
	MFAAt      *time.Time
	CreatedAt  time.Time
	LastSeenAt time.Time
	// ExpiresAt is the absolute end of the session (or of the sign-in flow while not
	// authenticated).
	ExpiresAt time.Time
	IP        string
	UserAgent string
}

// LogValue keeps the session ID out of logs.
func (s *Session) LogValue() slog.Value {
	return slog.GroupValue(slog.Int64("user_id", int64(s.UserID)), slog.String("state", string(s.State)))
}

// SessionStore persists sessions.
type SessionStore interface {
	// CreateSession inserts s.
	CreateSession(ctx Context, s *Session) error
	// FindSessionByID returns ENotFound when there is no such session. It does not check
	// expiry; that is the caller's rule.
	FindSessionByID(ctx Context, id string) (*Session, error)
	// FindSessionWithUser returns the session and its user read in one query; ENotFound when
	// there is no such session. Like FindSessionByID it does not check expiry.
	FindSessionWithUser(ctx Context, id string) (*Session, *User, error)
	// FindFlowWithUser is FindSessionWithUser for an unfinished sign-in, which the caller
	// is about to write: a store may read it where its writes go (sqlstore: on SQLite's
	// batch writer), and does not serve it from a cache.
	FindFlowWithUser(ctx Context, id string) (*Session, *User, error)
	// FindFlowWithTOTP is FindFlowWithUser with the user's TOTP credentials (as
	// FindTOTPCredentials returns them) read in the same query, for the TOTP step.
	FindFlowWithTOTP(ctx Context, id string) (*Session, *User, []*TOTPCredential, error)
	// RotateSession deletes the session oldID, if its verifier is oldVerifier, and inserts
	// s, in one transaction. It returns ENotFound when there is no such session (it was
	// rotated or revoked concurrently).
	RotateSession(ctx Context, oldID, oldVerifier string, s *Session) error
	// TouchSession sets LastSeenAt.
	TouchSession(ctx Context, id string, at time.Time) error
	// DeleteSession removes one session; deleting a missing session is not an error.
	DeleteSession(ctx Context, id string) error
	// DeleteUserSessions removes all sessions of a user except exceptID (may be ""), and the
	// user's unused activation codes for new devices with them.
	DeleteUserSessions(ctx Context, userID UserID, exceptID string) error
	// FindUserSessions returns the signed-in (StateAuthenticated) sessions of a user that
	// have not expired at t, most recently active first.
	FindUserSessions(ctx Context, userID UserID, t time.Time) ([]*Session, error)
	// FindSessionBySID returns ENotFound when there is no session with that public ID.
	FindSessionBySID(ctx Context, sid string) (*Session, error)
	// DeleteExpiredSessions removes sessions whose ExpiresAt is before t and returns how many.
	DeleteExpiredSessions(ctx Context, t time.Time) (int, error)
}
