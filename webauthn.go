package latchkey

import (
	"log/slog"
	"time"
)

// WebAuthnCredential is a security key or passkey (WebAuthn, FIDO2) registered by a user.
type WebAuthnCredential struct {
	ID     int64
	UserID UserID
	Name   string
	// CredentialID is the authenticator's credential ID; unique across all users.
	CredentialID []byte
	// Data is the WebAuthn library's credential record as JSON: public key, flags, AAGUID,
	// transports, attestation. Nothing in it is secret.
	Data []byte
	// SignCount is the highest signature counter seen.
	SignCount uint32
	// Discoverable is true for a client-side discoverable credential (a passkey).
	Discoverable bool
	// CloneWarning is set when an assertion came with a counter that did not increase: the key
	// may have been cloned. The sign-in is refused and the user and audit trail see the flag.
	CloneWarning bool
	CreatedAt    time.Time
	LastUsedAt   *time.Time
}

// LogValue keeps the record out of logs.
func (c *WebAuthnCredential) LogValue() slog.Value {
	return slog.GroupValue(slog.Int64("id", c.ID), slog.Int64("user_id", int64(c.UserID)))
}

// WebAuthn ceremony kinds.
const (
	CeremonyRegister = "register" // adding a key on the Security page or at rollout
	CeremonyLogin    = "login"    // the second step of a sign-in
	CeremonyPasskey  = "passkey"  // a sign-in with a discoverable credential, no username
	CeremonyConfirm  = "confirm"  // proving a current factor (reset all MFA)
)

// WebAuthnCeremony is the server half of an unfinished WebAuthn ceremony: the challenge and
// what the library needs to check the answer. It is single use and short lived, and bound to
// the session that started it.
type WebAuthnCeremony struct {
	ID        string // 128 bits, hex: keyed with the session and the kind (login.startCeremony)
	Kind      string
	UserID    UserID // 0 for a passkey sign-in
	SessionID string // the session that started it; "" for a passkey sign-in
	Data      []byte // the library's session data, JSON
	ExpiresAt time.Time
}

// WebAuthnStore persists security keys and ceremonies.
type WebAuthnStore interface {
	// FindWebAuthnCredentials returns a user's keys, oldest first.
	FindWebAuthnCredentials(ctx Context, userID UserID) ([]*WebAuthnCredential, error)
	// FindWebAuthnCredential returns the key with that credential ID, of any user; ENotFound
	// when there is none.
	FindWebAuthnCredential(ctx Context, credentialID []byte) (*WebAuthnCredential, error)
	// CreateWebAuthnCredential inserts c and sets its ID and CreatedAt; when recoveryHashes is
	// not nil it replaces the user's recovery codes in the same transaction. EConflict when
	// the credential ID is registered already; with first, ErrNotFirstFactor when the user
	// has a factor already (as ConfirmTOTPCredential).
	CreateWebAuthnCredential(ctx Context, c *WebAuthnCredential, recoveryHashes [][]byte, first bool) error
	// UseWebAuthnCredential records an assertion: the new counter (only ever raised), the
	// clone warning (only ever set) and the time. Without the warning, a counter that is not
	// 0 must rise, or it returns EConflict (a concurrent assertion raised it first);
	// ENotFound when the key is gone.
	UseWebAuthnCredential(ctx Context, id int64, signCount uint32, cloneWarning bool, at time.Time) error
	// RenameWebAuthnCredential renames a key of that user; ENotFound when there is none.
	RenameWebAuthnCredential(ctx Context, userID UserID, id int64, name string) error
	// DeleteWebAuthnCredential removes a key of that user in one transaction; ENotFound when
	// nothing matched. When the removal leaves the user without a factor, the
	// recovery codes go too, or, with keepOne (mfa: required), it returns ErrLastFactor and
	// removes nothing: decided in the transaction with the user locked, so that two removals
	// at once cannot take the last two.
	DeleteWebAuthnCredential(ctx Context, userID UserID, id int64, keepOne bool) error
	// CreateWebAuthnCeremony stores a ceremony; EConflict when one with its ID exists.
	CreateWebAuthnCeremony(ctx Context, c *WebAuthnCeremony) error
	// PutWebAuthnCeremony stores a ceremony, replacing one with its ID: a session's IDs are
	// one per kind, so that a session holds one unfinished ceremony of a kind at most.
	PutWebAuthnCeremony(ctx Context, c *WebAuthnCeremony) error
	// TakeWebAuthnCeremony deletes the ceremony and returns it, so each one is answered at most
	// once, also across nodes; ENotFound when it does not exist (or was taken). Expiry is the
	// caller's rule.
	TakeWebAuthnCeremony(ctx Context, id string) (*WebAuthnCeremony, error)
	// DeleteExpiredWebAuthnCeremonies removes ceremonies that expired before t.
	DeleteExpiredWebAuthnCeremonies(ctx Context, t time.Time) (int, error)
	// ResetMFA removes every factor of a user in one transaction: authenticator apps, Latch
	// devices (with their nonces, challenges and codes), security keys and recovery codes. It
	// returns the IDs of the devices it removed, those that existed at its commit, so that
	// their open event streams can be ended. audit, when not nil, is appended in the same
	// transaction. proof, when not nil, is the factor that proved a user's own reset, written
	// in the same transaction before anything is removed (MFAResetProof): when it cannot be,
	// nothing is removed and the audit entry is not written.
	ResetMFA(ctx Context, userID UserID, proof *MFAResetProof, audit *AuditEvent) (removedDevices []int64, err error)
}

// MFAResetProof is the factor that proved a user's own Reset all MFA, which ResetMFA writes
// in the reset's transaction, before the removals, as a sign-in writes its factor with its
// completion (SecondFactorCompletion): a reset that fails spends neither the code nor its
// time step, and of two resets with one code one happens. At most one of the two is set;
// neither for a security key, whose assertion was recorded when it was checked.
//
// A proof, even an empty one, makes the reset the user's own: first in the transaction,
// when the user has no factor left, it is refused with ErrNoFactor and changes nothing. The
// loser of two resets with one code learns so, where it would find its code gone with the
// rest and be told the code is wrong.
type MFAResetProof struct {
	// TOTPCredentialID, when not 0, is the user's confirmed credential whose code was
	// accepted for TOTPStep: the step becomes its last used step in the reset's transaction,
	// as a sign-in records it in its completion's (SecondFactorCompletion), and when it is no
	// longer newer than the credential's last used step (another request used the code, or
	// a later one, meanwhile) or the credential is gone, the reset is refused with EConflict.
	TOTPCredentialID int64
	TOTPStep         int64
	// RecoveryCodeHash, when not nil, is the hash of the recovery code: the user's unused
	// code with that hash is marked used; the reset is refused with ENotFound when the user
	// has no such code and with EConflict when it was used already.
	RecoveryCodeHash []byte
}
