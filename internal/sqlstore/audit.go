package sqlstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/latchkey/latchkey"
)

// AppendAuditEvent inserts e. On SQLite it is chained to the last entry at once (appends
// take turns on the write lock); on PostgreSQL the chainer chains it after the commit
// (auditchain.go), and BEGIN goes with the insert (pipeline.go).
func (s *DB) AppendAuditEvent(ctx context.Context, e *latchkey.AuditEvent) error {
	return s.runPlan(ctx, e, &txPlan{})
}

// FindAuditEvents returns matching events in ID order.
func (s *DB) FindAuditEvents(ctx context.Context, f latchkey.AuditFilter) ([]*latchkey.AuditEvent, error) {
	where := []string{"id > $1"}
	args := []any{f.AfterID}
	if f.UserID != nil {
		args = append(args, *f.UserID)
		where = append(where, fmt.Sprintf("user_id = $%d", len(args)))
	}
	q := `SELECT ` + auditFields + `, ` + s.auditHashes() + `
	      WHERE ` + strings.Join(where, " AND ") + ` ORDER BY id`
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("find audit events: %w", err)
	}
	return collect(rows, func(r scanner) (*latchkey.AuditEvent, error) {
		e := new(latchkey.AuditEvent)
		if err := scanAuditEvent(r.Scan, e, &e.PrevHash, &e.Hash); err != nil {
			return nil, err
		}
		if e.PrevHash == nil {
			e.PrevHash = []byte{}
		}
		return e, nil
	}, "find audit events")
}

// auditHashes selects an audit entry's hashes and names the tables, for a query of
// audit_events' columns: on PostgreSQL they are in audit_chain (NULL while the entry waits
// for the chainer, auditchain.go).
func (s *DB) auditHashes() string {
	if s.dialect == Postgres {
		return `c.prev_hash, c.hash FROM audit_events LEFT JOIN audit_chain c ON c.event_id = audit_events.id`
	}
	return `prev_hash, hash FROM audit_events`
}
