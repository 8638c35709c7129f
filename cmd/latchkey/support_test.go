package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/browsertest"
	"github.com/latchkey/latchkey/internal/sqlstore"
	"github.com/latchkey/latchkey/internal/totp"
	"github.com/latchkey/latchkey/internal/totp/qrdecode"
)

// enrolApp completes the mandatory-MFA rollout with an authenticator app: the user is on the
// rollout page after the password.
func enrolApp(t *testing.T, ctx context.Context, base string) []byte {
	t.Helper()
	do(t, ctx, "choose the authenticator app",
		chromedp.WaitVisible(chromedp.CSS(`form[action="/login/enroll/totp"] button`)),
		chromedp.Click(chromedp.CSS(`form[action="/login/enroll/totp"] button`)),
		chromedp.WaitVisible(chromedp.CSS("#qr")),
	)
	src := attr(t, ctx, "#qr", "src")
	png, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(src, "data:image/png;base64,"))
	if err != nil {
		t.Fatal(err)
	}
	uri, err := qrdecode.Decode(png)
	if err != nil {
		t.Fatal(err)
	}
	key, err := totp.ParseURI(uri)
	if err != nil {
		t.Fatal(err)
	}
	enterCode(t, ctx, totp.Code(key.Secret, totp.Step(time.Now())), "#recovery-codes")
	do(t, ctx, "security page", chromedp.Navigate(base+"/settings/security"), chromedp.WaitVisible(chromedp.CSS("#factors")))
	return key.Secret
}

var trackingRe = regexp.MustCompile(`https?://\S+/support/t/[A-Za-z0-9_-]{43}`)

