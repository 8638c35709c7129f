package web

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/latchkey/latchkey"
)

// unavailableRetry is the Retry-After of an answer given while the database is unreachable:
// a restart or a fail-over of PostgreSQL takes seconds.
const unavailableRetry = 5 * time.Second

// errUnavailable is the answer while the database cannot be reached.
var errUnavailable = &latchkey.Error{
	Code:       latchkey.EUnavailable,
	Message:    "The service is briefly unavailable. Please try again in a few seconds.",
	RetryAfter: unavailableRetry,
}

// unavailable returns errUnavailable (wrapping err for the log) when err is an internal
// error caused by a database that cannot be reached, and err otherwise. Storage errors are
// wrapped with %w all the way up, so the driver's error is still in the chain.
func unavailable(err error) error {
	if err == nil || latchkey.ErrorCode(err) != latchkey.EInternal || !isUnavailable(err) {
		return err
	}
	return &unavailableError{err}
}

// logUnavailable logs a request answered with EUnavailable, at warning level: the outage is
// the operator's news, /readyz says so too. The route pattern is logged, not the path, which
// can carry tokens.
func (s *Server) logUnavailable(r *http.Request, err error) {
	if latchkey.ErrorCode(err) == latchkey.EUnavailable {
		s.log.WarnContext(r.Context(), "database unavailable", "route", r.Pattern, "err", err)
	}
}

// unavailableError is errUnavailable for clients and the cause for the log.
type unavailableError struct{ cause error }

func (e *unavailableError) Error() string { return "database unavailable: " + e.cause.Error() }

// Unwrap yields errUnavailable first, so that ErrorCode and ErrorMessage see it, then the
// cause.
func (e *unavailableError) Unwrap() []error { return []error{errUnavailable, e.cause} }

// isUnavailable reports whether err says the database cannot be reached or went away, as
// opposed to a query that failed: refused, reset or timed-out connections (net.Error,
// pgconn.ConnectError unwraps to one), a connection closed in the middle of a query,
// database/sql giving up on bad connections, a connection from the pool not obtained in
// time, and the PostgreSQL SQLSTATEs of classes 08 (connection exception) and 57P (server
// shutting down or starting: admin_shutdown, crash_shutdown, cannot_connect_now) and 53300
// (too_many_connections). The SQLSTATE is read through the SQLState method that pgx's
// PgError has, so this package needs no driver.
func isUnavailable(err error) bool {
	var ne net.Error
	var st interface{ SQLState() string }
	switch {
	case errors.As(err, &ne),
		errors.Is(err, driver.ErrBadConn),
		errors.Is(err, sql.ErrConnDone),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, context.DeadlineExceeded):
		return true
	case errors.As(err, &st):
		s := st.SQLState()
		return strings.HasPrefix(s, "08") || strings.HasPrefix(s, "57P") || s == "53300"
	}
	return false
}
