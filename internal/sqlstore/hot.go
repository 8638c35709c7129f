package sqlstore

import (
	"context"
	"database/sql"
	"strings"
	"sync"
	"sync/atomic"
)

// hotStatements are prepared statements of the queries on the path of every signed-in
// request. database/sql prepares a statement again on each connection that runs it (also
// after PostgreSQL restarts), so one *sql.Stmt per query serves the whole pool.
type hotStatements struct {
	mu              sync.Mutex
	sessionWithUser atomic.Pointer[sql.Stmt]
	// byQuery holds the other prepared statements (*sql.Stmt by query text): every query of
	// the store that goes through queryRow, query or exec, up to maxStatements of them.
	byQuery sync.Map
	n       atomic.Int32
}

// maxStatements bounds the statements kept prepared. The store's queries are constants, a
// few hundred at most; the bound only matters for the few built at run time (lists with a
// variable number of parameters), which are run unprepared once it is reached.
const maxStatements = 512

// stmt returns the prepared statement of query, preparing it on the first call.
func (h *hotStatements) stmt(ctx context.Context, db *sql.DB, query string) (*sql.Stmt, error) {
	if st, ok := h.byQuery.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if old, loaded := h.byQuery.LoadOrStore(query, st); loaded {
		st.Close() // another caller prepared it first
		return old.(*sql.Stmt), nil
	}
	h.n.Add(1)
	return st, nil
}

// cached returns the prepared statement of query, or nil when it cannot be prepared now
// (the cache is full, or preparing failed: the caller runs the query unprepared, which gives
// the error if there is one).
func (h *hotStatements) cached(ctx context.Context, db *sql.DB, query string) *sql.Stmt {
	if st, ok := h.byQuery.Load(query); ok {
		return st.(*sql.Stmt)
	}
	if h.n.Load() >= maxStatements {
		return nil
	}
	st, err := h.stmt(ctx, db, query)
	if err != nil {
		return nil
	}
	return st
}

// prepare returns the statement in slot, preparing query on the first call. A failure is not
// remembered: the next call tries again (the database may have been unreachable).
func (h *hotStatements) prepare(ctx context.Context, db *sql.DB, slot *atomic.Pointer[sql.Stmt], query string) (*sql.Stmt, error) {
	if st := slot.Load(); st != nil {
		return st, nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if st := slot.Load(); st != nil {
		return st, nil
	}
	st, err := db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	slot.Store(st)
	return st, nil
}

// close releases the prepared statements.
func (h *hotStatements) close() {
	if st := h.sessionWithUser.Swap(nil); st != nil {
		st.Close()
	}
	h.byQuery.Range(func(k, v any) bool {
		v.(*sql.Stmt).Close()
		h.byQuery.Delete(k)
		h.n.Add(-1)
		return true
	})
}

// SQLite parses a query each time it is run unprepared (modernc.org/sqlite keeps no cache):
// for the short queries of a request that was a seventh of the CPU of a push round trip. So
// the store runs its queries through prepared statements, prepared once per query and
// connection (database/sql does the latter).

// shortRead is the context of a read of one row or a few, by index. On SQLite it is ctx
// without its end: such a read is over in microseconds, in this process, before an ending
// could matter, and a context that can end costs two goroutines per query (database/sql's and
// the driver's, each watching for the end) and a cancelable context: 5–6% of the CPU of a
// forward-auth check. Reads that can take long (lists, counts over a table) keep their
// caller's context. On PostgreSQL a query waits on the network and the server, and ending it
// with its request matters: ctx is kept as it is.
func (s *DB) shortRead(ctx context.Context) context.Context {
	if s.dialect == SQLite {
		return context.WithoutCancel(ctx)
	}
	return ctx
}

// queryRow is db.QueryRowContext through the query's prepared statement. A read (a SELECT)
// whose connection turns out lost runs again once (readAgain).
func (s *DB) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	row := s.queryRowOnce(ctx, query, args...)
	if err := row.Err(); err != nil && isRead(query) && s.readAgain(ctx, err) {
		row = s.queryRowOnce(ctx, query, args...)
	}
	return row
}

// queryRowOnce is queryRow without the second run.
func (s *DB) queryRowOnce(ctx context.Context, query string, args ...any) *sql.Row {
	if st := s.hot.cached(ctx, s.db, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return s.db.QueryRowContext(ctx, query, args...)
}

// query is db.QueryContext through the query's prepared statement. A read (a SELECT) whose
// connection turns out lost runs again once (readAgain).
func (s *DB) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	rows, err := s.queryOnce(ctx, query, args...)
	if err != nil && isRead(query) && s.readAgain(ctx, err) {
		rows, err = s.queryOnce(ctx, query, args...)
	}
	return rows, err
}

