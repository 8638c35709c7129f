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

func insertSession(ctx context.Context, tx interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, s *latchkey.Session) error {
	return sessionInserted(tx.ExecContext(ctx, qInsertSession, sessionArgs(s)...))
}

const qInsertSession = `INSERT INTO sessions (id, sid, user_id, state, amr, password_at, mfa_at, created_at, last_seen_at, expires_at, ip, user_agent, verifier)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`

// sessionArgs are qInsertSession's arguments for s.
func sessionArgs(s *latchkey.Session) []any {
	return []any{s.ID, s.SID, s.UserID, string(s.State), strings.Join(s.AMR, " "), us(s.PasswordAt), usPtr(s.MFAAt), us(s.CreatedAt), us(s.LastSeenAt), us(s.ExpiresAt), s.IP, s.UserAgent, s.Verifier}
}

// sessionInserted is the error of qInsertSession's result: EConflict when the session exists.
func sessionInserted(_ sql.Result, err error) error {
	if isUnique(err) {
		return latchkey.Errorf(latchkey.EConflict, "The session exists already.")
	} else if err != nil {
		return fmt.Errorf("insert session: %w", err)
	}
	return nil
}

// CreateSession inserts s.
func (s *DB) CreateSession(ctx context.Context, sess *latchkey.Session) error {
	return insertSession(ctx, s.db, sess)
}

const sessionColumns = `id, sid, user_id, state, amr, password_at, mfa_at, created_at, last_seen_at, expires_at, ip, user_agent, verifier`

func scanSession(row interface{ Scan(...any) error }) (*latchkey.Session, error) {
	var sess latchkey.Session
	var amr string
	var pw, created, seen, expires int64
	var mfa sql.NullInt64
	if err := row.Scan(&sess.ID, &sess.SID, &sess.UserID, &sess.State, &amr, &pw, &mfa, &created, &seen, &expires, &sess.IP, &sess.UserAgent, &sess.Verifier); err != nil {
		return nil, err
	}
	sess.AMR = strings.Fields(amr)
	sess.PasswordAt, sess.MFAAt, sess.CreatedAt, sess.LastSeenAt, sess.ExpiresAt = at(pw), atPtr(mfa), at(created), at(seen), at(expires)
	return &sess, nil
}

// FindSessionByID returns ENotFound when there is no such session.
func (s *DB) FindSessionByID(ctx context.Context, id string) (*latchkey.Session, error) {
	sess, err := scanSession(s.queryRow(s.shortRead(ctx), `SELECT `+sessionColumns+` FROM sessions WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("session")
	} else if err != nil {
		return nil, fmt.Errorf("find session: %w", err)
	}
	return sess, nil
}

// qFindSessionBySID reads a session by its public ID. Its index, sessions_sid, is partial
// (of non-empty sids), and a database uses a partial index only for a query whose WHERE
// implies the index's own: sid = $1 alone does not (the parameter could be empty), so without
// the second term SQLite and PostgreSQL's generic plan read every session (plans_test.go).
const qFindSessionBySID = `SELECT ` + sessionColumns + ` FROM sessions WHERE sid = $1 AND sid <> ''`

// FindSessionBySID returns ENotFound when there is no session with that public ID.
func (s *DB) FindSessionBySID(ctx context.Context, sid string) (*latchkey.Session, error) {
	if sid == "" {
		return nil, notFound("session")
	}
	sess, err := scanSession(s.queryRow(ctx, qFindSessionBySID, sid))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("session")
	} else if err != nil {
		return nil, fmt.Errorf("find session: %w", err)
	}
	return sess, nil
}

// FindUserSessions returns the signed-in sessions of a user not expired at t, most recently
// active first.
func (s *DB) FindUserSessions(ctx context.Context, userID latchkey.UserID, t time.Time) ([]*latchkey.Session, error) {
	rows, err := s.query(ctx, `SELECT `+sessionColumns+` FROM sessions
		WHERE user_id = $1 AND state = $2 AND expires_at > $3 ORDER BY last_seen_at DESC, created_at DESC`,
		userID, string(latchkey.StateAuthenticated), us(t))
	if err != nil {
		return nil, fmt.Errorf("find user sessions: %w", err)
	}
	defer rows.Close()
	var list []*latchkey.Session
	for rows.Next() {
		sess, err := scanSession(rows)
		if err != nil {
			return nil, fmt.Errorf("find user sessions: %w", err)
		}
		list = append(list, sess)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find user sessions: %w", err)
	}
	return list, nil
}

// RotateSession replaces session oldID (with verifier oldVerifier) by sess in one
// transaction; ENotFound when there is no such session.
func (s *DB) RotateSession(ctx context.Context, oldID, oldVerifier string, sess *latchkey.Session) error {
	return s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE id = $1 AND verifier = $2`, oldID, oldVerifier)
		if err != nil {
			return fmt.Errorf("delete old session: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notFound("session")
		}
		return insertSession(ctx, tx, sess)
	})
}

