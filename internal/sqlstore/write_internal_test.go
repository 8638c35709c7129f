package sqlstore

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
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
