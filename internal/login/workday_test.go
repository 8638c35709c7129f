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

func mustWorkday(t *testing.T, s string) login.Workday {
	t.Helper()
	w, err := login.ParseWorkday(s)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// mfaSignIn signs alice in with password and TOTP at the clock's time, in a browser that
// holds oldToken ("" for none), enrolling TOTP first when secret is nil.
func (e *env) mfaSignIn(t *testing.T, oldToken string, secret []byte) *login.Result {
	t.Helper()
	ctx := context.Background()
	step1, err := e.svc.Login(ctx, alice, oldToken, "alice", goodPassword)
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	if step1.State != latchkey.StateSecondFactor {
		t.Fatalf("after the password: State = %q, want %q", step1.State, latchkey.StateSecondFactor)
	}
	res, err := e.svc.LoginTOTP(ctx, alice, step1.Token, totp.Code(secret, totp.Step(e.clock.Now())))
	if err != nil {
		t.Fatalf("LoginTOTP: %v", err)
	}
	return res
}

// workdayEnv has alice with TOTP, enrolled a day before the clock's time.
func workdayEnv(t *testing.T, start time.Time, mod func(*login.Options)) (*env, []byte) {
	t.Helper()
	e := newEnv(t, mod)
	e.clock.t = start.Add(-24 * time.Hour)
	e.user(t, "alice")
	secret, _ := e.enableTOTP(t, e.signIn(t, "alice"))
	e.clock.t = start
	return e, secret
}

func TestParseWorkday(t *testing.T) {
	for _, tt := range []struct {
		in, want string
		ok       bool
	}{
		{"19:00", "19:00", true}, {" 7:30 ", "07:30", true}, {"", "", true}, {"00:00", "00:00", true},
		{"24:00", "", false}, {"19", "", false}, {"19:0", "", false}, {"19:60", "", false}, {"7pm", "", false}, {"-1:00", "", false},
	} {
		w, err := login.ParseWorkday(tt.in)
		if (err == nil) != tt.ok || (err == nil && w.String() != tt.want) {
			t.Errorf("ParseWorkday(%q) = %q, %v; want %q, ok %v", tt.in, w.String(), err, tt.want, tt.ok)
		}
	}
}

// TestWorkdayEnd checks the absolute end of a session signed in with a second factor: the
// next workday end in the user's zone, computed on the wall clock across daylight-saving
// changes, and never past the maximum age.
func TestWorkdayEnd(t *testing.T) {
	for _, tt := range []struct {
		name    string
		zone    string // the user's; "" takes the server's (Europe/Madrid)
		workday string
		maxAge  time.Duration
		mfa     time.Time
		want    time.Time
	}{
		{"same day", "", "19:00", 12 * time.Hour, time.Date(2026, 6, 10, 7, 0, 0, 0, time.UTC), time.Date(2026, 6, 10, 17, 0, 0, 0, time.UTC)},
		{"user zone", "America/New_York", "19:00", 12 * time.Hour, time.Date(2026, 6, 10, 13, 0, 0, 0, time.UTC), time.Date(2026, 6, 10, 23, 0, 0, 0, time.UTC)},
		{"capped by max age", "", "19:00", 12 * time.Hour, time.Date(2026, 6, 10, 18, 0, 0, 0, time.UTC), time.Date(2026, 6, 11, 6, 0, 0, 0, time.UTC)},
		{"no workday rule", "", "", 12 * time.Hour, time.Date(2026, 6, 10, 7, 0, 0, 0, time.UTC), time.Date(2026, 6, 10, 19, 0, 0, 0, time.UTC)},
		// 29 March 2026: Madrid moves from CET (+1) to CEST (+2) at 02:00. A sign-in at
		// 01:00 CET ends at 19:00 CEST = 17:00 UTC, 16 hours later, not 18.
		{"spring forward", "", "19:00", 24 * time.Hour, time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 29, 17, 0, 0, 0, time.UTC)},
		// 1 November 2026: New York moves from EDT (-4) to EST (-5) at 02:00. A sign-in at
		// 21:00 EDT the evening before ends the next day at 19:00 EST = 00:00 UTC.
		{"fall back, next day", "America/New_York", "19:00", 36 * time.Hour, time.Date(2026, 11, 1, 1, 0, 0, 0, time.UTC), time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, secret := workdayEnv(t, tt.mfa, func(o *login.Options) {
				o.WorkdayEnd, o.TimeZone, o.MaxAge = mustWorkday(t, tt.workday), mustZone(t, "Europe/Madrid"), tt.maxAge
			})
			if tt.zone != "" {
				u, _ := e.db.FindUserByUsername(context.Background(), "alice")
				if _, err := e.svc.SetTimeZone(context.Background(), alice, u, tt.zone); err != nil {
					t.Fatal(err)
				}
			}
			res := e.mfaSignIn(t, "", secret)
			if got := res.Session.ExpiresAt; !got.Equal(tt.want) {
				t.Errorf("ExpiresAt = %v, want %v", got, tt.want)
			}
			sess, _, err := e.svc.Authenticate(context.Background(), res.Token)
			if err != nil || !sess.ExpiresAt.Equal(tt.want) {
				t.Errorf("stored ExpiresAt = %v (%v), want %v", sess, err, tt.want)
			}
		})
	}
}

