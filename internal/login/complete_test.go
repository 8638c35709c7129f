package login_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/audit"
	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/totp"
)

// writeCountingStore is the real store with a tally of the writes of a TOTP step, and a hook
// that runs between the code's check and the completion.
type writeCountingStore struct {
	login.Store
	mu     sync.Mutex
	calls  map[string]int
	reads  map[string]int
	before func() // run after a read of the flow or of the TOTP credentials, once
	// failStart, when set, is what StartPasswordSession returns, without writing.
	failStart error
}

func (w *writeCountingStore) count(name string) {
	w.mu.Lock()
	w.calls[name]++
	w.mu.Unlock()
}

// take returns the writes counted since the last call.
func (w *writeCountingStore) take() map[string]int { return w.swap(&w.calls) }

// takeReads returns the reads counted since the last call.
func (w *writeCountingStore) takeReads() map[string]int { return w.swap(&w.reads) }

// swap empties *m and returns what it held.
func (w *writeCountingStore) swap(m *map[string]int) map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	old := *m
	*m = map[string]int{}
	return old
}

// read counts a read of the flow or the credentials under name, in reads (not in calls), and
// runs before, once, after it.
func (w *writeCountingStore) read(name string) {
	w.mu.Lock()
	w.reads[name]++
	f := w.before
	w.before = nil
	w.mu.Unlock()
	if f != nil {
		f()
	}
}

func (w *writeCountingStore) FindTOTPCredentials(ctx context.Context, id latchkey.UserID) ([]*latchkey.TOTPCredential, error) {
	defer w.read("FindTOTPCredentials")
	return w.Store.FindTOTPCredentials(ctx, id)
}

func (w *writeCountingStore) FindFlowWithUser(ctx context.Context, id string) (*latchkey.Session, *latchkey.User, error) {
	defer w.read("FindFlowWithUser")
	return w.Store.FindFlowWithUser(ctx, id)
}

func (w *writeCountingStore) FindFlowWithTOTP(ctx context.Context, id string) (*latchkey.Session, *latchkey.User, []*latchkey.TOTPCredential, error) {
	defer w.read("FindFlowWithTOTP")
	return w.Store.FindFlowWithTOTP(ctx, id)
}

func (w *writeCountingStore) ReserveAttempt(ctx context.Context, key string, seen latchkey.Throttle, at time.Time) (bool, error) {
	w.count("ReserveAttempt")
	return w.Store.ReserveAttempt(ctx, key, seen, at)
}

func (w *writeCountingStore) RefundAttempt(ctx context.Context, key string, n int, prev time.Time) error {
	w.count("RefundAttempt")
	return w.Store.RefundAttempt(ctx, key, n, prev)
}

func (w *writeCountingStore) ResetThrottle(ctx context.Context, key string) error {
	w.count("ResetThrottle")
	return w.Store.ResetThrottle(ctx, key)
}

func (w *writeCountingStore) RotateSession(ctx context.Context, oldID, oldVerifier string, s *latchkey.Session) error {
	w.count("RotateSession")
	return w.Store.RotateSession(ctx, oldID, oldVerifier, s)
}

func (w *writeCountingStore) CreateSession(ctx context.Context, s *latchkey.Session) error {
	w.count("CreateSession")
	return w.Store.CreateSession(ctx, s)
}

func (w *writeCountingStore) FindWebAuthnCredentials(ctx context.Context, id latchkey.UserID) ([]*latchkey.WebAuthnCredential, error) {
	defer w.read("FindWebAuthnCredentials")
	return w.Store.FindWebAuthnCredentials(ctx, id)
}

func (w *writeCountingStore) FindDevices(ctx context.Context, id latchkey.UserID) ([]*latchkey.Device, error) {
	defer w.read("FindDevices")
	return w.Store.FindDevices(ctx, id)
}

func (w *writeCountingStore) FindRecoveryCodes(ctx context.Context, id latchkey.UserID) ([]*latchkey.RecoveryCode, error) {
	defer w.read("FindRecoveryCodes")
	return w.Store.FindRecoveryCodes(ctx, id)
}

