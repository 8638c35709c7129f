package login_test

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/audit"
	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/mail"
	"github.com/latchkey/latchkey/internal/password"
	"github.com/latchkey/latchkey/internal/sqlstore"
	"github.com/latchkey/latchkey/internal/totp"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// outbox is a mail.Sender that keeps messages in memory.
type outbox struct {
	mu   sync.Mutex
	msgs []mail.Message
}

func (o *outbox) Send(_ context.Context, m mail.Message) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.msgs = append(o.msgs, m)
	return nil
}

func (o *outbox) subjects() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var s []string
	for _, m := range o.msgs {
		s = append(s, m.Subject)
	}
	return s
}

// fastParams keep unit tests quick; the production parameters are tested in internal/password.
var fastParams = password.Params{Memory: 1024, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}

type env struct {
	svc   *login.Service
	db    *sqlstore.DB
	clock *clock
	mail  *outbox
	opt   login.Options
}

func newEnv(t *testing.T, mod ...func(*login.Options)) *env {
	t.Helper()
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)}
	db, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "test.db"), sqlstore.Options{SecretsKey: make([]byte, 32), Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ob := &outbox{}
	opt := login.Options{
		Store:      db,
		Hasher:     password.New(password.Options{Params: fastParams}),
		Mailer:     ob,
		Audit:      audit.New(db, nil, c.Now),
		Now:        c.Now,
		SessionKey: []byte("0123456789abcdef0123456789abcdef"),
		PublicURL:  "http://latchkey.test",
	}
	for _, m := range mod {
		m(&opt)
	}
	return &env{svc: login.New(opt), db: db, clock: c, mail: ob, opt: opt}
}

const goodPassword = "correct horse battery staple"

func (e *env) user(t *testing.T, name string) *latchkey.User {
	t.Helper()
	u, err := e.svc.CreateUser(context.Background(), login.Client{}, login.NewUser{Username: name, Email: name + "@example.com", Password: goodPassword})
	if err != nil {
		t.Fatalf("CreateUser(%q): %v", name, err)
	}
	return u
}

var alice = login.Client{IP: "192.0.2.1", UserAgent: "test"}

func (e *env) signIn(t *testing.T, name string) *login.Result {
	t.Helper()
	res, err := e.svc.Login(context.Background(), alice, "", name, goodPassword)
	if err != nil {
		t.Fatalf("Login(%q): %v", name, err)
	}
	return res
}

// enableTOTP enrols an authenticator app for a signed-in user and returns its secret and the
// recovery codes.
func (e *env) enableTOTP(t *testing.T, res *login.Result) ([]byte, []string) {
	t.Helper()
	ctx := context.Background()
	en, err := e.svc.BeginTOTP(ctx, alice, res.Session, res.User)
	if err != nil {
		t.Fatalf("BeginTOTP: %v", err)
	}
	secret, err := totp.Decode(en.Secret)
	if err != nil {
		t.Fatal(err)
	}
	codes, err := e.svc.ConfirmTOTP(ctx, alice, res.Session, res.User, totp.Code(secret, totp.Step(e.clock.Now())))
	if err != nil {
		t.Fatalf("ConfirmTOTP: %v", err)
	}
	return secret, codes
}

