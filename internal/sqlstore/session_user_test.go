package sqlstore_test

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/sqlstore"
)

// TestFindSessionWithUser: the one-query read of the hot path returns the same session and
// user as the two separate reads, and not_found for an unknown session.
func TestFindSessionWithUser(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		mkUser(t, db, "bob")
		u := mkUser(t, db, "alice")
		zone := "Europe/Madrid"
		if _, err := db.UpdateUser(ctx, u.ID, latchkey.UserUpdate{TimeZone: &zone}); err != nil {
			t.Fatal(err)
		}
		mfa := t0.Add(time.Second)
		s := &latchkey.Session{ID: "s1", SID: "sid-1", UserID: u.ID, State: latchkey.StateAuthenticated, AMR: []string{"pwd", "otp", "mfa"}, PasswordAt: t0, MFAAt: &mfa, CreatedAt: t0, LastSeenAt: t0.Add(time.Minute), ExpiresAt: t0.Add(time.Hour), IP: "192.0.2.1", UserAgent: "UA"}
		if err := db.CreateSession(ctx, s); err != nil {
			t.Fatal(err)
		}
		gotS, gotU, err := db.FindSessionWithUser(ctx, "s1")
		if err != nil {
			t.Fatalf("FindSessionWithUser: %v", err)
		}
		wantS, _ := db.FindSessionByID(ctx, "s1")
		wantU, _ := db.FindUserByID(ctx, u.ID)
		// Every field, so that a column added to sessions but not to the join fails here.
		if !reflect.DeepEqual(gotS, wantS) || gotS.SID != "sid-1" {
			t.Errorf("session = %+v, want %+v", gotS, wantS)
		}
		if *gotU != *wantU {
			t.Errorf("user = %+v, want %+v", gotU, wantU)
		}
		if gotU.Username != "alice" || gotU.TimeZone != zone {
			t.Errorf("user = %q, want alice (the session's user, not another)", gotU.Username)
		}
		if _, _, err := db.FindSessionWithUser(ctx, "nope"); errCode(err) != latchkey.ENotFound {
			t.Errorf("unknown session: err = %v, want not_found", err)
		}
	})
}

// TestFindSessionWithUserConcurrent: the first calls, which prepare the statement, may come
// at once (run with -race); after Close the store refuses rather than using a closed statement.
func TestFindSessionWithUserConcurrent(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		u := mkUser(t, db, "alice")
		s := &latchkey.Session{ID: "s1", UserID: u.ID, State: latchkey.StateAuthenticated, AMR: []string{"pwd"}, PasswordAt: t0, CreatedAt: t0, LastSeenAt: t0, ExpiresAt: t0.Add(time.Hour)}
		if err := db.CreateSession(ctx, s); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for range 16 {
			wg.Go(func() {
				if _, got, err := db.FindSessionWithUser(ctx, "s1"); err != nil || got.Username != "alice" {
					errs <- fmt.Errorf("FindSessionWithUser = %v, %v", got, err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		db.Close()
		if _, _, err := db.FindSessionWithUser(ctx, "s1"); err == nil {
			t.Error("FindSessionWithUser after Close: no error")
		}
	})
}
