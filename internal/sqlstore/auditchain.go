package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/latchkey/latchkey"
)

// The audit trail's chain on PostgreSQL.
//
// Each entry's hash covers the hash of the one before it, so entries are chained one at a
// time. On SQLite that costs nothing more: the process writes one transaction at a time
// anyway, and appendAudit chains each entry in its own transaction. On PostgreSQL it made
// every audited transaction of every node take one advisory lock, read the last hash and
// hold the lock to its commit: three to four round trips to the database while every other
// audited transaction of the deployment waited. The TOTP step and the push round trip ran
// at half the rate they reach without it (docs/performance.md, "On PostgreSQL").
//
// So on PostgreSQL an audited transaction inserts its entry unchained (prev_hash and hash
// NULL) with a row in audit_pending, and takes no lock. After its commit it wakes this
// node's chainer, which takes the lock and, in one transaction, chains every pending entry
// it finds in ID order: a row each in audit_chain (seq one after the last, the previous
// hash, the entry's own), and the pending rows deleted. The chainers of several nodes take
// turns on the lock; each finds what the one before it left. A chainer also runs once a
// second, for entries whose node stopped before it chained them (a crash, a restart, a
// CLI command that ended), and once more when its store closes.
//
// What this changes for the trail:
//   - Chain order is the order the chainer found the entries, not exactly ID order (a
//     transaction may commit after another that got a later ID). Verification walks the
//     chain by seq (FindAuditChain); the entries' own data is as before.
//   - An entry is unchained for the moment between its commit and the chainer's next pass
//     (milliseconds under load, at most a second when its node stopped). audit.Verify first
//     chains what is pending (ChainAuditEvents) and reports what was committed meanwhile.
//   - audit_chain is append-only like audit_events (triggers), and its rows reference the
//     entries, so removing an entry means removing its place as well, which breaks the link
//     of the next place; editing an entry breaks its place's hash.

// chainBatch bounds the entries one chainer transaction chains.
const chainBatch = 1000

// chainEvery is how often a chainer looks for entries that nobody woke it for.
const chainEvery = time.Second

// chainLock is the advisory lock the chainers take turns on (the same number the appends
// took before migration 0014, so that a node of the old version and a new one never chain
// at once).
const chainLock = 7305002

// chainer chains the audit trail's pending entries on PostgreSQL.
type chainer struct {
	s    *DB
	wake chan struct{}
	stop context.CancelFunc
	done sync.WaitGroup
}

// startChainer starts s's chainer (PostgreSQL only).
func (s *DB) startChainer() {
	ctx, cancel := context.WithCancel(context.Background())
	c := &chainer{s: s, wake: make(chan struct{}, 1), stop: cancel}
	c.done.Go(func() { c.loop(ctx) })
	s.chain = c
}

// auditAppended wakes the chainer after a transaction with an audit entry committed.
func (s *DB) auditAppended() {
	if s.chain == nil {
		return
	}
	select {
	case s.chain.wake <- struct{}{}:
	default: // a pass is due already: it will find this entry too
	}
}

// loop chains pending entries whenever woken and every chainEvery, until ctx ends.
func (c *chainer) loop(ctx context.Context) {
	t := time.NewTicker(chainEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		case <-t.C:
		}
		// An error (the database restarting, the pool closed) is left to the next pass:
		// the entries wait in audit_pending, committed.
		_, _ = c.s.chainPending(ctx)
	}
}

// close stops the chainer and chains what this node left, within a second.
func (c *chainer) close() {
	c.stop()
	c.done.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, _ = c.s.chainPending(ctx)
}

// chainPending chains every pending entry, chainBatch per transaction, and returns how many
// pending rows it settled.
func (s *DB) chainPending(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := s.chainPass(ctx)
		total += n
		if err != nil || n < chainBatch {
			return total, err
		}
	}
}

