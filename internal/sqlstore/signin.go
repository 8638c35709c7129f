package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

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
	qUseRecovery   = `UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND hash = $3 AND used_at IS NULL`
	qLastAuditHash = `SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1`
	// qInsertAudit appends a chained audit entry on SQLite. Its ID is the statement's last
	// insert ID: RETURNING makes SQLite keep its rows in a table of their own, opened and
	// closed for each statement, which cost a third of the statement.
	qInsertAudit = `INSERT INTO audit_events (time, user_id, username, action, outcome, ip, user_agent, detail, ticket_id, actor_id, actor, prev_hash, hash)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`
	// qInsertAuditPending appends an unchained audit entry and its row in audit_pending on
	// PostgreSQL, in one round trip (auditchain.go).
	qInsertAuditPending = `WITH e AS (INSERT INTO audit_events (time, user_id, username, action, outcome, ip, user_agent, detail, ticket_id, actor_id, actor)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id)
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
// the TOTP step or the recovery code's use, rotates the session, resets the throttle counters and appends the audit entry
// in one transaction (latchkey.SecondFactorStore), pipelined on PostgreSQL (pipeline.go). On
// SQLite the transaction holds the write lock from BEGIN; on PostgreSQL the counter's row is
// locked first (by the DELETE that resets it, or FOR UPDATE when it is not reset), the replay
// guard is the conditional UPDATE of the credential's row (a concurrent one waits for this one
// and then finds the step used), and the audit entry is inserted unchained, for the chainer
// (auditchain.go): no lock of the whole trail.
func (s *DB) CompleteSecondFactor(ctx context.Context, c *latchkey.SecondFactorCompletion) error {
	var p txPlan
	keys := anyArgs(c.ResetThrottles)
	// When the counter admitted is one of those the sign-in resets (a TOTP sign-in: the
	// account's), they are all reset first and returned as they were: the admission reads the
	// counter it deletes, and on PostgreSQL the DELETE locks its row as FOR UPDATE did. A
	// refusal rolls the deletion back with everything else.
	resetFirst := c.Admit != nil && slices.Contains(c.ResetThrottles, c.AdmitKey)
	if resetFirst {
		th := latchkey.Throttle{Key: c.AdmitKey}
		s.planResetThrottles(&p, keys, &th, func() error { return c.Admit(th) })
	} else if c.Admit != nil {
		qAdmit := qFindThrottle
		if s.dialect == Postgres {
			qAdmit += " FOR UPDATE"
		}
		th := latchkey.Throttle{Key: c.AdmitKey}
		p.query("find throttle", func(scan func(...any) error) error {
			var last int64
			if err := scan(&th.Failures, &last); err != nil {
				return fmt.Errorf("find throttle: %w", err)
			}
			th.LastFailureAt = at(last)
			return nil
		}, func(int) error { return c.Admit(th) }, qAdmit, c.AdmitKey)
	}
	n := c.Session
	args := []any{c.OldSessionID, n.ID, n.SID, string(n.State), strings.Join(n.AMR, " "), us(n.PasswordAt), usPtr(n.MFAAt), us(n.CreatedAt), us(n.LastSeenAt), us(n.ExpiresAt), n.IP, n.UserAgent, n.UserID, n.Verifier, c.OldVerifier}
	rotated := func(rows int64, err error) error {
		if isUnique(err) {
			return latchkey.Errorf(latchkey.EConflict, "The session exists already.")
		} else if err != nil {
			return fmt.Errorf("rotate session: %w", err)
		} else if rows == 0 {
			return notFound("session")
		}
		return nil
	}
	if s.dialect == Postgres {
		// PostgreSQL writes every index entry of an updated row anyway (its expiry changes):
		// one statement serves both rotations.
		p.exec(rotated, qRotateSession, args...)
	} else {
		inPlace := false
		p.exec(func(rows int64, err error) error {
			inPlace = rows > 0
			if err != nil {
				return rotated(rows, err)
			}
			return nil
		}, qRotateSessionInPlace, args...)
		p.exec(rotated, qRotateSession, args...).onlyIf(func() bool { return !inPlace })
	}
	if c.TOTPCredentialID != 0 {
		p.exec(func(rows int64, err error) error {
			if err != nil {
				return fmt.Errorf("use totp step: %w", err)
			} else if rows != 1 {
				return latchkey.Errorf(latchkey.EConflict, "This code was used already.")
			}
			return nil
		}, qUseTOTPStep, c.TOTPStep, us(n.LastSeenAt), c.TOTPCredentialID)
	}
	if c.PushChallengeID != "" {
		p.exec(func(rows int64, err error) error {
			if err != nil {
				return fmt.Errorf("complete push challenge: %w", err)
			} else if rows != 1 {
				return latchkey.Errorf(latchkey.EConflict, "This sign-in request was used already.")
			}
			return nil
		}, qCompletePush, us(n.LastSeenAt), c.PushChallengeID, string(latchkey.PushApproved))
	}
	if c.RecoveryCodeHash != nil {
		// Like the TOTP step: of two completions with the same code, the second waits for
		// the first (the row's lock on PostgreSQL, the write lock on SQLite) and finds the
		// code used; a completion that fails (its flow rotated meanwhile) spends nothing.
		p.exec(func(rows int64, err error) error {
			if err != nil {
				return fmt.Errorf("use recovery code: %w", err)
			} else if rows != 1 {
				return latchkey.Errorf(latchkey.EConflict, "This recovery code has already been used.")
			}
			return nil
		}, qUseRecovery, us(n.LastSeenAt), n.UserID, c.RecoveryCodeHash)
	}
	if len(c.ResetThrottles) > 0 && !resetFirst {
		s.planResetThrottles(&p, keys, &latchkey.Throttle{}, nil)
	}
	return s.runPlan(ctx, c.Audit, &p)
}

// StartPasswordSession takes back the password's attempt, inserts the session, resets the
// throttle counters and appends the audit entry in one transaction
// (latchkey.SecondFactorStore), pipelined on PostgreSQL (pipeline.go): a right password
// costs one write after its hash instead of three (the refund, the session, the audit entry)
// or five (with the resets of a sign-in without a second factor).
func (s *DB) StartPasswordSession(ctx context.Context, ps *latchkey.PasswordSignIn) error {
	var p txPlan
	if ps.RefundKey != "" && !slices.Contains(ps.ResetThrottles, ps.RefundKey) {
		p.exec(failsAs("refund attempt"), qRefundAttempt, ps.RefundKey, ps.RefundN, us(ps.RefundPrev))
	}
	p.exec(func(_ int64, err error) error { return sessionInserted(nil, err) }, qInsertSession, sessionArgs(ps.Session)...)
	if len(ps.ResetThrottles) > 0 {
		s.planResetThrottles(&p, anyArgs(ps.ResetThrottles), &latchkey.Throttle{}, nil)
	}
	return s.runPlan(ctx, ps.Audit, &p)
}

// planResetThrottles adds to p the statements that delete the throttle counters of keys,
// scanning th's as it was (Failures 0 when there was none) and then calling then (when not
// nil). On PostgreSQL one DELETE returns them (and locks their rows, as FOR UPDATE would). On
// SQLite, where the transaction holds the write lock, a SELECT reads them and the DELETE,
// without RETURNING, runs only when there is one: a sign-in usually has no counter to reset,
// and RETURNING makes SQLite keep its rows in a table of its own, opened and closed for each
// statement, which cost more than the SELECT that replaces it.
func (s *DB) planResetThrottles(p *txPlan, keys []any, th *latchkey.Throttle, then func() error) {
	q := s.qResetThrottles(len(keys))
	found := 0
	end := func(n int) error {
		found = n
		if then != nil {
			return then()
		}
		return nil
	}
	scan := func(scan func(...any) error) error { return scanReset(th, scan) }
	if q.find == "" {
		p.query("reset throttles", scan, end, q.del, keys...)
		return
	}
	p.query("reset throttles", scan, end, q.find, keys...)
	p.exec(failsAs("reset throttles"), q.del, keys...).onlyIf(func() bool { return found > 0 })
}

// resetQueries are the statements that reset n throttle counters (planResetThrottles): on
// PostgreSQL del alone, with RETURNING; on SQLite find, then del when it found one.
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
	return s.audited(e, err)
}

// audited ends a transaction that appended e (when not nil) with the error err: e is
// unchained when the transaction was not committed; when it was, the chainer is woken and
// Options.Committed told.
func (s *DB) audited(e *latchkey.AuditEvent, err error) error {
	if err != nil {
		unchain(e)
	} else if e != nil {
		s.auditAppended()
		if s.committed != nil {
			s.committed(e)
		}
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
	for _, f := range []*string{&e.Username, &e.Action, &e.Outcome, &e.IP, &e.UserAgent, &e.Detail, &e.Actor} {
		*f = auditText(*f)
	}
}

// auditText is s as both databases store it: valid UTF-8 without NUL (each replaced by
// U+FFFD). PostgreSQL refuses either in text, and the entry, with it the record of what was
// done, would be lost; SQLite would keep bytes the trail's readers cannot show. The entry's
// hash covers the stored text, on both.
func auditText(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// unchain undoes what appendAudit set on e (when not nil) when its transaction was not
// committed.
func unchain(e *latchkey.AuditEvent) {
	if e != nil {
		e.ID, e.PrevHash, e.Hash = 0, nil, nil
	}
}

// auditArgs are the values of e's data columns, in the order of qInsertAuditPending's
// parameters (qInsertAudit's first ones).
func auditArgs(e *latchkey.AuditEvent) []any {
	return []any{us(e.Time), e.UserID, e.Username, e.Action, e.Outcome, e.IP, e.UserAgent, e.Detail, e.TicketID, e.ActorID, e.Actor}
}

// appendAudit appends e within tx, through the statements' prepared copies when the caller
// prepared them before BEGIN (txQueryRow). On SQLite it chains e to the last entry of the
// trail at once; on PostgreSQL it inserts e unchained with its row in audit_pending, for the
// chainer (auditchain.go), and the caller wakes the chainer after the commit.
func (s *DB) appendAudit(ctx context.Context, tx *sql.Tx, e *latchkey.AuditEvent) error {
	if s.dialect == Postgres {
		err := s.txQueryRow(ctx, tx, qInsertAuditPending, auditArgs(e)...).Scan(&e.ID)
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
	if res, err = s.txExec(ctx, tx, qInsertAudit, append(auditArgs(e), e.PrevHash, e.Hash)...); err == nil {
		e.ID, err = res.LastInsertId()
	}
	if err != nil {
		return fmt.Errorf("insert audit event: %w", err)
	}
	return nil
}
