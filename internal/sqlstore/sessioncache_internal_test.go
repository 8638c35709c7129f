package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
)

// openCacheDB opens a SQLite store with a user alice and her signed-in session "s1".
func openCacheDB(t *testing.T) (db *DB, path string, u *latchkey.User) {
	t.Helper()
	ctx := context.Background()
	path = filepath.Join(t.TempDir(), "cache.db")
	db, err := Open(ctx, path, Options{SecretsKey: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	u = &latchkey.User{Username: "alice", Email: "alice@example.com", Role: latchkey.RoleUser, PasswordHash: "$argon2id$x"}
	if err := db.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	s := &latchkey.Session{ID: "s1", SID: "sid-1", UserID: u.ID, State: latchkey.StateAuthenticated, AMR: []string{"pwd", "otp", "mfa"},
		PasswordAt: now, MFAAt: &now, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour), Verifier: "v"}
	if err := db.CreateSession(ctx, s); err != nil {
		t.Fatal(err)
	}
	return db, path, u
}

// TestSessionCacheHitsOnlyUnchanged: a session is kept from its second read on (the sign-in
// flows, read once, are not), and a read of an unchanged database is then served from the
// cache, equal to a fresh read and a copy of its own (a caller changing what it got changes no
// other caller's); after any commit, by the same store, another store on the file (another
// process) or a bare connection (a maintenance tool), the next read is a fresh one and shows
// the change.
func TestSessionCacheHitsOnlyUnchanged(t *testing.T) {
	ctx := context.Background()
	db, path, u := openCacheDB(t)
	// The first read notes the ID, the second keeps what it read, the third is a hit.
	for i := range 2 {
		if _, _, err := db.FindSessionWithUser(ctx, "s1"); err != nil {
			t.Fatal(err)
		}
		db.sessions.emu.RLock()
		_, kept := db.sessions.entries["s1"]
		db.sessions.emu.RUnlock()
		if kept != (i == 1) {
			t.Fatalf("after read %d the session is kept: %v", i+1, kept)
		}
	}
	if db.sessions.hits.Load() != 0 {
		t.Fatalf("the first two reads were served from the cache")
	}
	s1, u1, err := db.FindSessionWithUser(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if db.sessions.hits.Load() != 1 {
		t.Fatalf("the third read of an unchanged database was not served from the cache")
	}
	hits := db.sessions.hits.Load()
	s2, u2, err := db.FindSessionWithUser(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if db.sessions.hits.Load() != hits+1 {
		t.Fatalf("the fourth read of an unchanged database was not served from the cache")
	}
	if !reflect.DeepEqual(s1, s2) || *u1 != *u2 {
		t.Fatalf("cached read = %+v %+v, want %+v %+v", s2, u2, s1, u1)
	}
	s2.AMR[0], s2.State, u2.Role = "changed", "changed", "changed"
	s3, u3, _ := db.FindSessionWithUser(ctx, "s1")
	if s3.AMR[0] != "pwd" || s3.State != latchkey.StateAuthenticated || u3.Role != latchkey.RoleUser {
		t.Fatalf("a caller's change reached the cache: %+v %+v", s3, u3)
	}

	other, err := Open(ctx, path, Options{SecretsKey: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	bare, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Close()

	disabled, admin := true, latchkey.RoleAdmin
	changes := []struct {
		name   string
		change func() error
		check  func(*latchkey.Session, *latchkey.User, error) bool
	}{
		{"the same store disables the user", func() error {
			_, err := db.UpdateUser(ctx, u.ID, latchkey.UserUpdate{Disabled: &disabled})
			return err
		}, func(_ *latchkey.Session, u *latchkey.User, err error) bool { return err == nil && u.Disabled }},
		{"another store makes the user an admin", func() error {
			_, err := other.UpdateUser(ctx, u.ID, latchkey.UserUpdate{Role: &admin})
			return err
		}, func(_ *latchkey.Session, u *latchkey.User, err error) bool { return err == nil && u.Role == admin }},
		{"a bare connection changes the session's state", func() error {
			_, err := bare.ExecContext(ctx, `UPDATE sessions SET state = 'second_factor' WHERE id = 's1'`)
			return err
		}, func(s *latchkey.Session, _ *latchkey.User, err error) bool {
			return err == nil && s.State == "second_factor"
		}},
		{"another store revokes the session", func() error {
			return other.DeleteSession(ctx, "s1")
		}, func(_ *latchkey.Session, _ *latchkey.User, err error) bool {
			return latchkey.ErrorCode(err) == latchkey.ENotFound
		}},
	}
	for _, c := range changes {
		// Warm the cache, then change the database and read again.
		db.FindSessionWithUser(ctx, "s1")
		db.FindSessionWithUser(ctx, "s1")
		if err := c.change(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		before := db.sessions.hits.Load()
		s, u, err := db.FindSessionWithUser(ctx, "s1")
		if !c.check(s, u, err) {
			t.Errorf("%s: the next read gave %+v %+v %v", c.name, s, u, err)
		}
		if db.sessions.hits.Load() != before {
			t.Errorf("%s: the read after it was served from the cache", c.name)
		}
	}
}

// TestSessionCacheNeverStale: while another store (another process) changes the user again
// and again, no read that starts after a change was committed returns what was there before
// it, though many reads in between are served from the cache (run with -race).
func TestSessionCacheNeverStale(t *testing.T) {
	ctx := context.Background()
	db, path, u := openCacheDB(t)
	other, err := Open(ctx, path, Options{SecretsKey: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	var committed atomic.Int64 // the last email version whose commit has returned
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				want := committed.Load()
				_, got, err := db.FindSessionWithUser(ctx, "s1")
				if err != nil {
					errs <- err
					return
				}
				v, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(got.Email, "v"), "@example.com"), 10, 64)
				if v < want {
					errs <- fmt.Errorf("a read started after version %d was committed returned version %d", want, v)
					return
				}
			}
		})
	}
	hits := db.sessions.hits.Load()
	for i := int64(1); i <= 100; i++ {
		email := fmt.Sprintf("v%d@example.com", i)
		if _, err := other.UpdateUser(ctx, u.ID, latchkey.UserUpdate{Email: &email}); err != nil {
			t.Fatal(err)
		}
		committed.Store(i)
		time.Sleep(200 * time.Microsecond)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if db.sessions.hits.Load() == hits {
		t.Error("no read was served from the cache: the test did not exercise it")
	}
}

// TestSessionCacheKeepsNoFlow: a sign-in flow (a session waiting for its second factor) is
// read from the database each time, never kept.
func TestSessionCacheKeepsNoFlow(t *testing.T) {
	ctx := context.Background()
	db, _, u := openCacheDB(t)
	now := time.Now().UTC()
	f := &latchkey.Session{ID: "f1", UserID: u.ID, State: latchkey.StateSecondFactor, AMR: []string{"pwd"},
		PasswordAt: now, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(10 * time.Minute), Verifier: "v"}
	if err := db.CreateSession(ctx, f); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if s, _, err := db.FindSessionWithUser(ctx, "f1"); err != nil || s.State != latchkey.StateSecondFactor {
			t.Fatalf("FindSessionWithUser(f1) = %+v, %v", s, err)
		}
	}
	db.sessions.emu.RLock()
	_, kept := db.sessions.entries["f1"]
	db.sessions.emu.RUnlock()
	if kept || db.sessions.hits.Load() != 0 {
		t.Errorf("a sign-in flow was kept (%v) or served from the cache (%d hits)", kept, db.sessions.hits.Load())
	}
}
