package support_test

import (
	"context"
	"errors"
	"fmt"
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
	"github.com/latchkey/latchkey/internal/support"
	"github.com/latchkey/latchkey/internal/totp"
)

var _ support.Accounts = (*login.Service)(nil)

type outbox struct {
	mu   sync.Mutex
	msgs []mail.Message
	fail error // when set, Send sends nothing and returns it
}

func (o *outbox) Send(_ context.Context, m mail.Message) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.fail != nil {
		return o.fail
	}
	o.msgs = append(o.msgs, m)
	return nil
}

func (o *outbox) last() mail.Message {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.msgs) == 0 {
		return mail.Message{}
	}
	return o.msgs[len(o.msgs)-1]
}

type env struct {
	svc   *support.Service
	login *login.Service
	db    *sqlstore.DB
	mail  *outbox
	now   time.Time
}

var client = login.Client{IP: "192.0.2.1", UserAgent: "test"}

func newEnv(t *testing.T, mod ...func(*support.Options)) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{now: time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC), mail: &outbox{}}
	now := func() time.Time { return e.now }
	db, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "test.db"), sqlstore.Options{SecretsKey: make([]byte, 32), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e.db = db
	rec := audit.New(db, nil, now)
	e.login = login.New(login.Options{Store: db, Hasher: password.New(password.Options{Params: password.Params{Memory: 1024, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}}),
		Mailer: e.mail, Audit: rec, Now: now, SessionKey: []byte("0123456789abcdef0123456789abcdef"), PublicURL: "http://latchkey.test"})
	opt := support.Options{Store: db, Accounts: e.login, Inviter: e.login, Mailer: e.mail, Audit: rec, Now: now,
		Key: []byte("0123456789abcdef0123456789abcdef"), PublicURL: "http://latchkey.test"}
	for _, m := range mod {
		m(&opt)
	}
	e.svc = support.New(opt)
	return e
}

