package latchkey

import (
	"errors"
	"log/slog"
	"time"
)

// DeviceState is where a Latch device stands.
type DeviceState string

// Device states.
const (
	// DeviceActive: the device answers pushes and its offline codes work.
	DeviceActive DeviceState = "active"
	// DevicePending: an additional device waiting for approval from a device the user already
	// has (journey 8). It answers nothing and has no TOTP credential yet.
	DevicePending DeviceState = "pending"
)

// Device is a Latch app installation bound to a user. The server keeps only the device's
// public key (ECDSA P-256, PKIX DER); the private key never leaves the device.
type Device struct {
	ID        int64
	UserID    UserID
	Name      string
	Platform  string // "linux", "darwin", "windows", "ios", "android", … as the device says
	PublicKey []byte // PKIX DER
	State     DeviceState
	// Primary marks the device that sign-in pushes go to by default. Exactly one active
	// device of a user is primary; the store keeps that true.
	Primary bool
	// TOTPCredentialID is the device's offline-code credential (a confirmed TOTPCredential
	// with DeviceID set to this device), 0 while pending.
	TOTPCredentialID int64
	CreatedAt        time.Time
	LastUsedAt       *time.Time
	// KeyChangedAt is when the current public key was bound (activation or transfer).
	KeyChangedAt time.Time
	// Code is read by CreateDevice only: the activation code that admits the device (nil:
	// none), which the store links to it (DeviceActivatedInFlow) in the insert's transaction,
	// where it also decides, for an active device, what the code alone cannot:
	//   - a device admitted without another's approval must not come after an active device
	//     of the user made since the code (ErrDeviceNeedsApproval): of two codes made before
	//     any device and redeemed at once, only the first admits its device unapproved;
	//   - a device of a rollout sign-in's code (Code.FlowSID) must be the user's first factor
	//     (ErrNotFirstFactor): a sign-in that passed only the password adds no device beside
	//     the factor the user set up meanwhile.
	Code *DeviceActivation
}

// ErrDeviceNeedsApproval is CreateDevice's refusal of an active device whose code was made
// before another active device of the user (Device.Code): it must be approved by one.
var ErrDeviceNeedsApproval = errors.New("the device needs an existing device's approval")

// LogValue keeps the key out of logs.
func (d *Device) LogValue() slog.Value {
	return slog.GroupValue(slog.Int64("id", d.ID), slog.Int64("user_id", int64(d.UserID)))
}

// DeviceUpdate changes a device; nil fields stay as they are.
type DeviceUpdate struct {
	Name *string
	// Primary, when true, makes this device the primary one (and no other). False is ignored.
	Primary bool
	// LastUsedAt records use.
	LastUsedAt *time.Time
}

// Activation kinds.
const (
	// ActivationNew activates a new device for a user (journeys 6 and 8).
	ActivationNew = "activation"
	// ActivationTransfer moves an existing device's registration to a new key (journey 9).
	ActivationTransfer = "transfer"
)

// DeviceActivation is a one-time code that binds a device. Only a keyed hash of the code is
// stored (ID), so a database dump yields no usable code.
type DeviceActivation struct {
	ID     string // hex keyed hash of the code
	UserID UserID
	Kind   string // ActivationNew or ActivationTransfer
	// DeviceID is the device a transfer moves; 0 for ActivationNew.
	DeviceID int64
	// NeedsApproval: redeeming creates a pending device that an existing device must approve.
	NeedsApproval bool
	// FlowSID is the public ID of the rollout sign-in (a session in StateEnroll) that made the
	// code, "" for a code made by a signed-in session: a rollout's code admits the account's
	// first factor or nothing (Device.Code), and signs that rollout in once its device is
	// active (DeviceActivatedInFlow).
	FlowSID   string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    *time.Time
}

// PushState is where a push challenge stands.
type PushState string

// Push challenge states. Expiry is not stored: a pending challenge past ExpiresAt is expired.
const (
	PushPending  PushState = "pending"
	PushApproved PushState = "approved"
	PushDenied   PushState = "denied"
	PushExpired  PushState = "expired"
)

// Push challenge kinds.
const (
	// PushLogin approves a sign-in (journey 7).
	PushLogin = "login"
	// PushAddDevice approves an additional device (journey 8).
	PushAddDevice = "add_device"
)

// Reasons a push challenge was denied.
const (
	DenyUser        = "denied"       // the user pressed Deny
	DenyFraud       = "fraud"        // "This wasn't me"
	DenyWrongNumber = "wrong_number" // the number typed did not match
)

