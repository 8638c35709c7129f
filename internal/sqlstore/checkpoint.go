package sqlstore

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"
	"time"
)

// Checkpoints on SQLite, out of the writer's way.
//
// In WAL mode every commit appends the pages it changed to the write-ahead log, and a
// checkpoint copies them back into the database file. Left to SQLite, the connection whose
// commit takes the log past wal_autocheckpoint pages (1,000 by default) runs the checkpoint
// right there: with synchronous=NORMAL it syncs the log, copies its pages, and syncs the
// database file. That connection is the batch writer's, so every request waiting for a
// write waited for the copy and two syncs (2–4 ms each on the development machine), several
// times a second under load (docs/performance-history.md, "The twenty-third session").
//
// So the store checkpoints itself, on a pool connection of its own, checkpointEvery after
// the process's writes (never while it is idle), in two steps:
//
//  1. A PASSIVE checkpoint outside the writers' turn: it copies what the log holds and syncs
//     both files while the batch writer goes on committing (a passive checkpoint never
//     blocks a writer, nor waits for one). It runs again, up to maxFirstSteps times, while
//     more than finishBelow pages came in during the one before.
//  2. A second PASSIVE checkpoint in the process's turn to write (lockWrites): it copies only
//     what was committed during the first step, so the writer waits a fraction of a
//     millisecond. It leaves the log wholly copied, and the writer's next transaction starts
//     the log over from its beginning instead of growing it (SQLite's own rule; with the
//     first step alone the log never caught up under load and grew without end).
//
// The log's sync in either step finds little to write: its writeback was started after each
// write (writeback.go). The connections keep SQLite's automatic checkpoint at
// walAutoCheckpoint pages, more than a pass ever leaves, as the safety net should passes
// stop, and for other processes (the latchkey commands) that write without a checkpointer
// of their own running long enough. Durability is SQLite's, unchanged: the same syncs in the
// same order, on another connection.

// checkpointEvery is the time from a write to the checkpoint pass that follows it.
const checkpointEvery = 100 * time.Millisecond

// walAutoCheckpoint is the connections' wal_autocheckpoint, in pages.
const walAutoCheckpoint = 10000

// maxFirstSteps and finishBelow bound the first step's runs (pass).
const (
	maxFirstSteps = 4
	finishBelow   = 32
)

// checkpointer runs the checkpoint passes of a SQLite store.
type checkpointer struct {
	s      *DB
	poked  chan struct{}
	cancel context.CancelFunc
	done   sync.WaitGroup
	// passes counts the passes run, for tests.
	passes atomic.Int64
}

// startCheckpointer starts s's checkpointer (SQLite only).
func (s *DB) startCheckpointer() {
	ctx, cancel := context.WithCancel(context.Background())
	c := &checkpointer{s: s, poked: make(chan struct{}, 1), cancel: cancel}
	c.done.Go(func() { c.loop(ctx) })
	s.ckpt = c
}

// poke tells c that the database was written. It never blocks.
func (c *checkpointer) poke() {
	if c == nil {
		return
	}
	select {
	case c.poked <- struct{}{}:
	default:
	}
}

// close stops c; the connections' own checkpoints do the rest. Calls after the first do
// nothing.
func (c *checkpointer) close() {
	if c == nil {
		return
	}
	c.cancel()
	c.done.Wait()
}

// loop runs a pass checkpointEvery after a write, when there were turns to write since the
// last pass besides its own, until ctx ends.
func (c *checkpointer) loop(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	var seen int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.poked:
		}
		t.Reset(checkpointEvery)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if c.s.turns.Load() == seen {
			continue // only the last pass's own turn: nothing new, wait for a write
		}
		if n, err := c.pass(ctx); err == nil {
			seen = n
		}
		// On an error (a database closing, a disk failing) the next write pokes again, and
		// the automatic checkpoint stays the safety net.
	}
}

// pass runs the two steps of a checkpoint (see above) and returns the count of turns to
// write taken until its second step, its own included.
func (c *checkpointer) pass(ctx context.Context) (int64, error) {
	conn, err := c.s.db.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	c.passes.Add(1)
	for range maxFirstSteps {
		log, copied, err := checkpoint(ctx, conn)
		if err != nil {
			return 0, err
		}
		if log-copied <= finishBelow {
			break
		}
	}
	done, err := c.s.lockWrites(ctx)
	if err != nil {
		return 0, err
	}
	defer done()
	if _, _, err := checkpoint(ctx, conn); err != nil {
		return 0, err
	}
	return c.s.turns.Load(), nil
}

// checkpoint runs a passive checkpoint on conn and returns the pages in the log and those
// of them copied to the database file.
func checkpoint(ctx context.Context, conn *sql.Conn) (log, copied int, err error) {
	var busy int
	err = conn.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &log, &copied)
	return log, copied, err
}
