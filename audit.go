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
	// ActorID and Actor are who took the action when it was taken from the admin console or
	// the support desk: on someone else's account, on a ticket, or refused there. UserID and
	// Username are then whom it concerned. Both are zero for a person's own actions and for
	// those taken with nobody signed in, where the user is the actor or there is none.
	ActorID  UserID
	Actor    string
	PrevHash []byte
	Hash     []byte
	// Seq is the entry's place in the chain, set by FindAuditChain (0 elsewhere). On SQLite
	// it is the ID; on PostgreSQL entries are chained after their transactions commit, in
	// the order the chainer finds them (sqlstore/auditchain.go).
	Seq int64
}

// ComputeHash returns SHA-256 over prev and every field of e except ID and the hashes, in a
// length-prefixed encoding so no two different events hash alike. The actor comes last and
// only when there is one, so that the entries written before it existed keep their hashes. The store sets
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
	if e.ActorID != 0 || e.Actor != "" {
		binary.BigEndian.PutUint64(n[:], uint64(e.ActorID))
		h.Write(n[:])
		put([]byte(e.Actor))
	}
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
	// AppendAuditEvent sets e.Time to UTC microseconds, inserts e and sets e.ID. The entry is
	// chained to the one before it (PrevHash, Hash) either at once, serialised against
	// concurrent appends (SQLite: e's hashes are set), or by ChainAuditEvents shortly after
	// the commit (PostgreSQL: they stay nil).
	AppendAuditEvent(ctx Context, e *AuditEvent) error
	// FindAuditEvents returns matching events in ID order, with their hashes once chained.
	FindAuditEvents(ctx Context, f AuditFilter) ([]*AuditEvent, error)
	// ChainAuditEvents chains the entries committed and not yet chained, and returns how
	// many are still waiting (those committed meanwhile).
	ChainAuditEvents(ctx Context) (pending int, err error)
	// FindAuditChain returns up to limit chained entries after place afterSeq, in chain
	// order, with Seq set. An entry whose row is gone comes back with its ID, place and
	// hashes only, so that its hash no longer matches.
	FindAuditChain(ctx Context, afterSeq int64, limit int) ([]*AuditEvent, error)
}

// Audit actions of the session list (issue 5).
const (
	ActionSessionRevoked     = "session.revoked"
	ActionSessionsRevokedAll = "session.revoked_all"
	ActionTimeZoneChanged    = "account.time_zone"
)
