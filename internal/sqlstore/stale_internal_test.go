package sqlstore

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestConnLost: the errors that say a connection is gone, and those that do not.
func TestConnLost(t *testing.T) {
	fatal := &pgconn.PgError{Severity: "FATAL", Code: "57P01", Message: "terminating connection due to administrator command"}
	for _, c := range []struct {
		err  error
		lost bool
	}{
		{nil, false},
		{fatal, true},
		{fmt.Errorf("insert push challenge: %w", fatal), true},
		{&pgconn.PgError{Severity: "ERROR", Code: "23505"}, false},
		{&pgconn.PgError{Severity: "ERROR", Code: "40001"}, false},
		{io.ErrUnexpectedEOF, true},
		{fmt.Errorf("read: %w", io.EOF), true},
		{driver.ErrBadConn, true},
		{context.Canceled, false},
		{fmt.Errorf("wait: %w", context.DeadlineExceeded), false},
		{errors.New("commit: the transaction was rolled back"), false},
	} {
		if got := connLost(c.err); got != c.lost {
			t.Errorf("connLost(%v) = %v, want %v", c.err, got, c.lost)
		}
	}
}

// TestRetryLost: a transaction is run again once when its connection was lost before COMMIT,
// never when its COMMIT was sent, never for an error of SQL, never on SQLite; a second run
// marks the server lost first.
func TestRetryLost(t *testing.T) {
	fatal := &pgconn.PgError{Severity: "FATAL", Code: "57P01"}
	unique := &pgconn.PgError{Severity: "ERROR", Code: "23505"}
	for _, c := range []struct {
		name    string
		dialect string
		errs    []error // what each run returns
		runs    int
		want    error
	}{
		{"lost, then committed", Postgres, []error{fatal, nil}, 2, nil},
		{"lost twice", Postgres, []error{fatal, fatal}, 2, fatal},
		{"lost at COMMIT", Postgres, []error{errCommitSent{fatal}, nil}, 1, fatal},
		{"an error of SQL", Postgres, []error{unique, nil}, 1, unique},
		{"on SQLite", SQLite, []error{fatal, nil}, 1, fatal},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := &DB{dialect: c.dialect}
			runs := 0
			err := s.retryLost(context.Background(), func() error {
				runs++
				return c.errs[runs-1]
			})
			if runs != c.runs {
				t.Errorf("%d runs, want %d", runs, c.runs)
			}
			if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Errorf("error %v, want %v", err, c.want)
			}
			var cs errCommitSent
			if errors.As(err, &cs) {
				t.Errorf("the error %v keeps its errCommitSent wrapper", err)
			}
			if marked := s.lost.Load() != 0; marked != (c.runs == 2) {
				t.Errorf("server marked lost: %v, want %v", marked, c.runs == 2)
			}
		})
	}
	// A caller's context that ended is not a lost connection.
	s := &DB{dialect: Postgres}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	runs := 0
	_ = s.retryLost(ctx, func() error { runs++; return fatal })
	if runs != 1 {
		t.Errorf("with the caller's context ended: %d runs, want 1", runs)
	}
}

// TestIsRead: the store's reads run again after a lost connection, and nothing that writes
// does: a statement that returns rows but writes (DELETE … RETURNING, a WITH that inserts) is
// not a read.
func TestIsRead(t *testing.T) {
	for q, want := range map[string]bool{
		`SELECT id FROM users WHERE username = $1`:                  true,
		"\n\t\tSELECT failures, last_failure_at FROM throttles":     true,
		sessionWithUserQuery:                                        true,
		qPushWithSession:                                            true,
		qRecordFailure:                                              false,
		`DELETE FROM invitations WHERE hash = $1 RETURNING user_id`: false,
		"\n\t\tUPDATE mail_outbox SET state = $1 RETURNING id":      false,
		qInsertAuditPending:                                         false,
		`INSERT INTO sessions (id) VALUES ($1)`:                     false,
		`WITH x AS (SELECT 1) SELECT * FROM x`:                      false,
	} {
		if got := isRead(q); got != want {
			t.Errorf("isRead(%.40q) = %v, want %v", q, got, want)
		}
	}
}