func (e *env) user(t *testing.T, name string, role latchkey.Role) *latchkey.User {
	t.Helper()
	u, err := e.login.CreateUser(context.Background(), client, login.NewUser{Username: name, Email: name + "@example.com", Role: role, Password: "correct horse battery staple"})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// withTOTP gives u a confirmed authenticator app and a signed-in session.
func (e *env) withTOTP(t *testing.T, u *latchkey.User) {
	t.Helper()
	ctx := context.Background()
	if fs, _ := e.login.Factors(ctx, u); len(fs) > 0 {
		return
	}
	res, err := e.login.Login(ctx, client, "", u.Username, "correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	en, err := e.login.BeginTOTP(ctx, client, res.Session, res.User)
	if err != nil {
		t.Fatal(err)
	}
	secret, _ := totp.Decode(en.Secret)
	if _, err := e.login.ConfirmTOTP(ctx, client, res.Session, res.User, totp.Code(secret, totp.Step(e.now))); err != nil {
		t.Fatal(err)
	}
}

// readyToAct readies ticket id for an MFA action by agent: every identity check recorded and
// the status waiting. It returns the checks.
func (e *env) readyToAct(t *testing.T, agent *latchkey.User, id int64) []string {
	t.Helper()
	ctx := context.Background()
	all := []string{"callback", "manager", "question"}
	if _, err := e.svc.RecordChecks(ctx, client, agent, id, all); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.SetStatus(ctx, client, agent, id, latchkey.TicketWaiting, ""); err != nil {
		t.Fatal(err)
	}
	return all
}

// nothingWritten returns a check that fails t when anything was written since (named what in
// its messages): an audit entry, a mail, ticket id's status no longer waiting or its checks
// not the checks it holds now.
func (e *env) nothingWritten(t *testing.T, id int64, checks int) func(t *testing.T, what string) {
	t.Helper()
	ctx := context.Background()
	before, _ := e.db.FindAuditEvents(ctx, latchkey.AuditFilter{})
	e.mail.mu.Lock()
	mails := len(e.mail.msgs)
	e.mail.mu.Unlock()
	return func(t *testing.T, what string) {
		t.Helper()
		if ev, _ := e.db.FindAuditEvents(ctx, latchkey.AuditFilter{}); len(ev) != len(before) {
			t.Errorf("%s wrote %d audit entries, want none: %+v", what, len(ev)-len(before), ev[len(before):])
		}
		e.mail.mu.Lock()
		for _, m := range e.mail.msgs[mails:] {
			t.Errorf("%s sent %q to %s", what, m.Subject, m.To)
		}
		e.mail.mu.Unlock()
		if got, _ := e.db.FindTicketByID(ctx, id); got.Status != latchkey.TicketWaiting || len(got.Checks) != checks {
			t.Errorf("the ticket after %s: status %q, checks %v; want waiting and the checks standing", what, got.Status, got.Checks)
		}
	}
}

func (e *env) open(t *testing.T, email, username string) *support.Created {
	t.Helper()
	c, err := e.svc.Create(context.Background(), client, support.NewTicket{Email: email, Username: username, Type: "lost_phone", Message: "I lost my phone."})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return c
}

func code(err error) string { return latchkey.ErrorCode(err) }

func TestCreateValidation(t *testing.T) {
	e := newEnv(t)
	good := support.NewTicket{Email: "alice@example.com", Type: "lost_phone", Message: "help"}
	for _, tt := range []struct {
		name string
		mod  func(*support.NewTicket)
		says string
	}{
		{"no email", func(n *support.NewTicket) { n.Email = " " }, "Enter your email address"},
		{"bad email", func(n *support.NewTicket) { n.Email = "alice" }, "valid email"},
		{"email with name", func(n *support.NewTicket) { n.Email = "Alice <alice@example.com>" }, "valid email"},
		{"email without a domain dot", func(n *support.NewTicket) { n.Email = "alice@example" }, "valid email"},
		{"bad username", func(n *support.NewTicket) { n.Username = "a b" }, "username"},
		{"unknown type", func(n *support.NewTicket) { n.Type = "nope" }, "Choose what"},
		{"empty message", func(n *support.NewTicket) { n.Message = "  \n " }, "Describe"},
		{"long message", func(n *support.NewTicket) { n.Message = strings.Repeat("x", support.MaxMessage+1) }, "too long"},
		{"NUL", func(n *support.NewTicket) { n.Message = "a\x00b" }, "not text"},
		{"bad UTF-8", func(n *support.NewTicket) { n.Message = "a\xffb" }, "not text"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := good
			tt.mod(&n)
			_, err := e.svc.Create(context.Background(), client, n)
			if code(err) != latchkey.EInvalid || !strings.Contains(latchkey.ErrorMessage(err), tt.says) {
				t.Errorf("Create(%+v) = %v, want invalid saying %q", n, err, tt.says)
			}
		})
	}
	if _, n, _ := e.db.FindTickets(context.Background(), latchkey.TicketFilter{}); n != 0 {
		t.Errorf("%d tickets after refused input, want 0", n)
	}
}

func TestCreateAndTrack(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.open(t, "alice@example.com", " Alice ")
	if c.Ticket.ID != 1001 || c.Ticket.Username != "alice" || len(c.Token) != 43 || c.TrackingURL != "http://latchkey.test/support/t/"+c.Token {
		t.Fatalf("Create = %+v", c)
	}
	m := e.mail.last()
	if m.To != "alice@example.com" || !strings.Contains(m.Subject, "[Ticket #1001]") || !strings.Contains(m.Text, c.TrackingURL) || m.Headers["Message-ID"] != "<ticket-1001@latchkey.test>" {
		t.Errorf("confirmation mail = %+v", m)
	}
	var n int
	if err := e.db.SQL().QueryRow(`SELECT COUNT(*) FROM tickets WHERE CAST(tracking_hash AS TEXT) LIKE '%' || $1 || '%'`, c.Token).Scan(&n); err != nil || n != 0 {
		t.Errorf("the token is stored in the database (%d, %v)", n, err)
	}
	tk, msgs, err := e.svc.Track(ctx, c.Token)
	if err != nil || tk.ID != c.Ticket.ID || len(msgs) != 1 || msgs[0].Body != "I lost my phone." {
		t.Fatalf("Track = %+v, %v, %v", tk, msgs, err)
	}
	for _, bad := range []string{"", "x", c.Token + "x", strings.Repeat("A", 200)} {
		if _, _, err := e.svc.Track(ctx, bad); code(err) != latchkey.ENotFound {
			t.Errorf("Track(%q) = %v, want not_found", bad, err)
		}
	}
	// The requester answers a waiting ticket: it goes back to in progress.
	agent := e.user(t, "sam", latchkey.RoleSupport)
	if _, err := e.svc.Reply(ctx, client, agent, tk.ID, "Please call us.", ""); err != nil {
		t.Fatal(err)
	}
	tk, err = e.svc.AddMessage(ctx, client, c.Token, "I called.")
	if err != nil || tk.Status != latchkey.TicketInProgress {
		t.Errorf("AddMessage = %+v, %v, want status in_progress", tk, err)
	}
	if _, err := e.svc.AddMessage(ctx, client, c.Token, " "); code(err) != latchkey.EInvalid {
		t.Errorf("AddMessage(empty) = %v, want invalid", err)
	}
	if _, err := e.svc.SetStatus(ctx, client, agent, tk.ID, latchkey.TicketClosed, "done"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.AddMessage(ctx, client, c.Token, "again"); code(err) != latchkey.EConflict {
		t.Errorf("AddMessage(closed) = %v, want conflict", err)
	}
}

func TestCreateThrottled(t *testing.T) {
	e := newEnv(t, func(o *support.Options) { o.PerEmail = 2; o.IPBurst = 3 })
	ctx := context.Background()
	other := login.Client{IP: "192.0.2.99"}
	for i := range 2 {
		if _, err := e.svc.Create(ctx, other, support.NewTicket{Email: "Bob@example.com", Type: "other", Message: "hi"}); err != nil {
			t.Fatalf("ticket %d: %v", i, err)
		}
	}
	_, err := e.svc.Create(ctx, login.Client{IP: "192.0.2.100"}, support.NewTicket{Email: "bob@EXAMPLE.com", Type: "other", Message: "hi"})
	var le *latchkey.Error
	if code(err) != latchkey.EThrottled || !asErr(err, &le) || le.RetryAfter <= 0 {
		t.Errorf("third ticket from one address = %v, want throttled with a Retry-After", err)
	}
	// Per IP: the third request from one address is the last allowed.
	e.open(t, "c1@example.com", "")
	e.open(t, "c2@example.com", "")
	e.open(t, "c3@example.com", "")
	if _, err := e.svc.Create(ctx, client, support.NewTicket{Email: "c4@example.com", Type: "other", Message: "hi"}); code(err) != latchkey.EThrottled {
		t.Errorf("fourth ticket from one IP = %v, want throttled", err)
	}
	if !strings.Contains(latchkey.ErrorMessage(err), "Try again in 1 hour") {
		t.Errorf("message = %q", latchkey.ErrorMessage(err))
	}
	e.now = e.now.Add(time.Hour + time.Second)
	if _, err := e.svc.Create(ctx, other, support.NewTicket{Email: "bob@example.com", Type: "other", Message: "hi"}); err != nil {
		t.Errorf("an hour later: %v", err)
	}
}

func asErr(err error, target **latchkey.Error) bool {
	e, ok := err.(*latchkey.Error)
	*target = e
	return ok
}

func TestAgentActions(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	agent := e.user(t, "sam", latchkey.RoleSupport)
	alice := e.user(t, "alice", latchkey.RoleUser)
	e.withTOTP(t, alice)
	tk := e.open(t, "alice@example.com", "").Ticket // matched by email

	v, err := e.svc.Ticket(ctx, agent, tk.ID)
	if err != nil || v.Account == nil || v.Account.ID != alice.ID || v.MatchedBy != "email" || len(v.Factors) != 1 || v.CanAct != nil || v.ChecksDone || v.CanInvite {
		t.Fatalf("Ticket = %+v, %v", v, err)
	}
	if len(v.SignIns) == 0 || v.SignIns[0].Action != latchkey.ActionLogin {
		t.Errorf("sign-ins = %v, want the password sign-in", v.SignIns)
	}
	// No MFA action before the checklist is complete.
	if err := e.svc.ResetMFA(ctx, client, agent, true, tk.ID, "lost phone"); code(err) != latchkey.EForbidden {
		t.Errorf("ResetMFA before the checks = %v, want forbidden", err)
	}
	if _, err := e.svc.RecordChecks(ctx, client, agent, tk.ID, []string{"callback", "bogus"}); code(err) != latchkey.EInvalid {
		t.Errorf("RecordChecks(unknown) = %v, want invalid", err)
	}
	if _, err := e.svc.RecordChecks(ctx, client, agent, tk.ID, []string{"callback", "manager"}); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.ResetMFA(ctx, client, agent, true, tk.ID, "lost phone"); code(err) != latchkey.EForbidden {
		t.Errorf("ResetMFA with two of three checks = %v, want forbidden", err)
	}
	if _, err := e.svc.RecordChecks(ctx, client, agent, tk.ID, []string{"question", "callback", "manager"}); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.ResetMFA(ctx, client, agent, false, tk.ID, "lost phone"); code(err) != latchkey.EForbidden || !strings.Contains(latchkey.ErrorMessage(err), "second factor") {
		t.Errorf("ResetMFA by an agent signed in without a second factor = %v, want forbidden", err)
	}
	if err := e.svc.RemoveFactor(ctx, client, agent, false, tk.ID, "totp:1", "lost phone"); code(err) != latchkey.EForbidden {
		t.Errorf("RemoveFactor by an agent signed in without a second factor = %v, want forbidden", err)
	}
	if err := e.login.AgentResetMFA(ctx, client, login.AgentAction{Agent: agent, TicketID: tk.ID, Reason: "x"}, alice); code(err) != latchkey.EForbidden {
		t.Errorf("login.AgentResetMFA without the agent's MFA = %v, want forbidden", err)
	}
	if fs, _ := e.login.Factors(ctx, alice); len(fs) != 1 {
		t.Fatalf("refused resets removed factors: %v", fs)
	}
	if err := e.svc.ResetMFA(ctx, client, agent, true, tk.ID, "  "); code(err) != latchkey.EInvalid {
		t.Errorf("ResetMFA without a reason = %v, want invalid", err)
	}
	// A reason that is not text (NUL, invalid UTF-8, a right-to-left override) is refused
	// before anything changes: the trail must take and show it.
	for _, bad := range []string{"caller verified\x00", "bad\xff\xfe", "ok \u202etxet"} {
		if err := e.svc.ResetMFA(ctx, client, agent, true, tk.ID, bad); code(err) != latchkey.EInvalid {
			t.Errorf("ResetMFA with reason %q = %v, want invalid", bad, err)
		}
	}
	if err := e.svc.ResetMFA(ctx, client, agent, true, tk.ID, "lost phone, verified by callback"); err != nil {
		t.Fatalf("ResetMFA: %v", err)
	}
	if fs, _ := e.login.Factors(ctx, alice); len(fs) != 0 {
		t.Errorf("factors after the reset: %v", fs)
	}
	if m := e.mail.last(); m.To != "alice@example.com" || m.Subject != "All your sign-in methods were reset" {
		t.Errorf("last mail = %q to %q, want the MFA reset notice to alice", m.Subject, m.To)
	} else if want := fmt.Sprintf("support desk made this change for ticket #%d", tk.ID); !strings.Contains(m.Text, want) || !strings.Contains(m.HTML, "support desk made this change for ticket <strong>#") {
		t.Errorf("the reset notice does not name the desk and the ticket:\n%s", m.Text)
	}
	if got, _ := e.db.FindTicketByID(ctx, tk.ID); got.Status != latchkey.TicketInProgress {
		t.Errorf("status after the reset = %q, want in_progress", got.Status)
	}
	ev, _ := e.db.FindAuditEvents(ctx, latchkey.AuditFilter{})
	var found bool
	for _, x := range ev {
		if x.Action == latchkey.ActionMFAReset && x.TicketID == tk.ID && x.UserID == alice.ID && x.ActorID == agent.ID && x.Actor == "sam" && strings.Contains(x.Detail, "verified by callback") {
			found = true
		}
	}
	if !found {
		t.Errorf("no mfa.reset audit event with the ticket, the agent and the reason in %v", ev)
	}

	// The reset used the checks up: the next MFA action needs them again.
	e.withTOTP(t, alice)
	fs, _ := e.login.Factors(ctx, alice)
	if err := e.svc.RemoveFactor(ctx, client, agent, true, tk.ID, fs[0].Ref, "old phone"); code(err) != latchkey.EForbidden {
		t.Errorf("RemoveFactor after a reset, without new checks = %v, want forbidden", err)
	}
	all := []string{"question", "callback", "manager"}
	if _, err := e.svc.RecordChecks(ctx, client, agent, tk.ID, all); err != nil {
		t.Fatal(err)
	}
	// A saved checklist stands for an hour.
	e.now = e.now.Add(support.ChecksValidFor + time.Minute)
	if err := e.svc.RemoveFactor(ctx, client, agent, true, tk.ID, fs[0].Ref, "old phone"); code(err) != latchkey.EForbidden {
		t.Errorf("RemoveFactor with checks over an hour old = %v, want forbidden", err)
	}
	if v, _ := e.svc.Ticket(ctx, agent, tk.ID); v.ChecksDone || !v.ChecksStale {
		t.Errorf("view of old checks: done %v, stale %v", v.ChecksDone, v.ChecksStale)
	}
	if _, err := e.svc.RecordChecks(ctx, client, agent, tk.ID, all); err != nil {
		t.Fatal(err)
	}

	// Remove one factor.
	if err := e.svc.RemoveFactor(ctx, client, agent, true, tk.ID, "totp:999", "x"); code(err) != latchkey.ENotFound {
		t.Errorf("RemoveFactor(unknown) = %v, want not_found", err)
	}
	if err := e.svc.RemoveFactor(ctx, client, agent, true, tk.ID, fs[0].Ref, "old phone"); err != nil {
		t.Fatal(err)
	}
	if fs, _ := e.login.Factors(ctx, alice); len(fs) != 0 {
		t.Errorf("factors after removing the only one: %v", fs)
	}

	// Reply by email, threaded.
	if _, err := e.svc.Reply(ctx, client, agent, tk.ID, "Done: sign in with your password.", latchkey.TicketResolved); err != nil {
		t.Fatal(err)
	}
	m := e.mail.last()
	if m.Subject != "[Ticket #1001] Lost or new phone / authenticator" || m.Headers["In-Reply-To"] != "<ticket-1001@latchkey.test>" || !strings.Contains(m.Text, "Done: sign in") {
		t.Errorf("answer mail = %+v", m)
	}
	if !strings.Contains(m.Text, "The support desk answered") || strings.Contains(m.Text, "sam") {
		t.Errorf("the answer names the agent's account to the requester:\n%s", m.Text)
	}
	// A resolved (or closed) ticket authorises nothing, even with its checks still standing.
	e.withTOTP(t, alice)
	if err := e.svc.ResetMFA(ctx, client, agent, true, tk.ID, "again"); code(err) != latchkey.EConflict {
		t.Errorf("ResetMFA on a resolved ticket = %v, want conflict", err)
	}
	if fs, _ := e.login.Factors(ctx, alice); len(fs) != 1 {
		t.Errorf("a refused reset on a resolved ticket removed factors: %v", fs)
	}
	if _, err := e.svc.SetStatus(ctx, client, agent, tk.ID, "bogus", ""); code(err) != latchkey.EInvalid {
		t.Errorf("SetStatus(bogus) = %v", err)
	}
}

// TestAgentActionsAwaitingActivation: the account a ticket's user was created with has no
// sign-in method until its owner activates it, so a reset of its MFA or the removal of a
// factor, posted by hand with every check done and the agent's second factor, is refused
// with a conflict that says why, also once the link expired, and writes nothing: no audit
// entry, no mail, the checks stand and the ticket's status stays. Once the owner has activated
// the account and set up an app, the desk acts on it as on any other.
func TestAgentActionsAwaitingActivation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	agent := e.user(t, "sam", latchkey.RoleSupport)
	tk := e.open(t, "new@example.com", "newbie").Ticket
	u, err := e.svc.InviteUser(ctx, client, agent, tk.ID, "", "new starter")
	if err != nil {
		t.Fatal(err)
	}
	all := e.readyToAct(t, agent, tk.ID)
	wroteNothing := e.nothingWritten(t, tk.ID, len(all))
	refused := func(when string) {
		t.Helper()
		for name, act := range map[string]func() error{
			"ResetMFA":     func() error { return e.svc.ResetMFA(ctx, client, agent, true, tk.ID, "lost phone") },
			"RemoveFactor": func() error { return e.svc.RemoveFactor(ctx, client, agent, true, tk.ID, "totp:1", "lost phone") },
		} {
			if err := act(); code(err) != latchkey.EConflict || !strings.Contains(latchkey.ErrorMessage(err), "newbie has not activated the account yet, so it has no sign-in methods to reset or remove.") {
				t.Errorf("%s, %s = %v, want a conflict: not activated", name, when, err)
			}
		}
		wroteNothing(t, when+": the refusals")
	}
	refused("invited")
	e.now = e.now.Add(login.InvitationTTL + time.Minute) // the link expires; the checks too
	if _, err := e.svc.RecordChecks(ctx, client, agent, tk.ID, all); err != nil {
		t.Fatal(err)
	}
	wroteNothing = e.nothingWritten(t, tk.ID, len(all))
	refused("link expired")

	// Activated with a new link, with an app: the desk removes it like any other.
	if err := e.login.ResendInvitation(ctx, client, e.user(t, "root", latchkey.RoleAdmin), u.ID); err != nil {
		t.Fatal(err)
	}
	link := e.mail.last().Text
	token := regexp.MustCompile(`token=([A-Za-z0-9_-]+)`).FindStringSubmatch(link)
	if token == nil {
		t.Fatalf("no activation link in %q", link)
	}
	if _, err := e.login.Activate(ctx, client, "", token[1], "correct horse battery staple"); err != nil {
		t.Fatal(err)
	}
	e.withTOTP(t, u)
	fs, _ := e.login.Factors(ctx, u)
	if err := e.svc.RemoveFactor(ctx, client, agent, true, tk.ID, fs[0].Ref, "lost phone"); err != nil {
		t.Errorf("RemoveFactor once activated = %v", err)
	}
}

// TestAgentResetMFANoFactor: an active account without a second factor has nothing to reset,
// so a reset of its MFA, posted by hand with every check done and the agent's second factor,
// is refused with a conflict that says so and writes nothing: no audit entry, no mail, the
// checks stand and the ticket's status stays. With an app, the reset runs and uses the
// checks up.
func TestAgentResetMFANoFactor(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	agent := e.user(t, "sam", latchkey.RoleSupport)
	bob := e.user(t, "bob", latchkey.RoleUser)
	tk := e.open(t, "bob@example.com", "bob").Ticket
	all := e.readyToAct(t, agent, tk.ID)
	wroteNothing := e.nothingWritten(t, tk.ID, len(all))
	if err := e.svc.ResetMFA(ctx, client, agent, true, tk.ID, "lost phone"); code(err) != latchkey.EConflict || !strings.HasPrefix(latchkey.ErrorMessage(err), "bob has no second factor, so there is nothing to reset") {
		t.Errorf("ResetMFA of an account without a factor = %v, want a conflict: nothing to reset", err)
	}
	wroteNothing(t, "the refusal")

	e.withTOTP(t, bob)
	if err := e.svc.ResetMFA(ctx, client, agent, true, tk.ID, "lost phone"); err != nil {
		t.Fatalf("ResetMFA with an app: %v", err)
	}
	if got := e.mail.last().Subject; got != "All your sign-in methods were reset" {
		t.Errorf("last mail %q, want the reset's", got)
	}
	if got, _ := e.db.FindTicketByID(ctx, tk.ID); len(got.Checks) != 0 {
		t.Errorf("checks after the reset: %v, want used up", got.Checks)
	}
}

func TestAgentAuthorization(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	agent := e.user(t, "sam", latchkey.RoleSupport)
	admin := e.user(t, "root", latchkey.RoleAdmin)
	plain := e.user(t, "bob", latchkey.RoleUser)
	other := e.user(t, "kim", latchkey.RoleSupport)
	all := []string{"callback", "manager", "question"}

	// A plain user may do nothing at all.
	tk := e.open(t, "bob@example.com", "bob").Ticket
	for name, err := range map[string]error{
		"Tickets":      func() error { _, _, err := e.svc.Tickets(ctx, plain, support.Queue{}); return err }(),
		"Ticket":       func() error { _, err := e.svc.Ticket(ctx, plain, tk.ID); return err }(),
		"RecordChecks": func() error { _, err := e.svc.RecordChecks(ctx, client, plain, tk.ID, all); return err }(),
		"ResetMFA":     e.svc.ResetMFA(ctx, client, plain, true, tk.ID, "x"),
		"RemoveFactor": e.svc.RemoveFactor(ctx, client, plain, true, tk.ID, "totp:1", "x"),
		"Reply":        func() error { _, err := e.svc.Reply(ctx, client, plain, tk.ID, "x", ""); return err }(),
		"SetStatus": func() error {
			_, err := e.svc.SetStatus(ctx, client, plain, tk.ID, latchkey.TicketClosed, "")
			return err
		}(),
		"InviteUser": func() error { _, err := e.svc.InviteUser(ctx, client, plain, tk.ID, "x", "x"); return err }(),
	} {
		if code(err) != latchkey.EForbidden {
			t.Errorf("user: %s = %v, want forbidden", name, err)
		}
	}

	// Agents cannot act on admins, other agents or themselves; neither can an admin from a
	// ticket.
	for _, tt := range []struct {
		name   string
		actor  *latchkey.User
		target *latchkey.User
	}{
		{"support on admin", agent, admin},
		{"support on support", agent, other},
		{"support on self", agent, agent},
		{"admin on admin", admin, admin},
		{"admin on support", admin, agent},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.withTOTP(t, tt.target)
			tk := e.open(t, tt.target.Email, tt.target.Username).Ticket
			if _, err := e.svc.RecordChecks(ctx, client, tt.actor, tk.ID, all); err != nil {
				t.Fatal(err)
			}
			v, err := e.svc.Ticket(ctx, tt.actor, tk.ID)
			if err != nil || code(v.CanAct) != latchkey.EForbidden {
				t.Fatalf("Ticket: CanAct = %v, %v, want forbidden", v.CanAct, err)
			}
			// Nor does the desk show the account: no email, factors or sign-ins, only the role.
			if v.Account == nil || v.Account.Email != "" || v.Account.Username != "" || v.Account.Role != tt.target.Role || v.Factors != nil || v.SignIns != nil || v.EmailDiffers {
				t.Errorf("Ticket shows the account: username %q, email %q, role %q, %d factors, %d sign-ins", v.Account.Username, v.Account.Email, v.Account.Role, len(v.Factors), len(v.SignIns))
			}
			if err := e.svc.ResetMFA(ctx, client, tt.actor, true, tk.ID, "x"); code(err) != latchkey.EForbidden {
				t.Errorf("ResetMFA = %v, want forbidden", err)
			}
			fs, _ := e.login.Factors(ctx, tt.target)
			if err := e.svc.RemoveFactor(ctx, client, tt.actor, true, tk.ID, fs[0].Ref, "x"); code(err) != latchkey.EForbidden {
				t.Errorf("RemoveFactor = %v, want forbidden", err)
			}
			if fs2, _ := e.login.Factors(ctx, tt.target); len(fs2) != len(fs) {
				t.Errorf("the target lost factors: %d → %d", len(fs), len(fs2))
			}
		})
	}
	// The login service refuses on its own too.
	if err := e.login.AgentResetMFA(ctx, client, login.AgentAction{Agent: agent, AgentMFA: true, TicketID: 1, Reason: "x"}, admin); code(err) != latchkey.EForbidden {
		t.Errorf("login.AgentResetMFA(support on admin) = %v, want forbidden", err)
	}
}

