package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/audit"
)

// openBatchDB opens a fresh SQLite store for the batch writer's tests.
func openBatchDB(t *testing.T) *DB {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "batch.db"), Options{SecretsKey: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if db.batches == nil {
		t.Fatal("SQLite store without a batch writer")
	}
	return db
}

// waitQueued waits until n transactions wait in the batch writer's queue.
func waitQueued(t *testing.T, db *DB, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		db.batches.mu.Lock()
		got := len(db.batches.queue)
		db.batches.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d transactions queued, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// insertThrottle is a transaction's write in these tests.
func insertThrottle(ctx context.Context, tx *sql.Tx, key string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO throttles (key, failures, last_failure_at) VALUES (?, 1, 0)`, key)
	return err
}

// throttleKeys reports which of keys have a row.
func throttleKeys(t *testing.T, db *DB, keys []string) map[string]bool {
	t.Helper()
	got := map[string]bool{}
	for _, k := range keys {
		var n int
		if err := db.db.QueryRow(`SELECT count(*) FROM throttles WHERE key = ?`, k).Scan(&n); err != nil {
			t.Fatal(err)
		}
		got[k] = n == 1
	}
	return got
}

// queueInserts holds the writers' turn and queues n transactions, in order, each inserting
// its key (prefix:i) and then running then(i, tx). release gives the turn back, waits for
// every answer and returns them with the keys.
func queueInserts(t *testing.T, db *DB, prefix string, n int, then func(i int, tx *sql.Tx) error) (keys []string, release func() []error) {
	t.Helper()
	ctx := context.Background()
	done, err := db.lockWrites(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keys = make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		keys[i] = fmt.Sprintf("%s:%d", prefix, i)
		wg.Go(func() {
			errs[i] = db.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
				if err := insertThrottle(ctx, tx, keys[i]); err != nil {
					return err
				}
				return then(i, tx)
			})
		})
		waitQueued(t, db, i+1) // in this order in the batch
	}
	return keys, func() []error {
		done()
		wg.Wait()
		return errs
	}
}

// TestBatchCommitsTogether: transactions that wait for the writer's turn together are
// committed in one SQLite transaction, and each caller's answer is still its own: the one
// whose function fails gets its error and none of its writes, the others are committed.
func TestBatchCommitsTogether(t *testing.T) {
	db := openBatchDB(t)
	const n, failing = 20, 7
	boom := errors.New("boom")
	keys, release := queueInserts(t, db, "batch", n, func(i int, _ *sql.Tx) error {
		if i == failing {
			return boom
		}
		return nil
	})
	before := db.batches.commits.Load()
	errs := release()
	if got := db.batches.commits.Load() - before; got != 1 {
		t.Errorf("%d transactions queued together took %d commits, want 1", n, got)
	}
	rows := throttleKeys(t, db, keys)
	for i := range n {
		switch {
		case i == failing && !errors.Is(errs[i], boom):
			t.Errorf("failing transaction answered %v, want its own error", errs[i])
		case i == failing && rows[keys[i]]:
			t.Error("the failing transaction's write was committed")
		case i != failing && errs[i] != nil:
			t.Errorf("transaction %d: %v", i, errs[i])
		case i != failing && !rows[keys[i]]:
			t.Errorf("transaction %d was answered but its write is missing", i)
		}
	}
}

// TestBatchCallerLeavesBeforeItsTurn: a caller whose context ends while its transaction
// waits, leader or not, gets the context's error at once, and its function never runs; the
// others' transactions go on.
func TestBatchCallerLeavesBeforeItsTurn(t *testing.T) {
	ctx := context.Background()
	db := openBatchDB(t)
	done, err := db.lockWrites(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ran [3]atomic.Bool
	ctxs := make([]context.Context, 3)
	cancels := make([]context.CancelFunc, 3)
	errs := make([]chan error, 3)
	keys := []string{"leave:leader", "leave:stays", "leave:follower"}
	for i := range 3 {
		ctxs[i], cancels[i] = context.WithCancel(ctx)
		defer cancels[i]()
		errs[i] = make(chan error, 1)
		go func() {
			errs[i] <- db.tx(ctxs[i], func(_ context.Context, tx *sql.Tx) error {
				ran[i].Store(true)
				return insertThrottle(ctx, tx, keys[i])
			})
		}()
		waitQueued(t, db, i+1) // the first caller leads
	}
	// The leader and the last follower leave while the turn is still held.
	for _, i := range []int{0, 2} {
		cancels[i]()
		select {
		case err := <-errs[i]:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("caller %d left and got %v, want context.Canceled", i, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("caller %d left but is still waiting", i)
		}
	}
	done()
	select {
	case err := <-errs[1]:
		if err != nil {
			t.Fatalf("the remaining caller: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the remaining caller was never answered after its leader left")
	}
	rows := throttleKeys(t, db, keys)
	for i, want := range []bool{false, true, false} {
		if ran[i].Load() != want || rows[keys[i]] != want {
			t.Errorf("caller %d: ran %v, written %v, want %v", i, ran[i].Load(), rows[keys[i]], want)
		}
	}
}

// TestBatchCallerLeavesDuringItsTurn: a caller whose context ends while its transaction runs
// does not interrupt the transaction's statements (that could roll back the whole batch): its
// writes and the others' are committed, and it is told so.
func TestBatchCallerLeavesDuringItsTurn(t *testing.T) {
	db := openBatchDB(t)
	for _, n := range []int{1, 3} { // a batch of one job, and one of savepoints
		done, err := db.lockWrites(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		keys := make([]string, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			keys[i] = fmt.Sprintf("midway%d:%d", n, i)
			ctx, cancel := context.WithCancel(context.Background())
			wg.Go(func() {
				defer cancel()
				errs[i] = db.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
					if i == 0 {
						cancel() // the caller leaves while its statements run
					}
					return insertThrottle(ctx, tx, keys[i])
				})
			})
			waitQueued(t, db, i+1)
		}
		done()
		wg.Wait()
		rows := throttleKeys(t, db, keys)
		for i := range n {
			if errs[i] != nil || !rows[keys[i]] {
				t.Errorf("batch of %d, transaction %d: %v, written %v; want committed", n, i, errs[i], rows[keys[i]])
			}
		}
	}
}

// TestBatchLostTransaction: when one function's statement ends the whole SQLite transaction
// (here a ROLLBACK; in production an interrupted statement or a failed disk write), the
// transactions that ran before it in the batch are run again on their own and committed, and
// only that one fails.
func TestBatchLostTransaction(t *testing.T) {
	ctx := context.Background()
	db := openBatchDB(t)
	const n, culprit = 6, 3
	keys, release := queueInserts(t, db, "lost", n, func(i int, tx *sql.Tx) error {
		if i == culprit {
			_, err := tx.ExecContext(ctx, `ROLLBACK`)
			return err
		}
		return nil
	})
	errs := release()
	rows := throttleKeys(t, db, keys)
	for i := range n {
		if i == culprit {
			if errs[i] == nil || rows[keys[i]] {
				t.Errorf("the transaction that ended the batch: %v, written %v; want an error and no write", errs[i], rows[keys[i]])
			}
			continue
		}
		if errs[i] != nil || !rows[keys[i]] {
			t.Errorf("transaction %d: %v, written %v; want committed", i, errs[i], rows[keys[i]])
		}
	}
}

// TestBatchConcurrentWritesDurable: many concurrent store transactions through the batch
// writer are all written once, in an order the audit chain accepts, and are there after the
// database is reopened.
func TestBatchConcurrentWritesDurable(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "durable.db")
	db, err := Open(ctx, path, Options{SecretsKey: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := &latchkey.AuditEvent{Action: "test.batch", Outcome: latchkey.OutcomeSuccess, Detail: fmt.Sprint(i)}
			if err := db.AppendAuditEvent(ctx, e); err != nil {
				failed.Add(1)
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	commits := db.batches.commits.Load()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if failed.Load() > 0 {
		t.FailNow()
	}
	t.Logf("%d transactions in %d commits", n, commits)
	db, err = Open(ctx, path, Options{SecretsKey: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	events, err := db.FindAuditEvents(ctx, latchkey.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range events {
		if e.Action == "test.batch" {
			seen[e.Detail] = true
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct events after reopening, want %d", len(seen), n)
	}
	rep, err := audit.Verify(ctx, db)
	if err != nil || rep.FirstBroken != 0 || rep.Entries != len(events) {
		t.Errorf("audit chain: %+v, %v", rep, err)
	}
}

// TestBatchClosed: a transaction arriving after the store is closed is refused, not run.
func TestBatchClosed(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "closed.db"), Options{SecretsKey: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	ran := false
	err = db.tx(ctx, func(context.Context, *sql.Tx) error { ran = true; return nil })
	if !errors.Is(err, errClosed) || ran {
		t.Errorf("transaction on a closed store: %v, ran %v; want errClosed and not run", err, ran)
	}
}

// TestSQLiteTempStoreInMemory: every connection keeps temporary data, among it the journal of
// a batch's savepoints, in memory rather than spilling it to a file a page at a time.
func TestSQLiteTempStoreInMemory(t *testing.T) {
	db := openBatchDB(t)
	ctx := context.Background()
	conns := make([]*sql.Conn, 3) // several connections of the pool, each with its pragmas
	for i := range conns {
		c, err := db.db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
		var mode int
		if err := c.QueryRowContext(ctx, `PRAGMA temp_store`).Scan(&mode); err != nil {
			t.Fatal(err)
		}
		if mode != 2 {
			t.Errorf("connection %d: temp_store = %d, want 2 (MEMORY)", i, mode)
		}
	}
}

// TestBatchesKeepTheirConnection: batches that follow one another run on the same
// connection (whose page cache then stays valid), while reads take the pool's others.
func TestBatchesKeepTheirConnection(t *testing.T) {
	db := openBatchDB(t)
	ctx := context.Background()
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 4 { // readers take and return the pool's connections all along
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				var n int
				if err := db.db.QueryRowContext(ctx, `SELECT count(*) FROM throttles`).Scan(&n); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	// A temporary table belongs to its connection: the first transaction creates one, and
	// every later one looks for it.
	const n = 2*maxBatch + 5 // three batches
	var elsewhere atomic.Int64
	_, release := queueInserts(t, db, "conn", n, func(i int, tx *sql.Tx) error {
		if i == 0 {
			_, err := tx.ExecContext(ctx, `CREATE TEMP TABLE batch_conn (x INTEGER)`)
			return err
		}
		var found int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_temp_master WHERE name = 'batch_conn'`).Scan(&found); err != nil {
			return err
		}
		if found == 0 {
			elsewhere.Add(1)
		}
		return nil
	})
	before := db.batches.commits.Load()
	for i, err := range release() {
		if err != nil {
			t.Errorf("transaction %d: %v", i, err)
		}
	}
	close(stop)
	readers.Wait()
	if got := db.batches.commits.Load() - before; got < 3 {
		t.Errorf("%d transactions took %d commits, want 3 or more", n, got)
	}
	if k := elsewhere.Load(); k > 0 {
		t.Errorf("%d of %d transactions ran on another connection than the first batch's", k, n-1)
	}
}