// queryOnce is query without the second run.
func (s *DB) queryOnce(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := s.hot.cached(ctx, s.db, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return s.db.QueryContext(ctx, query, args...)
}

// isRead reports whether query only reads: the store's reads begin with SELECT, and its
// statements that write (also those that return rows) with INSERT, UPDATE, DELETE or WITH.
func isRead(query string) bool {
	return strings.HasPrefix(strings.TrimLeft(query, " \t\n"), "SELECT")
}

// readAgain reports whether a read that failed with err runs again, once: on PostgreSQL, when
// the connection it ran on was lost (connLost: the server restarted and the pool did not know
// it yet) and its caller still waits. It marks the server lost first, so the second run gets
// a connection that was checked (stale.go). A read is safe to run twice; a statement that
// writes is not (whether a lost one was committed is unknown), so only reads come here.
func (s *DB) readAgain(ctx context.Context, err error) bool {
	if s.dialect != Postgres || !connLost(err) || ctx.Err() != nil {
		return false
	}
	s.ServerLost()
	return true
}

// prepareBeforeBegin prepares the statements a transaction will run through txQueryRow and
// txExec; callers call it before BEGIN (see txQueryRow).
func (s *DB) prepareBeforeBegin(ctx context.Context, queries ...string) {
	for _, q := range queries {
		s.hot.cached(ctx, s.db, q)
	}
}

// txQueryRow is tx.QueryRowContext through the query's prepared statement when it was
// prepared before. It never prepares one itself: that takes another connection of the pool,
// and a transaction holding one while it waits for another can starve the pool (on
// PostgreSQL, where transactions do not take turns). Callers prepare before BEGIN.
func (s *DB) txQueryRow(ctx context.Context, tx *sql.Tx, query string, args ...any) *sql.Row {
	if st, ok := s.hot.byQuery.Load(query); ok {
		return tx.StmtContext(ctx, st.(*sql.Stmt)).QueryRowContext(ctx, args...)
	}
	return tx.QueryRowContext(ctx, query, args...)
}

// txQuery is tx.QueryContext through the query's prepared statement when it was prepared
// before (see txQueryRow).
func (s *DB) txQuery(ctx context.Context, tx *sql.Tx, query string, args ...any) (*sql.Rows, error) {
	if st, ok := s.hot.byQuery.Load(query); ok {
		return tx.StmtContext(ctx, st.(*sql.Stmt)).QueryContext(ctx, args...)
	}
	return tx.QueryContext(ctx, query, args...)
}

// txExec is tx.ExecContext through the query's prepared statement when it was prepared before
// (see txQueryRow).
func (s *DB) txExec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	if st, ok := s.hot.byQuery.Load(query); ok {
		return tx.StmtContext(ctx, st.(*sql.Stmt)).ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, query, args...)
}

// readWarm runs read with st, a prepared statement of the pool. On SQLite, while the batch
// writer is busy, it runs in the writer's next batch (batcher.read), on the writer's
// connection, with st prepared there: that is for the reads of the paths that write under
// load (the sign-in flow and its TOTP credentials, the throttle counters, the devices and the
// push challenges of a push round trip). Two reasons:
//
//   - SQLite throws away a connection's whole cache of pages whenever it finds the database
//     changed by another connection since its last transaction, so under load a read on any
//     connection of the pool but the writer's starts cold and reads every page of its B-trees
//     again, a system call each; the writer's own cache stays valid from one batch to the next.
//   - modernc.org/sqlite is built with SQLITE_ENABLE_MEMORY_MANAGEMENT, so every connection's
//     pages are in one cache behind one mutex, and its C allocator is behind another (both Go
//     sync.Mutexes). A read on the pool takes them beside the writer, and when a waiter has
//     waited a millisecond Go hands the mutex over and puts the goroutine that released it,
//     often the writer, at the back of its run queue. An execution trace of the push round
//     trip at 64 clients showed the writer waiting for a processor 31% of the time it held the
//     turn, 7% with these reads on the writer (performance.md).
//
// When the writer is idle (one request at a time), on PostgreSQL, and inside a transaction's
// function (which would wait for its own batch), read runs st on the pool as any read: a batch
// of its own would cost a transaction's start and end, and a hand-over between goroutines, for
// pages that are not being made stale.
//
// read gets the caller's context (on SQLite without its end, as every job). It must only
// read, and report a missing row as sql.ErrNoRows: any other error gives up the batch's
// transaction, and the batch's writes run again each in a transaction of its own.
func (s *DB) readWarm(ctx context.Context, st *sql.Stmt, read func(context.Context, *sql.Stmt) error) error {
	if s.batches == nil || inWrite(ctx) || !s.batches.busy() {
		err := read(ctx, st)
		if err != nil && s.readAgain(ctx, err) {
			err = read(ctx, st)
		}
		return err
	}
	return s.batches.read(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return read(ctx, tx.StmtContext(ctx, st))
	})
}

// scanWarm reads one row of query into dest through readWarm (prepared once, as queryRow);
// sql.ErrNoRows when there is none.
func (s *DB) scanWarm(ctx context.Context, query string, dest []any, args ...any) error {
	st := s.hot.cached(ctx, s.db, query)
	if st == nil {
		return s.db.QueryRowContext(ctx, query, args...).Scan(dest...)
	}
	return s.readWarm(ctx, st, func(ctx context.Context, st *sql.Stmt) error {
		return st.QueryRowContext(ctx, args...).Scan(dest...)
	})
}

// collectWarm reads the rows of query through readWarm (prepared once, as query), each with
// scan; what names them in a scan error.
func collectWarm[T any](ctx context.Context, s *DB, query string, scan func(scanner) (T, error), what string, args ...any) ([]T, error) {
	st := s.hot.cached(ctx, s.db, query)
	if st == nil {
		rows, err := s.db.QueryContext(ctx, query, args...)
		if err != nil {
			return nil, err
		}
		return collect(rows, scan, what)
	}
	var out []T
	err := s.readWarm(ctx, st, func(ctx context.Context, st *sql.Stmt) error {
		rows, err := st.QueryContext(ctx, args...)
		if err != nil {
			return err
		}
		out, err = collect(rows, scan, what)
		return err
	})
	return out, err
}