// TouchSession sets LastSeenAt.
func (s *DB) TouchSession(ctx context.Context, id string, when time.Time) error {
	if _, err := s.exec(ctx, `UPDATE sessions SET last_seen_at = $1 WHERE id = $2`, us(when), id); err != nil {
		return fmt.Errorf("touch session: %w", err)
	}
	return nil
}

// DeleteSession removes one session.
func (s *DB) DeleteSession(ctx context.Context, id string) error {
	if _, err := s.exec(ctx, `DELETE FROM sessions WHERE id = $1`, id); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// DeleteUserSessions removes every session of a user except exceptID, and with them the
// user's unused activation codes for new devices, in one transaction: a code that an ended
// session made (a hijacked one, which "Sign out everywhere" is for) must not add a device
// afterwards. Codes are not tied to the session that made them (its ID changes at every
// re-authentication), so the kept session's go too; transfer codes, which a device makes,
// stay.
func (s *DB) DeleteUserSessions(ctx context.Context, userID latchkey.UserID, exceptID string) error {
	err := s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = $1 AND id <> $2`, userID, exceptID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM device_activations WHERE user_id = $1 AND kind = $2 AND used_at IS NULL`, userID, latchkey.ActivationNew)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete user sessions: %w", err)
	}
	return nil
}

// DeleteExpiredSessions removes sessions that expired before t, in batches of
// CleanupBatch rows.
func (s *DB) DeleteExpiredSessions(ctx context.Context, t time.Time) (int, error) {
	return s.deleteExpired(ctx, "sessions", t)
}

// FindThrottle returns the counter for key, or a zero Throttle.
func (s *DB) FindThrottle(ctx context.Context, key string) (latchkey.Throttle, error) {
	th := latchkey.Throttle{Key: key}
	var last int64
	err := s.scanWarm(ctx, `SELECT failures, last_failure_at FROM throttles WHERE key = $1`, []any{&th.Failures, &last}, key)
	if errors.Is(err, sql.ErrNoRows) {
		return th, nil
	} else if err != nil {
		return th, fmt.Errorf("find throttle: %w", err)
	}
	th.LastFailureAt = at(last)
	return th, nil
}

// qFindThrottles reads up to maxThrottles counters at once, by arity: the query of n keys
// is qFindThrottles[n-1], so that each is prepared once.
var qFindThrottles = func() (qs [maxThrottles]string) {
	for n := 1; n <= maxThrottles; n++ {
		ph := make([]string, n)
		for i := range ph {
			ph[i] = fmt.Sprintf("$%d", i+1)
		}
		qs[n-1] = `SELECT key, failures, last_failure_at FROM throttles WHERE key IN (` + strings.Join(ph, ", ") + `)`
	}
	return qs
}()

// anyArgs is ss as a statement's arguments.
func anyArgs(ss []string) []any {
	args := make([]any, len(ss))
	for i, v := range ss {
		args[i] = v
	}
	return args
}

// maxThrottles bounds the keys of one FindThrottles read.
const maxThrottles = 4

// FindThrottles returns the counters for keys, in their order, in one read (through readWarm:
// under load on SQLite, one job of the batch writer instead of one per key).
func (s *DB) FindThrottles(ctx context.Context, keys ...string) ([]latchkey.Throttle, error) {
	if len(keys) == 0 || len(keys) > maxThrottles {
		return nil, fmt.Errorf("find throttles: %d keys, want 1 to %d", len(keys), maxThrottles)
	}
	args := anyArgs(keys)
	type row struct {
		key            string
		failures, last int64
	}
	rows, err := collectWarm(ctx, s, qFindThrottles[len(keys)-1], func(sc scanner) (row, error) {
		var r row
		err := sc.Scan(&r.key, &r.failures, &r.last)
		return r, err
	}, "throttle", args...)
	if err != nil {
		return nil, fmt.Errorf("find throttles: %w", err)
	}
	out := make([]latchkey.Throttle, len(keys))
	for i, k := range keys {
		out[i].Key = k
		for _, r := range rows {
			if r.key == k {
				out[i].Failures, out[i].LastFailureAt = int(r.failures), at(r.last)
			}
		}
	}
	return out, nil
}

