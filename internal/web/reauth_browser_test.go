package web_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/latchkey/latchkey/internal/browsertest"
	"github.com/latchkey/latchkey/internal/totp"
)

// TestBrowserFullReauthentication, in Chromium: a user with an authenticator app whose last
// second factor is more than 10 minutes old opens "new recovery codes"; the page sends them to
// confirm the password, says that a second factor follows, then asks for the code, and comes
// back to the form they opened.
func TestBrowserFullReauthentication(t *testing.T) {
	f := newA11yFixture(t, "")
	ctx := browsertest.New(t, 2*time.Minute)
	passwordStep(t, ctx, f.base)
	cdp(t, ctx, "set up the authenticator app",
		chromedp.WaitVisible(chromedp.CSS("#factors")),
		chromedp.Click(chromedp.CSS(`form[action="/settings/security/totp"] button`)),
		chromedp.WaitVisible(chromedp.CSS("#code")),
	)
	key, err := totp.Decode(js[string](t, ctx, `document.querySelector('[data-copy]').getAttribute('data-copy')`))
	if err != nil {
		t.Fatal(err)
	}
	cdp(t, ctx, "confirm the app",
		chromedp.SendKeys(chromedp.CSS("#code"), totp.Code(key, totp.Step(f.clock.Now()))),
		chromedp.Submit(chromedp.CSS("#code")),
		chromedp.WaitVisible(chromedp.CSS("#recovery-codes")),
	)

	f.clock.Add(11 * time.Minute)
	cdp(t, ctx, "open new recovery codes",
		chromedp.Navigate(f.base+"/settings/security/recovery-codes"),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/reauth"] #password`)),
	)
	if n := cdpCount(t, ctx, "#then-second-factor"); n != 1 {
		t.Errorf("the password page does not say that a second factor follows")
	}
	browsertest.Screenshot(t, ctx, "reauth-01-password")
	cdp(t, ctx, "confirm the password",
		chromedp.SendKeys(chromedp.CSS("#password"), pw),
		chromedp.Submit(chromedp.CSS("#password")),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/login/code"] #code`)),
	)
	browsertest.Screenshot(t, ctx, "reauth-02-second-factor")
	cdp(t, ctx, "give the code",
		chromedp.SendKeys(chromedp.CSS("#code"), totp.Code(key, totp.Step(f.clock.Now()))),
		chromedp.Submit(chromedp.CSS("#code")),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/settings/security/recovery-codes"] #password`)),
	)
	u, err := url.Parse(js[string](t, ctx, `location.href`))
	if err != nil || u.Path != "/settings/security/recovery-codes" {
		t.Errorf("after the second factor the browser is at %q, want the recovery codes form", u)
	}
	cdp(t, ctx, "generate the codes",
		chromedp.SendKeys(chromedp.CSS("#password"), pw),
		chromedp.Submit(chromedp.CSS("#password")),
		chromedp.WaitVisible(chromedp.CSS("#recovery-codes")),
	)
	browsertest.Screenshot(t, ctx, "reauth-03-done")
}
