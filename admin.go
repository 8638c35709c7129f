package latchkey

import "time"

// Audit actions of the admin console.
const (
	ActionUserInvited     = "user.invited"
	ActionUserActivated   = "user.activated"
	ActionUserDisabled    = "user.disabled"
	ActionUserEnabled     = "user.enabled"
	ActionUserRole        = "user.role_changed"
	ActionUserUnlocked    = "user.unlocked"
	ActionSessionsRevoked = "sessions.revoked"
	ActionAdminMFAReset   = "mfa.reset_by_admin"
	ActionClientCreated   = "oidc.client_created"
	ActionAdminDenied     = "admin.denied" // a page or action of the console refused for the role
)

// Invitation is a pending account activation: the link mailed to an invited user, of which
// only a keyed hash is stored.
type Invitation struct {
	Hash      string // hex keyed hash of the link's token
	UserID    UserID
	CreatedAt time.Time
	ExpiresAt time.Time
	// MailFailedAt is when the mail that carries the link could not be sent (nil: it was
	// handed over for sending, or nothing is known): the user has no link, so the consoles
	// say that instead of when it expires. A new link (a new invitation) starts without it.
	MailFailedAt *time.Time
}

// InvitationStore persists account activations.
type InvitationStore interface {
	// CreateInvitation replaces any invitation of inv.UserID by inv.
	CreateInvitation(ctx Context, inv *Invitation) error
	// FindInvitation returns the invitation with that hash that has not expired at now, or
	// ENotFound.
	FindInvitation(ctx Context, hash string, now time.Time) (*Invitation, error)
	// ConsumeInvitation deletes the invitation with that hash if it has not expired at now,
	// atomically, and returns its user; ENotFound when there is none (used, expired or never
	// issued). Of concurrent callers exactly one gets the user.
	ConsumeInvitation(ctx Context, hash string, now time.Time) (UserID, error)
	// PendingInvitations returns, for the given users, when their invitation ends, for the
	// invitations that have not expired at now (pass the Unix epoch for expired ones too).
	PendingInvitations(ctx Context, ids []UserID, now time.Time) (map[UserID]time.Time, error)
	// FindInvitationByUserID returns the user's invitation, expired or not (the account
	// awaits activation), or ENotFound (activated, or created with a password).
	FindInvitationByUserID(ctx Context, userID UserID) (*Invitation, error)
	// MarkInvitationMailFailed records at as the invitation's MailFailedAt; ENotFound when no
	// invitation has that hash any more (used, or replaced by a new link).
	MarkInvitationMailFailed(ctx Context, hash string, at time.Time) error
}

// UserSearch selects users for the admin console.
type UserSearch struct {
	// Query matches a part of the username or email address, case-insensitively; "" matches all.
	Query string
	// WithoutFactor keeps only active users (enabled and activated) with no second factor,
	// the ones FactorAdoption counts in NoFactor: an account awaiting activation is left out.
	WithoutFactor bool
	Offset        int
	Limit         int // 0 means no limit
}

// FactorAdoption counts users by the factors they have, for the admin dashboard. A user with
// several kinds counts once in each. An enabled account whose owner has not activated it yet
// (an invitation, expired or not) counts in AwaitingActivation only: nobody has signed in
// with it, so it is not a user without a second factor.
type FactorAdoption struct {
	Users    int // every active user: enabled and activated
	TOTP     int // with a confirmed standalone authenticator app
	Latch    int // with an active Latch device
	Key      int // with a security key or passkey
	NoFactor int // with none of them
	// AwaitingActivation counts the enabled accounts not activated yet, apart from Users.
	AwaitingActivation int
}

// FactorKinds says which kinds of second factor a user has.
type FactorKinds struct {
	TOTP  bool // a confirmed standalone authenticator app
	Latch bool // an active Latch device
	Key   bool // a security key or passkey
}

// Any reports whether the user has a second factor.
func (k FactorKinds) Any() bool { return k.TOTP || k.Latch || k.Key }

// AuditCount is the number of audit events of one outcome in one time bucket.
type AuditCount struct {
	Bucket  time.Time // the start of the bucket
	Outcome string
	N       int
}

// AuditQuery selects audit events for the admin console, newest first.
type AuditQuery struct {
	Username string // exact, "" for any
	Actor    string // the actor's username, exact; "" for any
	Action   string // exact, or a prefix ending in "." ("login."); "" for any
	Outcome  string // exact, "" for any
	Since    time.Time
	Until    time.Time // exclusive; zero for no end
	BeforeID int64     // only events with ID < BeforeID; 0 for no bound (paging)
	Limit    int
}

// AdminStore answers the admin console's questions. It reads only.
type AdminStore interface {
	// SearchUsers returns the matching users ordered by username and their total count.
	SearchUsers(ctx Context, q UserSearch) ([]*User, int, error)
	// FindSignedInSessions returns the signed-in sessions of a user that have not expired at now,
	// newest first.
	FindSignedInSessions(ctx Context, userID UserID, now time.Time) ([]*Session, error)
	// CountEnabledAdmins counts the admins who are not disabled.
	CountEnabledAdmins(ctx Context) (int, error)
	// FindFactorKinds returns the kinds of factor of each of the given users (users without
	// any are missing from the map).
	FindFactorKinds(ctx Context, ids []UserID) (map[UserID]FactorKinds, error)
	// FactorAdoption counts active users by factor kind, and the accounts awaiting
	// activation apart.
	FactorAdoption(ctx Context) (FactorAdoption, error)
	// CountAuditEvents counts the events since since whose action starts with one of
	// prefixes, by outcome and by bucket of width width (buckets start at multiples of width
	// since the Unix epoch). Empty buckets are left out.
	CountAuditEvents(ctx Context, prefixes []string, since time.Time, width time.Duration) ([]AuditCount, error)
	// QueryAuditEvents returns events matching q, newest first.
	QueryAuditEvents(ctx Context, q AuditQuery) ([]*AuditEvent, error)
}

// TicketAge counts open support tickets in one age band ("under a day", "1–3 days", ...).
type TicketAge struct {
	Label string
	Count int
}

// TicketStats gives the admin dashboard the open tickets by age, oldest band last. The support
// desk implements it; the dashboard shows "Support desk not set up" without one.
type TicketStats interface {
	TicketStats(ctx Context) ([]TicketAge, error)
}