func TestPasswordOnlySessionEndsAtMaxAge(t *testing.T) {
	start := time.Date(2026, 6, 10, 7, 0, 0, 0, time.UTC)
	e := newEnv(t, func(o *login.Options) { o.WorkdayEnd = mustWorkday(t, "19:00") })
	e.clock.t = start
	e.user(t, "alice")
	res := e.signIn(t, "alice")
	if got, want := res.Session.ExpiresAt, start.Add(12*time.Hour); !got.Equal(want) {
		t.Errorf("ExpiresAt = %v, want %v (max age)", got, want)
	}
}

// TestIdleAsksOnlyThePassword: after the inactivity timeout the session no longer counts, but
// signing in again in that browser asks only the password while the workday lasts; the AMR
// keeps the second factor and MFAAt stays the original. After the workday end the full
// sign-in is needed again.
func TestIdleAsksOnlyThePassword(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 6, 10, 7, 0, 0, 0, time.UTC) // 09:00 in Madrid
	e, secret := workdayEnv(t, start, func(o *login.Options) {
		o.WorkdayEnd, o.TimeZone = mustWorkday(t, "19:00"), mustZone(t, "Europe/Madrid")
	})
	first := e.mfaSignIn(t, "", secret)
	mfaAt := *first.Session.MFAAt

	e.clock.Add(61 * time.Minute)
	if _, _, err := e.svc.Authenticate(ctx, first.Token); code(t, err) != latchkey.EUnauthenticated {
		t.Fatalf("Authenticate after the idle timeout = %v, want EUnauthenticated", err)
	}
	again, err := e.svc.Login(ctx, alice, first.Token, "alice", goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	if again.State != latchkey.StateAuthenticated {
		t.Fatalf("State after the password = %q, want authenticated (second factor remembered)", again.State)
	}
	if again.Token == first.Token {
		t.Error("the session token did not rotate")
	}
	if again.Session.SID != first.Session.SID {
		t.Errorf("SID = %q, want the session's %q", again.Session.SID, first.Session.SID)
	}
	sess, _, err := e.svc.Authenticate(ctx, again.Token)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(sess.AMR, "mfa") || !slices.Contains(sess.AMR, "otp") {
		t.Errorf("AMR = %v, want otp and mfa kept", sess.AMR)
	}
	if sess.MFAAt == nil || !sess.MFAAt.Equal(mfaAt) {
		t.Errorf("MFAAt = %v, want the original %v", sess.MFAAt, mfaAt)
	}
	if !sess.PasswordAt.Equal(e.clock.Now()) {
		t.Errorf("PasswordAt = %v, want now %v", sess.PasswordAt, e.clock.Now())
	}
	if want := time.Date(2026, 6, 10, 17, 0, 0, 0, time.UTC); !sess.ExpiresAt.Equal(want) {
		t.Errorf("ExpiresAt = %v, want the workday end %v", sess.ExpiresAt, want)
	}

	// Idle again, then past the workday end (19:00 Madrid): the full sign-in.
	e.clock.t = time.Date(2026, 6, 10, 17, 0, 1, 0, time.UTC)
	if _, _, err := e.svc.Authenticate(ctx, again.Token); code(t, err) != latchkey.EUnauthenticated {
		t.Fatalf("Authenticate after the workday end = %v, want EUnauthenticated", err)
	}
	e.mfaSignIn(t, again.Token, secret) // fails unless the second step is asked
}

