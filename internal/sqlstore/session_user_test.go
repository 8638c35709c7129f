package sqlstore_test

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/sqlstore"
)

// TestFindSessionWithUser: the one-query read of the hot path, and FindFlowWithUser (the same
// read, on SQLite's batch writer), return the same session and user as the two separate
// reads, and not_found for an unknown session.
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
		wantS, _ := db.FindSessionByID(ctx, "s1")
		wantU, _ := db.FindUserByID(ctx, u.ID)
		for name, find := range map[string]func(context.Context, string) (*latchkey.Session, *latchkey.User, error){
			"FindSessionWithUser": db.FindSessionWithUser,
			"FindFlowWithUser":    db.FindFlowWithUser,
		} {
			gotS, gotU, err := find(ctx, "s1")
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			// Every field, so that a column added to sessions but not to the join fails here.
			if !reflect.DeepEqual(gotS, wantS) || gotS.SID != "sid-1" {
				t.Errorf("%s: session = %+v, want %+v", name, gotS, wantS)
			}
			if *gotU != *wantU {
				t.Errorf("%s: user = %+v, want %+v", name, gotU, wantU)
			}
			if gotU.Username != "alice" || gotU.TimeZone != zone {
				t.Errorf("%s: user = %q, want alice (the session's user, not another)", name, gotU.Username)
			}
			if _, _, err := find(ctx, "nope"); errCode(err) != latchkey.ENotFound {
				t.Errorf("%s: unknown session: err = %v, want not_found", name, err)
			}
		}
	})
}

