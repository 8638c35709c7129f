package sqlstore_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/pgtest"
)

// TestRestartLeavesNoStaleConnection ends every connection of a store's full pool on the
// server, as a restart or a fail-over does (FATAL 57P01), and uses the store at once, as a
// node under load would: within a second, when pgx's own check would not ping. Without the
// store's checks, 18 of 25 operations in a row failed after a restart, one per dead
// connection. Now:
//   - transactions (a database/sql transaction, a pipelined plan) all succeed: the first to
//     meet a dead connection runs again on a checked one, and is committed once;
//   - once the server is known lost (ServerLost, as the push relay calls it), reads and
//     single statements all succeed: every dead connection is found by a ping and replaced
//     before a statement is sent on it;
//   - with nothing known, reads all succeed as well: the first to meet a dead connection
//     (its FATAL error marks the server lost) runs again, once, on a checked one; so do the
//     reads of a signed-in session (forward-auth's) and of a sign-in flow, and reads whose
//     statement was not prepared yet (preparing it meets the dead connection first);
//   - a single statement that writes is never run again: with nothing known, at most the
//     first fails, and the others count once each.
//
// The pipelined plans come last: they append audit entries, and the audit chainer then
// uses connections of the pool too.
func TestRestartLeavesNoStaleConnection(t *testing.T) {
	dsn := pgtest.Start(t)
	db := open(t, dsn, key)
	if _, ok := db.WriterStats(); ok {
		t.Error("WriterStats on PostgreSQL: ok, want none (it has no batch writer)")
	}
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx := context.Background()
	alice := mkUser(t, db, "alice")
	// fill opens every connection of the pool and hands them back, then ends them all on the
	// server and waits until they are gone.
	fill := func() {
		n := db.SQL().Stats().MaxOpenConnections
		// Twice: a connection's first use after it was opened is not checked (pgx pings it
		// at the next, having never checked it), and under load none is new.
		for range 2 {
			var wg, ready sync.WaitGroup
			release := make(chan struct{})
			ready.Add(n)
			for range n {
				wg.Go(func() {
					// A connection left dead by the step before is replaced (a second try).
					conn, err := db.SQL().Conn(ctx)
					for try := 0; try < 2 && err == nil && conn.PingContext(ctx) != nil; try++ {
						conn.Raw(func(any) error { return driver.ErrBadConn })
						conn.Close()
						conn, err = db.SQL().Conn(ctx)
					}
					ready.Done()
					if err != nil {
						t.Error(err)
						return
					}
					defer conn.Close()
					<-release
				})
			}
			ready.Wait()
			close(release)
			wg.Wait()
		}
		// (The audit chainer may hold one for a moment.)
		if st := db.SQL().Stats(); st.OpenConnections != n {
			t.Fatalf("pool before the restart: %+v, want all %d connections open", st, n)
		}
		const others = `FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`
		var ended int
		if err := admin.QueryRow(`SELECT count(pg_terminate_backend(pid)) ` + others).Scan(&ended); err != nil {
			t.Fatal(err)
		}
		if ended < n {
			t.Fatalf("ended %d connections, want the pool's %d at least", ended, n)
		}
		for left := 1; left > 0; time.Sleep(5 * time.Millisecond) {
			if err := admin.QueryRow(`SELECT count(*) ` + others).Scan(&left); err != nil {
				t.Fatal(err)
			}
		}
	}
	// events waits for the chainer (up to 10 s) to chain the entries of the pipelined
	// transactions, and returns how many there are.
	events := func(want int) int {
		n := 0
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			es, err := db.FindAuditEvents(ctx, latchkey.AuditFilter{})
			if err != nil {
				t.Fatal(err)
			}
			n = 0
			for _, e := range es {
				if e.Action == "stale.test" {
					n++
				}
			}
			if n >= want {
				break
			}
		}
		return n
	}
	run := func(what string, op func(i int) error) (fails int, first error) {
		for i := range 25 {
			if err := op(i); err != nil {
				fails++
				if first == nil {
					first = err
				}
			}
		}
		t.Logf("%s: %d of 25 failed (first: %v)", what, fails, first)
		return fails, first
	}

	fill()
	if n, err := run("transactions", func(i int) error {
		email := fmt.Sprintf("alice%d@example.com", i)
		_, err := db.UpdateUser(ctx, alice.ID, latchkey.UserUpdate{Email: &email})
		return err
	}); n != 0 {
		t.Errorf("transactions after a restart: %d of 25 failed: %v", n, err)
	}

	fill()
	db.ServerLost()
	if n, err := run("reads, the server known lost", func(int) error {
		_, err := db.FindUserByUsername(ctx, "alice")
		return err
	}); n != 0 {
		t.Errorf("reads after a restart the store was told of: %d of 25 failed: %v", n, err)
	}

	fill()
	db.ServerLost()
	if n, err := run("single statements, the server known lost", func(int) error {
		_, err := db.RecordFailure(ctx, "stale", time.Now())
		return err
	}); n != 0 {
		t.Errorf("single statements after a restart the store was told of: %d of 25 failed: %v", n, err)
	}

	now := time.Now()
	sess := &latchkey.Session{ID: "stale-s", SID: "stale-sid", UserID: alice.ID, State: latchkey.StateAuthenticated, AMR: []string{"pwd"},
		PasswordAt: now, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour), Verifier: "v"}
	if err := db.CreateSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	for _, read := range []struct {
		what string
		op   func() error
	}{
		{"reads", func() error { _, err := db.FindUserByUsername(ctx, "alice"); return err }},
		{"sessions with their user", func() error { _, _, err := db.FindSessionWithUser(ctx, "stale-s"); return err }},
		{"sign-in flows", func() error { _, _, err := db.FindFlowWithUser(ctx, "stale-s"); return err }},
		// Queries first run after the restart: preparing them fails on a dead connection,
		// and they run unprepared.
		{"reads of one row not prepared yet", func() error {
			_, err := db.FindPushChallenge(ctx, "stale-none")
			if latchkey.ErrorCode(err) == latchkey.ENotFound {
				return nil
			}
			return err
		}},
		{"reads of rows not prepared yet", func() error { _, err := db.FindThrottles(ctx, "stale-a", "stale-b"); return err }},
	} {
		fill()
		if n, err := run(read.what+", nothing known", func(int) error { return read.op() }); n != 0 {
			t.Errorf("%s after a restart: %d of 25 failed: %v", read.what, n, err)
		}
	}

	// A statement that writes and returns a row (queryRow, like a read) is not run again:
	// at most the first fails, and each one that succeeded counted once.
	fill()
	n, err := run("single statements returning rows, nothing known", func(int) error {
		_, err := db.RecordFailure(ctx, "stale-count", time.Now())
		return err
	})
	if n > 1 {
		t.Errorf("single statements after a restart: %d of 25 failed, want at most the first: %v", n, err)
	}
	if th, err := db.FindThrottle(ctx, "stale-count"); err != nil || th.Failures != 25-n {
		t.Errorf("counter after 25 failures recorded (%d failed): %d, %v; want %d (none run twice)", n, th.Failures, err, 25-n)
	}

	fill()
	if n, err := run("pipelined transactions", func(int) error {
		return db.AppendAuditEvent(ctx, &latchkey.AuditEvent{Action: "stale.test", Outcome: latchkey.OutcomeSuccess})
	}); n != 0 {
		t.Errorf("pipelined transactions after a restart: %d of 25 failed: %v", n, err)
	}
	if n := events(25); n != 25 {
		t.Errorf("%d audit entries written by 25 transactions, want 25 (each committed once)", n)
	}
}
