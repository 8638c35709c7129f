package web_test

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/browsertest"
	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/support"
)

// TestBrowserDeskInviteMailFails, in Chromium: an agent creates the account a ticket asks for
// while the activation mail cannot be sent, and lands on the ticket, which shows the new
// account, not yet activated, and a notice that says the mail was not sent and whom to ask;
// the account's note says so too, not when a link that never arrived expires.
func TestBrowserDeskInviteMailFails(t *testing.T) {
	f, _ := newMailFailingDesk(t)
	_, ticket := f.newbieTicket(t)
	ctx := browsertest.New(t, 2*time.Minute)
	cdp(t, ctx, "sign in as the agent",
		chromedp.Navigate(f.srv.URL+"/login"),
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), "sam"),
		chromedp.SendKeys(chromedp.CSS("#password"), pw),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)),
		chromedp.WaitNotPresent(chromedp.CSS(`form[action="/login"] #password`)),
	)
	cdp(t, ctx, "create the user from the ticket",
		chromedp.Navigate(f.srv.URL+ticket),
		chromedp.WaitVisible(chromedp.CSS("#invite-reason")),
		chromedp.SendKeys(chromedp.CSS("#invite-reason"), "new starter, confirmed by their manager"),
		chromedp.Submit(chromedp.CSS("#invite-reason")),
		chromedp.WaitVisible(chromedp.CSS("#invite-mail-failed")),
	)
	browsertest.Screenshot(t, ctx, "desk-invite-mail-failed")
	if got := js[string](t, ctx, `location.pathname + location.search`); got != ticket+"?done=invite-mail-failed" {
		t.Errorf("the browser is at %q, want the ticket", got)
	}
	notice := cdpText(t, ctx, "#invite-mail-failed")
	for _, want := range []string{"The account newbie was created, but its activation mail could not be sent.", "Ask an administrator"} {
		if !strings.Contains(notice, want) {
			t.Errorf("notice %q does not say %q", notice, want)
		}
	}
	if got := cdpText(t, ctx, "#account-username"); got != "newbie" {
		t.Errorf("the ticket's account is %q, want newbie", got)
	}
	// The new account is not active until its owner sets a password with a link (the admin
	// console's word for it: Invited).
	if got := cdpText(t, ctx, "#account-state"); got != "Invited" {
		t.Errorf("the account's state is %q, want Invited", got)
	}
	// The link never reached the user: when it would expire is beside the point (and
	// misleading); the note says what happened and what can be done.
	if got, want := cdpText(t, ctx, "#account-invited"), "Waiting for activation: the activation mail could not be sent, so the user has no link to set a password with yet; an administrator can send a new one from the account's page."; got != want {
		t.Errorf("the account's note is %q, want %q", got, want)
	}
}

