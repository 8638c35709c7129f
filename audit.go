package latchkey

import (
	"crypto/sha256"
	"encoding/binary"
	"time"
)

// Audit actions.
const (
	ActionLogin             = "login.password"
	ActionLoginTOTP         = "login.totp"
	ActionLoginRecovery     = "login.recovery"
	ActionLogout            = "logout"
	ActionTOTPEnrolStarted  = "totp.enrol_started"
	ActionTOTPEnabled       = "totp.enabled"
	ActionTOTPDisabled      = "totp.disabled"
	ActionRecoveryGenerated = "recovery.generated"
	ActionPasswordChanged   = "password.changed"
	ActionReauthenticate    = "reauthenticate"
	ActionUserCreated       = "user.created"
	ActionSetupCompleted    = "setup.completed"
	ActionLockout           = "lockout"
	ActionCodeReplayed      = "totp.replayed"
	ActionDeviceActivation  = "device.activation_created"
	ActionDeviceAdded       = "device.added"
	ActionDevicePending     = "device.pending_approval"
	ActionDeviceRemoved     = "device.removed"
	ActionDeviceRenamed     = "device.renamed"
	ActionDevicePrimary     = "device.primary"
	ActionDeviceTransfer    = "device.transfer_created"
	ActionDeviceSwitched    = "device.switched"
	ActionDeviceRefused     = "device.request_refused"
	ActionPushSent          = "push.sent"
	ActionPushApproved      = "push.approved"
	ActionPushDenied        = "push.denied"
	ActionPushFraud         = "push.fraud"
	ActionPushRefused       = "push.refused"
	ActionLoginPush         = "login.push"
	ActionLoginWebAuthn     = "login.webauthn"
	ActionLoginPasskey      = "login.passkey"
	ActionWebAuthnAdded     = "webauthn.added"
	ActionWebAuthnRemoved   = "webauthn.removed"
	ActionWebAuthnRenamed   = "webauthn.renamed"
	ActionWebAuthnCounter   = "webauthn.counter_regression"
	ActionMFAReset          = "mfa.reset"
	ActionMFAEnrolled       = "mfa.enrolled"
	ActionMFAPrimary        = "mfa.primary"
	ActionTOTPRenamed       = "totp.renamed"
)

// Audit outcomes.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
	OutcomeDenied  = "denied" // throttled or locked
	// OutcomePasswordOK is a sign-in's password step that succeeded where a second factor
	// (or the rollout's enrolment) is still to come.
	OutcomePasswordOK = "password_ok"
)

// AuditEvent is one entry of the append-only, hash-chained audit trail.
type AuditEvent struct {
	ID        int64
	Time      time.Time // UTC, truncated to microseconds so every database stores it exactly
	UserID    UserID
	Username  string
	Action    string
	Outcome   string
	IP        string
	UserAgent string
	Detail    string
	TicketID  int64
	PrevHash  []byte
	Hash      []byte
}

// ComputeHash returns SHA-256 over prev and every field of e except ID and the hashes, in a
// length-prefixed encoding so no two different events hash alike. The store sets
// e.PrevHash to the previous entry's Hash (empty for the first) and e.Hash to
// e.ComputeHash(e.PrevHash) inside the appending transaction.
func (e *AuditEvent) ComputeHash(prev []byte) []byte {
	h := sha256.New()
	var n [8]byte
	put := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	put(prev)
	put([]byte(e.Time.UTC().Format(time.RFC3339Nano)))
	binary.BigEndian.PutUint64(n[:], uint64(e.UserID))
	h.Write(n[:])
	for _, s := range []string{e.Username, e.Action, e.Outcome, e.IP, e.UserAgent, e.Detail} {
		put([]byte(s))
	}
	binary.BigEndian.PutUint64(n[:], uint64(e.TicketID))
	h.Write(n[:])
	return h.Sum(nil)
}

// AuditFilter selects audit events, ordered by ID ascending.
type AuditFilter struct {
	AfterID int64 // only events with ID > AfterID
	UserID  *UserID
	Limit   int // 0 means no limit
}

// AuditStore persists the audit trail. It never updates or deletes an entry.
type AuditStore interface {
	// AppendAuditEvent sets e.Time to UTC microseconds, chains e to the last entry (PrevHash,
	// Hash) and inserts it, serialised against concurrent appends, and sets e.ID.
	AppendAuditEvent(ctx Context, e *AuditEvent) error
	// FindAuditEvents returns matching events in ID order.
	FindAuditEvents(ctx Context, f AuditFilter) ([]*AuditEvent, error)
}

// Audit actions of the session list (issue 5).
const (
	ActionSessionRevoked     = "session.revoked"
	ActionSessionsRevokedAll = "session.revoked_all"
	ActionTimeZoneChanged    = "account.time_zone"
)
