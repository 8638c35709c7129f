package web_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/latchkey/latchkey/internal/browsertest"
	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/support"
)

// TestBrowserDeskInviteMailFails, in Chromium: an agent creates the account a ticket asks for
// while the activation mail cannot be sent, and lands on the ticket, which shows the new
// account, not yet activated, and a notice that says the mail was not sent and whom to ask.
func TestBrowserDeskInviteMailFails(t *testing.T) {
	f, _ := newMailFailingDesk(t)
	tk, err := f.desk.Create(context.Background(), login.Client{}, support.NewTicket{Email: "new@example.com", Username: "newbie", Type: "account_change", Message: "I start on Monday and need an account."})
	if err != nil {
		t.Fatal(err)
	}
	ticket := "/admin/tickets/" + strconv.FormatInt(tk.Ticket.ID, 10)
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
	if got := cdpText(t, ctx, "#account-invited"); !strings.HasPrefix(got, "Waiting for activation: the user has not set a password with the activation link yet. The link expires on ") {
		t.Errorf("the account's note is %q, want it waiting for activation", got)
	}
}