// qRecordFailure counts one more failure under a key and returns the count.
const qRecordFailure = `INSERT INTO throttles (key, failures, last_failure_at) VALUES ($1, 1, $2)
	 ON CONFLICT (key) DO UPDATE SET failures = throttles.failures + 1, last_failure_at = excluded.last_failure_at
	 RETURNING failures`

// RecordFailure atomically increments the counter for key and returns the new count.
func (s *DB) RecordFailure(ctx context.Context, key string, when time.Time) (int, error) {
	var n int
	err := s.write(ctx, func() error {
		return s.queryRow(ctx, qRecordFailure, key, us(when)).Scan(&n)
	})
	if err != nil {
		return 0, fmt.Errorf("record failure: %w", err)
	}
	return n, nil
}

// ReserveAttempt sets the counter for key to seen.Failures+1 if it still holds seen.Failures.
func (s *DB) ReserveAttempt(ctx context.Context, key string, seen latchkey.Throttle, when time.Time) (bool, error) {
	var res sql.Result
	var st *sql.Stmt
	var err error
	if seen.Failures == 0 {
		// No row, or a row at zero: insert, or update only a row still at zero.
		if st, err = s.hot.stmt(ctx, s.db, `INSERT INTO throttles (key, failures, last_failure_at) VALUES ($1, 1, $2)
			 ON CONFLICT (key) DO UPDATE SET failures = 1, last_failure_at = excluded.last_failure_at
			 WHERE throttles.failures = 0`); err == nil {
			res, err = s.execStmt(ctx, st, "", key, us(when))
		}
	} else {
		if st, err = s.hot.stmt(ctx, s.db, `UPDATE throttles SET failures = failures + 1, last_failure_at = $1 WHERE key = $2 AND failures = $3`); err == nil {
			res, err = s.execStmt(ctx, st, "", us(when), key, seen.Failures)
		}
	}
	if err != nil {
		return false, fmt.Errorf("reserve attempt: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("reserve attempt: %w", err)
	}
	return n == 1, nil
}

const qRefundAttempt = `UPDATE throttles SET failures = failures - 1,
		   last_failure_at = CASE WHEN failures = $2 THEN $3 ELSE last_failure_at END
		 WHERE key = $1 AND failures > 0`

// RefundAttempt takes back one counted attempt of key.
func (s *DB) RefundAttempt(ctx context.Context, key string, n int, prev time.Time) error {
	if _, err := s.exec(ctx, qRefundAttempt, key, n, us(prev)); err != nil {
		return fmt.Errorf("refund attempt: %w", err)
	}
	return nil
}

// ResetThrottle removes the counter for key.
func (s *DB) ResetThrottle(ctx context.Context, key string) error {
	if _, err := s.exec(ctx, `DELETE FROM throttles WHERE key = $1`, key); err != nil {
		return fmt.Errorf("reset throttle: %w", err)
	}
	return nil
}

// FindSetting returns ENotFound when the key is unset.
func (s *DB) FindSetting(ctx context.Context, key string) (string, error) {
	var v string
	err := s.queryRow(ctx, `SELECT value FROM settings WHERE key = $1`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", notFound("setting")
	} else if err != nil {
		return "", fmt.Errorf("find setting: %w", err)
	}
	return v, nil
}

// SetSetting inserts or replaces a value.
func (s *DB) SetSetting(ctx context.Context, key, value string) error {
	if _, err := s.exec(ctx,
		`INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value); err != nil {
		return fmt.Errorf("set setting: %w", err)
	}
	return nil
}

// ConsumeSetting deletes key if and only if it holds value, and reports whether it did.
func (s *DB) ConsumeSetting(ctx context.Context, key, value string) (bool, error) {
	res, err := s.exec(ctx, `DELETE FROM settings WHERE key = $1 AND value = $2`, key, value)
	if err != nil {
		return false, fmt.Errorf("consume setting: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}
