package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/latchkey/latchkey"
)

// SQLite lets one writer in at a time. Left to itself, a connection that finds the write lock
// taken sleeps in SQLite's busy handler (1, 2, 5, 10, … up to 100 ms between tries) and is
// not woken when the lock is released: under load, a write that should wait 100 µs waits tens
// of milliseconds, and the unlucky ones much more (the TOTP step's p99 was 100–150 ms at 64
// clients). So the writers of this process queue in Go instead: lockWrites admits one writing
// transaction or statement at a time, in arrival order (a channel's waiting senders are
// served first in, first out), and each is woken the moment the previous one commits.
// busy_timeout stays as the safety net for writers of other processes (a backup, the CLI).
//
// On PostgreSQL, lockWrites does nothing: its row locks let unrelated writers run at once.

// writeWait bounds the wait for the writers' turn, like busy_timeout: a caller without a
// deadline that would wait longer gets EUnavailable.
const writeWait = 10 * time.Second

// lockWrites waits for this process's turn to write and returns the function that ends it.
func (s *DB) lockWrites(ctx context.Context) (done func(), err error) {
	if s.writer == nil {
		return func() {}, nil
	}
	select {
	case s.writer <- struct{}{}:
		s.turns.Add(1)
		return s.unlockWrites, nil
	default:
	}
	t := time.NewTimer(writeWait)
	defer t.Stop()
	select {
	case s.writer <- struct{}{}:
		s.turns.Add(1)
		return s.unlockWrites, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
		return nil, latchkey.Errorf(latchkey.EUnavailable, "The database is busy. Try again in a moment.")
	}
}

func (s *DB) unlockWrites() {
	<-s.writer
	s.wal.poke()
	s.ckpt.poke()
}

// write runs f, a statement that writes outside a transaction, in this process's turn to write.
func (s *DB) write(ctx context.Context, f func() error) error {
	if inWrite(ctx) {
		return errNestedWrite
	}
	done, err := s.lockWrites(ctx)
	if err != nil {
		return err
	}
	defer done()
	return f()
}

// exec runs a statement that writes, outside a transaction, in this process's turn to write.
func (s *DB) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return s.execStmt(ctx, nil, query, args...)
}

// execStmt is exec with a prepared statement (st not nil) or the query text.
func (s *DB) execStmt(ctx context.Context, st *sql.Stmt, query string, args ...any) (res sql.Result, err error) {
	err = s.write(ctx, func() error {
		if st == nil {
			st = s.hot.cached(ctx, s.db, query)
		}
		if st != nil {
			res, err = st.ExecContext(ctx, args...)
		} else {
			res, err = s.db.ExecContext(ctx, query, args...)
		}
		return err
	})
	return res, err
}

// writingKey marks the context a transaction's function runs with (see tx).
type writingKey struct{}

// errNestedWrite is the answer to a write started inside a transaction's function: on SQLite
// it would wait for the transaction it is part of (the batch writer, or the process's turn to
// write), for ever or until writeWait. Such a write belongs in the transaction, on its tx.
var errNestedWrite = errors.New("sqlstore: a write was started inside a transaction's function, where it would wait for that transaction; run it on the transaction's tx")

// writing returns ctx marked as that of a transaction's function.
func writing(ctx context.Context) context.Context { return context.WithValue(ctx, writingKey{}, true) }

// inWrite reports whether ctx is that of a transaction's function.
func inWrite(ctx context.Context) bool { return ctx.Value(writingKey{}) != nil }
