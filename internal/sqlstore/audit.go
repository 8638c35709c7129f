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

// AppendAuditEvent chains e to the last entry and inserts it. Appends are serialised: on
// SQLite by the immediate transaction's write lock, on PostgreSQL by an advisory lock.
func (s *DB) AppendAuditEvent(ctx context.Context, e *latchkey.AuditEvent) error {
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	return s.tx(ctx, func(tx *sql.Tx) error {
		if s.dialect == Postgres {
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7305002)`); err != nil {
				return fmt.Errorf("lock audit trail: %w", err)
			}
		}
		var prev []byte
		err := tx.QueryRowContext(ctx, `SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1`).Scan(&prev)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("read last audit hash: %w", err)
		}
		if prev == nil {
			prev = []byte{}
		}
		e.PrevHash = prev
		e.Hash = e.ComputeHash(prev)
		err = tx.QueryRowContext(ctx,
			`INSERT INTO audit_events (time, user_id, username, action, outcome, ip, user_agent, detail, ticket_id, prev_hash, hash)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id`,
			us(e.Time), e.UserID, e.Username, e.Action, e.Outcome, e.IP, e.UserAgent, e.Detail, e.TicketID, e.PrevHash, e.Hash).Scan(&e.ID)
		if err != nil {
			return fmt.Errorf("insert audit event: %w", err)
		}
		return nil
	})
}

// FindAuditEvents returns matching events in ID order.
func (s *DB) FindAuditEvents(ctx context.Context, f latchkey.AuditFilter) ([]*latchkey.AuditEvent, error) {
	where := []string{"id > $1"}
	args := []any{f.AfterID}
	if f.UserID != nil {
		args = append(args, *f.UserID)
		where = append(where, fmt.Sprintf("user_id = $%d", len(args)))
	}
	q := `SELECT id, time, user_id, username, action, outcome, ip, user_agent, detail, ticket_id, prev_hash, hash
	      FROM audit_events WHERE ` + strings.Join(where, " AND ") + ` ORDER BY id`
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("find audit events: %w", err)
	}
	defer rows.Close()
	var out []*latchkey.AuditEvent
	for rows.Next() {
		var e latchkey.AuditEvent
		var t int64
		if err := rows.Scan(&e.ID, &t, &e.UserID, &e.Username, &e.Action, &e.Outcome, &e.IP, &e.UserAgent, &e.Detail, &e.TicketID, &e.PrevHash, &e.Hash); err != nil {
			return nil, fmt.Errorf("scan audit event: %w", err)
		}
		e.Time = at(t)
		if e.PrevHash == nil {
			e.PrevHash = []byte{}
		}
		out = append(out, &e)
	}
	return out, rows.Err()
}
