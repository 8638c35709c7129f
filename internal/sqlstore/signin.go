package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/latchkey/latchkey"
)

// The statements of a completed sign-in, prepared once (hot.go).
const (
	// The rotation after MFA replaces the flow's row in place: an UPDATE changes only the
	// indexes of the columns it sets, where a DELETE and an INSERT changed every index of the
	// table twice, each at a random page. The user cannot change (WHERE user_id), and the
	// flow must still have the verifier its cookie proved (WHERE verifier): of two concurrent
	// completions, the second finds it changed.
	qRotateSession = `UPDATE sessions SET id = $2, sid = $3, verifier = $14, state = $4, amr = $5, password_at = $6, mfa_at = $7,
		 created_at = $8, last_seen_at = $9, expires_at = $10, ip = $11, user_agent = $12
		 WHERE id = $1 AND verifier = $15 AND user_id = $13`
	// qRotateSessionInPlace is the rotation that keeps the flow's ID and SID, which is every
	// rotation internal/login makes since migration 0013 (a new verifier, the same selector):
	// SQLite rewrites the index entries of every column an UPDATE sets, changed or not, and
	// those of the ID (twice) and of the SID are at random pages; this one sets neither, and
	// writes the row and the expiry's index alone. When the ID or the SID differs (or the flow
	// is gone), it changes no row and qRotateSession runs after it.
	qRotateSessionInPlace = `UPDATE sessions SET verifier = $14, state = $4, amr = $5, password_at = $6, mfa_at = $7,
		 created_at = $8, last_seen_at = $9, expires_at = $10, ip = $11, user_agent = $12
		 WHERE id = $1 AND verifier = $15 AND user_id = $13 AND sid = $3 AND id = $2`
	qUseTOTPStep = `UPDATE totp_credentials SET last_step = $1, last_used_at = $2
		 WHERE id = $3 AND confirmed_at IS NOT NULL AND last_step < $1`
	qFindThrottle  = `SELECT failures, last_failure_at FROM throttles WHERE key = $1`
	qCompletePush  = `UPDATE push_challenges SET completed_at = $1 WHERE id = $2 AND state = $3 AND completed_at IS NULL`
	qLastAuditHash = `SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1`
	// qInsertAudit appends a chained audit entry on SQLite. Its ID is the statement's last
	// insert ID: RETURNING makes SQLite keep its rows in a table of their own, opened and
	// closed for each statement, which cost a third of the statement.
	qInsertAudit = `INSERT INTO audit_events (time, user_id, username, action, outcome, ip, user_agent, detail, ticket_id, prev_hash, hash)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`
	// qInsertAuditPending appends an unchained audit entry and its row in audit_pending on
	// PostgreSQL, in one round trip (auditchain.go).
	qInsertAuditPending = `WITH e AS (INSERT INTO audit_events (time, user_id, username, action, outcome, ip, user_agent, detail, ticket_id)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id)
			 INSERT INTO audit_pending (event_id) SELECT id FROM e RETURNING event_id`
)

// auditStatements are the statements appendAudit runs in s's dialect, for the callers that
// prepare theirs before BEGIN.
func (s *DB) auditStatements() []string {
	if s.dialect == Postgres {
		return []string{qInsertAuditPending}
	}
	return []string{qLastAuditHash, qInsertAudit}
}

