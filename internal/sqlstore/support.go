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

var _ latchkey.TicketStore = (*DB)(nil)

const ticketColumns = `id, email, email_key, username, type, subject, status, tracking_hash, checks, checked_by, checked_at, created_at, updated_at`

func scanTicket(row interface{ Scan(...any) error }) (*latchkey.Ticket, error) {
	var t latchkey.Ticket
	var checks string
	var checkedAt sql.NullInt64
	var created, updated int64
	if err := row.Scan(&t.ID, &t.Email, &t.EmailKey, &t.Username, &t.Type, &t.Subject, &t.Status, &t.TrackingHash, &checks, &t.CheckedBy, &checkedAt, &created, &updated); err != nil {
		return nil, err
	}
	if checks != "" {
		t.Checks = strings.Split(checks, "\n")
	}
	t.CheckedAt = atPtr(checkedAt)
	t.CreatedAt, t.UpdatedAt = at(created), at(updated)
	return &t, nil
}

// CreateTicket inserts the ticket and its first message in one transaction.
func (s *DB) CreateTicket(ctx context.Context, t *latchkey.Ticket, first *latchkey.TicketMessage, limit latchkey.TicketLimit) error {
	now := s.now().UTC().Truncate(time.Microsecond)
	if t.Status == "" {
		t.Status = latchkey.TicketNew
	}
	if t.EmailKey == "" {
		t.EmailKey = strings.ToLower(t.Email)
	}
	return s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if limit.Max > 0 {
			// SQLite's immediate transactions already run one at a time; on PostgreSQL a
			// transaction-scoped advisory lock per address serialises count and insert.
			if s.dialect == Postgres {
				if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7305003, hashtext($1))`, t.EmailKey); err != nil {
					return fmt.Errorf("lock ticket address: %w", err)
				}
			}
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM tickets WHERE email_key = $1 AND created_at >= $2`, t.EmailKey, us(limit.Since)).Scan(&n); err != nil {
				return fmt.Errorf("count tickets: %w", err)
			}
			if n >= limit.Max {
				return latchkey.Errorf(latchkey.EThrottled, "Too many tickets were opened from this email address.")
			}
		}
		err := tx.QueryRowContext(ctx,
			`INSERT INTO tickets (email, email_key, username, type, subject, status, tracking_hash, created_at, updated_at)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id`,
			t.Email, t.EmailKey, t.Username, t.Type, t.Subject, t.Status, t.TrackingHash, us(now)).Scan(&t.ID)
		if isUnique(err) {
			return latchkey.Errorf(latchkey.EConflict, "The ticket's tracking token is already in use.")
		} else if err != nil {
			return fmt.Errorf("insert ticket: %w", err)
		}
		t.CreatedAt, t.UpdatedAt = now, now
		first.TicketID = t.ID
		return insertTicketMessage(ctx, tx, first, now)
	})
}

func insertTicketMessage(ctx context.Context, tx *sql.Tx, m *latchkey.TicketMessage, now time.Time) error {
	m.CreatedAt = now
	err := tx.QueryRowContext(ctx,
		`INSERT INTO ticket_messages (ticket_id, author, agent_id, agent_name, body, created_at)
		 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
		m.TicketID, m.Author, m.AgentID, m.AgentName, m.Body, us(now)).Scan(&m.ID)
	if err != nil {
		return fmt.Errorf("insert ticket message: %w", err)
	}
	return nil
}

// FindTicketByID returns ENotFound when there is no such ticket.
func (s *DB) FindTicketByID(ctx context.Context, id int64) (*latchkey.Ticket, error) {
	return s.findTicket(ctx, `id = $1`, id)
}

// FindTicketByTrackingHash returns ENotFound when no ticket has that hash.
func (s *DB) FindTicketByTrackingHash(ctx context.Context, hash []byte) (*latchkey.Ticket, error) {
	return s.findTicket(ctx, `tracking_hash = $1`, hash)
}

func (s *DB) findTicket(ctx context.Context, cond string, arg any) (*latchkey.Ticket, error) {
	t, err := scanTicket(s.queryRow(ctx, `SELECT `+ticketColumns+` FROM tickets WHERE `+cond, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("ticket")
	} else if err != nil {
		return nil, fmt.Errorf("find ticket: %w", err)
	}
	return t, nil
}

// FindTickets returns the matching tickets, newest first, and their total count.
func (s *DB) FindTickets(ctx context.Context, f latchkey.TicketFilter) ([]*latchkey.Ticket, int, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.Status != nil {
		add("status = $%d", string(*f.Status))
	} else if f.Open {
		where = append(where, fmt.Sprintf("status NOT IN ('%s', '%s')", latchkey.TicketResolved, latchkey.TicketClosed))
	}
	if f.Type != nil {
		add("type = $%d", *f.Type)
	}
	if f.CreatedBefore != nil {
		add("created_at < $%d", us(*f.CreatedBefore))
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	var total int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM tickets`+cond, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count tickets: %w", err)
	}
	order := " ORDER BY id DESC"
	if f.OldestFirst {
		order = " ORDER BY id"
	}
	q := `SELECT ` + ticketColumns + ` FROM tickets` + cond + order
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	if f.Offset > 0 {
		if f.Limit <= 0 {
			q += " LIMIT -1"
			if s.dialect == Postgres {
				q = strings.TrimSuffix(q, " LIMIT -1") + " LIMIT ALL"
			}
		}
		q += fmt.Sprintf(" OFFSET %d", f.Offset)
	}
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("find tickets: %w", err)
	}
	out, err := collect(rows, scanTicket, "scan ticket")
	if err != nil {
		return nil, 0, err
	}
	return out, total, nil
}

