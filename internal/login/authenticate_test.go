package login_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/login"
)

// countingStore is the real store with a tally of the calls the hot path could make.
type countingStore struct {
	login.Store
	mu    sync.Mutex
	calls map[string]int
}

func (c *countingStore) count(name string) {
	c.mu.Lock()
	c.calls[name]++
	c.mu.Unlock()
}

func (c *countingStore) reset() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.calls
	c.calls = map[string]int{}
	return old
}

func (c *countingStore) FindSessionByID(ctx context.Context, id string) (*latchkey.Session, error) {
	c.count("FindSessionByID")
	return c.Store.FindSessionByID(ctx, id)
}

func (c *countingStore) FindSessionWithUser(ctx context.Context, id string) (*latchkey.Session, *latchkey.User, error) {
	c.count("FindSessionWithUser")
	return c.Store.FindSessionWithUser(ctx, id)
}

func (c *countingStore) FindUserByID(ctx context.Context, id latchkey.UserID) (*latchkey.User, error) {
	c.count("FindUserByID")
	return c.Store.FindUserByID(ctx, id)
}

func (c *countingStore) TouchSession(ctx context.Context, id string, at time.Time) error {
	c.count("TouchSession")
	return c.Store.TouchSession(ctx, id, at)
}

func (c *countingStore) DeleteSession(ctx context.Context, id string) error {
	c.count("DeleteSession")
	return c.Store.DeleteSession(ctx, id)
}

// TestAuthenticateOneLookup: checking a signed-in session (every page, every forward-auth
// check) is one database read, and a write at most once a minute.
func TestAuthenticateOneLookup(t *testing.T) {
	var cs *countingStore
	e := newEnv(t, func(o *login.Options) {
		cs = &countingStore{Store: o.Store, calls: map[string]int{}}
		o.Store = cs
	})
	e.user(t, "alice")
	ctx := context.Background()
	res := e.signIn(t, "alice")
	e.clock.Add(10 * time.Second)
	cs.reset()
	for range 3 {
		sess, u, err := e.svc.Authenticate(ctx, res.Token)
		if err != nil || u.Username != "alice" || sess.UserID != u.ID {
			t.Fatalf("Authenticate = %v, %v, %v", sess, u, err)
		}
	}
	if got := cs.reset(); len(got) != 1 || got["FindSessionWithUser"] != 3 {
		t.Errorf("3 checks within a minute made the calls %v, want only FindSessionWithUser×3", got)
	}
	e.clock.Add(time.Minute)
	if _, _, err := e.svc.Authenticate(ctx, res.Token); err != nil {
		t.Fatal(err)
	}
	if got := cs.reset(); got["FindSessionWithUser"] != 1 || got["TouchSession"] != 1 || len(got) != 2 {
		t.Errorf("a check after a minute made the calls %v, want one read and one touch", got)
	}
	if _, _, err := e.svc.Authenticate(ctx, "not-a-token"); code(t, err) != latchkey.EUnauthenticated {
		t.Errorf("unknown token: %v, want unauthenticated", err)
	}
}

// TestAuthenticateDisabledUser: the joined read still refuses a disabled account.
func TestAuthenticateDisabledUser(t *testing.T) {
	e := newEnv(t)
	u := e.user(t, "alice")
	ctx := context.Background()
	res := e.signIn(t, "alice")
	disabled := true
	if _, err := e.db.UpdateUser(ctx, u.ID, latchkey.UserUpdate{Disabled: &disabled}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.Authenticate(ctx, res.Token); code(t, err) != latchkey.EUnauthenticated {
		t.Errorf("Authenticate for a disabled user: %v, want unauthenticated", err)
	}
}
