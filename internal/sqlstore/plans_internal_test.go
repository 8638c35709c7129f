package sqlstore

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// TestPartialIndexesServeTheirQueries shows that SQLite plans each query written for one of
// the partial indexes with that index, not a scan of the table: a partial index serves only
// a query whose WHERE implies the index's own, and col = $1 alone does not. Without the
// extra terms (qFindSessionBySID), FindSessionBySID read every session on each OIDC code
// exchange and refresh, which the harness's OIDC row showed as a tenth of its rate once the
// push scenario had left 16,000 sessions behind.
func TestPartialIndexesServeTheirQueries(t *testing.T) {
	db := openBatchDB(t)
	for _, tc := range []struct {
		query, index string
		args         []any
	}{
		{qFindSessionBySID, "sessions_sid", []any{"sid"}},
		{qUsernameByKey, "users_lookalike", []any{"key"}},
		{qAbandonedDevices, "devices_pending", []any{int64(1), 10}},
		{qDeleteDevicePushes, "push_challenges_subject", []any{"pending", int64(1), "add_device"}},
		{`SELECT id FROM audit_events WHERE ` + fmt.Sprintf(condActor, 1), "audit_events_actor", []any{"alice"}},
	} {
		rows, err := db.db.QueryContext(context.Background(), `EXPLAIN QUERY PLAN `+tc.query, tc.args...)
		if err != nil {
			t.Fatalf("%s: %v", tc.query, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		if all := strings.Join(plan, "; "); !strings.Contains(all, "INDEX "+tc.index) {
			t.Errorf("%s\nplan: %s, want it to use %s", tc.query, all, tc.index)
		}
	}
}
