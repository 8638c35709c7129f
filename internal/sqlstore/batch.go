package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Group commit on SQLite.
//
// SQLite has one writer at a time, and most of a small write transaction's cost is its
// commit: the pages it changed are written to the write-ahead log, each with its own system
// calls, and the locks are taken and released. Under concurrent sign-ins the writers queue
// for that one lock, and each commit's cost is paid again and again for pages the next
// transaction changes as well (the last page of the audit trail, of the sessions).
//
// So on SQLite the store's transactions are run by one writer at a time, the batch writer: it
// takes every transaction waiting at that moment (up to maxBatch), runs each in a savepoint of
// one SQLite transaction, and commits once. Each caller's answer is the same as with a
// transaction of its own:
//
//   - f returns an error: its savepoint is rolled back (nothing of it is written) and the
//     caller gets the error at once; the others are not affected;
//   - f returns nil: the caller waits for the commit and gets its result: nil when f's writes
//     are durable, the commit's error when none of the batch was written;
//   - a caller whose context ended before its turn gets the context's error, and f never runs.
//
// A failed write to the disk (or a statement interrupted otherwise) may make SQLite roll back
// the whole transaction. The batch writer notices (the savepoint is gone) and runs the jobs
// before it again, each in a transaction of its own; the job it happened in gets its error.
//
// A caller whose context ends while its job waits gets the context's error at once, and the
// job is skipped. Once f has started, the caller waits for its answer even when its context
// ends: f's writes are committed or not with the batch, and an answer of "cancelled" for a
// write that was committed would be a lie. So f's statements run with a context that keeps
// the caller's values but not its end (context.WithoutCancel): a caller leaving mid-statement
// would otherwise interrupt it and make SQLite roll back everyone's writes, and the driver
// would start a goroutine per statement to watch for that end.

// Under load, the reads of the paths that write (readWarm) run in the batches as well,
// without a savepoint, before the batch's writes: they see what was committed before the
// batch, and their callers get their answer at once, without waiting for the commit. Any
// serial order of the jobs of one batch is a valid one: none of them was answered when the
// others began. A read that fails (other than sql.ErrNoRows) may have taken the transaction
// with it, so the batch is given up as when a write fails that way: the jobs after it run
// again.

// maxBatch bounds the transactions committed together.
const maxBatch = 128

// Gathering. A batch costs about the same to begin and commit whether it holds three jobs or
// thirty: the commit writes the pages the batch changed to the write-ahead log, and the pages
// most jobs change (the audit trail's last page, the indexes' newest pages) are written once
// per batch. Under load, though, the writer often found only a few jobs waiting: the answers
// of its last batch had just let their requests run on, and the jobs those requests would add
// a few microseconds later were not queued yet. So a leader that took over from another (the
// writer is under load) and finds fewer than gatherBelow jobs waiting first yields its
// processor once (runtime.Gosched), letting the goroutines ready to run add theirs. When
// nothing else is ready to run, the yield returns at once; a lone request's own job (the
// first leader) never waits. Measured with the harness on 2 cores, seven pairs alternated with
// the writer before (performance.md): the push round trip at 64 clients 2–10% faster (about
// 5% in most), the TOTP step −2% to +7%.
const gatherBelow = maxBatch / 4

// job is one caller's transaction.
type job struct {
	ctx  context.Context
	f    func(context.Context, *sql.Tx) error
	done chan error
	// read marks a read (batcher.read): run first in its batch, without a savepoint, and
	// answered at once.
	read bool
	// state moves from waiting to started (the batch writer runs f) or abandoned (the
	// caller's context ended first), once.
	state atomic.Int32
}

// Job states.
const (
	waiting int32 = iota
	started
	abandoned
)

// answer gives the job's result to its caller.
func (j *job) answer(err error) { j.done <- err }

