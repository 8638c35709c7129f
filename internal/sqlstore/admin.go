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

// condActor filters audit entries by actor; its second term lets the partial index
// audit_events_actor (of non-empty actors) serve it (see qFindSessionBySID).
const condActor = "actor = $%d AND actor <> ''"

// The admin console's storage: invitations (account activation links) and the read-only
// questions of the dashboard, the user list and the audit view.

// CreateInvitation replaces any invitation of inv.UserID by inv (a new link: the old one's
// MailFailedAt goes with it).
func (s *DB) CreateInvitation(ctx context.Context, inv *latchkey.Invitation) error {
	return s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM invitations WHERE user_id = $1`, inv.UserID); err != nil {
			return fmt.Errorf("delete old invitation: %w", err)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO invitations (hash, user_id, created_at, expires_at, mail_failed_at) VALUES ($1, $2, $3, $4, $5)`,
			inv.Hash, inv.UserID, us(inv.CreatedAt), us(inv.ExpiresAt), usPtr(inv.MailFailedAt))
		if isUnique(err) {
			return latchkey.Errorf(latchkey.EConflict, "The invitation exists already.")
		} else if err != nil {
			return fmt.Errorf("insert invitation: %w", err)
		}
		return nil
	})
}

// FindInvitation returns the unexpired invitation with that hash, or ENotFound.
func (s *DB) FindInvitation(ctx context.Context, hash string, now time.Time) (*latchkey.Invitation, error) {
	return s.findInvitation(s.queryRow(ctx, `SELECT hash, user_id, created_at, expires_at, mail_failed_at FROM invitations WHERE hash = $1 AND expires_at > $2`, hash, us(now)))
}

// FindInvitationByUserID returns the user's invitation, expired or not, or ENotFound.
func (s *DB) FindInvitationByUserID(ctx context.Context, userID latchkey.UserID) (*latchkey.Invitation, error) {
	return s.findInvitation(s.queryRow(ctx, `SELECT hash, user_id, created_at, expires_at, mail_failed_at FROM invitations WHERE user_id = $1`, userID))
}

// findInvitation scans an invitation row.
func (s *DB) findInvitation(row *sql.Row) (*latchkey.Invitation, error) {
	var inv latchkey.Invitation
	var created, expires int64
	var failed sql.NullInt64
	err := row.Scan(&inv.Hash, &inv.UserID, &created, &expires, &failed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("invitation")
	} else if err != nil {
		return nil, fmt.Errorf("find invitation: %w", err)
	}
	inv.CreatedAt, inv.ExpiresAt, inv.MailFailedAt = at(created), at(expires), atPtr(failed)
	return &inv, nil
}

