package sqlstore_test

import (
	"context"
	"sync"
	"testing"

	"github.com/latchkey/latchkey/internal/sqlstore"
)

// TestPoolKeepsItsConnections: a burst that uses every connection of the pool hands them all
// back to the pool, none closed, so the next burst opens none (a new connection costs its
// set-up and the preparing of every statement again; on PostgreSQL a backend process).
func TestPoolKeepsItsConnections(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		pool := db.SQL()
		n := pool.Stats().MaxOpenConnections
		if n == 0 {
			t.Fatal("the pool has no bound")
		}
		burst := func() {
			// n transactions held open at once: every connection is in use.
			var ready, done sync.WaitGroup
			release := make(chan struct{})
			ready.Add(n)
			for range n {
				done.Go(func() {
					conn, err := pool.Conn(ctx)
					if err != nil {
						ready.Done()
						t.Error(err)
						return
					}
					defer conn.Close()
					var one int
					err = conn.QueryRowContext(ctx, `SELECT 1`).Scan(&one)
					ready.Done()
					if err != nil {
						t.Error(err)
					}
					<-release
				})
			}
			ready.Wait()
			close(release)
			done.Wait()
		}
		burst()
		opened := pool.Stats()
		burst()
		st := pool.Stats()
		if st.MaxIdleClosed != 0 {
			t.Errorf("%d connections were closed when handed back (pool of %d)", st.MaxIdleClosed, n)
		}
		if st.OpenConnections != n || st.Idle != n {
			t.Errorf("after two bursts: %d open, %d idle; want all %d kept", st.OpenConnections, st.Idle, n)
		}
		if st.OpenConnections != opened.OpenConnections {
			t.Errorf("the second burst opened connections: %d then %d", opened.OpenConnections, st.OpenConnections)
		}
	})
}
