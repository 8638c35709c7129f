package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/latchkey/latchkey"
)

// Pipelined transactions on PostgreSQL.
//
// On PostgreSQL every statement is a round trip to another process, usually on another
// machine: BEGIN, the statements and COMMIT one after the other, each waiting for its answer
// before the next is sent. Both processes then wake up, read one message, answer it and go
// back to sleep once per statement; on the two cores of the benchmark that bookkeeping cost
// more than the statements of a sign-in themselves (docs/performance.md, "On PostgreSQL"), and
// across a network each round trip adds its latency.
//
// A transaction whose statements' arguments are all known before the first one runs, and
// whose decisions (a row that must have changed, a throttle counter that must admit the
// attempt) only say whether it commits, is sent at once instead: BEGIN and its statements in
// one write, their results read back in the order they were queued, each checked as the
// sequential code checks it, then COMMIT, or ROLLBACK at the first check that fails. Two round
// trips, whatever the number of statements. The server runs the statements in the same order
// and in the same transaction as before; the difference is that those after a failing check
// run too, before the ROLLBACK undoes them all. The first failure in queue order is the one
// answered, as the sequential code would have answered it.

// pgPipe is a transaction's statements, queued, each with what to make of its result.
type pgPipe struct {
	batch pgx.Batch
	reads []func(pgx.BatchResults) error
}

// exec queues a statement without rows. check gets the rows it changed and its error, and
// returns the transaction's error (nil to go on).
func (p *pgPipe) exec(check func(n int64, err error) error, query string, args ...any) {
	p.batch.Queue(query, args...)
	p.reads = append(p.reads, func(br pgx.BatchResults) error {
		ct, err := br.Exec()
		return check(ct.RowsAffected(), err)
	})
}

// query queues a statement with rows: row is called with each row's Scan, then end (when not
// nil) with the number of rows. An error of the statement is wrapped as "what: err".
func (p *pgPipe) query(what string, row func(scan func(...any) error) error, end func(n int) error, query string, args ...any) {
	p.batch.Queue(query, args...)
	p.reads = append(p.reads, func(br pgx.BatchResults) error {
		rows, err := br.Query()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		n := 0
		for rows.Next() {
			n++
			if err := row(rows.Scan); err != nil {
				rows.Close()
				return err
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if end != nil {
			return end(n)
		}
		return nil
	})
}

// pipelinedTx runs p's statements and then appends e (when not nil) in one transaction on
// PostgreSQL, pipelined (above): what auditedTx does with a function. e is stamped, gets its
// ID when committed, and wakes the chainer.
func (s *DB) pipelinedTx(ctx context.Context, e *latchkey.AuditEvent, p *pgPipe) error {
	s.stampAudit(e)
	if e != nil {
		p.query("insert audit event", func(scan func(...any) error) error { return scan(&e.ID) }, nil,
			qInsertAuditPending, us(e.Time), e.UserID, e.Username, e.Action, e.Outcome, e.IP, e.UserAgent, e.Detail, e.TicketID)
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	err = conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("sqlstore: a pipelined transaction needs a pgx connection, not %T", dc)
		}
		return runPipe(ctx, c.Conn(), p)
	})
	// A connection left in a transaction (a ROLLBACK that could not be sent) is not handed
	// out again: pgx's stdlib refuses it when the pool resets it.
	conn.Close()
	if err != nil {
		unchain(e)
	} else if e != nil {
		s.auditAppended()
	}
	return err
}

// rollbackWait bounds the ROLLBACK after a failed pipelined transaction.
const rollbackWait = 2 * time.Second

// runPipe sends BEGIN and p's statements on c, reads their results in order, and commits when
// every check passed, or rolls back.
func runPipe(ctx context.Context, c *pgx.Conn, p *pgPipe) (err error) {
	b := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, len(p.batch.QueuedQueries)+1)}
	b.Queue("BEGIN")
	b.QueuedQueries = append(b.QueuedQueries, p.batch.QueuedQueries...)
	br := c.SendBatch(ctx, b)
	// BEGIN's result carries the errors of the whole batch before it ran (preparing its
	// statements, writing it to the connection).
	if _, err = br.Exec(); err != nil {
		err = fmt.Errorf("pipelined transaction: %w", err)
	}
	for i := 0; err == nil && i < len(p.reads); i++ {
		err = p.reads[i](br)
	}
	// Close reads what is left (the statements after a failed check, answered or refused
	// as part of a failed transaction).
	if cerr := br.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err == nil {
		ct, cerr := c.Exec(ctx, "COMMIT")
		if cerr != nil {
			return fmt.Errorf("commit: %w", cerr)
		}
		// COMMIT of a transaction that failed answers ROLLBACK, without an error.
		if ct.String() != "COMMIT" {
			return errors.New("commit: the transaction was rolled back")
		}
		return nil
	}
	if c.PgConn().TxStatus() != 'I' && !c.IsClosed() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackWait)
		defer cancel()
		if _, rerr := c.Exec(rctx, "ROLLBACK"); rerr != nil {
			c.Close(rctx)
		}
	}
	return err
}