func TestInviteUser(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	agent := e.user(t, "sam", latchkey.RoleSupport)
	tk := e.open(t, "new@example.com", "newbie").Ticket
	v, _ := e.svc.Ticket(ctx, agent, tk.ID)
	if v.Account != nil || !v.CanInvite {
		t.Fatalf("view = %+v, want no account and the invite action", v)
	}
	u, err := e.svc.InviteUser(ctx, client, agent, tk.ID, "", "new starter, confirmed by manager")
	if err != nil || u.Username != "newbie" || u.Email != "new@example.com" || u.Role != latchkey.RoleUser {
		t.Fatalf("InviteUser = %+v, %v", u, err)
	}
	if _, err := e.svc.InviteUser(ctx, client, agent, tk.ID, "", "again"); code(err) != latchkey.EConflict {
		t.Errorf("second InviteUser = %v, want conflict", err)
	}
	e2 := newEnv(t, func(o *support.Options) { o.Inviter = nil })
	agent2 := e2.user(t, "sam", latchkey.RoleSupport)
	tk2 := e2.open(t, "new@example.com", "").Ticket
	if v, _ := e2.svc.Ticket(ctx, agent2, tk2.ID); v.CanInvite {
		t.Error("CanInvite without an Inviter")
	}
	if _, err := e2.svc.InviteUser(ctx, client, agent2, tk2.ID, "x", "x"); code(err) != latchkey.EForbidden {
		t.Errorf("InviteUser without an Inviter = %v, want forbidden", err)
	}
}