func (w *writeCountingStore) StartPasswordSession(ctx context.Context, p *latchkey.PasswordSignIn) error {
	w.count("StartPasswordSession")
	if w.failStart != nil {
		return w.failStart
	}
	return w.Store.StartPasswordSession(ctx, p)
}

func (w *writeCountingStore) CompleteSecondFactor(ctx context.Context, c *latchkey.SecondFactorCompletion) error {
	w.count("CompleteSecondFactor")
	return w.Store.CompleteSecondFactor(ctx, c)
}

// newCountingEnv is newEnv, with mod, over a writeCountingStore.
func newCountingEnv(t *testing.T, mod ...func(*login.Options)) (*env, *writeCountingStore) {
	t.Helper()
	var ws *writeCountingStore
	e := newEnv(t, append([]func(*login.Options){func(o *login.Options) {
		ws = &writeCountingStore{Store: o.Store, calls: map[string]int{}, reads: map[string]int{}}
		o.Store = ws
	}}, mod...)...)
	return e, ws
}

// TestTOTPStepWrites: a TOTP sign-in with the right code writes once (the account's counter is
// checked inside the completion's transaction, no reservation); after it the account's and push counters are gone, the
// success is audited once and the chain verifies.
func TestTOTPStepWrites(t *testing.T) {
	e, ws := newCountingEnv(t)
	u := e.user(t, "alice")
	ctx := context.Background()
	secret, _ := e.enableTOTP(t, e.signIn(t, "alice"))
	e.clock.Add(time.Minute)
	flow := e.signIn(t, "alice")
	// A wrong code first, and a push counter, both reset by the success.
	if _, err := e.svc.LoginTOTP(ctx, alice, flow.Token, "000000"); code(t, err) != latchkey.EInvalidCode {
		t.Fatalf("wrong code: %v", err)
	}
	if _, err := e.db.RecordFailure(ctx, latchkey.ThrottleKeyPush("alice"), e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	before, _ := e.db.FindAuditEvents(ctx, latchkey.AuditFilter{})
	ws.take()

	res, err := e.svc.LoginTOTP(ctx, alice, flow.Token, totp.Code(secret, totp.Step(e.clock.Now())))
	if err != nil {
		t.Fatalf("LoginTOTP: %v", err)
	}
	got := ws.take()
	want := map[string]int{"CompleteSecondFactor": 1}
	if len(got) != len(want) || got["CompleteSecondFactor"] != 1 {
		t.Errorf("writes of a TOTP step = %v, want %v", got, want)
	}
	for _, key := range []string{latchkey.ThrottleKeyUser("alice"), latchkey.ThrottleKeyPush("alice")} {
		if th, _ := e.db.FindThrottle(ctx, key); th.Failures != 0 {
			t.Errorf("counter %s = %d after the sign-in, want 0", key, th.Failures)
		}
	}
	// The flow's row, rotated in place: its ID, a new verifier (token.go).
	if s, err := e.db.FindSessionByID(ctx, flow.Session.ID); err != nil || s.State != latchkey.StateAuthenticated || s.ID != res.Session.ID || s.Verifier == flow.Session.Verifier || s.Verifier != res.Session.Verifier {
		t.Errorf("signed-in session = %+v, %v; want the flow's ID with a new verifier", s, err)
	}
	if _, _, err := e.svc.Authenticate(ctx, flow.Token); code(t, err) != latchkey.EUnauthenticated {
		t.Errorf("the flow's token after the sign-in: %v, want unauthenticated", err)
	}
	after, _ := e.db.FindAuditEvents(ctx, latchkey.AuditFilter{})
	if len(after) != len(before)+1 {
		t.Fatalf("%d audit entries added, want 1", len(after)-len(before))
	}
	if ev := after[len(after)-1]; ev.Action != latchkey.ActionLoginTOTP || ev.Outcome != latchkey.OutcomeSuccess || ev.UserID != u.ID || ev.IP != alice.IP {
		t.Errorf("last audit entry = %+v", ev)
	}
	if rep, err := audit.Verify(ctx, e.db); err != nil || rep.FirstBroken != 0 {
		t.Errorf("audit.Verify = %+v, %v", rep, err)
	}
}

// TestTOTPFlowEndedMeanwhile: a flow revoked between the code's check and the completion
// answers "sign in again" and writes nothing: the code stays unused, no session is signed
// in, no success is audited, and the right code does not count as a failure.
func TestTOTPFlowEndedMeanwhile(t *testing.T) {
	e, ws := newCountingEnv(t)
	e.user(t, "alice")
	ctx := context.Background()
	secret, _ := e.enableTOTP(t, e.signIn(t, "alice"))
	e.clock.Add(time.Minute)
	flow := e.signIn(t, "alice")
	before, _ := e.db.FindAuditEvents(ctx, latchkey.AuditFilter{})
	credsBefore, _ := e.db.FindTOTPCredentials(ctx, flow.Session.UserID)
	ws.before = func() {
		if err := e.db.DeleteSession(ctx, flow.Session.ID); err != nil {
			t.Error(err)
		}
	}

	c := totp.Code(secret, totp.Step(e.clock.Now()))
	if _, err := e.svc.LoginTOTP(ctx, alice, flow.Token, c); code(t, err) != latchkey.EFlowExpired {
		t.Fatalf("LoginTOTP on a revoked flow = %v, want %s", err, latchkey.EFlowExpired)
	}
	creds, _ := e.db.FindTOTPCredentials(ctx, flow.Session.UserID)
	if creds[0].LastStep != credsBefore[0].LastStep {
		t.Errorf("the code's step was recorded: %d, was %d", creds[0].LastStep, credsBefore[0].LastStep)
	}
	if list, _ := e.db.FindUserSessions(ctx, flow.Session.UserID, e.clock.Now()); len(list) != 1 {
		// The one signed-in session is the enrolment's.
		t.Errorf("%d signed-in sessions, want 1 (the enrolment's)", len(list))
	}
	after, _ := e.db.FindAuditEvents(ctx, latchkey.AuditFilter{})
	if len(after) != len(before) {
		t.Errorf("%d audit entries added, want none", len(after)-len(before))
	}
	if th, _ := e.db.FindThrottle(ctx, latchkey.ThrottleKeyUser("alice")); th.Failures != 0 {
		t.Errorf("the right code counted as a failure: %d", th.Failures)
	}
	// The same code still signs in a new flow.
	if _, err := e.svc.LoginTOTP(ctx, alice, e.signIn(t, "alice").Token, c); err != nil {
		t.Errorf("LoginTOTP with the unused code: %v", err)
	}
}

// TestTOTPStepReadsOnce: the TOTP step reads the flow, its user and the user's credentials in
// one read (FindFlowWithTOTP: one job of SQLite's batch writer, one round trip to
// PostgreSQL), with a wrong code and with the right one.
func TestTOTPStepReadsOnce(t *testing.T) {
	e, ws := newCountingEnv(t)
	e.user(t, "alice")
	secret, _ := e.enableTOTP(t, e.signIn(t, "alice"))
	e.clock.Add(time.Minute)
	ctx := context.Background()
	for _, right := range []bool{false, true} {
		flow := e.signIn(t, "alice")
		c := "000000"
		if right {
			c = totp.Code(secret, totp.Step(e.clock.Now()))
		}
		ws.takeReads()
		if _, err := e.svc.LoginTOTP(ctx, alice, flow.Token, c); right != (err == nil) {
			t.Fatalf("LoginTOTP(right code: %v) = %v", right, err)
		}
		if got := ws.takeReads(); len(got) != 1 || got["FindFlowWithTOTP"] != 1 {
			t.Errorf("right code %v: reads %v, want FindFlowWithTOTP once and nothing else", right, got)
		}
	}
}

// failedTOTPFlow gives alice, with TOTP enabled, a sign-in at the TOTP step and failures
// failed attempts on her account's counter (key).
func failedTOTPFlow(t *testing.T, failures int) (e *env, secret []byte, flow *login.Result, key string) {
	t.Helper()
	e = newEnv(t)
	e.user(t, "alice")
	secret, _ = e.enableTOTP(t, e.signIn(t, "alice"))
	e.clock.Add(time.Minute)
	flow = e.signIn(t, "alice")
	key = latchkey.ThrottleKeyUser("alice")
	for range failures {
		if _, err := e.db.RecordFailure(context.Background(), key, e.clock.Now()); err != nil {
			t.Fatal(err)
		}
	}
	return e, secret, flow, key
}

// TestTOTPRightCodeThrottled: the right code for an account that must wait gets the same 429
// as a wrong one, and the completion's transaction writes nothing: the flow stays unfinished,
// the step unused, the counter as it was, no success audited. After the wait the code signs in.
func TestTOTPRightCodeThrottled(t *testing.T) {
	e, secret, flow, key := failedTOTPFlow(t, login.DefaultThrottle.FreeFailures+1)
	ctx := context.Background()
	before, _ := e.db.FindAuditEvents(ctx, latchkey.AuditFilter{})
	credsBefore, _ := e.db.FindTOTPCredentials(ctx, flow.Session.UserID)

	_, err := e.svc.LoginTOTP(ctx, alice, flow.Token, totp.Code(secret, totp.Step(e.clock.Now())))
	var le *latchkey.Error
	if !asError(err, &le) || le.Code != latchkey.EThrottled || le.RetryAfter <= 0 {
		t.Fatalf("the right code on a throttled account = %v, want throttled with a Retry-After", err)
	}
	if th, _ := e.db.FindThrottle(ctx, key); th.Failures != login.DefaultThrottle.FreeFailures+1 {
		t.Errorf("counter = %d after the throttled attempt, want %d (unchanged)", th.Failures, login.DefaultThrottle.FreeFailures+1)
	}
	if s, err := e.db.FindSessionByID(ctx, flow.Session.ID); err != nil || s.State != latchkey.StateSecondFactor {
		t.Errorf("the flow = %+v, %v; want it unfinished", s, err)
	}
	if creds, _ := e.db.FindTOTPCredentials(ctx, flow.Session.UserID); creds[0].LastStep != credsBefore[0].LastStep {
		t.Errorf("the step was recorded: %d, was %d", creds[0].LastStep, credsBefore[0].LastStep)
	}
	after, _ := e.db.FindAuditEvents(ctx, latchkey.AuditFilter{})
	if len(after) != len(before)+1 || after[len(after)-1].Outcome != latchkey.OutcomeDenied || after[len(after)-1].Detail != "throttled" {
		t.Errorf("audit entries added: %+v, want one denied \"throttled\"", after[len(before):])
	}

	e.clock.Add(le.RetryAfter)
	if _, err := e.svc.LoginTOTP(ctx, alice, flow.Token, totp.Code(secret, totp.Step(e.clock.Now()))); err != nil {
		t.Fatalf("after the wait: %v", err)
	}
	if th, _ := e.db.FindThrottle(ctx, key); th.Failures != 0 {
		t.Errorf("counter = %d after the sign-in, want 0", th.Failures)
	}
}

// TestTOTPRightCodeLocked: on a locked account the right code is answered like a wrong one,
// counted, and the lock audited; nothing of the sign-in is written.
func TestTOTPRightCodeLocked(t *testing.T) {
	e, secret, flow, key := failedTOTPFlow(t, login.DefaultThrottle.LockAt)
	ctx := context.Background()
	flowSess := flow.Session
	_, err := e.svc.LoginTOTP(ctx, alice, flow.Token, totp.Code(secret, totp.Step(e.clock.Now())))
	if code(t, err) != latchkey.EInvalidCode {
		t.Fatalf("the right code on a locked account = %v, want %s", err, latchkey.EInvalidCode)
	}
	if th, _ := e.db.FindThrottle(ctx, key); th.Failures != login.DefaultThrottle.LockAt+1 {
		t.Errorf("counter = %d, want %d (the attempt counted)", th.Failures, login.DefaultThrottle.LockAt+1)
	}
	if s, err := e.db.FindSessionByID(ctx, flowSess.ID); err == nil && s.State == latchkey.StateAuthenticated {
		t.Error("the locked account was signed in")
	}
	events, _ := e.db.FindAuditEvents(ctx, latchkey.AuditFilter{})
	if last := events[len(events)-1]; last.Detail != "account locked" || last.Outcome != latchkey.OutcomeDenied {
		t.Errorf("last audit entry = %+v, want the lock", last)
	}
}

// TestPasswordStepWritesOnce: a right password reads each list of factors once and writes
// once after its hash (Store.StartPasswordSession: the refund of its attempt, the new
// session, the resets of a sign-in without a second factor and the audit entry); when that
// write fails, the attempt is refunded all the same.
func TestPasswordStepWritesOnce(t *testing.T) {
	e, ws := newCountingEnv(t)
	ctx := context.Background()
	e.user(t, "alice")
	e.enableTOTP(t, e.signIn(t, "alice"))
	bob := e.user(t, "bob")
	for _, key := range []string{latchkey.ThrottleKeyUser("bob"), latchkey.ThrottleKeyPush("bob")} {
		if _, err := e.db.RecordFailure(ctx, key, e.clock.Now()); err != nil {
			t.Fatal(err)
		}
	}
	e.clock.Add(time.Minute)
	// audited returns the sign-ins' audit entries, the newest first.
	audited := func() []*latchkey.AuditEvent {
		t.Helper()
		all, err := e.db.FindAuditEvents(ctx, latchkey.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var list []*latchkey.AuditEvent
		for _, ev := range all {
			if ev.Action == latchkey.ActionLogin {
				list = append(list, ev)
			}
		}
		slices.SortFunc(list, func(a, b *latchkey.AuditEvent) int { return int(b.ID - a.ID) })
		return list
	}
	ws.take()
	ws.takeReads()

	before := len(audited())
	res, err := e.svc.Login(ctx, alice, "", "alice", goodPassword)
	if err != nil || res.State != latchkey.StateSecondFactor {
		t.Fatalf("Login(alice) = %+v, %v", res, err)
	}
	if want := []string{latchkey.MethodTOTP, latchkey.MethodRecovery}; !slices.Equal(res.Methods, want) {
		t.Errorf("methods %v, want %v", res.Methods, want)
	}
	if got := ws.take(); len(got) != 2 || got["ReserveAttempt"] != 1 || got["StartPasswordSession"] != 1 {
		t.Errorf("writes %v, want ReserveAttempt and StartPasswordSession once each", got)
	}
	if got := ws.takeReads(); len(got) != 3 || got["FindTOTPCredentials"] != 1 || got["FindWebAuthnCredentials"] != 1 || got["FindRecoveryCodes"] != 1 {
		t.Errorf("reads %v, want the TOTP credentials, the security keys and the recovery codes once each", got)
	}
	if th, _ := e.db.FindThrottle(ctx, latchkey.ThrottleKeyUser("alice")); th.Failures != 0 {
		t.Errorf("alice's counter = %d after a right password, want 0", th.Failures)
	}
	if list := audited(); len(list) != before+1 || list[0].Outcome != latchkey.OutcomePasswordOK || list[0].Detail != "next: second_factor" {
		t.Errorf("audit after alice's password: %d entries (was %d), newest %+v", len(list), before, list[0])
	}
	if s, err := e.db.FindSessionByID(ctx, res.Session.ID); err != nil || s.State != latchkey.StateSecondFactor {
		t.Errorf("alice's flow = %+v, %v", s, err)
	}

	// Without a second factor: signed in, both counters reset in the same write.
	res, err = e.svc.Login(ctx, alice, "", "bob", goodPassword)
	if err != nil || res.State != latchkey.StateAuthenticated || res.User.ID != bob.ID {
		t.Fatalf("Login(bob) = %+v, %v", res, err)
	}
	if got := ws.take(); len(got) != 2 || got["ReserveAttempt"] != 1 || got["StartPasswordSession"] != 1 {
		t.Errorf("bob: writes %v, want ReserveAttempt and StartPasswordSession once each", got)
	}
	for _, key := range []string{latchkey.ThrottleKeyUser("bob"), latchkey.ThrottleKeyPush("bob")} {
		if th, _ := e.db.FindThrottle(ctx, key); th.Failures != 0 {
			t.Errorf("%s = %d after bob signed in, want reset", key, th.Failures)
		}
	}
	if list := audited(); len(list) != before+2 || list[0].Outcome != latchkey.OutcomeSuccess || list[0].UserID != bob.ID {
		t.Errorf("audit after bob's password: newest %+v", list[0])
	}

	// The write fails: the sign-in fails, and the right password's attempt is refunded.
	ws.failStart = errors.New("disk full")
	if _, err := e.svc.Login(ctx, alice, "", "alice", goodPassword); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Login with the write failing = %v, want its error", err)
	}
	if got := ws.take(); got["RefundAttempt"] != 1 {
		t.Errorf("writes %v after the failed write, want a RefundAttempt", got)
	}
	if th, _ := e.db.FindThrottle(ctx, latchkey.ThrottleKeyUser("alice")); th.Failures != 0 {
		t.Errorf("alice's counter = %d after a right password whose write failed, want 0", th.Failures)
	}
	if n := len(audited()); n != before+2 {
		t.Errorf("%d audit entries after the failed write, want %d", n, before+2)
	}
}

// TestRecoveryCodeSpentBySignIn: a recovery code is spent by the sign-in it completes, in
// the completion's transaction. Here a second tab completes the sign-in with another code
// while the first request is between its read of the flow and its completion: the first gets
// flow_expired and its code stays unused. Before, it had marked its code used first, and lost
// it without a sign-in or a mail.
func TestRecoveryCodeSpentBySignIn(t *testing.T) {
	e, ws := newCountingEnv(t)
	u := e.user(t, "alice")
	ctx := context.Background()
	_, codes := e.enableTOTP(t, e.signIn(t, "alice"))
	flow := e.signIn(t, "alice")
	ws.before = func() { // the other tab, after this request read the flow
		if _, err := e.svc.LoginRecovery(ctx, alice, flow.Token, codes[1]); err != nil {
			t.Errorf("the other tab's LoginRecovery: %v", err)
		}
	}
	if _, err := e.svc.LoginRecovery(ctx, alice, flow.Token, codes[0]); code(t, err) != latchkey.EFlowExpired {
		t.Fatalf("LoginRecovery on a flow completed meanwhile = %v, want %s", err, latchkey.EFlowExpired)
	}
	if used := e.usedRecoveryCodes(t, u.ID); used != 1 {
		t.Errorf("%d recovery codes used, want 1 (the other tab's)", used)
	}
	if _, err := e.svc.LoginRecovery(ctx, alice, e.signIn(t, "alice").Token, codes[0]); err != nil {
		t.Errorf("the code of the request that lost: %v, want it still usable", err)
	}
	_, err := e.svc.LoginRecovery(ctx, alice, e.signIn(t, "alice").Token, codes[1])
	if latchkey.ErrorMessage(err) != "This recovery code has already been used. Use another one." {
		t.Errorf("the other tab's code again = %v, want 'already been used'", err)
	}
}

// TestRecoveryCodeSpentMeanwhileCounts: a recovery code that a sign-in finds unused, and that
// is spent before the sign-in's completion (which then finds it used), is answered "already
// used" and stays counted, as a code used before: against the client's IP and the account.
// Before, the attempt was taken back before the completion, and such a guess cost nothing.
// Spent by another sign-in, whose success resets the account's counter (the attempts in
// flight with it), only the IP shows the attempt; spent by a write that leaves the counter
// alone (here an UPDATE of the codes), the account's counter shows it too.
func TestRecoveryCodeSpentMeanwhileCounts(t *testing.T) {
	tests := []struct {
		name    string
		spend   func(t *testing.T, e *env, u *latchkey.User, other *login.Result, code string)
		account bool // the account's counter is checked
	}{
		{"by another sign-in", func(t *testing.T, e *env, _ *latchkey.User, other *login.Result, code string) {
			if _, err := e.svc.LoginRecovery(context.Background(), alice, other.Token, code); err != nil {
				t.Errorf("the other sign-in's LoginRecovery: %v", err)
			}
		}, false},
		{"by a write that leaves the counter", func(t *testing.T, e *env, u *latchkey.User, _ *login.Result, _ string) {
			if _, err := e.db.SQL().Exec(`UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND used_at IS NULL`, e.clock.Now().UnixMicro(), u.ID); err != nil {
				t.Error(err)
			}
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, ws := newCountingEnv(t, func(o *login.Options) {
				o.Throttle = login.DefaultThrottle
				o.Throttle.IPBurst = 1 // one token: an attempt kept refuses the IP's next guess
			})
			u := e.user(t, "alice")
			ctx := context.Background()
			_, codes := e.enableTOTP(t, e.signIn(t, "alice"))
			flow, other := e.signIn(t, "alice"), e.signIn(t, "alice")
			c := login.Client{IP: "198.51.100.9", UserAgent: "test"}
			ws.before = func() { // after the flow's read
				ws.before = func() { // after the codes' read: the code is spent
					tt.spend(t, e, u, other, codes[0])
				}
			}
			_, err := e.svc.LoginRecovery(ctx, c, flow.Token, codes[0])
			if latchkey.ErrorMessage(err) != "This recovery code has already been used. Use another one." {
				t.Fatalf("LoginRecovery with a code spent meanwhile = %v, want 'already been used'", err)
			}
			events, _ := e.db.FindAuditEvents(ctx, latchkey.AuditFilter{})
			if last := events[len(events)-1]; last.Action != latchkey.ActionLoginRecovery || last.Outcome != latchkey.OutcomeFailure || last.Detail != "code already used" || last.IP != c.IP {
				t.Errorf("last audit entry = %+v, want the failure, code already used", last)
			}
			if s, err := e.db.FindSessionByID(ctx, flow.Session.ID); err != nil || s.State != latchkey.StateSecondFactor {
				t.Errorf("the flow = %+v, %v; want it unfinished", s, err)
			}
			if th, _ := e.db.FindThrottle(ctx, latchkey.ThrottleKeyUser("alice")); tt.account && th.Failures != 1 {
				t.Errorf("the account's counter = %d, want 1 (the attempt counted)", th.Failures)
			}
			// The IP's single token stays taken: its next guess is refused before any check.
			if _, err := e.svc.LoginRecovery(ctx, c, flow.Token, codes[1]); code(t, err) != latchkey.EThrottled {
				t.Errorf("the IP's next guess = %v, want %s", err, latchkey.EThrottled)
			}
		})
	}
}

// TestKeyCounterRecordedMeanwhile: two assertions of one key with the same counter, checked
// at once against the counter read before either was recorded, do not both sign in: the
// second finds the counter raised when it records it, and is refused and flagged as the
// counter check refuses a counter that did not rise.
func TestKeyCounterRecordedMeanwhile(t *testing.T) {
	e, ws := newCountingEnv(t)
	e.user(t, "alice")
	ctx := context.Background()
	k := newSoftKey(t)
	if _, err := e.addKey(t, e.signIn(t, "alice"), k, "Blue key"); err != nil {
		t.Fatal(err)
	}
	first, second := e.signIn(t, "alice"), e.signIn(t, "alice")
	o1, err := e.svc.BeginWebAuthnLogin(ctx, first.Token)
	if err != nil {
		t.Fatal(err)
	}
	o2, err := e.svc.BeginWebAuthnLogin(ctx, second.Token)
	if err != nil {
		t.Fatal(err)
	}
	counter := k.counter
	a1 := k.get(t, o1)
	k.counter = counter // a copy of the key answers with the same counter
	a2 := k.get(t, o2)
	ws.before = func() { // after the flow's read
		ws.before = func() { // after the keys' read: the other sign-in completes
			if _, err := e.svc.FinishWebAuthnLogin(ctx, alice, second.Token, o2.CeremonyID, a2); err != nil {
				t.Errorf("the other sign-in: %v", err)
			}
		}
	}
	if res, err := e.svc.FinishWebAuthnLogin(ctx, alice, first.Token, o1.CeremonyID, a1); code(t, err) != latchkey.EInvalidCode {
		t.Fatalf("the same counter recorded meanwhile: %v %+v, want %s", err, res, latchkey.EInvalidCode)
	}
	keys, err := e.svc.SecurityKeys(ctx, first.User)
	if err != nil || len(keys) != 1 || !keys[0].CloneWarning {
		t.Errorf("SecurityKeys = %+v, %v; want the key flagged", keys, err)
	}
}