// TestBrowserDeskAwaitingActivation, in Chromium: the ticket page of an account created from
// the ticket, which its owner has not activated yet, offers no identity checks and no MFA
// action (there is nothing to reset) and says why; a reset posted by hand from the page is
// refused with 409 and a message that says why, and changes nothing. The page of an active
// account still has the checklist.
func TestBrowserDeskAwaitingActivation(t *testing.T) {
	var f *supportFixture
	f = newSupportFixture(t, io.Discard, func(o *support.Options) {
		o.Inviter = inviterFunc(func(ctx context.Context, c login.Client, actor *latchkey.User, actorMFA bool, username, email string, role latchkey.Role) (*latchkey.User, error) {
			return f.svc.InviteUser(ctx, c, actor, actorMFA, username, email, role)
		})
	})
	ctx := context.Background()
	tk, ticket := f.newbieTicket(t)
	// The checks are saved, as an agent could have done before the account existed.
	sam, err := f.db.FindUserByUsername(ctx, "sam")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.desk.RecordChecks(ctx, login.Client{}, sam, tk.Ticket.ID, []string{"callback", "manager", "question"}); err != nil {
		t.Fatal(err)
	}
	bctx := browsertest.New(t, 2*time.Minute)
	cdpSignIn(t, bctx, f.srv.URL, "sam")
	cdp(t, bctx, "create the user from the ticket",
		chromedp.Navigate(f.srv.URL+ticket),
		chromedp.WaitVisible(chromedp.CSS("#invite-reason")),
		chromedp.SendKeys(chromedp.CSS("#invite-reason"), "new starter, confirmed by their manager"),
		chromedp.Submit(chromedp.CSS("#invite-reason")),
		chromedp.WaitVisible(chromedp.CSS("#account-state")),
	)
	browsertest.Screenshot(t, bctx, "desk-awaiting-activation")
	if got := cdpText(t, bctx, "#account-state"); got != "Invited" {
		t.Errorf("the account's state is %q, want Invited", got)
	}
	for _, sel := range []string{"#checklist", `form[action$="/reset-mfa"]`, `form[action$="/remove-factor"]`, "#no-factors"} {
		if n := cdpCount(t, bctx, sel); n != 0 {
			t.Errorf("the page of an account awaiting activation has %s", sel)
		}
	}
	if got, want := js[string](t, bctx, `document.querySelector('#factors #awaiting-activation')?.textContent ?? ''`), "Nothing to reset or remove: the account is waiting for activation, so it has no second factor yet."; !strings.HasPrefix(got, want) {
		t.Errorf("sign-in methods = %q, want %q", got, want)
	}

	// A reset posted by hand, from the page itself.
	before, _ := f.db.FindAuditEvents(ctx, latchkey.AuditFilter{})
	mails := len(f.mails.subjects("new@example.com"))
	if got, want := postResetByHand(t, bctx, "desk-awaiting-activation-reset-refused"), "newbie has not activated the account yet, so it has no sign-in methods to reset or remove."; !strings.HasPrefix(got, want) {
		t.Errorf("refusal = %q, want %q", got, want)
	}
	code, err := chromedp.Run(bctx, chromedp.Evaluate[int](`fetch(location.pathname.replace(/\/reset-mfa$/, '/remove-factor'), {method: 'POST', body: new URLSearchParams({factor: 'totp:1', reason: 'lost phone'})}).then(r => r.status)`, chromedp.EvalAwaitPromise))
	if err != nil || code != http.StatusConflict {
		t.Errorf("a removal posted by hand: %d %v, want 409", code, err)
	}
	if after, _ := f.db.FindAuditEvents(ctx, latchkey.AuditFilter{}); len(after) != len(before) {
		t.Errorf("the refused actions wrote %d audit entries", len(after)-len(before))
	}
	if got := f.mails.subjects("new@example.com"); len(got) != mails {
		t.Errorf("the refused actions sent %q", got[mails:])
	}
	if got, _ := f.db.FindTicketByID(ctx, tk.Ticket.ID); len(got.Checks) != 3 {
		t.Errorf("the refused reset used the checks up: %v", got.Checks)
	}

	// An active account's ticket keeps the checklist.
	tk2, err := f.desk.Create(ctx, login.Client{}, support.NewTicket{Email: "alice@example.com", Username: "alice", Type: "lost_phone", Message: "I lost my phone."})
	if err != nil {
		t.Fatal(err)
	}
	cdp(t, bctx, "open alice's ticket",
		chromedp.Navigate(f.srv.URL+"/admin/tickets/"+strconv.FormatInt(tk2.Ticket.ID, 10)),
		chromedp.WaitVisible(chromedp.CSS("#checklist")),
		chromedp.WaitVisible(chromedp.CSS("#no-factors")),
	)
	if n := cdpCount(t, bctx, "#awaiting-activation"); n != 0 {
		t.Error("alice's ticket says her account is waiting for activation")
	}
}