// usedRecoveryCodes counts the stored recovery codes of a user that are marked used.
func (e *env) usedRecoveryCodes(t *testing.T, id latchkey.UserID) int {
	t.Helper()
	stored, err := e.db.FindRecoveryCodes(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	used := 0
	for _, c := range stored {
		if c.UsedAt != nil {
			used++
		}
	}
	return used
}

func code(t *testing.T, err error) string {
	t.Helper()
	return latchkey.ErrorCode(err)
}

func TestLoginWithoutSecondFactor(t *testing.T) {
	e := newEnv(t)
	e.user(t, "alice")
	res := e.signIn(t, "Alice ") // usernames are normalised
	if res.State != latchkey.StateAuthenticated {
		t.Fatalf("State = %q, want authenticated", res.State)
	}
	sess, u, err := e.svc.Authenticate(context.Background(), res.Token)
	if err != nil || u.Username != "alice" {
		t.Fatalf("Authenticate = %v, %v", u, err)
	}
	if got, want := sess.AMR, []string{"pwd"}; len(got) != 1 || got[0] != want[0] {
		t.Errorf("AMR = %v, want %v", got, want)
	}
}

func TestNoEnumeration(t *testing.T) {
	e := newEnv(t)
	e.user(t, "alice")
	u := e.user(t, "bob")
	disabled := true
	if _, err := e.db.UpdateUser(context.Background(), u.ID, latchkey.UserUpdate{Disabled: &disabled}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, errUnknown := e.svc.Login(ctx, alice, "", "nobody", goodPassword)
	_, errWrong := e.svc.Login(ctx, alice, "", "alice", "wrong password entirely")
	_, errDisabled := e.svc.Login(ctx, alice, "", "bob", goodPassword)
	for name, err := range map[string]error{"unknown": errUnknown, "wrong": errWrong, "disabled": errDisabled} {
		if got := latchkey.ErrorCode(err); got != latchkey.EInvalidCredentials {
			t.Errorf("%s: code = %q, want %q", name, got, latchkey.EInvalidCredentials)
		}
		if got, want := latchkey.ErrorMessage(err), latchkey.ErrorMessage(errWrong); got != want {
			t.Errorf("%s: message = %q, want the same as for a wrong password %q", name, got, want)
		}
	}
}

// TestNoEnumerationTiming checks that an unknown user costs a password hash like a known one,
// with the production parameters. The bound is loose on purpose: it catches a skipped hash
// (a factor of 100+), not scheduler noise.
func TestNoEnumerationTiming(t *testing.T) {
	e := newEnv(t, func(o *login.Options) { o.Hasher = password.New(password.Options{}) })
	e.user(t, "alice")
	ctx := context.Background()
	measure := func(name string) time.Duration {
		best := time.Hour
		for range 3 {
			start := time.Now()
			e.svc.Login(ctx, login.Client{}, "", name, "not the password at all")
			best = min(best, time.Since(start))
		}
		return best
	}
	known, unknown := measure("alice"), measure("nobody")
	if unknown < known/4 {
		t.Errorf("unknown user took %v, known user %v: the unknown path skips the hash", unknown, known)
	}
}

func TestSessionRotation(t *testing.T) {
	e := newEnv(t)
	e.user(t, "alice")
	ctx := context.Background()
	first := e.signIn(t, "alice")
	secret, _ := e.enableTOTP(t, first)

	e.clock.Add(time.Minute)
	step1, err := e.svc.Login(ctx, alice, first.Token, "alice", goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	if step1.State != latchkey.StateSecondFactor {
		t.Fatalf("State = %q, want second_factor", step1.State)
	}
	if step1.Token == first.Token {
		t.Fatal("the session token did not change after the password step")
	}
	if _, _, err := e.svc.Authenticate(ctx, first.Token); code(t, err) != latchkey.EUnauthenticated {
		t.Errorf("old token after the password step: %v, want unauthenticated", err)
	}
	if _, _, err := e.svc.Authenticate(ctx, step1.Token); code(t, err) != latchkey.EUnauthenticated {
		t.Errorf("half-signed-in token authenticates: %v", err)
	}
	e.clock.Add(30 * time.Second)
	step2, err := e.svc.LoginTOTP(ctx, alice, step1.Token, totp.Code(secret, totp.Step(e.clock.Now())))
	if err != nil {
		t.Fatal(err)
	}
	if step2.Token == step1.Token {
		t.Fatal("the session token did not change after the second factor")
	}
	if _, err := e.svc.LoginTOTP(ctx, alice, step1.Token, "000000"); code(t, err) != latchkey.EFlowExpired {
		t.Errorf("old flow token after MFA: %v, want flow_expired", err)
	}
	sess, _, err := e.svc.Authenticate(ctx, step2.Token)
	if err != nil {
		t.Fatal(err)
	}
	if got := sess.AMR; len(got) != 3 || got[0] != "pwd" || got[1] != "otp" || got[2] != "mfa" {
		t.Errorf("AMR = %v, want [pwd otp mfa]", got)
	}
	// Re-authentication rotates too.
	re, err := e.svc.Reauthenticate(ctx, alice, step2.Token, goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.Authenticate(ctx, step2.Token); code(t, err) != latchkey.EUnauthenticated {
		t.Errorf("token before re-authentication still works: %v", err)
	}
	if _, _, err := e.svc.Authenticate(ctx, re.Token); err != nil {
		t.Errorf("token after re-authentication: %v", err)
	}
	// Logout ends the session on the server.
	if err := e.svc.Logout(ctx, alice, re.Token); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.Authenticate(ctx, re.Token); code(t, err) != latchkey.EUnauthenticated {
		t.Errorf("token after logout: %v", err)
	}
}

func TestTOTPWindowAndReplay(t *testing.T) {
	e := newEnv(t)
	e.user(t, "alice")
	ctx := context.Background()
	secret, _ := e.enableTOTP(t, e.signIn(t, "alice"))
	e.clock.Add(10 * time.Minute)

	try := func(offset int64) error {
		res := e.signIn(t, "alice")
		_, err := e.svc.LoginTOTP(ctx, alice, res.Token, totp.Code(secret, totp.Step(e.clock.Now())+offset))
		return err
	}
	tests := []struct {
		name   string
		offset int64
		want   string
	}{
		{"T+2 refused", 2, latchkey.EInvalidCode},
		{"T-2 refused", -2, latchkey.EInvalidCode},
		{"T-1 accepted", -1, ""},
		{"T-1 again is a replay", -1, latchkey.EInvalidCode},
		{"T accepted", 0, ""},
		{"T again is a replay", 0, latchkey.EInvalidCode},
		{"T+1 accepted", 1, ""},
		{"T after T+1 is refused", 0, latchkey.EInvalidCode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := code(t, try(tt.offset)); got != tt.want {
				t.Errorf("LoginTOTP(step T%+d) = %q, want %q", tt.offset, got, tt.want)
			}
		})
	}
	events, err := e.db.FindAuditEvents(ctx, latchkey.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	replays := 0
	for _, ev := range events {
		if ev.Action == latchkey.ActionCodeReplayed {
			replays++
		}
	}
	if replays != 3 {
		t.Errorf("audited %d replayed codes, want 3", replays)
	}
}

// TestTOTPCodeOfTwoSteps: the codes of two steps of the window are sometimes the same. A
// code right for a new step is accepted although it is also the code of the step used last.
func TestTOTPCodeOfTwoSteps(t *testing.T) {
	// The RFC 6238 secret has the same code, 768734, for steps s-1 and s+1 (found by search).
	secret := []byte("12345678901234567890")
	const s = 61331810 // 2028-04-21 18:25:00 UTC
	if totp.Code(secret, s-1) != totp.Code(secret, s+1) || totp.Code(secret, s) == totp.Code(secret, s+1) {
		t.Fatal("the test's collision does not hold")
	}
	e := newEnv(t)
	u := e.user(t, "alice")
	ctx := context.Background()
	e.clock.Add(time.Unix((s-1)*totp.Period+5, 0).Sub(e.clock.Now()))
	cred := &latchkey.TOTPCredential{UserID: u.ID, Name: "Authenticator app", Secret: secret}
	if err := e.db.CreateTOTPCredential(ctx, cred); err != nil {
		t.Fatal(err)
	}
	// Step s-1 is used: the user signed in with it.
	if err := e.db.ConfirmTOTPCredential(ctx, cred.ID, s-1, e.clock.Now(), nil, false); err != nil {
		t.Fatal(err)
	}
	// A step later, the phone (its clock 30 seconds ahead) shows the code of step s+1.
	e.clock.Add(totp.Period * time.Second)
	res := e.signIn(t, "alice")
	got, err := e.svc.LoginTOTP(ctx, alice, res.Token, totp.Code(secret, s+1))
	if err != nil {
		t.Fatalf("LoginTOTP(code of step s+1, also of the used step s-1): %v", err)
	}
	if got.State != latchkey.StateAuthenticated {
		t.Errorf("State = %q, want authenticated", got.State)
	}
	// The step recorded is s+1: the same code is a replay now, and so is the code of step s.
	for _, st := range []int64{s + 1, s} {
		res = e.signIn(t, "alice")
		if _, err := e.svc.LoginTOTP(ctx, alice, res.Token, totp.Code(secret, st)); code(t, err) != latchkey.EInvalidCode {
			t.Errorf("LoginTOTP(step %d after step s+1) = %v, want %s", st-s, err, latchkey.EInvalidCode)
		}
	}
}

func TestTOTPConcurrentReplay(t *testing.T) {
	e := newEnv(t)
	e.user(t, "alice")
	ctx := context.Background()
	secret, _ := e.enableTOTP(t, e.signIn(t, "alice"))
	e.clock.Add(5 * time.Minute)
	const n = 8
	tokens := make([]string, n)
	for i := range tokens {
		tokens[i] = e.signIn(t, "alice").Token
	}
	c := totp.Code(secret, totp.Step(e.clock.Now()))
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for _, tok := range tokens {
		wg.Go(func() {
			if _, err := e.svc.LoginTOTP(ctx, alice, tok, c); err == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if ok != 1 {
		t.Errorf("%d sessions signed in with the same code, want exactly 1", ok)
	}
}

func TestEnrolmentNeedsCorrectCode(t *testing.T) {
	e := newEnv(t)
	e.user(t, "alice")
	ctx := context.Background()
	res := e.signIn(t, "alice")
	en, err := e.svc.BeginTOTP(ctx, alice, res.Session, res.User)
	if err != nil {
		t.Fatal(err)
	}
	secret, _ := totp.Decode(en.Secret)
	wrong := totp.Code(secret, totp.Step(e.clock.Now())+5)
	if _, err := e.svc.ConfirmTOTP(ctx, alice, res.Session, res.User, wrong); code(t, err) != latchkey.EInvalidCode {
		t.Fatalf("ConfirmTOTP(wrong) = %v, want invalid_code", err)
	}
	if _, err := e.svc.ConfirmTOTP(ctx, alice, res.Session, res.User, "12a456"); code(t, err) != latchkey.EInvalid {
		t.Fatalf("ConfirmTOTP(non-digits) = %v, want invalid_request", err)
	}
	st, _ := e.svc.Status(ctx, res.User)
	if st.TOTPEnabled {
		t.Fatal("a wrong code enabled TOTP")
	}
	if again := e.signIn(t, "alice"); again.State != latchkey.StateAuthenticated {
		t.Errorf("after a failed enrolment, sign-in state = %q, want authenticated", again.State)
	}
	if got := e.mail.subjects(); len(got) != 0 {
		t.Errorf("mails after a failed enrolment: %v", got)
	}
	e.enableTOTP(t, res)
	if got := e.mail.subjects(); len(got) != 1 {
		t.Errorf("mails after enabling: %v, want one", got)
	}
}

// TestRecoveryCodesSentAtOnce: several recovery codes sent for one sign-in at once (a double
// submit, two tabs) sign in once and spend one code, the one that signed in, and its mail is
// sent. Before, each request marked its code used before completing the sign-in, and the
// requests that then found the flow completed by another had spent theirs for nothing (this
// test caught it in about half its runs; TestRecoveryCodeSpentBySignIn orders the two
// requests so that it always does).
func TestRecoveryCodesSentAtOnce(t *testing.T) {
	e := newEnv(t)
	u := e.user(t, "alice")
	ctx := context.Background()
	_, codes := e.enableTOTP(t, e.signIn(t, "alice"))
	res := e.signIn(t, "alice")
	const n = 10
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, expired := 0, 0
	for i := range n {
		wg.Go(func() {
			_, err := e.svc.LoginRecovery(ctx, alice, res.Token, codes[i])
			mu.Lock()
			defer mu.Unlock()
			switch latchkey.ErrorCode(err) {
			case "":
				wins++
			case latchkey.EFlowExpired:
				expired++
			default:
				t.Errorf("LoginRecovery(codes[%d]) = %v, want success or flow_expired", i, err)
			}
		})
	}
	wg.Wait()
	if wins != 1 || expired != n-1 {
		t.Errorf("%d sign-ins, %d flow_expired, want 1 and %d", wins, expired, n-1)
	}
	used := e.usedRecoveryCodes(t, u.ID)
	if used != 1 {
		t.Errorf("%d recovery codes used, want 1 (the one that signed in)", used)
	}
	mails := 0
	for _, s := range e.mail.subjects() {
		if s == "A recovery code was used to sign in" {
			mails++
		}
	}
	if mails != used {
		t.Errorf("%d mails about a recovery code used, %d codes used", mails, used)
	}
	// The codes sent at once, each in a sign-in of its own: the one spent says so, the
	// others still sign in.
	again, ok := 0, 0
	for i := range n {
		_, err := e.svc.LoginRecovery(ctx, alice, e.signIn(t, "alice").Token, codes[i])
		switch {
		case err == nil:
			ok++
		case latchkey.ErrorMessage(err) == "This recovery code has already been used. Use another one.":
			again++
		default:
			t.Errorf("LoginRecovery(codes[%d]) later = %v", i, err)
		}
	}
	if again != 1 || ok != n-1 {
		t.Errorf("later: %d already used, %d signed in, want 1 and %d", again, ok, n-1)
	}
}

func TestRecoveryCodes(t *testing.T) {
	e := newEnv(t)
	u := e.user(t, "alice")
	ctx := context.Background()
	first := e.signIn(t, "alice")
	_, codes := e.enableTOTP(t, first)
	if len(codes) != 10 {
		t.Fatalf("got %d recovery codes, want 10", len(codes))
	}
	// 16 symbols of a 32-symbol alphabet: 80 bits each (SECURITY.md asks for 64+), all distinct.
	format := regexp.MustCompile(`^[abcdefghjkmnpqrstuvwxyz1-9]{4}(-[abcdefghjkmnpqrstuvwxyz1-9]{4}){3}$`)
	seen := map[string]bool{}
	for _, c := range codes {
		if !format.MatchString(c) || seen[c] {
			t.Errorf("recovery code %q is malformed or repeated", c)
		}
		seen[c] = true
	}
	res := e.signIn(t, "alice")
	if got := res.Methods; len(got) != 2 || got[0] != "totp" || got[1] != "recovery" {
		t.Errorf("Methods = %v, want [totp recovery]", got)
	}
	viaCode, err := e.svc.LoginRecovery(ctx, alice, res.Token, "  "+codes[0]+" ")
	if err != nil {
		t.Fatalf("LoginRecovery: %v", err)
	}
	res = e.signIn(t, "alice")
	_, err = e.svc.LoginRecovery(ctx, alice, res.Token, codes[0])
	if code(t, err) != latchkey.EInvalidCode || latchkey.ErrorMessage(err) != "This recovery code has already been used. Use another one." {
		t.Errorf("second use = %v, want 'already been used'", err)
	}
	if _, err := e.svc.LoginRecovery(ctx, alice, res.Token, "abcd-efgh-jkmn-pqrs"); code(t, err) != latchkey.EInvalidCode {
		t.Errorf("unknown code = %v, want invalid_code", err)
	}
	if _, err := e.svc.LoginRecovery(ctx, alice, res.Token, "short"); code(t, err) != latchkey.EInvalid {
		t.Errorf("malformed code = %v, want invalid_request", err)
	}
	var sawUse bool
	for _, s := range e.mail.subjects() {
		if s == "A recovery code was used to sign in" {
			sawUse = true
		}
	}
	if !sawUse {
		t.Errorf("no mail about the recovery code use: %v", e.mail.subjects())
	}
	// Regenerating needs a session that gave a second factor lately (a recovery code counts),
	// and voids the old set.
	if _, err := e.svc.RegenerateRecoveryCodes(ctx, alice, first.Session, u, goodPassword); code(t, err) != latchkey.EReauthenticate {
		t.Fatalf("RegenerateRecoveryCodes in a password-only session = %v, want reauthentication_required", err)
	}
	fresh, err := e.svc.RegenerateRecoveryCodes(ctx, alice, viaCode.Session, u, goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.LoginRecovery(ctx, alice, res.Token, codes[1]); code(t, err) != latchkey.EInvalidCode {
		t.Errorf("old code after regeneration = %v, want invalid_code", err)
	}
	if _, err := e.svc.LoginRecovery(ctx, alice, res.Token, fresh[0]); err != nil {
		t.Errorf("new code after regeneration: %v", err)
	}
	if _, err := e.svc.RegenerateRecoveryCodes(ctx, alice, viaCode.Session, u, "wrong"); code(t, err) != latchkey.EInvalidCredentials {
		t.Errorf("regenerate with a wrong password = %v", err)
	}
	// Recovery codes are stored only hashed.
	stored, _ := e.db.FindRecoveryCodes(ctx, u.ID)
	for _, c := range stored {
		for _, f := range fresh {
			if string(c.Hash) == f {
				t.Fatal("a recovery code is stored in the clear")
			}
		}
	}
}

func TestAccountThrottling(t *testing.T) {
	e := newEnv(t)
	e.user(t, "alice")
	ctx := context.Background()
	// Failures from many IPs count against the one account.
	for i := range 5 {
		c := login.Client{IP: "198.51.100." + string(rune('1'+i))}
		if _, err := e.svc.Login(ctx, c, "", "alice", "wrong"); code(t, err) != latchkey.EInvalidCredentials {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	_, err := e.svc.Login(ctx, login.Client{IP: "203.0.113.10"}, "", "alice", goodPassword)
	if code(t, err) != latchkey.EThrottled {
		t.Fatalf("after 5 failures, Login = %v, want throttled", err)
	}
	var le *latchkey.Error
	if !asError(err, &le) || le.RetryAfter <= 0 {
		t.Fatalf("throttled error without RetryAfter: %#v", err)
	}
	first := le.RetryAfter
	e.clock.Add(first)
	if _, err := e.svc.Login(ctx, alice, "", "alice", "wrong"); code(t, err) != latchkey.EInvalidCredentials {
		t.Fatalf("after waiting: %v", err)
	}
	_, err = e.svc.Login(ctx, alice, "", "alice", goodPassword)
	if !asError(err, &le) || le.Code != latchkey.EThrottled || le.RetryAfter <= first {
		t.Fatalf("the wait did not grow: %v (first wait %v)", err, first)
	}
	// Unknown usernames are throttled the same way, so a 429 reveals nothing.
	for range 6 {
		e.svc.Login(ctx, login.Client{IP: "203.0.113.50"}, "", "nobody", "wrong")
	}
	if _, err := e.svc.Login(ctx, login.Client{IP: "203.0.113.51"}, "", "nobody", "wrong"); code(t, err) != latchkey.EThrottled {
		t.Errorf("unknown user after 7 failures: %v, want throttled", err)
	}
	// A success resets the counter.
	e.clock.Add(time.Hour)
	e.signIn(t, "alice")
	for range 4 {
		e.svc.Login(ctx, alice, "", "alice", "wrong")
	}
	if _, err := e.svc.Login(ctx, alice, "", "alice", goodPassword); err != nil {
		t.Errorf("after a success and 4 new failures: %v", err)
	}
}

func TestLockoutAfter100Failures(t *testing.T) {
	e := newEnv(t, func(o *login.Options) {
		o.Throttle = login.DefaultThrottle
		o.Throttle.IPBurst = 1000
	})
	e.user(t, "alice")
	ctx := context.Background()
	for i := 0; i < 100; i++ {
		_, err := e.svc.Login(ctx, alice, "", "alice", "wrong")
		var le *latchkey.Error
		if asError(err, &le) && le.Code == latchkey.EThrottled {
			e.clock.Add(le.RetryAfter)
			i--
			continue
		}
		if le == nil || le.Code != latchkey.EInvalidCredentials {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	e.clock.Add(24 * time.Hour)
	if _, err := e.svc.Login(ctx, alice, "", "alice", goodPassword); code(t, err) != latchkey.EInvalidCredentials {
		t.Fatalf("after 100 failures the right password gives %v, want the same invalid_credentials", err)
	}
	events, _ := e.db.FindAuditEvents(ctx, latchkey.AuditFilter{})
	locked := false
	for _, ev := range events {
		locked = locked || ev.Action == latchkey.ActionLockout
	}
	if !locked {
		t.Error("the lockout was not audited")
	}
}

func TestIPThrottling(t *testing.T) {
	e := newEnv(t, func(o *login.Options) {
		o.Throttle = login.DefaultThrottle
		o.Throttle.IPBurst = 3
	})
	ctx := context.Background()
	ip := login.Client{IP: "192.0.2.99"}
	for i, name := range []string{"a1", "a2", "a3"} {
		if _, err := e.svc.Login(ctx, ip, "", name, "wrong"); code(t, err) != latchkey.EInvalidCredentials {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	if _, err := e.svc.Login(ctx, ip, "", "a4", "wrong"); code(t, err) != latchkey.EThrottled {
		t.Errorf("4th user from one IP: %v, want throttled", err)
	}
	if _, err := e.svc.Login(ctx, login.Client{IP: "192.0.2.100"}, "", "a4", "wrong"); code(t, err) != latchkey.EInvalidCredentials {
		t.Errorf("another IP: %v, want invalid_credentials", err)
	}
	e.clock.Add(login.DefaultThrottle.IPRefill)
	if _, err := e.svc.Login(ctx, ip, "", "a5", "wrong"); code(t, err) != latchkey.EInvalidCredentials {
		t.Errorf("after the refill: %v, want invalid_credentials", err)
	}
}

func TestSessionTimeouts(t *testing.T) {
	e := newEnv(t)
	e.user(t, "alice")
	ctx := context.Background()
	res := e.signIn(t, "alice")
	e.clock.Add(59 * time.Minute)
	if _, _, err := e.svc.Authenticate(ctx, res.Token); err != nil {
		t.Fatalf("after 59 idle minutes: %v", err)
	}
	e.clock.Add(61 * time.Minute)
	if _, _, err := e.svc.Authenticate(ctx, res.Token); code(t, err) != latchkey.EUnauthenticated {
		t.Fatalf("after 61 idle minutes: %v, want unauthenticated", err)
	}
	res = e.signIn(t, "alice")
	for range 14 { // 11h40m of activity, never idle for an hour
		e.clock.Add(50 * time.Minute)
		if _, _, err := e.svc.Authenticate(ctx, res.Token); err != nil {
			t.Fatalf("an active session ended early at %v: %v", e.clock.Now(), err)
		}
	}
	e.clock.Add(30 * time.Minute)
	if _, _, err := e.svc.Authenticate(ctx, res.Token); code(t, err) != latchkey.EUnauthenticated {
		t.Fatalf("an active session after 12h10m: %v, want unauthenticated (max age 12h)", err)
	}
}

func TestReauthenticationWindow(t *testing.T) {
	e := newEnv(t)
	e.user(t, "alice")
	ctx := context.Background()
	res := e.signIn(t, "alice")
	e.clock.Add(11 * time.Minute)
	sess, u, err := e.svc.Authenticate(ctx, res.Token)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.BeginTOTP(ctx, alice, sess, u); code(t, err) != latchkey.EReauthenticate {
		t.Fatalf("BeginTOTP on a stale session = %v, want reauthentication_required", err)
	}
	re, err := e.svc.Reauthenticate(ctx, alice, res.Token, goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.BeginTOTP(ctx, alice, re.Session, u); err != nil {
		t.Fatalf("BeginTOTP after re-authentication: %v", err)
	}
}

func TestMFARequired(t *testing.T) {
	e := newEnv(t, func(o *login.Options) { o.MFA = login.MFARequired })
	u := e.user(t, "alice")
	ctx := context.Background()
	res := e.signIn(t, "alice")
	if res.State != latchkey.StateEnroll {
		t.Fatalf("State = %q, want enroll", res.State)
	}
	if _, _, err := e.svc.Authenticate(ctx, res.Token); code(t, err) != latchkey.EUnauthenticated {
		t.Errorf("an enroll session authenticates: %v", err)
	}
	// Enrol through an optional-policy service sharing the store, then try to disable.
	opt := e.opt
	opt.MFA = login.MFAOptional
	other := login.New(opt)
	ok, err := other.Login(ctx, alice, "", "alice", goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	en, _ := other.BeginTOTP(ctx, alice, ok.Session, u)
	secret, _ := totp.Decode(en.Secret)
	if _, err := other.ConfirmTOTP(ctx, alice, ok.Session, u, totp.Code(secret, totp.Step(e.clock.Now()))); err != nil {
		t.Fatal(err)
	}
	err = e.svc.DisableTOTP(ctx, alice, ok.Session, u, goodPassword)
	if code(t, err) != latchkey.EForbidden {
		t.Fatalf("DisableTOTP of the last factor under required = %v, want forbidden", err)
	}
	if st, _ := e.svc.Status(ctx, u); !st.TOTPEnabled {
		t.Error("the refused disable changed something")
	}
}

func TestDisableTOTP(t *testing.T) {
	e := newEnv(t)
	u := e.user(t, "alice")
	ctx := context.Background()
	secret, _ := e.enableTOTP(t, e.signIn(t, "alice"))
	e.clock.Add(30 * time.Second)
	res := e.mfaSignIn(t, "", secret)
	if err := e.svc.DisableTOTP(ctx, alice, res.Session, u, "wrong"); code(t, err) != latchkey.EInvalidCredentials {
		t.Fatalf("DisableTOTP(wrong password) = %v", err)
	}
	if err := e.svc.DisableTOTP(ctx, alice, res.Session, u, goodPassword); err != nil {
		t.Fatal(err)
	}
	if got := e.signIn(t, "alice").State; got != latchkey.StateAuthenticated {
		t.Errorf("after disabling, sign-in state = %q", got)
	}
	if left, _ := e.db.FindRecoveryCodes(ctx, u.ID); len(left) != 0 {
		t.Errorf("%d recovery codes survive disabling the last factor", len(left))
	}
	subjects := e.mail.subjects()
	if len(subjects) != 2 || subjects[1] != "Two-factor authentication was disabled" {
		t.Errorf("mails = %v", subjects)
	}
}

func TestChangePassword(t *testing.T) {
	e := newEnv(t)
	e.user(t, "alice")
	ctx := context.Background()
	other := e.signIn(t, "alice")
	res := e.signIn(t, "alice")
	tests := []struct {
		name, current, next, want string
	}{
		{"wrong current", "nope", "another long passphrase here", latchkey.EInvalidCredentials},
		{"too short without MFA", goodPassword, "short but 8+", latchkey.EWeakPassword},
		{"common", goodPassword, "passwordpassword", latchkey.EWeakPassword},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := e.svc.ChangePassword(ctx, alice, res.Token, tt.current, tt.next); code(t, err) != tt.want {
				t.Errorf("ChangePassword = %v, want %s", err, tt.want)
			}
		})
	}
	next, err := e.svc.ChangePassword(ctx, alice, res.Token, goodPassword, "another long passphrase here")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.Authenticate(ctx, other.Token); code(t, err) != latchkey.EUnauthenticated {
		t.Errorf("other session after a password change: %v", err)
	}
	if _, _, err := e.svc.Authenticate(ctx, next.Token); err != nil {
		t.Errorf("this session after a password change: %v", err)
	}
	if _, err := e.svc.Login(ctx, alice, "", "alice", "another long passphrase here"); err != nil {
		t.Errorf("sign in with the new password: %v", err)
	}
	if s := e.mail.subjects(); len(s) != 1 || s[0] != "Your password was changed" {
		t.Errorf("mails = %v", s)
	}
}

func TestRehashOnLogin(t *testing.T) {
	e := newEnv(t)
	u := e.user(t, "alice")
	ctx := context.Background()
	stronger := fastParams
	stronger.Memory *= 2
	opt := e.opt
	opt.Hasher = password.New(password.Options{Params: stronger})
	svc := login.New(opt)
	if _, err := svc.Login(ctx, alice, "", "alice", goodPassword); err != nil {
		t.Fatal(err)
	}
	after, _ := e.db.FindUserByID(ctx, u.ID)
	if after.PasswordHash == u.PasswordHash {
		t.Fatal("the hash was not upgraded on sign-in")
	}
	if _, needs, _ := opt.Hasher.Verify(ctx, goodPassword, after.PasswordHash); needs {
		t.Error("the upgraded hash still needs a rehash")
	}
}

func TestSetupToken(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tok, err := e.svc.SetupToken(ctx)
	if err != nil || tok == "" {
		t.Fatalf("SetupToken = %q, %v", tok, err)
	}
	nu := login.NewUser{Username: "root", Email: "root@example.com", Password: goodPassword}
	if _, err := e.svc.CompleteSetup(ctx, alice, "forged", nu); code(t, err) != latchkey.ENotFound {
		t.Fatalf("forged token: %v", err)
	}
	weak := nu
	weak.Password = "short"
	if _, err := e.svc.CompleteSetup(ctx, alice, tok, weak); code(t, err) != latchkey.EWeakPassword {
		t.Fatalf("weak password: %v", err)
	}
	res, err := e.svc.CompleteSetup(ctx, alice, tok, nu)
	if err != nil {
		t.Fatal(err)
	}
	if res.User.Role != latchkey.RoleAdmin {
		t.Errorf("role = %q", res.User.Role)
	}
	nu.Username = "root2"
	if _, err := e.svc.CompleteSetup(ctx, alice, tok, nu); code(t, err) != latchkey.ENotFound {
		t.Errorf("second use of the token: %v", err)
	}
	if again, _ := e.svc.SetupToken(ctx); again != "" {
		t.Error("a setup token is issued while an admin exists")
	}
}

// TestSignInAttemptsAudited: every attempt lands in the audit trail with the time (UTC), the
// user, the IP address, the browser and the outcome.
func TestSignInAttemptsAudited(t *testing.T) {
	e := newEnv(t)
	u := e.user(t, "alice")
	ctx := context.Background()
	c := login.Client{IP: "198.51.100.7", UserAgent: "Mozilla/5.0 test"}
	e.svc.Login(ctx, c, "", "alice", "wrong")
	e.svc.Login(ctx, c, "", "ghost", "wrong")
	if _, err := e.svc.Login(ctx, c, "", "alice", goodPassword); err != nil {
		t.Fatal(err)
	}
	events, err := e.db.FindAuditEvents(ctx, latchkey.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	type row struct{ user, action, outcome string }
	var got []row
	for _, ev := range events {
		if ev.Action != latchkey.ActionLogin {
			continue
		}
		if ev.IP != c.IP || ev.UserAgent != c.UserAgent || ev.Time.Location() != time.UTC || !ev.Time.Equal(e.clock.Now()) {
			t.Errorf("event %+v lacks the client or the UTC time", ev)
		}
		got = append(got, row{ev.Username, ev.Action, ev.Outcome})
		if ev.Username == "alice" && ev.UserID != u.ID {
			t.Errorf("event for alice has user id %d", ev.UserID)
		}
	}
	want := []row{{"alice", latchkey.ActionLogin, latchkey.OutcomeFailure}, {"ghost", latchkey.ActionLogin, latchkey.OutcomeFailure}, {"alice", latchkey.ActionLogin, latchkey.OutcomeSuccess}}
	if len(got) != len(want) {
		t.Fatalf("audited %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d = %v, want %v", i, got[i], want[i])
		}
	}
}

// TestSetupLinkDiesWithTheFirstAdmin: a setup link printed at a first start stops working
// once an administrator exists by any other way (latchkey user create), on this start and
// on the next (which forgets the token).
func TestSetupLinkDiesWithTheFirstAdmin(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tok, err := e.svc.SetupToken(ctx)
	if err != nil || tok == "" {
		t.Fatalf("SetupToken = %q, %v", tok, err)
	}
	if _, err := e.svc.CreateUser(ctx, alice, login.NewUser{Username: "root", Email: "root@example.com", Password: goodPassword, Role: latchkey.RoleAdmin}); err != nil {
		t.Fatal(err)
	}
	mallory := login.NewUser{Username: "mallory", Email: "m@example.com", Password: goodPassword}
	if e.svc.ValidSetupToken(ctx, tok) {
		t.Error("the setup link still shows its form after an admin was created")
	}
	if _, err := e.svc.CompleteSetup(ctx, alice, tok, mallory); code(t, err) != latchkey.ENotFound {
		t.Fatalf("setup after an admin was created: %v", err)
	}
	// The next start finds the admin and forgets the token for good.
	if again, err := e.svc.SetupToken(ctx); err != nil || again != "" {
		t.Fatalf("SetupToken with an admin = %q, %v", again, err)
	}
	if v, err := e.db.FindSetting(ctx, latchkey.SettingSetupToken); err == nil && v != "" {
		t.Errorf("the setup token is still stored: %q", v)
	}
	if u, _ := e.db.FindUserByUsername(ctx, "mallory"); u != nil {
		t.Error("mallory was created")
	}
}

// TestUsernamesOfOneAlphabet: a username may not mix Latin, Greek and Cyrillic letters ("аdmin"
// with a Cyrillic а reads as "admin"); one alphabet, digits and other scripts are fine.
func TestUsernamesOfOneAlphabet(t *testing.T) {
	for name, want := range map[string]bool{
		"admin": true, "jürgen.müller": true, "иван": true, "αλέξης": true, "张伟": true, "bob2": true, "alice@example.com": true,
		"\u0430dmin": false, "\u0430lice": false, "p\u03bfrt": false, "иван.ivanov": false,
	} {
		if got := login.ValidUsername(name); got != want {
			t.Errorf("ValidUsername(%q) = %v, want %v", name, got, want)
		}
	}
	e := newEnv(t)
	e.user(t, "admin")
	if _, err := e.svc.CreateUser(context.Background(), alice, login.NewUser{Username: "\u0430dmin", Email: "m@example.com", Password: goodPassword}); code(t, err) != latchkey.EInvalid {
		t.Errorf("a Cyrillic а beside admin: %v, want invalid", err)
	}
}

// TestUsernamesThatLookAlike: a username whose UTS #39 skeleton another user's has is refused,
// whoever creates it (the command line, an administrator's invitation); the message does not
// name the other user.
func TestUsernamesThatLookAlike(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	root := e.user(t, "root")
	root.Role = latchkey.RoleAdmin
	for _, name := range []string{"mike", "coco", "expo", "bill1"} {
		e.user(t, name)
	}
	// An all-Cyrillic сосо and ехро, rn for m, l and 1 for each other.
	for _, name := range []string{"rnike", "\u0441\u043e\u0441\u043e", "\u0435\u0445\u0440\u043e", "billl", "bi11l"} {
		_, err := e.svc.CreateUser(ctx, alice, login.NewUser{Username: name, Email: "x@example.com", Password: goodPassword})
		if code(t, err) != latchkey.EConflict || !strings.Contains(latchkey.ErrorMessage(err), "looks too much like") {
			t.Errorf("CreateUser(%q) = %v, want a conflict with a look-alike", name, err)
		}
		if strings.Contains(latchkey.ErrorMessage(err), "mike") || strings.Contains(latchkey.ErrorMessage(err), "coco") {
			t.Errorf("the refusal names the other user: %q", latchkey.ErrorMessage(err))
		}
	}
	if _, err := e.svc.InviteUser(ctx, alice, root, false, "rnike", "r@example.com", latchkey.RoleUser); code(t, err) != latchkey.EConflict {
		t.Errorf("invitation of rnike beside mike = %v, want a conflict", err)
	}
	if _, err := e.svc.CreateUser(ctx, alice, login.NewUser{Username: "mike", Email: "x@example.com", Password: goodPassword}); code(t, err) != latchkey.EConflict || !strings.Contains(latchkey.ErrorMessage(err), "is taken") {
		t.Errorf("the same name again = %v, want taken", err)
	}
	for _, name := range []string{"mike2", "coco.eu", "nike"} {
		e.user(t, name)
	}
}
