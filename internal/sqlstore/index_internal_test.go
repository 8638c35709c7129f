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
	rows, err := db.db.QueryContext(ctx, `EXPLAIN QUERY PLAN SELECT COUNT(*) FROM users WHERE role = 'admin'`)
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
	if p := strings.Join(plan, "; "); !strings.Contains(p, "users_role") {
		t.Errorf("query plan %q does not use the users_role index", p)
	}
}