// TestInviteUserMailFails: when the activation mail fails after the account was created, the
// agent hears of it and the trail still links the new account to the ticket.
func TestInviteUserMailFails(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	agent := e.user(t, "sam", latchkey.RoleSupport)
	tk := e.open(t, "new@example.com", "newbie").Ticket
	e.mail.mu.Lock()
	e.mail.fail = errors.New("smtp: connection refused")
	e.mail.mu.Unlock()
	got, err := e.svc.InviteUser(ctx, client, agent, tk.ID, "", "new starter")
	if err == nil || got == nil || got.Username != "newbie" {
		t.Errorf("InviteUser with the mail down = %+v, %v, want the account and an error", got, err)
	}
	u, err := e.db.FindUserByUsername(ctx, "newbie")
	if err != nil {
		t.Fatalf("the account was not created: %v", err)
	}
	ev, _ := e.db.FindAuditEvents(ctx, latchkey.AuditFilter{UserID: &u.ID})
	var linked bool
	for _, x := range ev {
		linked = linked || (x.Action == latchkey.ActionTicketUserAdded && x.TicketID == tk.ID && x.Actor == "sam")
	}
	if !linked {
		t.Errorf("no %s entry links %s to ticket %d: %d entries", latchkey.ActionTicketUserAdded, u.Username, tk.ID, len(ev))
	}
}

