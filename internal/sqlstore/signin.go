package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/latchkey/latchkey"
)

// The statements of a completed sign-in, prepared once (hot.go).
const (
	qDeleteSession = `DELETE FROM sessions WHERE id = $1`
	qInsertSession = `INSERT INTO sessions (id, sid, user_id, state, amr, password_at, mfa_at, created_at, last_seen_at, expires_at, ip, user_agent)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`
	qUseTOTPStep = `UPDATE totp_credentials SET last_step = $1, last_used_at = $2
		 WHERE id = $3 AND confirmed_at IS NOT NULL AND last_step < $1`
	qDeleteThrottle = `DELETE FROM throttles WHERE key = $1`
	qFindThrottle   = `SELECT failures, last_failure_at FROM throttles WHERE key = $1`
	qCompletePush   = `UPDATE push_challenges SET completed_at = $1 WHERE id = $2 AND state = $3 AND completed_at IS NULL`
	qLastAuditHash  = `SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1`
	qInsertAudit    = `INSERT INTO audit_events (time, user_id, username, action, outcome, ip, user_agent, detail, ticket_id, prev_hash, hash)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id`
)

// CompleteSecondFactor checks the account's throttle counter (when c.Admit is set), records
// the TOTP step, rotates the session, resets the throttle counters and appends the audit entry
// in one transaction (latchkey.SecondFactorStore). On SQLite the transaction holds the write
// lock from BEGIN; on PostgreSQL the counter's row is locked first (FOR UPDATE), the replay
// guard is the conditional UPDATE of the credential's row (a concurrent one waits for this one
// and then finds the step used), and the audit trail's advisory lock is taken last, so that a
// transaction holding it never waits for a row.
func (s *DB) CompleteSecondFactor(ctx context.Context, c *latchkey.SecondFactorCompletion) error {
	e := c.Audit
	s.stampAudit(e)
	// Prepared before BEGIN: preparing takes a connection of the pool, and inside the
	// transaction (which on SQLite holds the write lock) that could wait for connections that
	// are themselves waiting for the lock.
	qAdmit := qFindThrottle
	if s.dialect == Postgres {
		qAdmit += " FOR UPDATE"
	}
	for _, q := range []string{qAdmit, qDeleteSession, qUseTOTPStep, qCompletePush, qInsertSession, qDeleteThrottle, qLastAuditHash, qInsertAudit} {
		if _, err := s.hot.stmt(ctx, s.db, q); err != nil {
			return fmt.Errorf("prepare: %w", err)
		}
	}
	err := s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if c.Admit != nil {
			th := latchkey.Throttle{Key: c.AdmitKey}
			var last int64
			err := s.txQueryRow(ctx, tx, qAdmit, c.AdmitKey).Scan(&th.Failures, &last)
			if err == nil {
				th.LastFailureAt = at(last)
			} else if !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("find throttle: %w", err)
			}
			if err := c.Admit(th); err != nil {
				return err
			}
		}
		res, err := s.txExec(ctx, tx, qDeleteSession, c.OldSessionID)
		if err != nil {
			return fmt.Errorf("delete old session: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notFound("session")
		}
		if c.TOTPCredentialID != 0 {
			res, err := s.txExec(ctx, tx, qUseTOTPStep, c.TOTPStep, us(c.Session.LastSeenAt), c.TOTPCredentialID)
			if err != nil {
				return fmt.Errorf("use totp step: %w", err)
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return latchkey.Errorf(latchkey.EConflict, "This code was used already.")
			}
		}
		if c.PushChallengeID != "" {
			res, err := s.txExec(ctx, tx, qCompletePush, us(c.Session.LastSeenAt), c.PushChallengeID, string(latchkey.PushApproved))
			if err != nil {
				return fmt.Errorf("complete push challenge: %w", err)
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return latchkey.Errorf(latchkey.EConflict, "This sign-in request was used already.")
			}
		}
		n := c.Session
		_, err = s.txExec(ctx, tx, qInsertSession, n.ID, n.SID, n.UserID, string(n.State), strings.Join(n.AMR, " "), us(n.PasswordAt), usPtr(n.MFAAt), us(n.CreatedAt), us(n.LastSeenAt), us(n.ExpiresAt), n.IP, n.UserAgent)
		if isUnique(err) {
			return latchkey.Errorf(latchkey.EConflict, "The session exists already.")
		} else if err != nil {
			return fmt.Errorf("insert session: %w", err)
		}
		if len(c.ResetThrottles) > 0 {
			for _, key := range c.ResetThrottles {
				if _, err := s.txExec(ctx, tx, qDeleteThrottle, key); err != nil {
					return fmt.Errorf("reset throttle: %w", err)
				}
			}
		}
		if e != nil {
			return s.appendAudit(ctx, tx, e)
		}
		return nil
	})
	if err != nil {
		unchain(e)
	}
	return err
}

// stampAudit gives e (when not nil) the store's time when it has none, in the precision the
// store keeps, before a transaction appends it.
func (s *DB) stampAudit(e *latchkey.AuditEvent) {
	if e == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
}

// unchain undoes what appendAudit set on e (when not nil) when its transaction was not
// committed.
func unchain(e *latchkey.AuditEvent) {
	if e != nil {
		e.ID, e.PrevHash, e.Hash = 0, nil, nil
	}
}

// appendAudit chains e to the last entry of the trail and inserts it within tx, through the
// statements' prepared copies when the caller prepared them before BEGIN (txQueryRow).
func (s *DB) appendAudit(ctx context.Context, tx *sql.Tx, e *latchkey.AuditEvent) error {
	if s.dialect == Postgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7305002)`); err != nil {
			return fmt.Errorf("lock audit trail: %w", err)
		}
	}
	var prev []byte
	err := s.txQueryRow(ctx, tx, qLastAuditHash).Scan(&prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read last audit hash: %w", err)
	}
	if prev == nil {
		prev = []byte{}
	}
	e.PrevHash = prev
	e.Hash = e.ComputeHash(prev)
	err = s.txQueryRow(ctx, tx, qInsertAudit, us(e.Time), e.UserID, e.Username, e.Action, e.Outcome, e.IP, e.UserAgent, e.Detail, e.TicketID, e.PrevHash, e.Hash).Scan(&e.ID)
	if err != nil {
		return fmt.Errorf("insert audit event: %w", err)
	}
	return nil
}
