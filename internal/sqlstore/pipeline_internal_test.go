package sqlstore

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/pgtest"
)

// TestPipelinedTx: a pipelined transaction commits its statements and its audit entry
// together; a failed check, a failing statement or an ended context writes nothing of it,
// answers the first failure in queue order, and leaves no connection of the pool inside a
// transaction.
func TestPipelinedTx(t *testing.T) {
	db := openPG(t, pgtest.Start(t))
	ctx := context.Background()
	if _, err := db.db.Exec(`CREATE TABLE pipe_test (k text PRIMARY KEY, v bigint NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	// Every connection of the pool serves one of the transactions below: a connection left
	// in a transaction would be handed out again, and its next statements would fail or
	// be rolled back with it.
	db.db.SetMaxOpenConns(1)
	insert := func(p *txPlan, k string, v int) {
		p.exec(func(n int64, err error) error {
			if err != nil {
				return err
			}
			if n != 1 {
				t.Errorf("insert %s changed %d rows", k, n)
			}
			return nil
		}, `INSERT INTO pipe_test (k, v) VALUES ($1, $2)`, k, v)
	}
	rows := func() map[string]int {
		t.Helper()
		got := map[string]int{}
		rs, err := db.db.Query(`SELECT k, v FROM pipe_test`)
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		for rs.Next() {
			var k string
			var v int
			if err := rs.Scan(&k, &v); err != nil {
				t.Fatal(err)
			}
			got[k] = v
		}
		return got
	}
	entries := func() int {
		t.Helper()
		var n int
		if err := db.db.QueryRow(`SELECT COUNT(*) FROM audit_events`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	// Committed: the rows, the audit entry with its ID, and a query's rows read in order.
	var p txPlan
	insert(&p, "a", 1)
	insert(&p, "b", 2)
	var seen []string
	p.query("read", func(scan func(...any) error) error {
		var k string
		if err := scan(&k); err != nil {
			return err
		}
		seen = append(seen, k)
		return nil
	}, func(n int) error {
		if n != 2 {
			t.Errorf("the query's end got %d rows, want 2", n)
		}
		return nil
	}, `SELECT k FROM pipe_test ORDER BY k`)
	// A step whose result is not wanted is read past: the next check gets its own result.
	p.query("skipped", func(func(...any) error) error {
		t.Error("a skipped step's rows were read")
		return nil
	}, nil, `SELECT k FROM pipe_test`).onlyIf(func() bool { return len(seen) == 0 })
	p.exec(func(n int64, err error) error {
		if err != nil || n != 2 {
			t.Errorf("the step after a skipped one got %d rows, %v; want its own 2", n, err)
		}
		return err
	}, `UPDATE pipe_test SET v = v * 10 WHERE k IN ('a', 'b')`)
	p.exec(func(n int64, err error) error {
		if err != nil || n != 0 {
			t.Errorf("the last step got %d rows, %v; want its own 0", n, err)
		}
		return err
	}, `DELETE FROM pipe_test WHERE k = 'none'`)
	e := auditEvent(1)
	if err := db.pipelinedTx(ctx, e, &p); err != nil {
		t.Fatalf("pipelinedTx: %v", err)
	}
	if got := rows(); len(got) != 2 || got["a"] != 10 || got["b"] != 20 {
		t.Errorf("committed rows %v, want a=10 b=20", got)
	}
	if strings.Join(seen, ",") != "a,b" {
		t.Errorf("the query saw %v, want the rows inserted before it in the transaction", seen)
	}
	if e.ID == 0 || entries() != 1 {
		t.Errorf("audit entry ID %d, %d entries, want it stored", e.ID, entries())
	}

	errRefused := latchkey.Errorf(latchkey.EConflict, "refused")
	for _, tt := range []struct {
		name  string
		build func(p *txPlan)
		ctx   func() context.Context
		want  func(error) bool
	}{
		{"a check refuses after a write, statements follow", func(p *txPlan) {
			insert(p, "c", 3)
			p.exec(func(int64, error) error { return errRefused }, `UPDATE pipe_test SET v = v + 1`)
			insert(p, "d", 4)
		}, context.Background, func(err error) bool { return err == errRefused }},
		{"a statement fails, the checks after it are not asked", func(p *txPlan) {
			insert(p, "c", 3)
			insert(p, "a", 5) // a duplicate key
			p.exec(func(int64, error) error { return errRefused }, `UPDATE pipe_test SET v = v + 1`)
		}, context.Background, func(err error) bool { return isUnique(err) }},
		{"a query's end refuses", func(p *txPlan) {
			insert(p, "c", 3)
			p.query("read", func(scan func(...any) error) error { var v int; return scan(&v) },
				func(int) error { return errRefused }, `SELECT v FROM pipe_test`)
		}, context.Background, func(err error) bool { return err == errRefused }},
		{"a query fails", func(p *txPlan) {
			insert(p, "c", 3)
			p.query("read", func(scan func(...any) error) error { return nil }, nil, `SELECT 1 / (v - 10) FROM pipe_test`)
		}, context.Background, func(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "read: ") }},
		{"a statement cannot be prepared", func(p *txPlan) {
			insert(p, "c", 3)
			p.exec(func(_ int64, err error) error { return err }, `UPDATE pipe_test SET nothing = 1`)
		}, context.Background, func(err error) bool { return err != nil && strings.Contains(err.Error(), `"nothing"`) }},
		{"the context ended", func(p *txPlan) {
			insert(p, "c", 3)
		}, func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}, func(err error) bool { return errors.Is(err, context.Canceled) }},
	} {
		var p txPlan
		tt.build(&p)
		e := auditEvent(2)
		err := db.pipelinedTx(tt.ctx(), e, &p)
		if !tt.want(err) {
			t.Errorf("%s: pipelinedTx = %v", tt.name, err)
		}
		if got := rows(); len(got) != 2 || got["a"] != 10 || got["b"] != 20 {
			t.Errorf("%s: rows %v, want a=10 b=20 alone", tt.name, got)
		}
		if e.ID != 0 || entries() != 1 {
			t.Errorf("%s: audit entry ID %d, %d entries, want none written", tt.name, e.ID, entries())
		}
	}

	// The pool's one connection still works, outside any transaction.
	p = txPlan{}
	insert(&p, "e", 5)
	if err := db.pipelinedTx(ctx, nil, &p); err != nil {
		t.Fatalf("pipelinedTx after the failures: %v", err)
	}
	if got := rows(); len(got) != 3 || got["e"] != 5 {
		t.Errorf("rows %v, want e=5 added", got)
	}
}
