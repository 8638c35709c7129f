package latchkey

import (
	"log/slog"
	"time"
)

// UserID identifies a user. Zero means "no user".
type UserID int64

// Role is what a user may do beyond managing their own account.
type Role string

// Roles.
const (
	RoleUser    Role = "user"
	RoleSupport Role = "support"
	RoleAdmin   Role = "admin"
)

// Valid reports whether r is one of the known roles.
func (r Role) Valid() bool { return r == RoleUser || r == RoleSupport || r == RoleAdmin }

// User is an account. Username is stored normalised (see NormalizeUsername in internal/login).
type User struct {
	ID           UserID
	Username     string
	Email        string
	Role         Role
	PasswordHash string // PHC string, e.g. "$argon2id$v=19$m=47104,t=1,p=1$salt$hash"
	Disabled     bool
	// PrimaryFactor is the second factor the user asked to be offered first: FactorTOTP,
	// FactorPush, or FactorKeyPrefix followed by a security key's ID. Empty: the default
	// order (push, authenticator app, security key).
	PrimaryFactor string
	// TimeZone is the IANA name of the user's time zone (e.g. "Europe/Madrid"); "" means the
	// server's default. The workday session ends at the workday end in this zone.
	TimeZone string
	// UsernameKey is read by CreateUser only: the username's look-alike key (its UTS #39
	// skeleton, login.UsernameKey), which no two users share. "" skips the check.
	UsernameKey string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// LogValue keeps the password hash out of logs.
func (u *User) LogValue() slog.Value {
	return slog.GroupValue(slog.Int64("id", int64(u.ID)), slog.String("username", u.Username))
}

// UserFilter selects users. Nil fields do not filter.
type UserFilter struct {
	ID       *UserID
	Username *string
	Role     *Role
	Offset   int
	Limit    int // 0 means no limit
}

// UserUpdate changes the non-nil fields of a user.
type UserUpdate struct {
	Email        *string
	Role         *Role
	PasswordHash *string
	Disabled     *bool
	// PrimaryFactor sets User.PrimaryFactor; "" restores the default order.
	PrimaryFactor *string
	// TimeZone sets User.TimeZone; "" restores the server's default.
	TimeZone *string
	// KeepAnAdmin refuses the update with EConflict when it would leave no enabled
	// administrator, checked in the same transaction (two admins demoting each other at the
	// same moment cannot both succeed).
	KeepAnAdmin bool
	// Audit, when not nil, is appended in the update's transaction: the change and its
	// audit entry are written together or not at all.
	Audit *AuditEvent
}

// UserStore persists users.
type UserStore interface {
	// FindUserByID returns ENotFound when there is no such user.
	FindUserByID(ctx Context, id UserID) (*User, error)
	// FindUserByUsername returns ENotFound when there is no such user. The username is
	// matched exactly; callers normalise it first.
	FindUserByUsername(ctx Context, username string) (*User, error)
	// FindUsers returns the matching users ordered by ID and the total count ignoring
	// Offset and Limit.
	FindUsers(ctx Context, f UserFilter) ([]*User, int, error)
	// CreateUser inserts u and sets its ID, CreatedAt and UpdatedAt. It returns EConflict
	// when the username is taken.
	// CreateUser gives EConflict when the username, or its look-alike key, is taken.
	CreateUser(ctx Context, u *User) error
	// UpdateUser applies upd and returns the updated user, or ENotFound.
	UpdateUser(ctx Context, id UserID, upd UserUpdate) (*User, error)
}
