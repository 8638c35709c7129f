package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/pgtest"
)

// TestWritersTakeTurns: on SQLite every write of the process, a transaction or a single
// statement, waits for the writers' turn in Go (not in SQLite's sleeping busy handler): while
// the turn is held, a write with a deadline gives up with the context's error and writes
// nothing; once it is released, the same writes go through.
func TestWritersTakeTurns(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "turns.db"), Options{SecretsKey: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	done, err := db.lockWrites(ctx)
	if err != nil {
		t.Fatal(err)
	}
	writes := map[string]func(context.Context) error{
		"statement (RecordFailure)": func(ctx context.Context) error {
			_, err := db.RecordFailure(ctx, "user:alice", time.Now())
			return err
		},
		"transaction (AppendAuditEvent)": func(ctx context.Context) error {
			return db.AppendAuditEvent(ctx, &latchkey.AuditEvent{Action: "test", Outcome: latchkey.OutcomeSuccess})
		},
	}
	for name, write := range writes {
		wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		err := write(wctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s while another writer holds the turn: %v, want the deadline", name, err)
		}
	}
	if th, _ := db.FindThrottle(ctx, "user:alice"); th.Failures != 0 {
		t.Errorf("a write waiting for its turn was written: %d failures", th.Failures)
	}
	if events, _ := db.FindAuditEvents(ctx, latchkey.AuditFilter{}); len(events) != 0 {
		t.Errorf("a transaction waiting for its turn was written: %d events", len(events))
	}
	done()
	for name, write := range writes {
		if err := write(ctx); err != nil {
			t.Errorf("%s after the turn was released: %v", name, err)
		}
	}
}

// TestNestedWriteFails: a write of the store started inside a transaction's function, with
// that function's context, fails at once with errNestedWrite, on both dialects: on SQLite it
// would wait for the very transaction it is part of. The transaction then rolls back as a
// whole, and the store keeps working.
func TestNestedWriteFails(t *testing.T) {
	for name, dsn := range map[string]func() string{
		"sqlite":   func() string { return filepath.Join(t.TempDir(), "nested.db") },
		"postgres": func() string { return pgtest.Start(t) },
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			db, err := Open(ctx, dsn(), Options{SecretsKey: make([]byte, 32)})
			if err != nil {
				t.Fatal(err)
			}
			// Closed at the end, not deferred: when a nested write waits, so would Close.
			nested := map[string]func(context.Context) error{
				"transaction": func(ctx context.Context) error {
					return db.AppendAuditEvent(ctx, &latchkey.AuditEvent{Action: "inner", Outcome: latchkey.OutcomeSuccess})
				},
				"statement": func(ctx context.Context) error {
					_, err := db.RecordFailure(ctx, "user:alice", time.Now())
					return err
				},
			}
			for what, write := range nested {
				res := make(chan error, 1)
				go func() {
					res <- db.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
						if _, err := tx.ExecContext(ctx, `INSERT INTO settings (key, value) VALUES ('nested', 'x')`); err != nil {
							return err
						}
						return write(ctx)
					})
				}()
				select {
				case err := <-res:
					if !errors.Is(err, errNestedWrite) {
						t.Errorf("a nested %s: %v, want errNestedWrite", what, err)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("a nested %s still waits after 10 s (the store is left open: closing it would wait too)", what)
				}
			}
			var n int
			if err := db.db.QueryRowContext(ctx, `SELECT count(*) FROM settings WHERE key = 'nested'`).Scan(&n); err != nil || n != 0 {
				t.Errorf("the outer transaction was not rolled back: %d rows, %v", n, err)
			}
			if th, _ := db.FindThrottle(ctx, "user:alice"); th.Failures != 0 {
				t.Errorf("the nested statement was written: %d failures", th.Failures)
			}
			if err := db.AppendAuditEvent(ctx, &latchkey.AuditEvent{Action: "after", Outcome: latchkey.OutcomeSuccess}); err != nil {
				t.Errorf("a write after the refused nesting: %v", err)
			}
			db.Close()
		})
	}
}