// batcher is the batch writer of a DB. The caller that finds no batch running becomes the
// writer (the leader) and runs its own transaction at once, with those that arrive
// meanwhile: a lone write pays no hand-over between goroutines. When its own transaction is
// answered and more are waiting, a new goroutine goes on leading, so that no caller's answer
// waits for the others'.
type batcher struct {
	s       *DB
	mu      sync.Mutex
	queue   []*job
	leading bool
	closed  bool
	leaders sync.WaitGroup
	// commits counts the transactions committed or rolled back (the tests, WriterStats).
	commits atomic.Int64
	// busyNanos is the time spent running batches, writes and reads count the jobs run
	// (WriterStats).
	busyNanos, writes, reads atomic.Int64
	// conn is the connection the batches run on, kept for them (see writerConn).
	conn *sql.Conn
	// yield lets the other goroutines run before a small batch is taken (see gatherBelow);
	// runtime.Gosched, replaced in the tests.
	yield func()
}

func newBatcher(s *DB) *batcher { return &batcher{s: s, yield: runtime.Gosched} }

// errClosed answers the transactions of a store being closed.
var errClosed = errors.New("sqlstore: the database is closed")

// run runs f in the next batch and returns its result.
func (b *batcher) run(ctx context.Context, f func(context.Context, *sql.Tx) error) error {
	return b.enqueue(ctx, &job{ctx: ctx, f: f, done: make(chan error, 1)})
}

// read runs f, which only reads, in the next batch, before its writes, and returns its
// result. sql.ErrNoRows from f is an answer like nil; any other error gives up the batch's
// transaction (see above).
func (b *batcher) read(ctx context.Context, f func(context.Context, *sql.Tx) error) error {
	return b.enqueue(ctx, &job{ctx: ctx, f: f, done: make(chan error, 1), read: true})
}

// busy reports whether a batch is running or about to.
func (b *batcher) busy() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.leading
}

// enqueue runs j in the next batch and returns its result.
func (b *batcher) enqueue(ctx context.Context, j *job) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return errClosed
	}
	b.queue = append(b.queue, j)
	if !b.leading {
		b.leading = true
		b.leaders.Add(1)
		b.mu.Unlock()
		b.lead(j)
		return <-j.done
	}
	b.mu.Unlock()
	select {
	case err := <-j.done:
		return err
	case <-ctx.Done():
		if j.state.CompareAndSwap(waiting, abandoned) {
			return ctx.Err()
		}
		return <-j.done // f is running: its answer is the batch's
	}
}

// lead runs the waiting transactions in batches until there are none, or until own (when not
// nil) is answered and a new goroutine takes over. It takes the process's turn to write
// first and the batch after, so that the batch holds every transaction that arrived while
// the turn was busy.
func (b *batcher) lead(own *job) {
	for {
		lockCtx := context.Background()
		if own != nil {
			lockCtx = own.ctx
		}
		done, err := b.s.lockWrites(lockCtx)
		if err != nil {
			b.mu.Lock()
			if own != nil && lockCtx.Err() != nil {
				// The leader's caller gave up waiting for the turn: it alone is answered;
				// the others wait on with a new leader.
				b.queue = slices.DeleteFunc(b.queue, func(j *job) bool { return j == own })
				own.state.Store(abandoned)
				own.answer(err)
			} else {
				// The turn did not come in time (write.go): no waiting transaction runs.
				for _, j := range b.queue {
					j.answer(err)
				}
				b.queue = b.queue[:0]
			}
			b.mu.Unlock()
			b.handOver()
			return
		}
		if own == nil {
			b.gather()
		}
		b.mu.Lock()
		n := min(len(b.queue), maxBatch)
		batch := slices.Clone(b.queue[:n])
		b.queue = append(b.queue[:0], b.queue[n:]...)
		b.mu.Unlock()
		if n > 0 {
			start := time.Now()
			b.runBatch(batch)
			b.count(batch, time.Since(start))
		}
		done()
		if n == 0 || own != nil && slices.Contains(batch, own) {
			b.handOver()
			return
		}
	}
}