// PushChallenge is one push request to one device.
type PushChallenge struct {
	ID       string // 128 random bits, hex
	UserID   UserID
	DeviceID int64 // the device asked; only its signature can answer
	Kind     string
	// SessionID is the sign-in flow's session ID (PushLogin): only that flow can be
	// completed by this challenge.
	SessionID string
	// SubjectDeviceID is the pending device a PushAddDevice challenge approves.
	SubjectDeviceID int64
	// Number is what the browser shows and the user types in the app. It is never sent
	// to the device.
	Number      string
	Application string
	Browser     string
	IP          string
	CreatedAt   time.Time
	ExpiresAt   time.Time
	State       PushState
	Reason      string // one of the Deny* values when denied
	AnsweredAt  *time.Time
	// CompletedAt is when an approved sign-in challenge turned its flow into a session; a
	// challenge completes once.
	CompletedAt *time.Time
}

// PushAnswer is a device's answer to a push challenge with what goes with it, written in one
// transaction by AnswerPushChallenge.
type PushAnswer struct {
	ID     string    // the challenge
	State  PushState // PushApproved or PushDenied
	Reason string    // one of the Deny* values when denied
	At     time.Time
	// DeviceID, when not 0, is the answering device: its LastUsedAt becomes At (a device
	// removed in the meantime is no error).
	DeviceID int64
	// CountKey, when not empty, counts a failure under that key at At, as RecordFailure does.
	CountKey string
	// Audit, when not nil, is appended to the audit trail, chained as AppendAuditEvent does.
	Audit *AuditEvent
	// DenyOthersOf, when not 0, is the user whose other pending challenges are denied with
	// the same reason in the same transaction ("this wasn't me": every request of the
	// account still open, the reported one's flow and any other, is refused with it); their
	// IDs are returned in DeniedOthers, for the waiting browsers to be told.
	DenyOthersOf UserID
	DeniedOthers []string
	// Nonce, when not nil, is the answering request's nonce, recorded first in the same
	// transaction as UseDeviceNonce records it: a nonce used before fails the answer with
	// ErrNonceUsed, nothing written.
	Nonce *RequestNonce
}

// RequestNonce is a signed device request's nonce: kept until ExpiresAt, and the device's
// nonces that expired before Now dropped with it (UseDeviceNonce's arguments).
type RequestNonce struct {
	DeviceID       int64
	Nonce          string
	ExpiresAt, Now time.Time
}

// ErrNonceUsed is the error (EConflict) of a device request whose nonce was used before: a
// replayed request.
var ErrNonceUsed = &Error{Code: EConflict, Message: "This request was sent already."}

// StateAt returns the challenge's state at t, reporting a pending challenge past its expiry as
// PushExpired.
func (c *PushChallenge) StateAt(t time.Time) PushState {
	if c.State == PushPending && !t.Before(c.ExpiresAt) {
		return PushExpired
	}
	return c.State
}

// LogValue keeps the number out of logs.
func (c *PushChallenge) LogValue() slog.Value {
	return slog.GroupValue(slog.Int64("user_id", int64(c.UserID)), slog.Int64("device_id", c.DeviceID), slog.String("state", string(c.State)))
}