// UpdateTicket applies upd and returns the ticket.
func (s *DB) UpdateTicket(ctx context.Context, id int64, upd latchkey.TicketUpdate) (*latchkey.Ticket, error) {
	now := us(s.now())
	var t *latchkey.Ticket
	err := s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		sets := []string{"updated_at = $2"}
		args := []any{id, now}
		if upd.Status != nil {
			args = append(args, string(*upd.Status))
			sets = append(sets, fmt.Sprintf("status = $%d", len(args)))
		}
		if upd.Checks != nil {
			args = append(args, strings.Join(*upd.Checks, "\n"), upd.CheckedBy, now)
			n := len(args)
			sets = append(sets, fmt.Sprintf("checks = $%d, checked_by = $%d, checked_at = $%d", n-2, n-1, n))
		}
		res, err := tx.ExecContext(ctx, `UPDATE tickets SET `+strings.Join(sets, ", ")+` WHERE id = $1`, args...)
		if err != nil {
			return fmt.Errorf("update ticket: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notFound("ticket")
		}
		t, err = scanTicket(tx.QueryRowContext(ctx, `SELECT `+ticketColumns+` FROM tickets WHERE id = $1`, id))
		return err
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// AddTicketMessage appends m and, when status is set, changes the ticket's status.
func (s *DB) AddTicketMessage(ctx context.Context, m *latchkey.TicketMessage, status *latchkey.TicketStatus) error {
	now := s.now().UTC().Truncate(time.Microsecond)
	return s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		q, args := `UPDATE tickets SET updated_at = $2 WHERE id = $1`, []any{m.TicketID, us(now)}
		if status != nil {
			q, args = `UPDATE tickets SET updated_at = $2, status = $3 WHERE id = $1`, append(args, string(*status))
		}
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("touch ticket: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notFound("ticket")
		}
		return insertTicketMessage(ctx, tx, m, now)
	})
}

// FindTicketMessages returns a ticket's conversation, oldest first.
func (s *DB) FindTicketMessages(ctx context.Context, ticketID int64) ([]*latchkey.TicketMessage, error) {
	rows, err := s.query(ctx, `SELECT id, ticket_id, author, agent_id, agent_name, body, created_at FROM ticket_messages WHERE ticket_id = $1 ORDER BY id`, ticketID)
	if err != nil {
		return nil, fmt.Errorf("find ticket messages: %w", err)
	}
	defer rows.Close()
	var out []*latchkey.TicketMessage
	for rows.Next() {
		var m latchkey.TicketMessage
		var created int64
		if err := rows.Scan(&m.ID, &m.TicketID, &m.Author, &m.AgentID, &m.AgentName, &m.Body, &created); err != nil {
			return nil, fmt.Errorf("scan ticket message: %w", err)
		}
		m.CreatedAt = at(created)
		out = append(out, &m)
	}
	return out, rows.Err()
}

// FindUsersByEmail returns the users with that address, compared case-insensitively.
func (s *DB) FindUsersByEmail(ctx context.Context, email string) ([]*latchkey.User, error) {
	rows, err := s.query(ctx, `SELECT `+userColumns+` FROM users WHERE lower(email) = lower($1) ORDER BY id`, email)
	if err != nil {
		return nil, fmt.Errorf("find users by email: %w", err)
	}
	return collect(rows, scanUser, "scan user")
}

// RecentSignIns returns the user's latest sign-in events, newest first.
func (s *DB) RecentSignIns(ctx context.Context, userID latchkey.UserID, limit int) ([]*latchkey.AuditEvent, error) {
	if limit <= 0 {
		limit = 10
	}
	rows, err := s.query(ctx, `SELECT `+auditFields+`
		 FROM audit_events WHERE user_id = $1 AND action LIKE 'login.%' ORDER BY id DESC LIMIT `+fmt.Sprint(limit), userID)
	if err != nil {
		return nil, fmt.Errorf("find sign-ins: %w", err)
	}
	return collect(rows, func(r scanner) (*latchkey.AuditEvent, error) {
		e := new(latchkey.AuditEvent)
		return e, scanAuditEvent(r.Scan, e)
	}, "find sign-ins")
}
