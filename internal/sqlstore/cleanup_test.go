package sqlstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/sqlstore"
)

// TestDeleteExpiredInBatches: a backlog larger than one batch is removed entirely, in
// several statements, and rows that have not expired stay.
func TestDeleteExpiredInBatches(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		u := mkUser(t, db, "alice")
		expired := 2*sqlstore.CleanupBatch + 7
		past, future := t0.Add(-time.Hour).UnixMicro(), t0.Add(time.Hour).UnixMicro()
		tx, err := db.SQL().BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := range expired + 3 {
			exp := past
			if i >= expired {
				exp = future
			}
			if _, err := tx.Exec(`INSERT INTO sessions (id, user_id, state, amr, password_at, created_at, last_seen_at, expires_at, ip, user_agent)
				VALUES ($1, $2, 'authenticated', 'pwd', 0, 0, 0, $3, '127.0.0.1', 'test')`, fmt.Sprintf("s%05d", i), u.ID, exp); err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(`INSERT INTO device_nonces (device_id, nonce, expires_at) VALUES ($1, $2, $3)`, i%3+1, fmt.Sprintf("n%05d", i), exp); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if n, err := db.DeleteExpiredSessions(ctx, t0); n != expired || err != nil {
			t.Errorf("DeleteExpiredSessions = %d, %v; want %d", n, err, expired)
		}
		if n, err := db.DeleteExpiredPushData(ctx, t0); n != expired || err != nil {
			t.Errorf("DeleteExpiredPushData = %d, %v; want %d", n, err, expired)
		}
		for _, table := range []string{"sessions", "device_nonces"} {
			var left int
			if err := db.SQL().QueryRow(`SELECT COUNT(*) FROM ` + table).Scan(&left); err != nil || left != 3 {
				t.Errorf("%s left: %d, %v; want the 3 that have not expired", table, left, err)
			}
		}
		if n, err := db.DeleteExpiredSessions(ctx, t0); n != 0 || err != nil {
			t.Errorf("DeleteExpiredSessions again = %d, %v; want 0", n, err)
		}
	})
}