// DeviceStore persists Latch devices, their activation codes, request nonces and push
// challenges.
type DeviceStore interface {
	// CreateDeviceActivation inserts a.
	CreateDeviceActivation(ctx Context, a *DeviceActivation) error
	// UseDeviceActivation atomically marks the activation used at time at and returns it. An
	// unknown, used or expired (ExpiresAt ≤ at) code gives ENotFound, all alike; of two
	// concurrent calls with one code exactly one succeeds.
	UseDeviceActivation(ctx Context, id string, at time.Time) (*DeviceActivation, error)
	// DeviceActivatedInFlow reports whether an activation code (ActivationNew) of user that
	// the session with public ID sid made was redeemed.
	DeviceActivatedInFlow(ctx Context, user UserID, sid string) (bool, error)

	// CreateDevice inserts d and sets d.ID and d.CreatedAt. When d.State is DeviceActive, cred
	// (not nil) is inserted confirmed at d.CreatedAt and linked to d (cred.DeviceID,
	// d.TOTPCredentialID) in the same transaction. When the user has no other active device,
	// an active d becomes primary. A public key already registered gives EConflict; an active
	// d whose code is older than an active device of the user, ErrDeviceNeedsApproval.
	CreateDevice(ctx Context, d *Device, cred *TOTPCredential) error
	// ActivateDevice turns a pending device active at time at, inserting cred as for
	// CreateDevice. ENotFound when the device is not pending.
	ActivateDevice(ctx Context, id int64, cred *TOTPCredential, at time.Time) error
	// ReplaceDeviceKey binds an active device to a new key (switch device): public key, name
	// and platform change, KeyChangedAt = at, and its TOTP credential gets secret with
	// LastStep 0, in one transaction, which voids the device's other unused transfer codes.
	// From then on the old key's signatures, the old seed's codes and the codes the old key
	// made fail. ENotFound when the device is gone or not active; EConflict when the key is
	// registered already.
	ReplaceDeviceKey(ctx Context, id int64, publicKey []byte, name, platform string, secret []byte, at time.Time) error
	// FindDevice returns one device; ENotFound when there is none.
	FindDevice(ctx Context, id int64) (*Device, error)
	// FindDeviceWithUser returns a device and its user; ENotFound when there is no such
	// device.
	FindDeviceWithUser(ctx Context, id int64) (*Device, *User, error)
	// FindDevices returns a user's devices, pending ones included, primary first, then oldest
	// first.
	FindDevices(ctx Context, userID UserID) ([]*Device, error)
	// UpdateDevice changes a device of that user. ENotFound when nothing matched.
	UpdateDevice(ctx Context, userID UserID, id int64, u DeviceUpdate) error
	// DeleteDevice removes a device of that user with its TOTP credential and its pending
	// challenges, in one transaction; when it was primary, the oldest remaining active device
	// becomes primary. ENotFound when nothing matched. When an active device's
	// removal leaves the user without a factor, the
	// recovery codes go too, or, with keepOne (mfa: required), it returns ErrLastFactor and
	// removes nothing: decided in the transaction with the user locked, so that two removals
	// at once cannot take the last two.
	DeleteDevice(ctx Context, userID UserID, id int64, keepOne bool) error
	// UseDeviceNonce records a request nonce of a device until expiresAt. A nonce seen before
	// for that device gives ErrNonceUsed (a replayed request). Nonces that expired before at
	// may be removed on the way.
	UseDeviceNonce(ctx Context, deviceID int64, nonce string, expiresAt, at time.Time) error

	// CreatePushChallenge inserts c.
	CreatePushChallenge(ctx Context, c *PushChallenge) error
	// SendPushChallenge counts a push under countKey (when not empty, like RecordFailure),
	// inserts c and appends e (when not nil, chained like AppendAuditEvent) in one
	// transaction: a sign-in request costs one write. With limit > 0, a push that the count
	// would take past limit gives EThrottled and writes nothing (the cap holds for pushes
	// sent at once).
	SendPushChallenge(ctx Context, c *PushChallenge, countKey string, limit int, e *AuditEvent) error
	// FindPushChallenge returns ENotFound when there is no such challenge.
	FindPushChallenge(ctx Context, id string) (*PushChallenge, error)
	// PendingPushChallenges returns the challenges to a device that are pending and not
	// expired at time at, oldest first.
	PendingPushChallenges(ctx Context, deviceID int64, at time.Time) ([]*PushChallenge, error)
	// DevicePushChallenges is PendingPushChallenges while the device is active and holds
	// publicKey; ENotFound otherwise (removed, pending, or moved to another key).
	DevicePushChallenges(ctx Context, deviceID int64, publicKey []byte, at time.Time) ([]*PushChallenge, error)
	// FindPushChallengeWithSession returns the challenge id, and the session sessionID with
	// its user; ENotFound when either is missing. It checks neither expiry nor ownership.
	FindPushChallengeWithSession(ctx Context, id, sessionID string) (*PushChallenge, *Session, *User, error)
	// AnswerPushChallenge atomically moves challenge a.ID from pending to a.State
	// (PushApproved or PushDenied) with a.Reason, when it is still pending and not expired at
	// a.At, and in the same transaction writes the rest of the answer (see PushAnswer): an
	// answer costs one write. A challenge answered already gives EConflict, an expired one
	// EFlowExpired, an unknown one ENotFound, and then nothing is written. Of two concurrent
	// answers exactly one wins.
	AnswerPushChallenge(ctx Context, a *PushAnswer) error
	// CompletePushChallenge atomically sets CompletedAt on an approved, not yet completed
	// challenge. EConflict when it is not approved or already completed.
	CompletePushChallenge(ctx Context, id string, at time.Time) error
	// DeleteExpiredPushData removes challenges, activations and nonces that expired before t
	// and returns how many rows went.
	DeleteExpiredPushData(ctx Context, t time.Time) (int, error)
}
