package sqlstore

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestRoleQueryUsesIndex: the start-up check for an administrator and the admin console's
// role filter read users by role through the users_role index, not a scan of every user
// (474 ms at start with a million users before the index).
func TestRoleQueryUsesIndex(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "plan.db"), Options{SecretsKey: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if p := queryPlan(t, db, `SELECT COUNT(*) FROM users WHERE role = 'admin'`); !strings.Contains(p, "users_role") {
		t.Errorf("query plan %q does not use the users_role index", p)
	}
}

// TestNonceSweepUsesIndex: the sweep of a device's expired nonces at each signed request reads
// only the expired ones (the device_nonces_device_expires index), not every nonce of the device.
func TestNonceSweepUsesIndex(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "plan.db"), Options{SecretsKey: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if p := queryPlan(t, db, qSweepNonces, 1, 0); !strings.Contains(p, "device_nonces_device_expires") {
		t.Errorf("query plan %q does not use the device_nonces_device_expires index", p)
	}
}

// queryPlan returns SQLite's plan for query, its steps joined with "; ". args are the values
// of its parameters.
func queryPlan(t *testing.T, db *DB, query string, args ...any) string {
	t.Helper()
	rows, err := db.db.QueryContext(context.Background(), `EXPLAIN QUERY PLAN `+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(plan, "; ")
}