// TestBatchNeedsOneConnection: a batch of several transactions runs on the connection it
// holds and never waits for a second one of the pool, even the first batch of a store (its
// savepoints' statements are prepared when the store opens). Before, the first batch
// prepared them inside its transaction: with every other connection taken, it waited, and
// with a pool of one, for ever.
func TestBatchNeedsOneConnection(t *testing.T) {
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "batch.db"), Options{SecretsKey: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	db.db.SetMaxOpenConns(1)
	keys, release := queueInserts(t, db, "one", 5, func(int, *sql.Tx) error { return nil })
	done := make(chan []error, 1)
	go func() { done <- release() }()
	select {
	case errs := <-done:
		for i, err := range errs {
			if err != nil {
				t.Errorf("transaction %d: %v", i, err)
			}
		}
	case <-time.After(10 * time.Second):
		// The store is left open: closing it would wait for the stuck batch.
		t.Fatal("a batch of 5 transactions did not commit within 10 s with one connection in the pool")
	}
	rows := throttleKeys(t, db, keys)
	for _, k := range keys {
		if !rows[k] {
			t.Errorf("%s was answered but its write is missing", k)
		}
	}
	db.Close()
}

// TestBatchGathersUnderLoad: a leader that took over from another and finds fewer than
// gatherBelow jobs waiting yields once before taking its batch, and the jobs queued during
// the yield are committed with those that waited; a lone caller's own job and a long queue
// are taken at once.
func TestBatchGathersUnderLoad(t *testing.T) {
	ctx := context.Background()
	db := openBatchDB(t)
	b := db.batches
	var mu sync.Mutex
	var seen []int // the queue's length at each yield
	var onYield func()
	b.yield = func() {
		b.mu.Lock()
		n := len(b.queue)
		b.mu.Unlock()
		mu.Lock()
		seen = append(seen, n)
		f := onYield
		onYield = nil
		mu.Unlock()
		if f != nil {
			f()
		}
	}
	yields := func() []int {
		mu.Lock()
		defer mu.Unlock()
		s := seen
		seen = nil
		return s
	}
	write := func(key string) func() error {
		return func() error {
			return db.tx(ctx, func(ctx context.Context, tx *sql.Tx) error { return insertThrottle(ctx, tx, key) })
		}
	}
	// hold runs a write that holds the writer until finish is closed.
	hold := func(wg *sync.WaitGroup, key string, err *error) (finish chan struct{}) {
		started, finish := make(chan struct{}), make(chan struct{})
		wg.Go(func() {
			*err = db.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
				close(started)
				<-finish
				return insertThrottle(ctx, tx, key)
			})
		})
		<-started
		return finish
	}

	// A lone caller leads its own batch: no yield.
	if err := write("alone")(); err != nil {
		t.Fatal(err)
	}
	if got := yields(); len(got) != 0 {
		t.Fatalf("a lone caller's batch yielded (queues %v), want no yield", got)
	}

	// Job a holds the writer while b queues behind it; the leader that takes over finds b
	// alone, yields, and c, queued during the yield, joins b's batch.
	var wg sync.WaitGroup
	var errA, errB, errC error
	finish := hold(&wg, "a", &errA)
	wg.Go(func() { errB = write("b")() })
	waitQueued(t, db, 1)
	mu.Lock()
	onYield = func() {
		wg.Go(func() { errC = write("c")() })
		waitQueued(t, db, 2)
	}
	mu.Unlock()
	before := b.commits.Load() // a's batch has begun and is counted
	close(finish)
	wg.Wait()
	if err := errors.Join(errA, errB, errC); err != nil {
		t.Fatal(err)
	}
	if got := yields(); len(got) == 0 || got[0] != 1 {
		t.Errorf("the leader that took over yielded with queues of %v, want first 1 (b alone)", got)
	}
	if got := b.commits.Load() - before; got != 1 {
		t.Errorf("b and c, queued during the yield, took %d commits, want 1", got)
	}
	if rows := throttleKeys(t, db, []string{"a", "b", "c"}); !rows["a"] || !rows["b"] || !rows["c"] {
		t.Errorf("rows after the batches: %v", rows)
	}

	// A queue of gatherBelow jobs or more is taken at once.
	finish = hold(&wg, "long:a", &errA)
	errs := make([]error, gatherBelow)
	for i := range gatherBelow {
		wg.Go(func() { errs[i] = write(fmt.Sprintf("long:%d", i))() })
	}
	waitQueued(t, db, gatherBelow)
	close(finish)
	wg.Wait()
	if err := errors.Join(append(errs, errA)...); err != nil {
		t.Fatal(err)
	}
	for _, n := range yields() {
		if n >= gatherBelow {
			t.Errorf("a leader that found %d jobs waiting yielded, want it to take them at once", n)
		}
	}
}
