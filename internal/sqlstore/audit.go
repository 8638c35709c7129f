package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/latchkey/latchkey"
)

// AppendAuditEvent chains e to the last entry and inserts it. Appends are serialised: on
// SQLite by the immediate transaction's write lock, on PostgreSQL by an advisory lock.
func (s *DB) AppendAuditEvent(ctx context.Context, e *latchkey.AuditEvent) error {
	s.stampAudit(e)
	// Prepared before BEGIN (see txQueryRow); a failure here shows again below.
	s.prepareBeforeBegin(ctx, qLastAuditHash, s.insertAudit())
	return s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error { return s.appendAudit(ctx, tx, e) })
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
	rows, err := s.query(ctx, q, args...)
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