// gather yields once when fewer than gatherBelow jobs wait, so that those about to be queued
// join the batch (see gatherBelow). Only a leader that took over from another calls it.
func (b *batcher) gather() {
	b.mu.Lock()
	few := len(b.queue) < gatherBelow
	b.mu.Unlock()
	if few {
		b.yield()
	}
}

// count adds a batch that ran for d to the writer's statistics.
func (b *batcher) count(batch []*job, d time.Duration) {
	reads := 0
	for _, j := range batch {
		if j.read {
			reads++
		}
	}
	b.busyNanos.Add(int64(d))
	b.reads.Add(int64(reads))
	b.writes.Add(int64(len(batch) - reads))
}

// WriterStats is what SQLite's batch writer did since the store was opened. It runs the
// transactions of the process one batch at a time, so Busy growing by nearly a second per
// second means the writes of this node wait for it: its share of the time is how near the
// node is to the most it can write.
type WriterStats struct {
	// Busy is the time spent running batches.
	Busy time.Duration
	// Batches counts the transactions it committed or rolled back (a batch given up runs its
	// jobs again, each in a transaction of its own).
	Batches int64
	// Writes and Reads count the callers' transactions and the reads it ran (readWarm).
	Writes, Reads int64
}

// WriterStats returns the batch writer's statistics; false on PostgreSQL, which has none.
func (s *DB) WriterStats() (WriterStats, bool) {
	b := s.batches
	if b == nil {
		return WriterStats{}, false
	}
	return WriterStats{Busy: time.Duration(b.busyNanos.Load()), Batches: b.commits.Load(), Writes: b.writes.Load(), Reads: b.reads.Load()}, true
}

// handOver ends the current leader's turn: a new goroutine leads when transactions wait.
func (b *batcher) handOver() {
	b.mu.Lock()
	if len(b.queue) == 0 {
		b.leading = false
		c := b.conn
		b.conn = nil
		b.mu.Unlock()
		if c != nil {
			c.Close()
		}
		b.leaders.Done()
		return
	}
	b.mu.Unlock()
	go b.lead(nil)
}

// stop waits for the running batches; transactions arriving later get errClosed.
func (b *batcher) stop() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.leaders.Wait()
	if b.conn != nil {
		b.conn.Close()
		b.conn = nil
	}
}

// Batches that follow one another run on one connection, kept by the leaders from the first
// to the last, and returned to the pool when no transaction waits.
//
// SQLite keeps a cache of pages per connection, and a connection that finds the database
// changed by another since its last transaction throws its whole cache away. With each batch
// on whichever connection the pool gave, under load a batch mostly found its connection's
// cache stale (the batch before ran on another one) and read every page it needed again, a
// system call each. Kept for the batches, the connection's pages stay cached from one to the
// next. Returned when the writer is idle, it serves reads again: one request at a time then
// reads and writes on the same connection, whose cache stays valid, as before (holding it
// for good made that case slower, its reads all on connections the writer had made stale).

// writerConn returns the connection of the batches, taking one from the pool the first time.
// Only the leader calls it, in the process's turn to write.
func (b *batcher) writerConn(ctx context.Context) (*sql.Conn, error) {
	if b.conn != nil {
		return b.conn, nil
	}
	c, err := b.s.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	b.conn = c
	return c, nil
}

// runBatch commits batch, in this process's turn to write (the single statements of
// DB.write take turns with the batches), which the caller holds.
func (b *batcher) runBatch(batch []*job) {
	again := b.commit(batch, true)
	for _, j := range again {
		b.commit([]*job{j}, false)
	}
}

