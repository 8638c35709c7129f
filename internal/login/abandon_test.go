package login_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/login"
)

// endingStore is the real store with hooks that run after some of its calls: a test ends
// the request's context there, as a browser that gives up while the server waits for a
// hashing slot.
type endingStore struct {
	login.Store
	afterFindUser func()
	afterReserve  func()
}

func (s *endingStore) FindUserByUsername(ctx context.Context, name string) (*latchkey.User, error) {
	u, err := s.Store.FindUserByUsername(ctx, name)
	if s.afterFindUser != nil {
		s.afterFindUser()
	}
	return u, err
}

func (s *endingStore) ReserveAttempt(ctx context.Context, key string, seen latchkey.Throttle, at time.Time) (bool, error) {
	ok, err := s.Store.ReserveAttempt(ctx, key, seen, at)
	if s.afterReserve != nil {
		s.afterReserve()
	}
	return ok, err
}

// TestEndedRequestIsNoGuess: when the request's context ends after the attempt was counted
// but before the password was compared (password.Hasher gives up waiting for a slot), the
// attempt is taken back: the account's failure counter and the IP's token are as before,
// for a known user, an unknown one (so the throttle does not tell them apart) and a
// re-authentication.
func TestEndedRequestIsNoGuess(t *testing.T) {
	st := &endingStore{}
	e := newEnv(t, func(o *login.Options) {
		st.Store = o.Store
		o.Store = st
		o.Throttle = login.DefaultThrottle
		o.Throttle.IPBurst = 1 // one token: an attempt kept would refuse the next request
	})
	e.user(t, "alice")
	res := e.signIn(t, "alice")
	e.clock.Add(11 * time.Minute) // a fresh token; Reauthenticate needs the password again

	failures := func(name string) int {
		t.Helper()
		th, err := e.db.FindThrottle(context.Background(), latchkey.ThrottleKeyUser(name))
		if err != nil {
			t.Fatal(err)
		}
		return th.Failures
	}
	tests := []struct {
		name     string
		username string
		hook     *func()
		call     func(ctx context.Context, c login.Client) error
	}{
		{"Login", "alice", &st.afterFindUser, func(ctx context.Context, c login.Client) error {
			_, err := e.svc.Login(ctx, c, "", "alice", goodPassword)
			return err
		}},
		{"Login of an unknown user", "nobody", &st.afterFindUser, func(ctx context.Context, c login.Client) error {
			_, err := e.svc.Login(ctx, c, "", "nobody", goodPassword)
			return err
		}},
		{"Reauthenticate", "alice", &st.afterReserve, func(ctx context.Context, c login.Client) error {
			_, err := e.svc.Reauthenticate(ctx, c, res.Token, goodPassword)
			return err
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := login.Client{IP: "198.51.100." + string(rune('1'+i)), UserAgent: "test"}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			*tt.hook = cancel
			err := tt.call(ctx, c)
			*tt.hook = nil
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("%s with the context ended before the hash = %v, want context.Canceled", tt.name, err)
			}
			if got := failures(tt.username); got != 0 {
				t.Errorf("after the ended request, %s has %d failures, want 0", tt.username, got)
			}
			// The IP's single token is back: the next request from it is checked, not refused.
			if err := tt.call(context.Background(), c); tt.username == "alice" && err != nil {
				t.Errorf("the next %s from the same IP = %v, want success", tt.name, err)
			} else if tt.username != "alice" && code(t, err) != latchkey.EInvalidCredentials {
				t.Errorf("the next %s from the same IP = %v, want invalid_credentials", tt.name, err)
			}
		})
	}
}
