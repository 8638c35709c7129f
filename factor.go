package latchkey

import (
	"errors"
	"log/slog"
	"time"
)

// Method names, as they appear in the JSON API's "methods" lists.
const (
	MethodTOTP     = "totp"
	MethodPush     = "push"
	MethodWebAuthn = "webauthn"
	MethodRecovery = "recovery"
)

// Authentication method references (RFC 8176) recorded on a session.
const (
	AMRPassword = "pwd"
	AMROTP      = "otp"
	AMRHardware = "hwk"
	// AMRSoftwareKey is a push approval: proof of possession of the device's key.
	AMRSoftwareKey = "swk"
	AMRMFA         = "mfa"
)

// ErrNotFirstFactor refuses a factor that had to be the user's first (the rollout's, under
// mfa: required) because the user has one already.
var ErrNotFirstFactor = errors.New("the user has a second factor already")

// ErrNoFactor refuses a user's own reset of all MFA (ResetMFA with a proof) when, in the
// reset's transaction, the user has no factor left: another request removed them after the
// reset's checks (of two resets with one code, the one that happened first).
var ErrNoFactor = errors.New("the user has no second factor left")

// ErrLastFactor refuses the removal of the user's last factor where one must stay (keepOne).
var ErrLastFactor = errors.New("the user's last second factor")

// TOTPCredential is an authenticator-app (RFC 6238) factor. A credential is pending until
// ConfirmedAt is set by a correct code from the new secret.
type TOTPCredential struct {
	ID     int64
	UserID UserID
	Name   string
	// Secret is the raw seed (20 bytes). It is plaintext only in memory: the store encrypts it
	// with AES-GCM, binding the ciphertext to this row.
	Secret []byte
	// LastStep is the highest RFC 6238 time step accepted for this credential; codes for any
	// step ≤ LastStep are refused (replay guard).
	LastStep int64
	// DeviceID is the Latch device whose offline codes these are; 0 for a standalone
	// authenticator app. Such credentials are created, re-keyed and removed with their device.
	DeviceID    int64
	CreatedAt   time.Time
	ConfirmedAt *time.Time
	LastUsedAt  *time.Time
}

// Confirmed reports whether the credential is enabled.
func (c *TOTPCredential) Confirmed() bool { return c.ConfirmedAt != nil }

// LogValue keeps the secret out of logs.
func (c *TOTPCredential) LogValue() slog.Value {
	return slog.GroupValue(slog.Int64("id", c.ID), slog.Int64("user_id", int64(c.UserID)))
}

// TOTPStore persists TOTP credentials. A confirmed credential's time step is recorded as used
// only with what its code proves, in that write's transaction (the replay guard): a sign-in
// (SecondFactorStore, SecondFactorCompletion's TOTPStep) or a reset of all MFA (ResetMFA,
// MFAResetProof's TOTPStep).
type TOTPStore interface {
	// FindTOTPCredentials returns all of a user's TOTP credentials, pending ones included,
	// oldest first.
	FindTOTPCredentials(ctx Context, userID UserID) ([]*TOTPCredential, error)
	// CreateTOTPCredential inserts a pending credential (ConfirmedAt nil) and sets its ID and
	// CreatedAt. Any earlier pending credential of the same user is deleted in the same
	// transaction, so a user has at most one pending enrolment.
	CreateTOTPCredential(ctx Context, c *TOTPCredential) error
	// ConfirmTOTPCredential marks a pending credential confirmed at time at, records step as
	// used, and, in the same transaction, replaces the user's recovery codes with
	// recoveryHashes when it is not nil. It returns ENotFound when the credential does not
	// exist or is already confirmed, and EConflict when step ≤ LastStep. With first, the
	// credential must be the user's first factor, decided in the transaction: when the user
	// has another (a confirmed app, a Latch device or a security key) it returns
	// ErrNotFirstFactor and changes nothing.
	ConfirmTOTPCredential(ctx Context, id int64, step int64, at time.Time, recoveryHashes [][]byte, first bool) error
	// DeleteTOTPCredential removes the credential of that user in one transaction; ENotFound
	// when nothing matched. When the removal leaves the user without a factor, the
	// recovery codes go too, or, with keepOne (mfa: required), it returns ErrLastFactor and
	// removes nothing: decided in the transaction with the user locked, so that two removals
	// at once cannot take the last two.
	DeleteTOTPCredential(ctx Context, userID UserID, id int64, keepOne bool) error
	// RenameTOTPCredential renames a standalone (not Latch) credential of that user;
	// ENotFound when there is none with that ID.
	RenameTOTPCredential(ctx Context, userID UserID, id int64, name string) error
}

// Primary factor values (User.PrimaryFactor).
const (
	FactorTOTP      = "totp"
	FactorPush      = "push"
	FactorKeyPrefix = "webauthn:"
)

// RecoveryCode is one single-use recovery code, stored only as a keyed hash.
type RecoveryCode struct {
	ID        int64
	UserID    UserID
	Hash      []byte
	CreatedAt time.Time
	UsedAt    *time.Time
}

// RecoveryCodeStore persists recovery codes. A code is spent only with what it proves, in
// that write's transaction: a sign-in (SecondFactorStore, SecondFactorCompletion's
// RecoveryCodeHash) or a reset of all MFA (ResetMFA, MFAResetProof's RecoveryCodeHash).
type RecoveryCodeStore interface {
	// FindRecoveryCodes returns a user's recovery codes, used ones included.
	FindRecoveryCodes(ctx Context, userID UserID) ([]*RecoveryCode, error)
	// ReplaceRecoveryCodes deletes the user's codes and inserts the new hashes, in one
	// transaction, so the old set stops working at once.
	ReplaceRecoveryCodes(ctx Context, userID UserID, hashes [][]byte, at time.Time) error
}