// TestBrowserInviteMailFailedRemembered, in Chromium: an administrator creates the account a
// ticket asks for while its activation mail cannot be sent; the ticket, opened again without
// the action's outcome in the address, still says that the mail could not be sent, and its
// link leads to the account's page, which says so too, where it said when the unsent link
// expires, and offers the new link.
func TestBrowserInviteMailFailedRemembered(t *testing.T) {
	f, _ := newMailFailingDesk(t)
	_, ticket := f.newbieTicket(t)
	ctx := browsertest.New(t, 2*time.Minute)
	cdpSignIn(t, ctx, f.srv.URL, "root")
	cdp(t, ctx, "create the user from the ticket",
		chromedp.Navigate(f.srv.URL+ticket),
		chromedp.WaitVisible(chromedp.CSS("#invite-reason")),
		chromedp.SendKeys(chromedp.CSS("#invite-reason"), "new starter, confirmed by their manager"),
		chromedp.Submit(chromedp.CSS("#invite-reason")),
		chromedp.WaitVisible(chromedp.CSS("#invite-mail-failed")),
	)
	cdp(t, ctx, "open the ticket again",
		chromedp.Navigate(f.srv.URL+ticket),
		chromedp.WaitVisible(chromedp.CSS("#account-invited")),
	)
	browsertest.Screenshot(t, ctx, "desk-invite-mail-failed-again")
	if n := cdpCount(t, ctx, "#invite-mail-failed"); n != 0 {
		t.Error("the ticket opened again shows the notice of the action")
	}
	if got, want := cdpText(t, ctx, "#account-invited"), "Waiting for activation: the activation mail could not be sent, so the user has no link to set a password with yet; send a new one from the account's page."; got != want {
		t.Errorf("the account's note is %q, want %q", got, want)
	}
	cdp(t, ctx, "follow the link to the account's page",
		chromedp.Click(chromedp.CSS("#account-invited a")),
		chromedp.WaitVisible(chromedp.CSS("#invite-state")),
	)
	browsertest.Screenshot(t, ctx, "admin-user-invite-mail-failed")
	if got, want := cdpText(t, ctx, "#invite-state"), "The activation mail could not be sent, so the user has no link to set a password with yet. Send a new activation link."; got != want {
		t.Errorf("the account's page says %q, want %q", got, want)
	}
	if got, want := js[string](t, ctx, `document.querySelector('section[aria-labelledby=factors-h] p.muted')?.textContent ?? ''`), "No second factor yet: the account is waiting for activation (Invited). The user cannot sign in until they set a password with a new activation link."; got != want {
		t.Errorf("the account's sign-in methods say %q, want %q", got, want)
	}
	if n := cdpCount(t, ctx, `form[action$="/invitation"] button`); n != 1 {
		t.Error("the account's page does not offer a new activation link")
	}
}

// postResetByHand posts a Reset MFA form of the page's own making to the page's path, as a
// person could without the page offering one, saves a screenshot of the answer as shot and
// returns the answer's form error.
func postResetByHand(t *testing.T, ctx context.Context, shot string) string {
	t.Helper()
	cdp(t, ctx, "post a reset by hand",
		chromedp.Evaluate[chromedp.Void](`(() => {
  window.handPosted = true; // gone once the answer's page is loaded
  const f = document.createElement('form');
  f.method = 'post';
  f.action = location.pathname + '/reset-mfa';
  f.innerHTML = '<input name="reason" value="lost phone">';
  document.body.append(f);
  f.submit();
})()`),
	)
	waitJS(t, ctx, "the answer to the reset", `!window.handPosted && document.readyState === 'complete'`)
	browsertest.Screenshot(t, ctx, shot)
	return js[string](t, ctx, `document.getElementById('form-error')?.textContent ?? ''`)
}

// newbieTicket opens a ticket that asks for an account for newbie (new@example.com), and
// returns it with the path of its page in the desk.
func (f *supportFixture) newbieTicket(t *testing.T) (*support.Created, string) {
	t.Helper()
	tk, err := f.desk.Create(context.Background(), login.Client{}, support.NewTicket{Email: "new@example.com", Username: "newbie", Type: "account_change", Message: "I start on Monday and need an account."})
	if err != nil {
		t.Fatal(err)
	}
	return tk, "/admin/tickets/" + strconv.FormatInt(tk.Ticket.ID, 10)
}
