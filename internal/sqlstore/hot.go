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
	// byQuery holds the other hot statements (*sql.Stmt by query text): those of the TOTP
	// sign-in step (signin.go, the throttle's read and reservation, the TOTP credentials).
	byQuery sync.Map
}

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
	return st, nil
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
		return true
	})
}