// TestFindFlowWithTOTP: the TOTP step's one read returns the flow and its user as
// FindFlowWithUser does and the credentials as FindTOTPCredentials does (pending, confirmed and
// a Latch device's, oldest first, secrets opened), none of another user's; a user without
// credentials gives none and still the flow; an unknown flow gives not_found.
func TestFindFlowWithTOTP(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		alice, bob, carol := mkUser(t, db, "alice"), mkUser(t, db, "bob"), mkUser(t, db, "carol")
		cred := func(u *latchkey.User, secret string, confirm bool) {
			t.Helper()
			c := &latchkey.TOTPCredential{UserID: u.ID, Name: "app " + secret, Secret: []byte(secret), CreatedAt: t0}
			if err := db.CreateTOTPCredential(ctx, c); err != nil {
				t.Fatal(err)
			}
			if confirm {
				if err := db.ConfirmTOTPCredential(ctx, c.ID, 7, t0.Add(time.Minute), nil, false); err != nil {
					t.Fatal(err)
				}
			}
		}
		cred(alice, "alice-one-0123456789", true)
		cred(bob, "bob-secret-012345678", true)
		cred(alice, "alice-two-0123456789", false)
		for _, u := range []*latchkey.User{alice, carol} {
			s := &latchkey.Session{ID: "f-" + u.Username, SID: "sid-" + u.Username, UserID: u.ID, State: latchkey.StateSecondFactor, AMR: []string{"pwd"}, PasswordAt: t0, CreatedAt: t0, LastSeenAt: t0, ExpiresAt: t0.Add(5 * time.Minute), IP: "192.0.2.1", UserAgent: "UA", Verifier: "v-" + u.Username}
			if err := db.CreateSession(ctx, s); err != nil {
				t.Fatal(err)
			}
		}
		for _, u := range []*latchkey.User{alice, carol} {
			wantS, wantU, err := db.FindFlowWithUser(ctx, "f-"+u.Username)
			if err != nil {
				t.Fatal(err)
			}
			wantC, err := db.FindTOTPCredentials(ctx, u.ID)
			if err != nil {
				t.Fatal(err)
			}
			gotS, gotU, gotC, err := db.FindFlowWithTOTP(ctx, "f-"+u.Username)
			if err != nil {
				t.Fatalf("%s: %v", u.Username, err)
			}
			if !reflect.DeepEqual(gotS, wantS) || *gotU != *wantU {
				t.Errorf("%s: flow = %+v, %+v, want %+v, %+v", u.Username, gotS, gotU, wantS, wantU)
			}
			if len(gotC) != len(wantC) || (len(wantC) > 0 && !reflect.DeepEqual(gotC, wantC)) {
				t.Errorf("%s: credentials = %+v, want %+v", u.Username, gotC, wantC)
			}
		}
		_, _, creds, _ := db.FindFlowWithTOTP(ctx, "f-alice")
		if len(creds) != 2 || string(creds[0].Secret) != "alice-one-0123456789" || creds[0].LastStep != 7 || creds[0].ConfirmedAt == nil || creds[1].ConfirmedAt != nil {
			t.Errorf("alice's credentials = %+v, want her confirmed one (step 7) then her pending one", creds)
		}
		if _, _, creds, _ := db.FindFlowWithTOTP(ctx, "f-carol"); len(creds) != 0 {
			t.Errorf("carol's credentials = %+v, want none", creds)
		}
		if _, _, _, err := db.FindFlowWithTOTP(ctx, "nope"); errCode(err) != latchkey.ENotFound {
			t.Errorf("unknown flow: err = %v, want not_found", err)
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

// watchedCtx records whether anything asked for its end.
type watchedCtx struct {
	context.Context
	watched atomic.Bool
}

func (c *watchedCtx) Done() <-chan struct{} {
	c.watched.Store(true)
	return c.Context.Done()
}

// TestShortReadsDoNotWatchTheirContext: on SQLite the reads of every request (the session
// with its user, the user, the TOTP credentials, the device, the push challenge) do not watch
// their caller's context for its end, which costs two goroutines per query; on PostgreSQL
// they do, so that a request that ends cancels its query on the server.
func TestShortReadsDoNotWatchTheirContext(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		u := mkUser(t, db, "alice")
		s := &latchkey.Session{ID: "s1", SID: "sid-1", UserID: u.ID, State: latchkey.StateAuthenticated, AMR: []string{"pwd"}, PasswordAt: t0, CreatedAt: t0, LastSeenAt: t0, ExpiresAt: t0.Add(time.Hour), IP: "192.0.2.1", UserAgent: "UA"}
		if err := db.CreateSession(context.Background(), s); err != nil {
			t.Fatal(err)
		}
		reads := map[string]func(ctx context.Context) error{
			"FindSessionWithUser": func(ctx context.Context) error { _, _, err := db.FindSessionWithUser(ctx, "s1"); return err },
			"FindSessionByID":     func(ctx context.Context) error { _, err := db.FindSessionByID(ctx, "s1"); return err },
			"FindUserByID":        func(ctx context.Context) error { _, err := db.FindUserByID(ctx, u.ID); return err },
			"FindUserByUsername":  func(ctx context.Context) error { _, err := db.FindUserByUsername(ctx, "alice"); return err },
			"FindTOTPCredentials": func(ctx context.Context) error { _, err := db.FindTOTPCredentials(ctx, u.ID); return err },
			"FindFlowWithTOTP": func(ctx context.Context) error {
				_, _, _, err := db.FindFlowWithTOTP(ctx, "none")
				return ignoreNotFound(err)
			},
			"FindDevice": func(ctx context.Context) error {
				_, err := db.FindDevice(ctx, 12345)
				return ignoreNotFound(err)
			},
			"FindPushChallenge": func(ctx context.Context) error {
				_, err := db.FindPushChallenge(ctx, "none")
				return ignoreNotFound(err)
			},
		}
		for name, read := range reads {
			ctx, cancel := context.WithCancel(context.Background())
			w := &watchedCtx{Context: ctx}
			if err := read(w); err != nil {
				t.Errorf("%s: %v", name, err)
			}
			cancel()
			if want := db.Dialect() == sqlstore.Postgres; w.watched.Load() != want {
				t.Errorf("%s on %s: the context's end was watched: %v, want %v", name, db.Dialect(), w.watched.Load(), want)
			}
		}
	})
}

func ignoreNotFound(err error) error {
	if latchkey.ErrorCode(err) == latchkey.ENotFound {
		return nil
	}
	return err
}