// TestTicketInviteMailFailed: the ticket of an account whose activation mail could not be
// sent says so (View.InviteMailFailed) on every visit, also once the link's time is over,
// until an administrator sends a new link that goes out.
func TestTicketInviteMailFailed(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	agent := e.user(t, "sam", latchkey.RoleSupport)
	root := e.user(t, "root", latchkey.RoleAdmin)
	tk := e.open(t, "new@example.com", "newbie").Ticket
	e.mail.mu.Lock()
	e.mail.fail = errors.New("smtp: connection refused")
	e.mail.mu.Unlock()
	u, err := e.svc.InviteUser(ctx, client, agent, tk.ID, "", "new starter")
	if u == nil || err == nil {
		t.Fatalf("InviteUser with the mail down = %+v, %v, want the account and an error", u, err)
	}
	view := func(when string) *support.View {
		t.Helper()
		v, err := e.svc.Ticket(ctx, agent, tk.ID)
		if err != nil || v.Account == nil || v.Account.ID != u.ID {
			t.Fatalf("%s: Ticket = %+v, %v", when, v, err)
		}
		return v
	}
	if v := view("after the failed mail"); !v.Invited || !v.InviteMailFailed || v.InviteExpired {
		t.Errorf("after the failed mail: invited %v, mail failed %v, expired %v; want invited, mail failed", v.Invited, v.InviteMailFailed, v.InviteExpired)
	}
	e.now = e.now.Add(login.InvitationTTL + time.Minute)
	if v := view("past the link's end"); !v.Invited || !v.InviteMailFailed || !v.InviteExpired {
		t.Errorf("past the link's end: invited %v, mail failed %v, expired %v; want all three", v.Invited, v.InviteMailFailed, v.InviteExpired)
	}
	e.mail.mu.Lock()
	e.mail.fail = nil
	e.mail.mu.Unlock()
	if err := e.login.ResendInvitation(ctx, client, root, u.ID); err != nil {
		t.Fatal(err)
	}
	if v := view("after a new link"); !v.Invited || v.InviteMailFailed || v.InviteExpired || !v.InviteEnd.Equal(e.now.Add(login.InvitationTTL)) {
		t.Errorf("after a new link: invited %v, mail failed %v, expired %v, ends %v; want invited until %v", v.Invited, v.InviteMailFailed, v.InviteExpired, v.InviteEnd, e.now.Add(login.InvitationTTL))
	}
}