// MarkInvitationMailFailed records when the invitation's mail could not be sent.
func (s *DB) MarkInvitationMailFailed(ctx context.Context, hash string, t time.Time) error {
	res, err := s.exec(ctx, `UPDATE invitations SET mail_failed_at = $1 WHERE hash = $2`, us(t), hash)
	if err != nil {
		return fmt.Errorf("mark invitation mail failed: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound("invitation")
	}
	return nil
}

// ConsumeInvitation deletes the unexpired invitation with that hash and returns its user;
// one DELETE decides the winner.
func (s *DB) ConsumeInvitation(ctx context.Context, hash string, now time.Time) (latchkey.UserID, error) {
	var id latchkey.UserID
	err := s.write(ctx, func() error {
		return s.queryRow(ctx, `DELETE FROM invitations WHERE hash = $1 AND expires_at > $2 RETURNING user_id`, hash, us(now)).Scan(&id)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return 0, notFound("invitation")
	} else if err != nil {
		return 0, fmt.Errorf("consume invitation: %w", err)
	}
	return id, nil
}

// PendingInvitations returns when the unexpired invitations of the given users end.
func (s *DB) PendingInvitations(ctx context.Context, ids []latchkey.UserID, now time.Time) (map[latchkey.UserID]time.Time, error) {
	out := map[latchkey.UserID]time.Time{}
	if len(ids) == 0 {
		return out, nil
	}
	args := []any{us(now)}
	var marks []string
	for _, id := range ids {
		args = append(args, id)
		marks = append(marks, fmt.Sprintf("$%d", len(args)))
	}
	rows, err := s.query(ctx, `SELECT user_id, expires_at FROM invitations WHERE expires_at > $1 AND user_id IN (`+strings.Join(marks, ", ")+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("find invitations: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id latchkey.UserID
		var exp int64
		if err := rows.Scan(&id, &exp); err != nil {
			return nil, fmt.Errorf("scan invitation: %w", err)
		}
		out[id] = at(exp)
	}
	return out, rows.Err()
}

// likePattern returns a LIKE pattern (with ESCAPE '\') matching s anywhere.
func likePattern(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(s) + "%"
}

// The factor kinds of the user u, as SQL conditions.
const (
	hasTOTP  = `EXISTS (SELECT 1 FROM totp_credentials t WHERE t.user_id = u.id AND t.confirmed_at IS NOT NULL AND t.device_id IS NULL)`
	hasLatch = `EXISTS (SELECT 1 FROM devices d WHERE d.user_id = u.id AND d.state = 'active')`
	hasKey   = `EXISTS (SELECT 1 FROM webauthn_credentials k WHERE k.user_id = u.id)`
)

// awaitingActivation is the SQL condition that the user u has not activated the account: an
// invitation row, expired or not (using the link deletes it, and nothing else does).
const awaitingActivation = `EXISTS (SELECT 1 FROM invitations i WHERE i.user_id = u.id)`

// SearchUsers returns the users whose username or email contains q.Query, by username.
func (s *DB) SearchUsers(ctx context.Context, q latchkey.UserSearch) ([]*latchkey.User, int, error) {
	var where []string
	var args []any
	if q.Query != "" {
		args = append(args, likePattern(strings.ToLower(q.Query)))
		where = append(where, `(LOWER(u.username) LIKE $1 ESCAPE '\' OR LOWER(u.email) LIKE $1 ESCAPE '\')`)
	}
	if q.WithoutFactor {
		where = append(where, `NOT u.disabled AND NOT `+awaitingActivation+` AND NOT `+hasTOTP+` AND NOT `+hasLatch+` AND NOT `+hasKey)
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	var total int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM users u`+cond, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count users: %w", err)
	}
	query := `SELECT ` + userColumns + ` FROM users u` + cond + ` ORDER BY username`
	if q.Limit > 0 {
		query += fmt.Sprintf(" LIMIT %d OFFSET %d", q.Limit, max(q.Offset, 0))
	}
	rows, err := s.query(ctx, query, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("search users: %w", err)
	}
	users, err := collect(rows, scanUser, "scan user")
	if err != nil {
		return nil, 0, err
	}
	return users, total, nil
}

// FindSignedInSessions returns the user's signed-in, unexpired sessions, newest first.
func (s *DB) FindSignedInSessions(ctx context.Context, userID latchkey.UserID, now time.Time) ([]*latchkey.Session, error) {
	rows, err := s.query(ctx,
		`SELECT id, user_id, state, amr, password_at, mfa_at, created_at, last_seen_at, expires_at, ip, user_agent
		 FROM sessions WHERE user_id = $1 AND state = $2 AND expires_at > $3 ORDER BY last_seen_at DESC`,
		userID, string(latchkey.StateAuthenticated), us(now))
	if err != nil {
		return nil, fmt.Errorf("find sessions: %w", err)
	}
	defer rows.Close()
	var out []*latchkey.Session
	for rows.Next() {
		var sess latchkey.Session
		var amr string
		var pw, created, seen, expires int64
		var mfa sql.NullInt64
		if err := rows.Scan(&sess.ID, &sess.UserID, &sess.State, &amr, &pw, &mfa, &created, &seen, &expires, &sess.IP, &sess.UserAgent); err != nil {
			return nil, fmt.Errorf("scan session: %w", err)
		}
		sess.AMR = strings.Fields(amr)
		sess.PasswordAt, sess.MFAAt, sess.CreatedAt, sess.LastSeenAt, sess.ExpiresAt = at(pw), atPtr(mfa), at(created), at(seen), at(expires)
		out = append(out, &sess)
	}
	return out, rows.Err()
}

// CountEnabledAdmins counts the admins who are not disabled.
func (s *DB) CountEnabledAdmins(ctx context.Context) (int, error) {
	var n int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM users WHERE role = $1 AND NOT disabled`, string(latchkey.RoleAdmin)).Scan(&n); err != nil {
		return 0, fmt.Errorf("count admins: %w", err)
	}
	return n, nil
}

// FindFactorKinds returns the kinds of factor of each of the given users that has one.
func (s *DB) FindFactorKinds(ctx context.Context, ids []latchkey.UserID) (map[latchkey.UserID]latchkey.FactorKinds, error) {
	out := map[latchkey.UserID]latchkey.FactorKinds{}
	if len(ids) == 0 {
		return out, nil
	}
	var args []any
	var marks []string
	for _, id := range ids {
		args = append(args, id)
		marks = append(marks, fmt.Sprintf("$%d", len(args)))
	}
	rows, err := s.query(ctx, `SELECT u.id, `+hasTOTP+`, `+hasLatch+`, `+hasKey+` FROM users u WHERE u.id IN (`+strings.Join(marks, ", ")+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("find factor kinds: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id latchkey.UserID
		var k latchkey.FactorKinds
		if err := rows.Scan(&id, &k.TOTP, &k.Latch, &k.Key); err != nil {
			return nil, fmt.Errorf("scan factor kinds: %w", err)
		}
		if k.Any() {
			out[id] = k
		}
	}
	return out, rows.Err()
}

// FactorAdoption counts active users (enabled, activated) by factor kind, and the enabled
// accounts awaiting activation apart.
func (s *DB) FactorAdoption(ctx context.Context) (latchkey.FactorAdoption, error) {
	var a latchkey.FactorAdoption
	err := s.queryRow(ctx, `
		SELECT COALESCE(SUM(CASE WHEN NOT f.invited THEN 1 ELSE 0 END), 0),
			COALESCE(SUM(CASE WHEN NOT f.invited AND f.totp THEN 1 ELSE 0 END), 0),
			COALESCE(SUM(CASE WHEN NOT f.invited AND f.latch THEN 1 ELSE 0 END), 0),
			COALESCE(SUM(CASE WHEN NOT f.invited AND f.wkey THEN 1 ELSE 0 END), 0),
			COALESCE(SUM(CASE WHEN NOT f.invited AND NOT (f.totp OR f.latch OR f.wkey) THEN 1 ELSE 0 END), 0),
			COALESCE(SUM(CASE WHEN f.invited THEN 1 ELSE 0 END), 0)
		FROM (SELECT `+awaitingActivation+` AS invited, `+hasTOTP+` AS totp, `+hasLatch+` AS latch, `+hasKey+` AS wkey
			FROM users u WHERE NOT u.disabled) f`).
		Scan(&a.Users, &a.TOTP, &a.Latch, &a.Key, &a.NoFactor, &a.AwaitingActivation)
	if err != nil {
		return a, fmt.Errorf("count factor adoption: %w", err)
	}
	return a, nil
}

// CountAuditEvents counts events by outcome in buckets of width since since.
func (s *DB) CountAuditEvents(ctx context.Context, prefixes []string, since time.Time, width time.Duration) ([]latchkey.AuditCount, error) {
	w := width.Microseconds()
	if w <= 0 {
		return nil, errors.New("count audit events: bucket width must be positive")
	}
	args := []any{us(since)}
	var or []string
	for _, p := range prefixes {
		args = append(args, strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(p)+"%")
		or = append(or, fmt.Sprintf(`action LIKE $%d ESCAPE '\'`, len(args)))
	}
	cond := ""
	if len(or) > 0 {
		cond = " AND (" + strings.Join(or, " OR ") + ")"
	}
	rows, err := s.query(ctx, fmt.Sprintf(`SELECT (time / %d) * %d AS bucket, outcome, COUNT(*) FROM audit_events
		WHERE time >= $1%s GROUP BY bucket, outcome ORDER BY bucket`, w, w, cond), args...)
	if err != nil {
		return nil, fmt.Errorf("count audit events: %w", err)
	}
	defer rows.Close()
	var out []latchkey.AuditCount
	for rows.Next() {
		var c latchkey.AuditCount
		var b int64
		if err := rows.Scan(&b, &c.Outcome, &c.N); err != nil {
			return nil, fmt.Errorf("scan audit count: %w", err)
		}
		c.Bucket = at(b)
		out = append(out, c)
	}
	return out, rows.Err()
}

// QueryAuditEvents returns events matching q, newest first.
func (s *DB) QueryAuditEvents(ctx context.Context, q latchkey.AuditQuery) ([]*latchkey.AuditEvent, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if q.Username != "" {
		add("username = $%d", q.Username)
	}
	if q.Actor != "" {
		add(condActor, q.Actor)
	}
	switch {
	case strings.HasSuffix(q.Action, "."):
		add(`action LIKE $%d ESCAPE '\'`, strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(q.Action)+"%")
	case q.Action != "":
		add("action = $%d", q.Action)
	}
	if q.Outcome != "" {
		add("outcome = $%d", q.Outcome)
	}
	if !q.Since.IsZero() {
		add("time >= $%d", us(q.Since))
	}
	if !q.Until.IsZero() {
		add("time < $%d", us(q.Until))
	}
	if q.BeforeID > 0 {
		add("id < $%d", q.BeforeID)
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	query := `SELECT ` + auditFields + `, ` + s.auditHashes() + cond + ` ORDER BY id DESC`
	if q.Limit > 0 {
		query += fmt.Sprintf(" LIMIT %d", q.Limit)
	}
	rows, err := s.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("query audit events: %w", err)
	}
	return collect(rows, func(r scanner) (*latchkey.AuditEvent, error) {
		e := new(latchkey.AuditEvent)
		return e, scanAuditEvent(r.Scan, e, &e.PrevHash, &e.Hash)
	}, "query audit events")
}

var (
	_ latchkey.AdminStore      = (*DB)(nil)
	_ latchkey.InvitationStore = (*DB)(nil)
)
