package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/latchkey/latchkey"
)

const sessionWithUserQuery = `SELECT ` + sessionWithUserColumns + `
	FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1`

// sessionWithUserColumns are the columns of a session s and its user u (sessionUserRow).
const sessionWithUserColumns = `s.id, s.sid, s.user_id, s.state, s.amr, s.password_at, s.mfa_at, s.created_at, s.last_seen_at, s.expires_at, s.ip, s.user_agent, s.verifier,
	u.id, u.username, u.email, u.role, u.password_hash, u.disabled, u.primary_factor, u.time_zone, u.created_at, u.updated_at`

// FindSessionWithUser returns the session id and its user, read together in one query (a
// join), for the hot path of every signed-in request (forward-auth, pages, OIDC). It returns
// ENotFound when there is no such session. It checks neither expiry nor the user's state;
// those are the caller's rules.
//
// The session columns here must follow those of FindSessionByID. The statement is prepared
// once: parsing the SQL was 40% of the CPU time of a forward-auth check on SQLite. On SQLite,
// while not one commit was made since the last read of the session, that read is handed out
// again (sessioncache.go).
func (s *DB) FindSessionWithUser(ctx context.Context, id string) (*latchkey.Session, *latchkey.User, error) {
	var version int64
	var fill bool
	if s.sessions != nil {
		var sess *latchkey.Session
		var u *latchkey.User
		if sess, u, version, fill = s.sessions.get(id); sess != nil {
			return sess, u, nil
		}
	}
	ctx = s.shortRead(ctx)
	stmt, err := s.sessionWithUserStmt(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("find session with user: %w", err)
	}
	// One value for the session, the user and the columns that need converting: each
	// variable passed to Scan escapes to the heap, so one struct is one allocation.
	var v sessionUserRow
	err = v.scan(stmt.QueryRowContext(ctx, id))
	if err != nil && s.readAgain(ctx, err) {
		v = sessionUserRow{}
		err = v.scan(stmt.QueryRowContext(ctx, id))
	}
	if errors.Is(err, sql.ErrNoRows) {
		if fill {
			s.sessions.drop(id)
		}
		return nil, nil, notFound("session")
	} else if err != nil {
		return nil, nil, fmt.Errorf("find session with user: %w", err)
	}
	sess, u := v.values()
	if fill {
		s.sessions.put(version, sess, u)
	}
	return sess, u, nil
}

// sessionWithUserStmt returns the prepared statement of sessionWithUserQuery, preparing it
// on the first call, again once when its connection was lost (readAgain).
func (s *DB) sessionWithUserStmt(ctx context.Context) (*sql.Stmt, error) {
	stmt, err := s.hot.prepare(ctx, s.db, &s.hot.sessionWithUser, sessionWithUserQuery)
	if err != nil && s.readAgain(ctx, err) {
		stmt, err = s.hot.prepare(ctx, s.db, &s.hot.sessionWithUser, sessionWithUserQuery)
	}
	return stmt, err
}