func TestQueue(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	agent := e.user(t, "sam", latchkey.RoleSupport)
	e.open(t, "a@example.com", "")
	e.now = e.now.Add(3 * time.Hour)
	b := e.open(t, "b@example.com", "")
	if _, err := e.svc.SetStatus(ctx, client, agent, b.Ticket.ID, latchkey.TicketClosed, ""); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		q    support.Queue
		want int
	}{
		{support.Queue{}, 1},
		{support.Queue{Status: "all"}, 2},
		{support.Queue{Status: "closed"}, 1},
		{support.Queue{Status: "all", Type: "lost_phone"}, 2},
		{support.Queue{Status: "all", Type: "other"}, 0},
		{support.Queue{Status: "all", OlderThan: 2 * time.Hour}, 1},
	} {
		if _, n, err := e.svc.Tickets(ctx, agent, tt.q); err != nil || n != tt.want {
			t.Errorf("Tickets(%+v) = %d, %v, want %d", tt.q, n, err, tt.want)
		}
	}
	for _, q := range []support.Queue{{Status: "bogus"}, {Type: "bogus"}} {
		if _, _, err := e.svc.Tickets(ctx, agent, q); code(err) != latchkey.EInvalid {
			t.Errorf("Tickets(%+v) = %v, want invalid", q, err)
		}
	}
}

func TestTicketStats(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	agent := e.user(t, "sam", latchkey.RoleSupport)
	start := e.now
	// Opened 10 days, 5 days, 2 days and 1 hour before the end, plus one closed and one
	// resolved (not open).
	for _, age := range []time.Duration{240 * time.Hour, 120 * time.Hour, 48 * time.Hour, 48 * time.Hour, time.Hour} {
		e.now = start.Add(240*time.Hour - age)
		e.open(t, "a@example.com", "")
	}
	e.now = start.Add(240 * time.Hour)
	for _, st := range []latchkey.TicketStatus{latchkey.TicketClosed, latchkey.TicketResolved} {
		c := e.open(t, "b@example.com", "")
		if _, err := e.svc.SetStatus(ctx, client, agent, c.Ticket.ID, st, ""); err != nil {
			t.Fatal(err)
		}
	}
	got, err := e.svc.TicketStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, b := range got {
		parts = append(parts, fmt.Sprintf("%s=%d", b.Label, b.Count))
	}
	if s := strings.Join(parts, " "); s != "under a day=1 1–3 days=2 3–7 days=1 over a week=1" {
		t.Errorf("TicketStats = %s", s)
	}
}
