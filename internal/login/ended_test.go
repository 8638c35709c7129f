package login_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/totp"
)

// endedCall is one call of the SessionsEnded hook.
type endedCall struct {
	user  latchkey.UserID
	kept  string
	ended []string // SIDs
}

// TestSessionsEndedNamesTheKeptSession: the SessionsEnded hook is told which session an
// account rule kept (its sid), so that the applications of that session stay signed in: the
// password changer's own (rotated) session, the session of a user who reset all MFA, an
// administrator's own session when they sign out their other sessions. Disabling a user, an
// administrator signing someone else out and an MFA reset by an administrator keep none.
func TestSessionsEndedNamesTheKeptSession(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// run applies the rule, made in the session here, and returns that session afterwards.
		run      func(t *testing.T, e *env, secret []byte, here *login.Result, root *latchkey.User) *login.Result
		keepHere bool
	}{
		{"password change", func(t *testing.T, e *env, _ []byte, here *login.Result, _ *latchkey.User) *login.Result {
			res, err := e.svc.ChangePassword(ctx, alice, here.Token, goodPassword, "another long passphrase here")
			if err != nil {
				t.Fatal(err)
			}
			return res
		}, true},
		{"reset all MFA", func(t *testing.T, e *env, secret []byte, here *login.Result, _ *latchkey.User) *login.Result {
			e.clock.Add(time.Minute)
			if err := e.svc.ResetAllMFA(ctx, alice, here.Session, here.User, login.ResetProof{Password: goodPassword, Code: totp.Code(secret, totp.Step(e.clock.Now()))}); err != nil {
				t.Fatal(err)
			}
			return here
		}, true},
		{"admin's own other sessions", func(t *testing.T, e *env, _ []byte, here *login.Result, _ *latchkey.User) *login.Result {
			role := latchkey.RoleAdmin
			u, err := e.db.UpdateUser(ctx, here.User.ID, latchkey.UserUpdate{Role: &role})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.svc.AdminRevokeSessions(ctx, alice, u, here.Session.ID, u.ID); err != nil {
				t.Fatal(err)
			}
			return here
		}, true},
		{"admin signs the user out", func(t *testing.T, e *env, _ []byte, here *login.Result, root *latchkey.User) *login.Result {
			if err := e.svc.AdminRevokeSessions(ctx, alice, root, "", here.User.ID); err != nil {
				t.Fatal(err)
			}
			return here
		}, false},
		{"admin resets the user's MFA", func(t *testing.T, e *env, _ []byte, here *login.Result, root *latchkey.User) *login.Result {
			if err := e.svc.AdminResetMFA(ctx, alice, root, true, here.User.ID, "lost phone, ticket 1001"); err != nil {
				t.Fatal(err)
			}
			return here
		}, false},
		{"admin disables the user", func(t *testing.T, e *env, _ []byte, here *login.Result, root *latchkey.User) *login.Result {
			if _, err := e.svc.AdminSetDisabled(ctx, alice, root, here.User.ID, true); err != nil {
				t.Fatal(err)
			}
			return here
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, secret := workdayEnv(t, time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC), func(*login.Options) {})
			var calls []endedCall
			e.svc.OnSessionsEnded(func(_ context.Context, userID latchkey.UserID, kept string, ended []*latchkey.Session) {
				c := endedCall{user: userID, kept: kept}
				for _, s := range ended {
					c.ended = append(c.ended, s.SID)
				}
				calls = append(calls, c)
			})
			root, err := e.svc.CreateUser(ctx, alice, login.NewUser{Username: "root", Email: "root@example.com", Role: latchkey.RoleAdmin, Password: goodPassword})
			if err != nil {
				t.Fatal(err)
			}
			here := e.mfaSignIn(t, "", secret)
			e.clock.Add(time.Minute)
			other := e.mfaSignIn(t, "", secret)
			after := tt.run(t, e, secret, here, root)
			if len(calls) != 1 {
				t.Fatalf("SessionsEnded called %d times, want once: %+v", len(calls), calls)
			}
			c := calls[0]
			want := ""
			if tt.keepHere {
				want = here.Session.SID
				if after.Session.SID != want {
					t.Fatalf("the kept session's sid changed: %q, was %q", after.Session.SID, want)
				}
			}
			if c.user != here.User.ID || c.kept != want {
				t.Errorf("SessionsEnded(user %d, kept %q), want user %d, kept %q", c.user, c.kept, here.User.ID, want)
			}
			wantEnded := []string{other.Session.SID}
			if !tt.keepHere {
				wantEnded = append(wantEnded, here.Session.SID)
			}
			slices.Sort(wantEnded)
			slices.Sort(c.ended)
			if !slices.Equal(c.ended, wantEnded) {
				t.Errorf("ended sessions %v, want %v", c.ended, wantEnded)
			}
		})
	}
}
