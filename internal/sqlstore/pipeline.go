package sqlstore

import (
	"context"
	"database/sql"
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

// A txPlan is a transaction written as its statements, each with what to make of its
// result, for both dialects: runPlan runs it on SQLite one statement after the other inside
// the batch writer's transaction, stopping at the first check that fails, and on PostgreSQL
// pipelined.
type txPlan struct {
	steps []*planStep
}

// A planStep is one statement of a txPlan: exec (rows affected) or query (rows) is set.
type planStep struct {
	query string
	args  []any
	exec  func(n int64, err error) error
	what  string
	row   func(scan func(...any) error) error
	end   func(n int) error
	when  func() bool
}

// onlyIf makes st conditional on an earlier step's result: on SQLite it runs only when when
// returns true, asked when its turn comes; on PostgreSQL it is sent with the others, and its
// result is read only when when returns true. Its statement must then be harmless when it
// runs for nothing.
func (st *planStep) onlyIf(when func() bool) { st.when = when }

// skipped reports whether st's result is not wanted.
func (st *planStep) skipped() bool { return st.when != nil && !st.when() }

// exec queues a statement without rows. check gets the rows it changed and its error, and
// returns the transaction's error (nil to go on).
func (p *txPlan) exec(check func(n int64, err error) error, query string, args ...any) *planStep {
	st := &planStep{query: query, args: args, exec: check}
	p.steps = append(p.steps, st)
	return st
}

// query queues a statement with rows: row is called with each row's Scan, then end (when not
// nil) with the number of rows. An error of the statement is wrapped as "what: err".
func (p *txPlan) query(what string, row func(scan func(...any) error) error, end func(n int) error, query string, args ...any) *planStep {
	st := &planStep{query: query, args: args, what: what, row: row, end: end}
	p.steps = append(p.steps, st)
	return st
}

// failsAs is the check of a statement whose error alone matters, wrapped as "what: err".
func failsAs(what string) func(int64, error) error {
	return func(_ int64, err error) error {
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
}

// queries returns the statements of p, to prepare.
func (p *txPlan) queries() []string {
	qs := make([]string, len(p.steps))
	for i, st := range p.steps {
		qs[i] = st.query
	}
	return qs
}

// planRows is what runs a query's rows through its step: *sql.Rows and pgx.Rows alike.
type planRows interface {
	Next() bool
	Scan(...any) error
	Close()
	Err() error
}

// read reads a query's rows (or its error) through st.
func (st *planStep) read(rs planRows, err error) error {
	if err != nil {
		if rs != nil {
			rs.Close()
		}
		return fmt.Errorf("%s: %w", st.what, err)
	}
	n := 0
	for rs.Next() {
		n++
		if err := st.row(rs.Scan); err != nil {
			rs.Close()
			return err
		}
	}
	rs.Close()
	if err := rs.Err(); err != nil {
		return fmt.Errorf("%s: %w", st.what, err)
	}
	if st.end != nil {
		return st.end(n)
	}
	return nil
}

// runPlan runs p's statements and then appends e (when not nil) in one transaction, as
// auditedTx does with a function: on SQLite through auditedTx, one statement at a time; on
// PostgreSQL pipelined.
func (s *DB) runPlan(ctx context.Context, e *latchkey.AuditEvent, p *txPlan) error {
	if s.dialect == Postgres {
		return s.pipelinedTx(ctx, e, p)
	}
	s.prepareBeforeBegin(ctx, append(p.queries(), s.auditStatements()...)...)
	return s.auditedTx(ctx, e, func(ctx context.Context, tx *sql.Tx) error {
		for _, st := range p.steps {
			if st.skipped() {
				continue
			}
			if st.exec != nil {
				res, err := s.txExec(ctx, tx, st.query, st.args...)
				var n int64
				if err == nil {
					n, _ = res.RowsAffected()
				}
				if err := st.exec(n, err); err != nil {
					return err
				}
				continue
			}
			rs, err := s.txQuery(ctx, tx, st.query, st.args...)
			if err := st.read(sqlRows{rs}, err); err != nil {
				return err
			}
		}
		return nil
	})
}

// sqlRows is *sql.Rows as planRows (its Close returns an error).
type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() {
	if r.Rows != nil {
		r.Rows.Close()
	}
}

// pipelinedTx is runPlan on PostgreSQL: e is stamped, gets its ID when committed, and wakes
// the chainer.
func (s *DB) pipelinedTx(ctx context.Context, e *latchkey.AuditEvent, p *txPlan) error {
	if inWrite(ctx) {
		return errNestedWrite
	}
	s.stampAudit(e)
	if e != nil {
		p.query("insert audit event", func(scan func(...any) error) error { return scan(&e.ID) }, nil,
			qInsertAuditPending, auditArgs(e)...)
	}
	// A transaction whose connection was lost before its COMMIT runs again once (stale.go).
	err := s.retryLost(ctx, func() error {
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
		// A connection left in a transaction (a ROLLBACK that could not be sent) is not
		// handed out again: pgx's stdlib refuses it when the pool resets it.
		conn.Close()
		return err
	})
	return s.audited(e, err)
}

// rollbackWait bounds the ROLLBACK after a failed pipelined transaction.
const rollbackWait = 2 * time.Second

// runPipe sends BEGIN and p's statements on c, reads their results in order, and commits when
// every check passed, or rolls back.
func runPipe(ctx context.Context, c *pgx.Conn, p *txPlan) (err error) {
	b := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, len(p.steps)+1)}
	b.Queue("BEGIN")
	for _, st := range p.steps {
		b.Queue(st.query, st.args...)
	}
	br := c.SendBatch(ctx, b)
	// BEGIN's result carries the errors of the whole batch before it ran (preparing its
	// statements, writing it to the connection).
	if _, err = br.Exec(); err != nil {
		err = fmt.Errorf("pipelined transaction: %w", err)
	}
	for i := 0; err == nil && i < len(p.steps); i++ {
		st := p.steps[i]
		if st.skipped() {
			// Its result is read and dropped; an error of it failed the transaction, which
			// the statements after it, or COMMIT, then tell.
			_, _ = br.Exec()
			continue
		}
		if st.exec != nil {
			ct, xerr := br.Exec()
			err = st.exec(ct.RowsAffected(), xerr)
		} else {
			rs, qerr := br.Query()
			err = st.read(rs, qerr)
		}
	}
	// Close reads what is left (the statements after a failed check, answered or refused
	// as part of a failed transaction).
	if cerr := br.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err == nil {
		ct, cerr := c.Exec(ctx, "COMMIT")
		if cerr != nil {
			return errCommitSent{fmt.Errorf("commit: %w", cerr)}
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