// CompleteSecondFactor checks the account's throttle counter (when c.Admit is set), records
// the TOTP step, rotates the session, resets the throttle counters and appends the audit entry
// in one transaction (latchkey.SecondFactorStore). On SQLite the transaction holds the write
// lock from BEGIN; on PostgreSQL the counter's row is locked first (by the DELETE that resets
// it, or FOR UPDATE when it is not reset), the replay
// guard is the conditional UPDATE of the credential's row (a concurrent one waits for this one
// and then finds the step used), and the audit entry is inserted unchained, for the chainer
// (auditchain.go): no lock of the whole trail.
func (s *DB) CompleteSecondFactor(ctx context.Context, c *latchkey.SecondFactorCompletion) error {
	if s.dialect == Postgres {
		return s.completeSecondFactorPipelined(ctx, c)
	}
	// Prepared before BEGIN: preparing takes a connection of the pool, and inside the
	// transaction (which on SQLite holds the write lock) that could wait for connections that
	// are themselves waiting for the lock.
	qAdmit := qFindThrottle
	if s.dialect == Postgres {
		qAdmit += " FOR UPDATE"
	}
	// When the counter admitted is one of those the sign-in resets (a TOTP sign-in: the
	// account's), they are all reset first and returned as they were (resetThrottles): the
	// admission reads the counter it deletes, and on PostgreSQL the DELETE locks its row as
	// FOR UPDATE did. The caller's error rolls the deletion back with everything else.
	resetFirst := c.Admit != nil && slices.Contains(c.ResetThrottles, c.AdmitKey)
	qs := append([]string{qAdmit, qRotateSessionInPlace, qRotateSession, qUseTOTPStep, qCompletePush}, s.auditStatements()...)
	var qReset resetQueries
	if len(c.ResetThrottles) > 0 {
		qReset = s.qResetThrottles(len(c.ResetThrottles))
		qs = append(qs, qReset.statements()...)
	}
	for _, q := range qs {
		if _, err := s.hot.stmt(ctx, s.db, q); err != nil {
			return fmt.Errorf("prepare: %w", err)
		}
	}
	return s.auditedTx(ctx, c.Audit, func(ctx context.Context, tx *sql.Tx) error {
		if resetFirst {
			th, err := s.resetThrottles(ctx, tx, qReset, c.ResetThrottles, c.AdmitKey)
			if err != nil {
				return err
			}
			if err := c.Admit(th); err != nil {
				return err
			}
		} else if c.Admit != nil {
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
		n := c.Session
		args := []any{c.OldSessionID, n.ID, n.SID, string(n.State), strings.Join(n.AMR, " "), us(n.PasswordAt), usPtr(n.MFAAt), us(n.CreatedAt), us(n.LastSeenAt), us(n.ExpiresAt), n.IP, n.UserAgent, n.UserID, n.Verifier, c.OldVerifier}
		rotated := false
		for _, q := range []string{qRotateSessionInPlace, qRotateSession} {
			res, err := s.txExec(ctx, tx, q, args...)
			if err != nil {
				return rotateError(err)
			}
			if n, _ := res.RowsAffected(); n > 0 {
				rotated = true
				break
			}
		}
		if !rotated {
			return notFound("session")
		}
		if c.TOTPCredentialID != 0 {
			res, err := s.txExec(ctx, tx, qUseTOTPStep, c.TOTPStep, us(c.Session.LastSeenAt), c.TOTPCredentialID)
			if err != nil {
				return fmt.Errorf("use totp step: %w", err)
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return errStepUsed
			}
		}
		if c.PushChallengeID != "" {
			res, err := s.txExec(ctx, tx, qCompletePush, us(c.Session.LastSeenAt), c.PushChallengeID, string(latchkey.PushApproved))
			if err != nil {
				return fmt.Errorf("complete push challenge: %w", err)
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return errPushUsed
			}
		}
		if len(c.ResetThrottles) > 0 && !resetFirst {
			if _, err := s.resetThrottles(ctx, tx, qReset, c.ResetThrottles, ""); err != nil {
				return err
			}
		}
		return nil
	})
}

// The answers of a completion that another one got to first.
var (
	errStepUsed = latchkey.Errorf(latchkey.EConflict, "This code was used already.")
	errPushUsed = latchkey.Errorf(latchkey.EConflict, "This sign-in request was used already.")
)

// rotateError is the error of the rotation's statement.
func rotateError(err error) error {
	if isUnique(err) {
		return latchkey.Errorf(latchkey.EConflict, "The session exists already.")
	}
	return fmt.Errorf("rotate session: %w", err)
}

// completeSecondFactorPipelined is CompleteSecondFactor on PostgreSQL: the same statements in
// the same order, checked the same way, sent at once (pipeline.go). The counter admitted is
// locked first, by the DELETE that resets it or by FOR UPDATE; the rotation is one UPDATE
// (the in-place one of SQLite saves index writes that PostgreSQL makes anyway, since the
// expiry's column changes).
func (s *DB) completeSecondFactorPipelined(ctx context.Context, c *latchkey.SecondFactorCompletion) error {
	var p pgPipe
	resetFirst := c.Admit != nil && slices.Contains(c.ResetThrottles, c.AdmitKey)
	keys := make([]any, len(c.ResetThrottles))
	for i, k := range c.ResetThrottles {
		keys[i] = k
	}
	qReset := s.qResetThrottles(len(c.ResetThrottles))
	if c.Admit != nil {
		th := latchkey.Throttle{Key: c.AdmitKey}
		admit := func(int) error { return c.Admit(th) }
		if resetFirst {
			p.query("reset throttles", func(scan func(...any) error) error { return scanReset(&th, scan) }, admit, qReset.del, keys...)
		} else {
			p.query("find throttle", func(scan func(...any) error) error {
				var last int64
				if err := scan(&th.Failures, &last); err != nil {
					return fmt.Errorf("find throttle: %w", err)
				}
				th.LastFailureAt = at(last)
				return nil
			}, admit, qFindThrottle+" FOR UPDATE", c.AdmitKey)
		}
	}
	n := c.Session
	p.exec(func(rows int64, err error) error {
		if err != nil {
			return rotateError(err)
		} else if rows == 0 {
			return notFound("session")
		}
		return nil
	}, qRotateSession, c.OldSessionID, n.ID, n.SID, string(n.State), strings.Join(n.AMR, " "), us(n.PasswordAt), usPtr(n.MFAAt), us(n.CreatedAt), us(n.LastSeenAt), us(n.ExpiresAt), n.IP, n.UserAgent, n.UserID, n.Verifier, c.OldVerifier)
	if c.TOTPCredentialID != 0 {
		p.exec(func(rows int64, err error) error {
			if err != nil {
				return fmt.Errorf("use totp step: %w", err)
			} else if rows != 1 {
				return errStepUsed
			}
			return nil
		}, qUseTOTPStep, c.TOTPStep, us(n.LastSeenAt), c.TOTPCredentialID)
	}
	if c.PushChallengeID != "" {
		p.exec(func(rows int64, err error) error {
			if err != nil {
				return fmt.Errorf("complete push challenge: %w", err)
			} else if rows != 1 {
				return errPushUsed
			}
			return nil
		}, qCompletePush, us(n.LastSeenAt), c.PushChallengeID, string(latchkey.PushApproved))
	}
	if len(c.ResetThrottles) > 0 && !resetFirst {
		p.exec(func(_ int64, err error) error {
			if err != nil {
				return fmt.Errorf("reset throttles: %w", err)
			}
			return nil
		}, qReset.del, keys...)
	}
	return s.pipelinedTx(ctx, c.Audit, &p)
}

// resetQueries are the statements that reset n throttle counters. On PostgreSQL one DELETE
// returns them (and locks their rows, as FOR UPDATE would): find is empty. On SQLite, where
// the transaction holds the write lock, find reads them and del, without RETURNING, runs only
// when there is one: a sign-in usually has no counter to reset, and RETURNING makes SQLite
// keep its rows in a table of its own, opened and closed for each statement, which cost more
// than the SELECT that replaces it.
type resetQueries struct{ find, del string }

// qResetThrottles returns the statements that reset n throttle counters in s's dialect.
func (s *DB) qResetThrottles(n int) resetQueries {
	i := 0
	if s.dialect == Postgres {
		i = 1
	}
	if n < len(resetThrottlesQueries[i]) {
		return resetThrottlesQueries[i][n]
	}
	return buildResetThrottles(n, i == 1)
}

var resetThrottlesQueries = func() (q [2][4]resetQueries) {
	for i := range q {
		for n := range q[i] {
			q[i][n] = buildResetThrottles(n, i == 1)
		}
	}
	return q
}()

func buildResetThrottles(n int, returning bool) resetQueries {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "$%d", i+1)
	}
	in := "key IN (" + b.String() + ")"
	if returning {
		return resetQueries{del: "DELETE FROM throttles WHERE " + in + " RETURNING key, failures, last_failure_at"}
	}
	return resetQueries{
		find: "SELECT key, failures, last_failure_at FROM throttles WHERE " + in,
		del:  "DELETE FROM throttles WHERE " + in,
	}
}

