package sqlstore

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// Connections a restarted PostgreSQL server left behind.
//
// When PostgreSQL restarts (an operator's restart, a fail-over), every connection of the pool
// is dead, but the pool does not know it: the server's farewell (FATAL 57P01, "terminating
// connection due to administrator command") waits unread in each socket until the connection
// is next used, and the statement then sent on it fails. pgx's own check before reusing a
// connection pings only those idle for more than a second, so under load, once the server is
// back, every connection of the pool failed one request (18 of 25 in a row in the probe that
// led here), on every node.
//
// So the store remembers when it last saw a sign that the server went away (lost): a FATAL
// error on any of its connections, a failed Ping (the readiness check), or ServerLost, which
// the push relay calls when its listening connection, always waiting on the server, is cut
// (cmd/latchkey wires it). Before a connection is reused, it is pinged when it has not been
// checked since then (shouldPing), and a dead one is dropped and replaced before any
// statement is sent on it. That costs one round trip per connection after each such event,
// and nothing otherwise.
//
// A request can still be the first to meet a dead connection, before anything marked the
// server lost. A transaction is then run again, once, on another connection when it failed
// before its COMMIT was sent (retryLost): PostgreSQL commits nothing of a transaction whose
// connection ended before COMMIT, so running it again cannot apply it twice. A read (a
// SELECT through queryRow or query, a readWarm read, the session reads) is run again, once,
// as well (readAgain, hot.go): it changes nothing. A single statement that writes, outside a
// transaction, is not run again: its failure does not tell whether it was committed (its
// COMMIT is implicit, and the server may end the connection after the commit and before its
// answer).

// ServerLost tells the store that the PostgreSQL server went away, or may have: every
// connection of the pool is checked before it is next used. It is safe to call at any time,
// also on SQLite, where it does nothing.
func (s *DB) ServerLost() {
	now := time.Now().UnixNano()
	for {
		prev := s.lost.Load()
		if prev >= now || s.lost.CompareAndSwap(prev, now) {
			return
		}
	}
}

// shouldPing is the pool's check before it reuses a connection (stdlib.OptionShouldPing):
// ping when pgx would (idle for more than a second), or when the connection was last checked
// before the server was last seen lost.
func (s *DB) shouldPing(_ context.Context, p stdlib.ShouldPingParams) bool {
	if p.IdleDuration > time.Second {
		return true
	}
	lost := s.lost.Load()
	return lost != 0 && time.Now().Add(-p.IdleDuration).UnixNano() <= lost
}

// onPgError sees every error the server sends on the pool's connections: a FATAL one ends
// the connection (as pgx's default handler does) and marks the server lost, since a server
// that ends one connection this way (shutting down, restarting) has usually ended them all.
func (s *DB) onPgError(_ *pgconn.PgConn, e *pgconn.PgError) bool {
	if strings.EqualFold(e.Severity, "FATAL") || strings.EqualFold(e.Severity, "PANIC") {
		s.ServerLost()
		return false
	}
	return true
}

// connLost reports whether err says that the connection it happened on is gone: the
// server ended it (a FATAL error: shutting down, restarting, terminated by an operator), it
// broke (end of file, a network error), or it was found closed before anything was sent.
// An error of SQL (a constraint, a syntax error, a serialization failure) or the end of the
// caller's context is not.
func connLost(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return strings.EqualFold(pg.Severity, "FATAL") || strings.EqualFold(pg.Severity, "PANIC")
	}
	var ne net.Error
	return errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.As(err, &ne) || pgconn.SafeToRetry(err)
}

// errCommitSent wraps the error of a transaction whose COMMIT was sent: whether it was
// committed is unknown, so it is never run again.
type errCommitSent struct{ err error }

func (e errCommitSent) Error() string { return e.err.Error() }
func (e errCommitSent) Unwrap() error { return e.err }

// retryLost runs the transaction run, and once more when it failed because its connection
// was lost before its COMMIT was sent (run wraps the errors of the COMMIT itself in
// errCommitSent). The server is then marked lost, so that the second run gets a connection
// that was checked. The errCommitSent wrapper is taken off the error returned.
func (s *DB) retryLost(ctx context.Context, run func() error) error {
	err := run()
	var cs errCommitSent
	if err != nil && s.dialect == Postgres && !errors.As(err, &cs) && connLost(err) && ctx.Err() == nil {
		s.ServerLost()
		err = run()
	}
	if errors.As(err, &cs) {
		return cs.err
	}
	return err
}