// TestSupportDeskJourney is journey 12 end to end, with the real binary, a real SMTP server and
// Chromium: a user locked out by a lost phone opens a ticket without signing in, gets the
// confirmation mail and follows its link; an agent verifies the user's identity and resets
// MFA from the ticket, and answers by email; under mfa: required the user signs in with the
// password alone and lands in the rollout; every step is in the audit trail, which verifies.
func TestSupportDeskJourney(t *testing.T) {
	s, base := localServer(t, "mfa: required\n", "alice")
	var out, errb strings.Builder
	if err := run(context.Background(), []string{"user", "create", "--data", s.data, "--username", "sam", "--email", "sam@example.com", "--role", "support", "--password-stdin"},
		env(nil), strings.NewReader(alicePassword+"\n"), &out, &errb); err != nil {
		t.Fatalf("create the agent: %v\n%s", err, errb.String())
	}
	ctx := browsertest.New(t, 4*time.Minute)
	shot := func(name string) { browsertest.Screenshot(t, ctx, "support-"+name) }

	// Before: alice has an authenticator app (the rollout makes her set one up) and sam too.
	secrets := map[string][]byte{}
	for _, u := range []string{"alice", "sam"} {
		signIn(t, ctx, base, u)
		secrets[u] = enrolApp(t, ctx, base)
		signOut(t, ctx)
	}

	// Alice lost her phone: from the sign-in page she asks for help, without signing in.
	do(t, ctx, "need help",
		chromedp.Navigate(base+"/login"),
		chromedp.WaitVisible(chromedp.CSS("#need-help")),
		chromedp.Click(chromedp.CSS("#need-help")),
		chromedp.WaitVisible(chromedp.CSS("#email")),
	)
	if l := location(t, ctx); l != base+"/support/new" {
		t.Fatalf("Need help? leads to %s", l)
	}
	if a := attr(t, ctx, "#email", "autocomplete"); a != "email" {
		t.Errorf("email autocomplete = %q", a)
	}
	if a := attr(t, ctx, "#username", "autocomplete"); a != "username" {
		t.Errorf("username autocomplete = %q", a)
	}
	do(t, ctx, "fill in the ticket",
		chromedp.SendKeys(chromedp.CSS("#email"), "alice@example.com"),
		chromedp.SendKeys(chromedp.CSS("#username"), "alice"),
		chromedp.SetValue(chromedp.CSS("#type"), "lost_phone"),
		chromedp.SendKeys(chromedp.CSS("#message"), "I lost my phone with the authenticator app and cannot sign in."),
	)
	shot("01-new")
	do(t, ctx, "send", chromedp.Click(chromedp.CSS(`form[action="/support/new"] button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS("#ticket-created")))
	if got := text(t, ctx, "#ticket-created"); !strings.Contains(got, "#1001") {
		t.Errorf("confirmation = %q, want the ticket number", got)
	}
	shot("02-confirmation")

	m := waitMail(t, s, "[Ticket #1001] We received your request: Lost or new phone / authenticator")
	link := trackingRe.FindString(m.Text)
	if link == "" || !strings.HasPrefix(link, base+"/support/t/") || !strings.Contains(m.HTML, link) {
		t.Fatalf("no tracking link in the confirmation:\n%s", m.Text)
	}
	token := link[strings.LastIndex(link, "/")+1:]
	do(t, ctx, "follow the link", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("#ticket-status")))
	if got := text(t, ctx, "#ticket-status"); got != "New" {
		t.Errorf("status = %q, want New", got)
	}
	do(t, ctx, "add a message",
		chromedp.SendKeys(chromedp.CSS("#message"), "You can call me on my desk phone."),
		chromedp.Click(chromedp.CSS(`.support form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	shot("03-tracking")

	// The agent works the queue.
	signIn(t, ctx, base, "sam")
	enterCode(t, ctx, totp.Code(secrets["sam"], totp.Step(time.Now())+1), "h1.page-title")
	do(t, ctx, "queue", chromedp.Navigate(base+"/admin/tickets"), chromedp.WaitVisible(chromedp.CSS("table.queue")))
	shot("04-queue")
	do(t, ctx, "open the ticket",
		chromedp.Click(chromedp.CSS(`table.queue a[href="/admin/tickets/1001"]`)),
		chromedp.WaitVisible(chromedp.CSS("#account-username")),
	)
	if got := text(t, ctx, "#account-username"); got != "alice" {
		t.Errorf("matched account = %q", got)
	}
	page, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Authenticator app", "desk phone", "Password"} {
		if !strings.Contains(page, want) {
			t.Errorf("the ticket page lacks %q", want)
		}
	}
	if strings.Contains(page, totp.Encode(secrets["alice"])) {
		t.Error("the agent sees the user's TOTP secret")
	}
	if n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('form[action$="/reset-mfa"]').length`)); n != 0 {
		t.Error("the reset is offered before the identity checks")
	}
	do(t, ctx, "identity checks",
		chromedp.Click(chromedp.CSS("#check-callback")),
		chromedp.Click(chromedp.CSS("#check-manager")),
		chromedp.Click(chromedp.CSS("#check-question")),
		chromedp.Click(chromedp.CSS(`form[action$="/checks"] button`)),
		chromedp.WaitVisible(chromedp.CSS("#checks-done")),
		chromedp.WaitVisible(chromedp.CSS("#reset-reason")),
	)
	shot("05-ticket-verified")
	do(t, ctx, "reset all MFA",
		chromedp.SendKeys(chromedp.CSS("#reset-reason"), "Lost phone; identity confirmed by callback"),
		chromedp.Click(chromedp.CSS(`form[action$="/reset-mfa"] button`)),
		chromedp.WaitVisible(chromedp.CSS("#no-factors")),
	)
	waitFlash(t, ctx, "Every sign-in method")
	do(t, ctx, "reply",
		chromedp.SendKeys(chromedp.CSS("#reply"), "Done: sign in with your password and set up your new phone."),
		chromedp.SetValue(chromedp.CSS("#reply-status"), "resolved"),
		chromedp.Click(chromedp.CSS(`form.reply button`)),
	)
	waitFlash(t, ctx, "Your answer was sent")
	if got := text(t, ctx, "#ticket-status"); got != "Resolved" {
		t.Errorf("status after the answer = %q", got)
	}
	shot("06-ticket-answered")
	// On a phone the ticket page and the queue stay usable: one column, nothing wider than the
	// screen.
	for _, path := range []string{"/admin/tickets/1001", "/admin/tickets"} {
		do(t, ctx, "phone "+path, chromedp.EmulateViewport(390, 844), chromedp.Navigate(base+path), chromedp.WaitVisible(chromedp.CSS("h1")))
		if wide, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth`)); wide {
			t.Errorf("%s is wider than a phone's screen", path)
		}
		shot("phone-" + strings.ReplaceAll(strings.Trim(path, "/"), "/", "-"))
	}
	do(t, ctx, "desktop", chromedp.ResetViewport())
	waitMail(t, s, "All your sign-in methods were reset")
	answer := waitMail(t, s, "[Ticket #1001] Lost or new phone / authenticator")
	if answer.Header.Get("In-Reply-To") != m.Header.Get("Message-Id") || !strings.Contains(answer.Text, "set up your new phone") {
		t.Errorf("the answer is not threaded with the confirmation: In-Reply-To %q, Message-Id %q", answer.Header.Get("In-Reply-To"), m.Header.Get("Message-Id"))
	}
	signOut(t, ctx)

	// Alice signs in with the password alone and is sent to set up a new method.
	signIn(t, ctx, base, "alice")
	if l := location(t, ctx); !strings.HasPrefix(l, base+"/login/enroll") {
		t.Fatalf("after the support reset, sign-in went to %s, want the rollout", l)
	}
	shot("07-rollout")

	// The tracking link still shows the conversation, with the answer.
	do(t, ctx, "tracking page", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("#ticket-status")))
	if got := text(t, ctx, ".conversation"); !strings.Contains(got, "set up your new phone") {
		t.Errorf("the tracking page lacks the answer: %q", got)
	}
	if strings.Contains(s.log(), token) {
		t.Error("the tracking token is in the server's log")
	}

	// The audit trail has every step with the ticket, and its chain verifies.
	var vout, verr bytes.Buffer
	if err := run(context.Background(), []string{"audit", "verify", "--data", s.data}, env(nil), nil, &vout, &verr); err != nil {
		t.Fatalf("audit verify: %v\n%s%s", err, vout.String(), verr.String())
	}
	var actions []string
	for _, e := range auditForTicket(t, s.data, 1001) {
		actions = append(actions, e.Action)
		if e.Action == latchkey.ActionMFAReset && (e.Username != "alice" || e.Actor != "sam" || !strings.Contains(e.Detail, "confirmed by callback")) {
			t.Errorf("reset event = %+v", e)
		}
	}
	want := []string{latchkey.ActionTicketCreated, latchkey.ActionTicketMessage, latchkey.ActionTicketVerified, latchkey.ActionMFAReset, latchkey.ActionTicketReplied}
	if strings.Join(actions, " ") != strings.Join(want, " ") {
		t.Errorf("audit events of ticket 1001 = %v, want %v", actions, want)
	}
}

func auditForTicket(t *testing.T, data string, ticket int64) []*latchkey.AuditEvent {
	t.Helper()
	cfg := defaultConfig()
	cfg.Data = data
	_, secrets, err := cfg.keys()
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlstore.Open(context.Background(), filepath.Join(data, "latchkey.db"), sqlstore.Options{SecretsKey: secrets})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ev, err := db.FindAuditEvents(context.Background(), latchkey.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var out []*latchkey.AuditEvent
	for _, e := range ev {
		if e.TicketID == ticket {
			out = append(out, e)
		}
	}
	return out
}
