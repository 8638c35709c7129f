package sqlstore

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"
)

// hotStatements are prepared statements of the queries on the path of every signed-in
// request. database/sql prepares a statement again on each connection that runs it (also
// after PostgreSQL restarts), so one *sql.Stmt per query serves the whole pool.
type hotStatements struct {
	mu              sync.Mutex
	sessionWithUser atomic.Pointer[sql.Stmt]
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
}