// chainPass chains up to chainBatch pending entries in one transaction and returns how many
// pending rows it settled.
func (s *DB) chainPass(ctx context.Context) (int, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("chain audit trail: %w", err)
	}
	defer tx.Rollback()
	// The lock first; each statement after it sees what the chainer before committed (read
	// committed takes a snapshot per statement).
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, chainLock); err != nil {
		return 0, fmt.Errorf("lock audit trail: %w", err)
	}
	var seq int64
	prev := []byte{}
	err = tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit_chain ORDER BY seq DESC LIMIT 1`).Scan(&seq, &prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("read last audit hash: %w", err)
	}
	rows, err := tx.QueryContext(ctx, qPendingAudit)
	if err != nil {
		return 0, fmt.Errorf("read pending audit events: %w", err)
	}
	var seqs, ids, seen []int64
	var prevs, hashes [][]byte
	for rows.Next() {
		e := new(latchkey.AuditEvent)
		var chained bool
		if err := scanAuditEvent(rows.Scan, e, &chained); err != nil {
			rows.Close()
			return 0, err
		}
		seen = append(seen, e.ID)
		if chained {
			// A pending row of an entry chained already (only a hand in the database makes
			// one): deleted below, so that it cannot stop the chain.
			continue
		}
		seq++
		h := e.ComputeHash(prev)
		seqs, ids, prevs, hashes = append(seqs, seq), append(ids, e.ID), append(prevs, prev), append(hashes, h)
		prev = h
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("read pending audit events: %w", err)
	}
	if len(ids) > 0 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit_chain (seq, event_id, prev_hash, hash)
			SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::bytea[])`, seqs, ids, prevs, hashes); err != nil {
			return 0, fmt.Errorf("chain audit events: %w", err)
		}
	}
	if len(seen) > 0 {
		if _, err := tx.ExecContext(ctx, qDonePending, seen); err != nil {
			return 0, fmt.Errorf("delete pending audit events: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("chain audit trail: %w", err)
	}
	return len(seen), nil
}

// qPendingAudit reads the first chainBatch pending entries in ID order, each with whether it
// is chained already, through their keys only, whatever the planner's statistics say.
// audit_pending churns (every entry goes in and out within milliseconds) and its statistics
// lag, so the planner expected thousands of pending rows; a plain join of them with
// audit_chain was then planned as a hash join that read the whole chain at every pass (7.4
// ms at 70,000 entries for ten pending ones, against 0.1 ms now; 0.5 ms per pass on average
// in a push benchmark whose trail had 10,000). A bound on the estimate is not enough: 1,000
// pending rows were still planned as hash joins over 70,000 entries. So each entry is found
// by its key: the entry in a LATERAL subquery that OFFSET 0 keeps from being merged into a
// join, its place by a scalar subquery, which PostgreSQL runs per row and never hashes.
var qPendingAudit = `SELECT ` + auditColumns + `, COALESCE((SELECT true FROM audit_chain c WHERE c.event_id = p.event_id), false)
	FROM (SELECT event_id FROM audit_pending ORDER BY event_id LIMIT ` + strconv.Itoa(chainBatch) + `) p,
	LATERAL (SELECT * FROM audit_events WHERE id = p.event_id OFFSET 0) e
	ORDER BY p.event_id`

// qDonePending deletes the pending rows a pass read, by their key.
const qDonePending = `DELETE FROM audit_pending WHERE event_id = ANY($1::bigint[])`

// ChainAuditEvents chains the entries waiting for it (PostgreSQL; on SQLite every entry is
// chained when it is appended) and returns how many are still pending: those committed
// while it ran.
func (s *DB) ChainAuditEvents(ctx context.Context) (int, error) {
	if s.dialect != Postgres {
		return 0, nil
	}
	if _, err := s.chainPending(ctx); err != nil {
		return 0, err
	}
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM audit_pending`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count pending audit events: %w", err)
	}
	return n, nil
}

// FindAuditChain returns up to limit chained entries after place afterSeq, in chain order.
// On SQLite the place is the ID. On PostgreSQL an entry whose row is gone (its place stays)
// comes back with its ID, place and hashes only, so that its hash does not match.
func (s *DB) FindAuditChain(ctx context.Context, afterSeq int64, limit int) ([]*latchkey.AuditEvent, error) {
	if s.dialect != Postgres {
		events, err := s.FindAuditEvents(ctx, latchkey.AuditFilter{AfterID: afterSeq, Limit: limit})
		for _, e := range events {
			e.Seq = e.ID
		}
		return events, err
	}
	// An entry whose row is gone reads as empty fields (its hash then does not match).
	q := `SELECT c.event_id, COALESCE(e.time, 0), COALESCE(e.user_id, 0), COALESCE(e.username, ''),
		COALESCE(e.action, ''), COALESCE(e.outcome, ''), COALESCE(e.ip, ''), COALESCE(e.user_agent, ''),
		COALESCE(e.detail, ''), COALESCE(e.ticket_id, 0), COALESCE(e.actor_id, 0), COALESCE(e.actor, ''), c.seq, c.prev_hash, c.hash
		FROM audit_chain c LEFT JOIN audit_events e ON e.id = c.event_id
		WHERE c.seq > $1 ORDER BY c.seq`
	if limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", limit)
	}
	rows, err := s.db.QueryContext(ctx, q, afterSeq)
	if err != nil {
		return nil, fmt.Errorf("find audit chain: %w", err)
	}
	return collect(rows, func(r scanner) (*latchkey.AuditEvent, error) {
		e := new(latchkey.AuditEvent)
		return e, scanAuditEvent(r.Scan, e, &e.Seq, &e.PrevHash, &e.Hash)
	}, "find audit chain")
}

// auditColumns are an audit entry's ID and data columns (all but the hashes) in table
// alias e, in the order of scanAuditEvent; auditFields are the same without the alias.
const auditColumns = `e.id, e.time, e.user_id, e.username, e.action, e.outcome, e.ip, e.user_agent, e.detail, e.ticket_id, e.actor_id, e.actor`

const auditFields = `id, time, user_id, username, action, outcome, ip, user_agent, detail, ticket_id, actor_id, actor`

// scanAuditEvent scans an audit entry's ID and data columns into e, in the order of
// auditColumns, and then the columns after them into more.
func scanAuditEvent(scan func(...any) error, e *latchkey.AuditEvent, more ...any) error {
	var t int64
	dest := append([]any{&e.ID, &t, &e.UserID, &e.Username, &e.Action, &e.Outcome, &e.IP, &e.UserAgent, &e.Detail, &e.TicketID, &e.ActorID, &e.Actor}, more...)
	if err := scan(dest...); err != nil {
		return fmt.Errorf("scan audit event: %w", err)
	}
	e.Time = at(t)
	return nil
}
