package sqlstore_test

import (
	"context"
	"sync"
	"testing"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/sqlstore"
)

// TestKeepAnAdminConcurrent: two administrators demoting (or disabling) each other at the
// same moment: exactly one change goes through, and an enabled administrator remains.
func TestKeepAnAdminConcurrent(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		admin := latchkey.RoleAdmin
		for round := range 10 {
			a, b := mkUser(t, db, "a"+string(rune('0'+round))), mkUser(t, db, "b"+string(rune('0'+round)))
			for _, u := range []*latchkey.User{a, b} {
				if _, err := db.UpdateUser(ctx, u.ID, latchkey.UserUpdate{Role: &admin}); err != nil {
					t.Fatal(err)
				}
			}
			user, yes := latchkey.RoleUser, true
			updates := []latchkey.UserUpdate{{Role: &user, KeepAnAdmin: true}, {Disabled: &yes, KeepAnAdmin: true}}
			if round%2 == 1 {
				updates[0], updates[1] = updates[1], updates[0]
			}
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i, u := range []*latchkey.User{a, b} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, errs[i] = db.UpdateUser(ctx, u.ID, updates[i])
				}()
			}
			wg.Wait()
			ok := 0
			for _, err := range errs {
				switch errCode(err) {
				case "":
					ok++
				case latchkey.EConflict:
				default:
					t.Fatalf("round %d: %v", round, err)
				}
			}
			if ok != 1 {
				t.Fatalf("round %d: %d of 2 changes went through (%v), want exactly 1", round, ok, errs)
			}
			// Back to no administrators for the next round.
			for _, u := range []*latchkey.User{a, b} {
				no := false
				if _, err := db.UpdateUser(ctx, u.ID, latchkey.UserUpdate{Role: &user, Disabled: &no}); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}