// statements returns the statements of q, to prepare.
func (q resetQueries) statements() []string {
	if q.find == "" {
		return []string{q.del}
	}
	return []string{q.find, q.del}
}

// resetThrottles deletes the counters of keys within tx (q is s.qResetThrottles(len(keys)))
// and returns the one of key as it was before (Failures 0 when there was none).
func (s *DB) resetThrottles(ctx context.Context, tx *sql.Tx, q resetQueries, keys []string, key string) (latchkey.Throttle, error) {
	th := latchkey.Throttle{Key: key}
	args := make([]any, len(keys))
	for i, k := range keys {
		args[i] = k
	}
	query := q.del
	if q.find != "" {
		query = q.find
	}
	rows, err := s.txQuery(ctx, tx, query, args...)
	if err != nil {
		return th, fmt.Errorf("reset throttles: %w", err)
	}
	defer rows.Close()
	found := false
	for rows.Next() {
		if err := scanReset(&th, rows.Scan); err != nil {
			return th, err
		}
		found = true
	}
	if err := rows.Err(); err != nil {
		return th, fmt.Errorf("reset throttles: %w", err)
	}
	if q.find != "" && found {
		rows.Close()
		if _, err := s.txExec(ctx, tx, q.del, args...); err != nil {
			return th, fmt.Errorf("reset throttles: %w", err)
		}
	}
	return th, nil
}