func TestIdleWithoutRememberedProofAfterMaxAge(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 6, 10, 7, 0, 0, 0, time.UTC)
	e, secret := workdayEnv(t, start, func(o *login.Options) { o.MaxAge = 4 * time.Hour }) // no workday rule
	first := e.mfaSignIn(t, "", secret)
	e.clock.Add(3 * time.Hour)
	if res, err := e.svc.Login(ctx, alice, first.Token, "alice", goodPassword); err != nil || res.State != latchkey.StateAuthenticated {
		t.Fatalf("Login within max age = %v, %v; want authenticated with the password alone", res, err)
	} else {
		first = res
	}
	e.clock.Add(61 * time.Minute) // past max age from the MFA, 4 h
	e.mfaSignIn(t, first.Token, secret)
}

func TestDifferentUserGetsTheFullSignIn(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 6, 10, 7, 0, 0, 0, time.UTC)
	e, secret := workdayEnv(t, start, func(o *login.Options) { o.WorkdayEnd = mustWorkday(t, "19:00") })
	bob := e.user(t, "bob")
	bobIn := e.signIn(t, "bob")
	e.enableTOTP(t, bobIn)
	first := e.mfaSignIn(t, "", secret)
	e.clock.Add(61 * time.Minute)
	res, err := e.svc.Login(ctx, alice, first.Token, "bob", goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	if res.State != latchkey.StateSecondFactor || res.Session.UserID != bob.ID {
		t.Errorf("bob after alice's idle session: State = %q, want %q", res.State, latchkey.StateSecondFactor)
	}
}

func TestSessionListAndRevoke(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 6, 10, 7, 0, 0, 0, time.UTC)
	e, secret := workdayEnv(t, start, func(o *login.Options) { o.WorkdayEnd = mustWorkday(t, "19:00") })
	laptop := e.mfaSignIn(t, "", secret)
	e.clock.Add(31 * time.Second)
	phone := e.mfaSignIn(t, "", secret)
	if len(laptop.Session.SID) != 32 || laptop.Session.SID == phone.Session.SID {
		t.Fatalf("SIDs %q and %q: want two different 128-bit hex IDs", laptop.Session.SID, phone.Session.SID)
	}
	u := laptop.User
	list, err := e.svc.Sessions(ctx, u, laptop.Session)
	if err != nil || len(list) != 2 || !list[0].Current || list[0].SID != laptop.Session.SID || list[1].Current {
		t.Fatalf("Sessions = %+v, %v; want laptop (current) then phone", list, err)
	}
	e.clock.Add(61 * time.Minute) // both idle: listed as such, still revocable
	if list, err := e.svc.Sessions(ctx, u, nil); err != nil || len(list) != 2 || !list[0].Idle || !list[1].Idle {
		t.Errorf("Sessions after the idle timeout = %+v, %v; want both, idle", list, err)
	}
	bob := e.user(t, "bob")
	if _, err := e.svc.RevokeSession(ctx, alice, bob, phone.Session.SID); code(t, err) != latchkey.ENotFound {
		t.Errorf("bob revoking alice's session: %v, want ENotFound", err)
	}
	if _, err := e.svc.RevokeSession(ctx, alice, u, phone.Session.SID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.Authenticate(ctx, phone.Token); code(t, err) != latchkey.EUnauthenticated {
		t.Errorf("revoked session still signed in: %v", err)
	}
	if _, err := e.svc.RevokeSession(ctx, alice, u, phone.Session.SID); code(t, err) != latchkey.ENotFound {
		t.Errorf("revoking twice: %v, want ENotFound", err)
	}
	ended, err := e.svc.RevokeAllSessions(ctx, alice, u)
	if err != nil || len(ended) != 1 || ended[0].SID != laptop.Session.SID {
		t.Fatalf("RevokeAllSessions = %v, %v", ended, err)
	}
	if _, _, err := e.svc.Authenticate(ctx, laptop.Token); code(t, err) != latchkey.EUnauthenticated {
		t.Errorf("session after sign out everywhere: %v", err)
	}
}

func TestSetTimeZoneRefusesUnknown(t *testing.T) {
	e := newEnv(t)
	u := e.user(t, "alice")
	for _, z := range []string{"", "Mars/Olympus", "Local", "../../etc/passwd"} {
		if _, err := e.svc.SetTimeZone(context.Background(), alice, u, z); code(t, err) != latchkey.EInvalid {
			t.Errorf("SetTimeZone(%q) = %v, want EInvalid", z, err)
		}
	}
}