// commit runs the jobs of batch in one transaction and commits it, answering every job. When
// the transaction is lost midway and retry is set, the jobs whose writes were lost with it
// are not answered but returned, to run again.
func (b *batcher) commit(batch []*job, retry bool) (again []*job) {
	ctx := context.Background()
	b.commits.Add(1)
	reads := 0
	for _, j := range batch {
		if j.read {
			reads++
		}
	}
	var tx *sql.Tx
	c, err := b.writerConn(ctx)
	if err == nil {
		// A batch of reads only begins a deferred transaction, which takes no lock on the
		// file (the writes' transactions begin IMMEDIATE, the pool's default).
		var opts *sql.TxOptions
		if reads == len(batch) {
			opts = &sql.TxOptions{ReadOnly: true}
		}
		tx, err = c.BeginTx(ctx, opts)
		if err != nil {
			c.Close()
			b.conn = nil
		}
	}
	if err != nil {
		for _, j := range batch {
			j.answer(err)
		}
		return nil
	}
	if len(batch) == 1 {
		return b.commitOne(tx, batch[0])
	}
	var ran []*job // jobs whose writes wait for the commit
	if reads > 0 {
		// The reads first; the writes keep their order.
		slices.SortStableFunc(batch, func(x, y *job) int {
			switch {
			case x.read == y.read:
				return 0
			case x.read:
				return -1
			}
			return 1
		})
	}
	// lost gives up the transaction at batch[i] (which gets err): the jobs that ran before
	// it and those after it are run again, or answered with err when retry is not set.
	lost := func(i int, err error) []*job {
		_ = tx.Rollback()
		batch[i].answer(err)
		rest := append(ran, batch[i+1:]...)
		if retry {
			return rest
		}
		for _, j := range rest {
			j.answer(err)
		}
		return nil
	}
	for i, j := range batch {
		if first := j.state.CompareAndSwap(waiting, started); !first && j.state.Load() == abandoned {
			j.answer(j.ctx.Err()) // nobody reads it; the channel is buffered
			continue
		} else if err := j.ctx.Err(); first && err != nil {
			j.answer(err) // its caller is leaving: f never ran
			continue
		}
		if j.read {
			err := runJob(j, tx)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return lost(i, err)
			}
			j.answer(err)
			continue
		}
		if _, err := b.s.txExec(ctx, tx, qSavepoint); err != nil {
			return lost(i, err)
		}
		ferr := runJob(j, tx)
		if ferr != nil {
			if _, err := b.s.txExec(ctx, tx, qRollbackTo); err != nil {
				return lost(i, ferr)
			}
		}
		if _, err := b.s.txExec(ctx, tx, qRelease); err != nil {
			if ferr == nil {
				ferr = err
			}
			return lost(i, ferr)
		}
		if ferr != nil {
			j.answer(ferr)
			continue
		}
		ran = append(ran, j)
	}
	err = tx.Commit()
	for _, j := range ran {
		j.answer(err)
	}
	return nil
}

// The savepoint of each job of a batch. Open prepares them: here, in the transaction, the
// batch holds a connection, and preparing would wait for another one (with one connection
// in the pool, for ever).
const (
	qSavepoint  = `SAVEPOINT job`
	qRollbackTo = `ROLLBACK TO job`
	qRelease    = `RELEASE job`
)

// commitOne runs a batch of one job, j, in tx: no savepoint is needed, f's error rolls back
// the transaction.
func (b *batcher) commitOne(tx *sql.Tx, j *job) []*job {
	if !j.state.CompareAndSwap(waiting, started) && j.state.Load() == abandoned {
		_ = tx.Rollback()
		j.answer(j.ctx.Err())
		return nil
	}
	// A job run again after its batch was lost is already started; it runs again whatever
	// its context says, as its first run did. A read has nothing to commit.
	if err := runJob(j, tx); err != nil || j.read {
		_ = tx.Rollback()
		j.answer(err)
		return nil
	}
	j.answer(tx.Commit())
	return nil
}

// runJob runs j's f, turning a panic into an error: the batch writer serves every caller. f
// gets its caller's context without its end (see above).
func runJob(j *job, tx *sql.Tx) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("sqlstore: panic in a transaction: %v", v)
		}
	}()
	return j.f(writing(context.WithoutCancel(j.ctx)), tx)
}