// scanReset scans a throttle counter that a sign-in resets (key, failures, last failure) into
// th when it is th's.
func scanReset(th *latchkey.Throttle, scan func(...any) error) error {
	var k string
	var failures int
	var last int64
	if err := scan(&k, &failures, &last); err != nil {
		return fmt.Errorf("reset throttles: %w", err)
	}
	if k == th.Key {
		th.Failures, th.LastFailureAt = failures, at(last)
	}
	return nil
}

// auditedTx runs f and then appends e (when not nil) in one transaction (s.tx): e is stamped
// before (stampAudit) and unchained when the transaction is not committed (unchain).
func (s *DB) auditedTx(ctx context.Context, e *latchkey.AuditEvent, f func(context.Context, *sql.Tx) error) error {
	s.stampAudit(e)
	err := s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if err := f(ctx, tx); err != nil {
			return err
		}
		if e != nil {
			return s.appendAudit(ctx, tx, e)
		}
		return nil
	})
	if err != nil {
		unchain(e)
	} else if e != nil {
		s.auditAppended()
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

// appendAudit appends e within tx, through the statements' prepared copies when the caller
// prepared them before BEGIN (txQueryRow). On SQLite it chains e to the last entry of the
// trail at once; on PostgreSQL it inserts e unchained with its row in audit_pending, for the
// chainer (auditchain.go), and the caller wakes the chainer after the commit.
func (s *DB) appendAudit(ctx context.Context, tx *sql.Tx, e *latchkey.AuditEvent) error {
	if s.dialect == Postgres {
		err := s.txQueryRow(ctx, tx, qInsertAuditPending, us(e.Time), e.UserID, e.Username, e.Action, e.Outcome, e.IP, e.UserAgent, e.Detail, e.TicketID).Scan(&e.ID)
		if err != nil {
			return fmt.Errorf("insert audit event: %w", err)
		}
		return nil
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
	var res sql.Result
	if res, err = s.txExec(ctx, tx, qInsertAudit, us(e.Time), e.UserID, e.Username, e.Action, e.Outcome, e.IP, e.UserAgent, e.Detail, e.TicketID, e.PrevHash, e.Hash); err == nil {
		e.ID, err = res.LastInsertId()
	}
	if err != nil {
		return fmt.Errorf("insert audit event: %w", err)
	}
	return nil
}
