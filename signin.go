package latchkey

import "time"

// SecondFactorCompletion is everything a sign-in writes when its second factor was proven,
// for CompleteSecondFactor to write in one transaction.
type SecondFactorCompletion struct {
	// OldSessionID and OldVerifier are the sign-in flow's session; Session, of the same user,
	// replaces it (the rotation after MFA): under the same ID with a new verifier, which
	// writes the row alone, or under a new ID.
	OldSessionID string
	OldVerifier  string
	Session      *Session
	// TOTPCredentialID, when not 0, is the credential whose code was accepted for TOTPStep:
	// the step becomes its last used step in the completion's transaction, only when the
	// credential is confirmed and TOTPStep > LastStep (the replay guard: else EConflict, and
	// of two completions with one code, one succeeds).
	TOTPCredentialID int64
	TOTPStep         int64
	// PushChallengeID, when not empty, is the approved push challenge that proved the factor:
	// its CompletedAt is set (once: a challenge completed already gives EConflict).
	PushChallengeID string
	// RecoveryCodeHash, when not nil, is the hash of the recovery code that proved the factor:
	// the session user's unused code with that hash is marked used (once: a code used
	// already, or unknown, gives EConflict), so that a code is spent only by the sign-in it
	// completes.
	RecoveryCodeHash []byte
	// ResetThrottles are throttle keys whose counters are removed (missing ones are skipped).
	ResetThrottles []string
	// Audit, when not nil, is appended to the audit trail, chained like AppendAuditEvent;
	// its ID and hashes are set.
	Audit *AuditEvent
	// Admit, when not nil, makes the completion the attempt's throttle check as well: first
	// in the transaction, before anything is written, the counter under AdmitKey is read
	// (and its row locked on PostgreSQL) and given to Admit. When Admit returns an error,
	// nothing is written and CompleteSecondFactor returns that error as it is. A sign-in with
	// the right code then costs one write transaction instead of two (a reservation and the
	// completion); wrong codes are still counted by ReserveAttempt before they are answered.
	AdmitKey string
	Admit    func(Throttle) error
}

// PasswordSignIn is everything a right password writes when it starts a new session (a
// sign-in flow waiting for its second factor, or a signed-in session), for
// StartPasswordSession to write in one transaction.
type PasswordSignIn struct {
	// RefundKey, when not empty, is the account's throttle key whose attempt, counted before
	// the password was checked, is taken back as RefundAttempt does with RefundN and
	// RefundPrev. A key also in ResetThrottles is reset instead.
	RefundKey  string
	RefundN    int
	RefundPrev time.Time
	// Session is inserted.
	Session *Session
	// ResetThrottles are throttle keys whose counters are removed (missing ones are skipped).
	ResetThrottles []string
	// Audit, when not nil, is appended to the audit trail, chained like AppendAuditEvent;
	// its ID and hashes are set.
	Audit *AuditEvent
}

// SecondFactorStore writes the end of a sign-in at once.
type SecondFactorStore interface {
	// CompleteSecondFactor records the TOTP step (if any), rotates the session, resets the
	// throttle counters and appends the audit entry, all in one transaction: either all of it
	// is written or none of it. It returns EConflict when the TOTP step is no longer newer
	// than the credential's last step or the credential is gone or unconfirmed (of two
	// concurrent completions with the same code, exactly one succeeds), or when the push
	// challenge is not approved or was completed already, or when the recovery code is not
	// an unused code of the user, and ENotFound when
	// the old session no longer exists or has another verifier (rotated or revoked
	// concurrently).
	CompleteSecondFactor(ctx Context, c *SecondFactorCompletion) error
	// StartPasswordSession takes back the password's attempt, inserts the session, resets
	// the throttle counters and appends the audit entry, all in one transaction: either all
	// of it is written or none of it. It returns EConflict when a session with the same ID
	// or SID exists.
	StartPasswordSession(ctx Context, p *PasswordSignIn) error
}
