package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/latchkey/latchkey/internal/mail"
)

var _ mail.Store = (*DB)(nil)

// Outbox states.
const (
	mailPending = "pending"
	mailSent    = "sent"
	mailFailed  = "failed"
)

// EnqueueMail stores m in the outbox, pending and due at now, and returns its ID.
func (s *DB) EnqueueMail(ctx context.Context, m mail.Message, now time.Time) (int64, error) {
	headers := ""
	if len(m.Headers) > 0 {
		b, err := json.Marshal(m.Headers)
		if err != nil {
			return 0, fmt.Errorf("enqueue mail: %w", err)
		}
		headers = string(b)
	}
	var id int64
	err := s.write(ctx, func() error {
		return s.queryRow(ctx,
			`INSERT INTO mail_outbox (recipient, subject, body_text, body_html, headers, state, next_at, created_at)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id`,
			m.To, m.Subject, m.Text, m.HTML, headers, mailPending, us(now)).Scan(&id)
	})
	if err != nil {
		return 0, fmt.Errorf("enqueue mail: %w", err)
	}
	return id, nil
}

// ClaimMail leases the pending message that has been due longest at now: it sets claim,
// counts an attempt and moves next_at to leaseEnd, in one statement, so two workers never
// claim one message (on PostgreSQL rows another worker is claiming are skipped, not waited
// for). It returns nil, nil when no message is due.
func (s *DB) ClaimMail(ctx context.Context, now, leaseEnd time.Time, claim string) (*mail.Queued, error) {
	lock := ""
	if s.dialect == Postgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	q := `UPDATE mail_outbox SET claim = $1, attempts = attempts + 1, next_at = $2
		WHERE id = (SELECT id FROM mail_outbox WHERE state = $3 AND next_at <= $4 ORDER BY next_at, id LIMIT 1` + lock + `)
		  AND state = $3 AND next_at <= $4
		RETURNING id, recipient, subject, body_text, body_html, headers, attempts, created_at`
	var (
		m          = mail.Queued{Claim: claim}
		text, html sql.NullString
		headers    string
		created    int64
	)
	err := s.write(ctx, func() error {
		return s.queryRow(ctx, q, claim, us(leaseEnd), mailPending, us(now)).
			Scan(&m.ID, &m.Message.To, &m.Message.Subject, &text, &html, &headers, &m.Attempts, &created)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("claim mail: %w", err)
	}
	m.Message.Text, m.Message.HTML, m.CreatedAt = text.String, html.String, at(created)
	if headers != "" {
		if err := json.Unmarshal([]byte(headers), &m.Message.Headers); err != nil {
			return nil, fmt.Errorf("claim mail %d: headers: %w", m.ID, err)
		}
	}
	return &m, nil
}

// MarkMailSent records the message as sent and deletes its body. It returns
// mail.ErrClaimLost when claim no longer holds the message.
func (s *DB) MarkMailSent(ctx context.Context, id int64, claim string, now time.Time) error {
	return s.finishMail(ctx, "mark mail sent",
		`UPDATE mail_outbox SET state = $3, claim = NULL, body_text = NULL, body_html = NULL, done_at = $4, last_error = ''
		 WHERE id = $1 AND claim = $2 AND state = 'pending'`, id, claim, mailSent, us(now))
}

// RetryMail releases the message, due again at next, with the error of the last attempt.
// It returns mail.ErrClaimLost when claim no longer holds the message.
func (s *DB) RetryMail(ctx context.Context, id int64, claim string, next time.Time, lastErr string) error {
	return s.finishMail(ctx, "reschedule mail",
		`UPDATE mail_outbox SET claim = NULL, next_at = $3, last_error = $4
		 WHERE id = $1 AND claim = $2 AND state = 'pending'`, id, claim, us(next), lastErr)
}

// MarkMailFailed records that the message was given up on and deletes its body. It returns
// mail.ErrClaimLost when claim no longer holds the message.
func (s *DB) MarkMailFailed(ctx context.Context, id int64, claim string, now time.Time, lastErr string) error {
	return s.finishMail(ctx, "mark mail failed",
		`UPDATE mail_outbox SET state = $3, claim = NULL, body_text = NULL, body_html = NULL, done_at = $4, last_error = $5
		 WHERE id = $1 AND claim = $2 AND state = 'pending'`, id, claim, mailFailed, us(now), lastErr)
}

func (s *DB) finishMail(ctx context.Context, what, q string, args ...any) error {
	res, err := s.exec(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	} else if n == 0 {
		return fmt.Errorf("%s %d: %w", what, args[0], mail.ErrClaimLost)
	}
	return nil
}

// MailStats counts the outbox at now.
func (s *DB) MailStats(ctx context.Context, now time.Time) (mail.QueueStats, error) {
	var (
		st   mail.QueueStats
		next sql.NullInt64
	)
	err := s.queryRow(ctx,
		`SELECT
			COALESCE(SUM(CASE WHEN state = $1 THEN 1 ELSE 0 END), 0),
			COALESCE(SUM(CASE WHEN state = $2 THEN 1 ELSE 0 END), 0),
			COALESCE(SUM(CASE WHEN state = $1 AND (claim IS NOT NULL OR next_at <= $3) THEN 1 ELSE 0 END), 0),
			MIN(CASE WHEN state = $1 THEN next_at END)
		 FROM mail_outbox WHERE state IN ($1, $2)`, mailPending, mailFailed, us(now)).
		Scan(&st.Pending, &st.Failed, &st.Busy, &next)
	if err != nil {
		return st, fmt.Errorf("count mail: %w", err)
	}
	if next.Valid {
		st.NextDue = at(next.Int64)
	}
	return st, nil
}

// DeleteOldMail deletes the records of messages sent or given up on before t, in batches
// of CleanupBatch rows, and returns how many it deleted. Pending messages are never deleted.
func (s *DB) DeleteOldMail(ctx context.Context, t time.Time) (int, error) {
	q := fmt.Sprintf(`DELETE FROM mail_outbox WHERE id IN (SELECT id FROM mail_outbox WHERE state IN ($1, $2) AND done_at < $3 LIMIT %d)`, CleanupBatch)
	total := 0
	for {
		res, err := s.exec(ctx, q, mailSent, mailFailed, us(t))
		if err != nil {
			return total, fmt.Errorf("delete old mail: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("delete old mail: %w", err)
		}
		total += int(n)
		if n < CleanupBatch {
			return total, nil
		}
	}
}