// FindFlowWithUser is FindSessionWithUser for a sign-in flow, a session its caller is about
// to write (the second factor rotates it): on SQLite it is read on the batch writer's
// connection (readWarm), and never from the cache, which keeps only signed-in sessions.
func (s *DB) FindFlowWithUser(ctx context.Context, id string) (*latchkey.Session, *latchkey.User, error) {
	ctx = s.shortRead(ctx)
	stmt, err := s.sessionWithUserStmt(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("find flow with user: %w", err)
	}
	var v sessionUserRow
	err = s.readWarm(ctx, stmt, func(ctx context.Context, st *sql.Stmt) error {
		return v.scan(st.QueryRowContext(ctx, id))
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, notFound("session")
	} else if err != nil {
		return nil, nil, fmt.Errorf("find flow with user: %w", err)
	}
	sess, u := v.values()
	return sess, u, nil
}

// qFlowWithTOTP reads a sign-in flow, its user and the user's TOTP credentials in one
// statement: a row per credential, oldest first, or one row whose credential columns are NULL.
const qFlowWithTOTP = `SELECT ` + sessionWithUserColumns + `,
	c.id, c.name, c.secret, c.last_step, COALESCE(c.device_id, 0), c.created_at, c.confirmed_at, c.last_used_at
	FROM sessions s JOIN users u ON u.id = s.user_id LEFT JOIN totp_credentials c ON c.user_id = s.user_id
	WHERE s.id = $1 ORDER BY c.id`

// FindFlowWithTOTP is FindFlowWithUser and FindTOTPCredentials of the flow's user in one
// statement, for the TOTP step: on SQLite one job of the batch writer instead of two, on
// PostgreSQL one round trip. The secrets are opened after the read, off the writer's turn.
func (s *DB) FindFlowWithTOTP(ctx context.Context, id string) (*latchkey.Session, *latchkey.User, []*latchkey.TOTPCredential, error) {
	ctx = s.shortRead(ctx)
	st, err := s.hot.stmt(ctx, s.db, qFlowWithTOTP)
	if err != nil && s.readAgain(ctx, err) {
		st, err = s.hot.stmt(ctx, s.db, qFlowWithTOTP)
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("find flow with totp: %w", err)
	}
	var v sessionUserRow
	var creds []*latchkey.TOTPCredential
	var sealed [][]byte
	err = s.readWarm(ctx, st, func(ctx context.Context, st *sql.Stmt) error {
		v, creds, sealed = sessionUserRow{}, nil, nil
		rows, err := st.QueryContext(ctx, id)
		if err != nil {
			return err
		}
		defer rows.Close()
		found := false
		for rows.Next() {
			var c latchkey.TOTPCredential
			var cid, step, created, confirmed, used sql.NullInt64
			var name sql.NullString
			var secret []byte
			if err := rows.Scan(append(v.targets(), &cid, &name, &secret, &step, &c.DeviceID, &created, &confirmed, &used)...); err != nil {
				return err
			}
			found = true
			if !cid.Valid {
				continue
			}
			c.ID, c.UserID, c.Name, c.LastStep = cid.Int64, v.sess.UserID, name.String, step.Int64
			c.CreatedAt, c.ConfirmedAt, c.LastUsedAt = at(created.Int64), atPtr(confirmed), atPtr(used)
			creds, sealed = append(creds, &c), append(sealed, secret)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if !found {
			return sql.ErrNoRows
		}
		return nil
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, nil, notFound("session")
	} else if err != nil {
		return nil, nil, nil, fmt.Errorf("find flow with totp: %w", err)
	}
	for i, c := range creds {
		if c.Secret, err = s.open(sealed[i], c.ID, c.UserID); err != nil {
			return nil, nil, nil, err
		}
	}
	sess, u := v.values()
	return sess, u, creds, nil
}

// sessionUserRow is a row of sessionWithUserQuery.
type sessionUserRow struct {
	sess                                           latchkey.Session
	u                                              latchkey.User
	amr                                            string
	pw, created, seen, expires, uCreated, uUpdated int64
	mfa                                            sql.NullInt64
}

// scan reads r into v.
func (v *sessionUserRow) scan(r *sql.Row) error {
	return r.Scan(v.targets()...)
}

// targets are the scan targets of the columns of sessionWithUserQuery.
func (v *sessionUserRow) targets() []any {
	sess, u := &v.sess, &v.u
	return []any{&sess.ID, &sess.SID, &sess.UserID, &sess.State, &v.amr, &v.pw, &v.mfa, &v.created, &v.seen, &v.expires, &sess.IP, &sess.UserAgent, &sess.Verifier,
		&u.ID, &u.Username, &u.Email, &u.Role, &u.PasswordHash, &u.Disabled, &u.PrimaryFactor, &u.TimeZone, &v.uCreated, &v.uUpdated}
}

// values converts the row's columns and returns its session and user (parts of v).
func (v *sessionUserRow) values() (*latchkey.Session, *latchkey.User) {
	sess, u := &v.sess, &v.u
	sess.AMR = strings.Fields(v.amr)
	sess.PasswordAt, sess.MFAAt, sess.CreatedAt, sess.LastSeenAt, sess.ExpiresAt = at(v.pw), atPtr(v.mfa), at(v.created), at(v.seen), at(v.expires)
	u.CreatedAt, u.UpdatedAt = at(v.uCreated), at(v.uUpdated)
	return sess, u
}
