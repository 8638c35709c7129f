package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/audit"
	"github.com/latchkey/latchkey/internal/pgtest"
)

// openPG opens a store on the PostgreSQL database dsn, closed with the test.
func openPG(t *testing.T, dsn string) *DB {
	t.Helper()
	db, err := Open(context.Background(), dsn, Options{SecretsKey: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func auditEvent(i int) *latchkey.AuditEvent {
	return &latchkey.AuditEvent{UserID: latchkey.UserID(i%7 + 1), Username: fmt.Sprint("user", i%7), Action: latchkey.ActionLogin,
		Outcome: latchkey.OutcomeSuccess, IP: "192.0.2.1", UserAgent: "test", Detail: fmt.Sprint(i)}
}

// waitPending waits until no entry waits for a chainer, without chaining any itself.
func waitPending(t *testing.T, db *DB, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var n int
		if err := db.db.QueryRow(`SELECT COUNT(*) FROM audit_pending`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d audit entries still pending after %v", n, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// chainedStore opens a store on a new PostgreSQL database with one entry, chained, and
// another connection pool on the same database (another session, or a node's raw writes).
func chainedStore(t *testing.T) (*DB, *sql.DB) {
	t.Helper()
	dsn := pgtest.Start(t)
	db := openPG(t, dsn)
	if err := db.AppendAuditEvent(context.Background(), auditEvent(0)); err != nil {
		t.Fatal(err)
	}
	waitPending(t, db, 5*time.Second)
	raw, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return db, raw
}

// verifyIntact runs audit.Verify and expects an intact chain of want entries, none pending.
func verifyIntact(t *testing.T, db *DB, want int) audit.Report {
	t.Helper()
	rep, err := audit.Verify(context.Background(), db)
	if err != nil || rep.FirstBroken != 0 || rep.Entries != want || rep.Pending != 0 {
		t.Fatalf("Verify = %+v, %v; want %d intact entries", rep, err, want)
	}
	return rep
}

// TestAuditChainTwoNodes: two nodes append at once on one PostgreSQL database; their
// chainers, woken by the commits alone, chain every entry once, and the chain verifies.
func TestAuditChainTwoNodes(t *testing.T) {
	dsn := pgtest.Start(t)
	a, b := openPG(t, dsn), openPG(t, dsn)
	const workers, each = 8, 25
	var wg sync.WaitGroup
	for w := range workers {
		db := a
		if w%2 == 1 {
			db = b
		}
		wg.Go(func() {
			for i := range each {
				e := auditEvent(w*each + i)
				if err := db.AppendAuditEvent(context.Background(), e); err != nil {
					t.Error(err)
					return
				}
				if e.ID == 0 {
					t.Error("AppendAuditEvent set no ID")
				}
			}
		})
	}
	wg.Wait()
	waitPending(t, a, 5*time.Second)
	rep := verifyIntact(t, a, workers*each)
	var chained, events int
	a.db.QueryRow(`SELECT COUNT(*), COUNT(DISTINCT event_id) FROM audit_chain`).Scan(&chained, &events)
	if chained != workers*each || events != chained {
		t.Errorf("audit_chain holds %d places for %d entries, want %d each", chained, events, workers*each)
	}
	// The other node sees the same chain.
	if rep2 := verifyIntact(t, b, workers*each); rep2.LastID != rep.LastID {
		t.Errorf("the nodes' chains end at %d and %d", rep.LastID, rep2.LastID)
	}
}

// TestAuditAppendTakesNoLock: an audited transaction does not wait for the chain's lock (it
// used to hold it to its commit, one transaction at a time for the whole deployment). While
// another session holds the lock, appends commit and wait unchained; once it is let go, the
// chainer chains them.
func TestAuditAppendTakesNoLock(t *testing.T) {
	db, holder := chainedStore(t)
	ctx := context.Background()
	tx, err := holder.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`SELECT pg_advisory_xact_lock($1)`, chainLock); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := db.AppendAuditEvent(actx, auditEvent(i))
		cancel()
		if err != nil {
			t.Fatalf("append %d while the chain's lock is held: %v", i, err)
		}
	}
	var pending int
	db.db.QueryRow(`SELECT COUNT(*) FROM audit_pending`).Scan(&pending)
	if pending != 3 {
		t.Errorf("%d entries pending while the lock is held, want 3", pending)
	}
	// Listed already, without hashes until chained.
	events, err := db.FindAuditEvents(ctx, latchkey.AuditFilter{})
	if err != nil || len(events) != 4 || events[3].Hash != nil {
		t.Fatalf("FindAuditEvents = %d events, %v", len(events), err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	waitPending(t, db, 5*time.Second)
	verifyIntact(t, db, 4)
}

// TestAuditChainLeftEntries: entries a node committed and never chained (it was killed) are
// chained by another node within chainEvery, without being woken.
func TestAuditChainLeftEntries(t *testing.T) {
	db, raw := chainedStore(t)
	// What a killed node leaves: its committed entries, pending.
	for i := 1; i <= 2; i++ {
		e := auditEvent(i)
		e.Time = time.Now().UTC().Truncate(time.Microsecond)
		if _, err := raw.Exec(qInsertAuditPending, auditArgs(e)...); err != nil {
			t.Fatal(err)
		}
	}
	waitPending(t, db, 3*chainEvery)
	verifyIntact(t, db, 3)
}

// TestAuditChainTampering: on PostgreSQL, with the triggers and the reference dropped (as an
// attacker with the database's owner could), an edited entry, a removed one, and a forged
// pending row are all caught or harmless.
func TestAuditChainTampering(t *testing.T) {
	setup := func(t *testing.T) (*DB, []*latchkey.AuditEvent) {
		db := openPG(t, pgtest.Start(t))
		for i := range 5 {
			if err := db.AppendAuditEvent(context.Background(), auditEvent(i)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.ChainAuditEvents(context.Background()); err != nil {
			t.Fatal(err)
		}
		chain, err := db.FindAuditChain(context.Background(), 0, 0)
		if err != nil || len(chain) != 5 {
			t.Fatalf("FindAuditChain = %d, %v", len(chain), err)
		}
		for _, q := range []string{
			`ALTER TABLE audit_events DISABLE TRIGGER USER`,
			`ALTER TABLE audit_chain DISABLE TRIGGER USER`,
			`ALTER TABLE audit_chain DROP CONSTRAINT audit_chain_event_id_fkey`,
			`ALTER TABLE audit_pending DROP CONSTRAINT audit_pending_event_id_fkey`,
		} {
			if _, err := db.db.Exec(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		return db, chain
	}
	t.Run("edited", func(t *testing.T) {
		db, chain := setup(t)
		db.db.Exec(`UPDATE audit_events SET detail = 'forged' WHERE id = $1`, chain[2].ID)
		rep, err := audit.Verify(context.Background(), db)
		if err != nil || rep.FirstBroken != chain[2].ID || !strings.Contains(rep.Reason, "content") {
			t.Errorf("Verify = %+v, %v; want broken at %d", rep, err, chain[2].ID)
		}
	})
	t.Run("entry removed", func(t *testing.T) {
		db, chain := setup(t)
		db.db.Exec(`DELETE FROM audit_events WHERE id = $1`, chain[2].ID)
		rep, err := audit.Verify(context.Background(), db)
		if err != nil || rep.FirstBroken != chain[2].ID {
			t.Errorf("Verify = %+v, %v; want broken at %d", rep, err, chain[2].ID)
		}
	})
	t.Run("entry and its place removed", func(t *testing.T) {
		db, chain := setup(t)
		db.db.Exec(`DELETE FROM audit_chain WHERE seq = $1`, chain[2].Seq)
		db.db.Exec(`DELETE FROM audit_events WHERE id = $1`, chain[2].ID)
		rep, err := audit.Verify(context.Background(), db)
		if err != nil || rep.FirstBroken != chain[3].ID || !strings.Contains(rep.Reason, "link") {
			t.Errorf("Verify = %+v, %v; want broken at %d", rep, err, chain[3].ID)
		}
	})
	t.Run("pending row for a chained entry", func(t *testing.T) {
		db, chain := setup(t)
		if _, err := db.db.Exec(`INSERT INTO audit_pending (event_id) VALUES ($1)`, chain[1].ID); err != nil {
			t.Fatal(err)
		}
		// It neither stops the chainer nor chains the entry twice.
		if err := db.AppendAuditEvent(context.Background(), auditEvent(9)); err != nil {
			t.Fatal(err)
		}
		waitPending(t, db, 5*time.Second)
		verifyIntact(t, db, 6)
	})
}

// TestAuditChainMigration: a trail chained before migration 0014 (in the appending
// transactions, in ID order) keeps its places and goes on with the new entries.
func TestAuditChainMigration(t *testing.T) {
	dsn := pgtest.Start(t)
	raw, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	names, err := migrations.ReadDir("migrations/postgres")
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(names, func(i, j int) bool { return names[i].Name() < names[j].Name() })
	if _, err := raw.Exec(`CREATE TABLE schema_migrations (version TEXT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		version := strings.TrimSuffix(n.Name(), ".sql")
		if version >= "0014" {
			break
		}
		body, _ := migrations.ReadFile(path.Join("migrations/postgres", n.Name()))
		if _, err := raw.Exec(string(body)); err != nil {
			t.Fatalf("%s: %v", n.Name(), err)
		}
		raw.Exec(`INSERT INTO schema_migrations (version) VALUES ($1)`, version)
	}
	// Three entries the way the store appended them before: chained in ID order, with a
	// gap in the IDs as a rolled-back transaction leaves.
	prev := []byte{}
	var old []int64
	for i, id := range []int64{1, 2, 4} {
		e := auditEvent(i)
		e.Time = time.Now().UTC().Truncate(time.Microsecond)
		h := e.ComputeHash(prev)
		if _, err := raw.Exec(`INSERT INTO audit_events (id, time, user_id, username, action, outcome, ip, user_agent, detail, ticket_id, prev_hash, hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`, id, us(e.Time), e.UserID, e.Username, e.Action, e.Outcome, e.IP, e.UserAgent, e.Detail, e.TicketID, prev, h); err != nil {
			t.Fatal(err)
		}
		prev = h
		old = append(old, id)
	}
	raw.Exec(`SELECT setval(pg_get_serial_sequence('audit_events', 'id'), 4)`)
	db := openPG(t, dsn)
	for i := range 2 {
		if err := db.AppendAuditEvent(context.Background(), auditEvent(10+i)); err != nil {
			t.Fatal(err)
		}
	}
	rep := verifyIntact(t, db, 5)
	chain, _ := db.FindAuditChain(context.Background(), 0, 0)
	for i, id := range old {
		if chain[i].ID != id || chain[i].Seq != id {
			t.Errorf("place %d: entry %d at seq %d, want entry %d at seq %d", i, chain[i].ID, chain[i].Seq, id, id)
		}
	}
	if chain[3].Seq != 5 || rep.LastID != chain[4].ID {
		t.Errorf("new entries at places %d, %d; want 5, 6", chain[3].Seq, chain[4].Seq)
	}
}

// TestAuditChainPassIndependentOfTrail: the chainer's pass reads the pending entries and
// their places through their indexes, never the whole trail, even when the planner's
// statistics say thousands of entries are pending (audit_pending churns: every entry goes in
// and out within milliseconds, and the statistics lag). Its read was planned as a hash join
// that read all of audit_chain at every pass, a cost that grew with the trail forever.
func TestAuditChainPassIndependentOfTrail(t *testing.T) {
	db := openPG(t, pgtest.Start(t))
	ctx := context.Background()
	// The node's own chainer stays out of it: it would chain the pending entries written
	// below before the test places them (a duplicate key, now and then).
	db.chain.stop()
	db.chain.done.Wait()
	for _, q := range []string{
		// A trail of 50,000 chained entries (written directly: the hashes do not matter here).
		`INSERT INTO audit_events (time, user_id, username, action, outcome, ip, user_agent, detail, ticket_id)
			SELECT g, 1, 'alice', 'login', 'success', '192.0.2.1', 'test', '', 0 FROM generate_series(1, 50000) g`,
		`INSERT INTO audit_chain (seq, event_id, prev_hash, hash) SELECT id, id, '\x00', '\x00' FROM audit_events`,
		// Statistics taken while 20,000 entries were pending, then all but a few chained.
		`ALTER TABLE audit_pending SET (autovacuum_enabled = false)`,
		`INSERT INTO audit_events (time, user_id, username, action, outcome, ip, user_agent, detail, ticket_id)
			SELECT g, 1, 'alice', 'login', 'success', '192.0.2.1', 'test', '', 0 FROM generate_series(1, 20000) g`,
		`INSERT INTO audit_pending (event_id) SELECT id FROM audit_events WHERE id > 50000`,
		`ANALYZE audit_events, audit_chain, audit_pending`,
		`INSERT INTO audit_chain (seq, event_id, prev_hash, hash) SELECT id, id, '\x00', '\x00' FROM audit_events WHERE id > 50000 AND id <= 69990`,
		`DELETE FROM audit_pending WHERE event_id <= 69990`,
	} {
		if _, err := db.db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	plan := func(q string, args ...any) string {
		rows, err := db.db.QueryContext(ctx, "EXPLAIN "+q, args...)
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for rows.Next() {
			var l string
			if err := rows.Scan(&l); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, l)
		}
		return strings.Join(lines, "\n")
	}
	for name, p := range map[string]string{
		"read":   plan(qPendingAudit),
		"delete": plan(qDonePending, []int64{69991, 69992}),
	} {
		for _, table := range []string{"audit_chain", "audit_events"} {
			if strings.Contains(p, "Seq Scan on "+table) {
				t.Errorf("the pass's %s reads all of %s:\n%s", name, table, p)
			}
		}
	}
	// And the pass chains the ten left.
	if n, err := db.chainPending(ctx); err != nil || n != 10 {
		t.Fatalf("chainPending = %d, %v; want 10", n, err)
	}
}
