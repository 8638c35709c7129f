package web_test

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/latchkey/latchkey/internal/browsertest"
	"github.com/latchkey/latchkey/internal/totp"
)

func cdp(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func cdpText(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func cdpCount(t *testing.T, ctx context.Context, sel string) int {
	t.Helper()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll(`+"`"+sel+"`"+`).length`))
	if err != nil {
		t.Fatalf("count %s: %v", sel, err)
	}
	return n
}

// apiSignIn signs alice in over the JSON API with password and code, as another device.
func (f *wdFixture) apiSignIn(userAgent string) *http.Client {
	f.t.Helper()
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	post := func(path, body string) {
		req, _ := http.NewRequest("POST", f.srv.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", userAgent)
		resp, err := hc.Do(req)
		if err != nil {
			f.t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			f.t.Fatalf("POST %s: %d", path, resp.StatusCode)
		}
	}
	post("/api/v1/login", `{"username":"alice","password":"`+pw+`"}`)
	post("/api/v1/login/totp", `{"code":"`+totp.Code(f.secret, totp.Step(f.clock.Now()))+`"}`)
	return hc
}

func TestBrowserSessionsPanel(t *testing.T) {
	f := newWorkdayFixture(t, nil)
	ctx := browsertest.New(t, 2*time.Minute)
	shot := func(name string) { browsertest.Screenshot(t, ctx, "workday-"+name) }

	// Another device first: an iPhone, signed in over the API.
	phone := f.apiSignIn("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1")
	f.clock.Add(time.Minute)

	cdp(t, ctx, "sign in",
		chromedp.Navigate(f.srv.URL+"/login"),
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), "alice"),
		chromedp.SendKeys(chromedp.CSS("#password"), pw),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("#code")),
		chromedp.SendKeys(chromedp.CSS("#code"), totp.Code(f.secret, totp.Step(f.clock.Now()))),
		chromedp.Submit(chromedp.CSS("#code")),
		chromedp.WaitVisible(chromedp.CSS("#sessions")),
	)
	until := cdpText(t, ctx, "#signed-in-until")
	for _, want := range []string{"19:00", "the end of your workday", "every application accepts this sign-in", "After 1 hour without activity", "but not for a code"} {
		if !strings.Contains(until, want) {
			t.Errorf("signed-in-until text %q lacks %q", until, want)
		}
	}
	if n := cdpCount(t, ctx, "li.session"); n != 2 {
		t.Fatalf("%d sessions listed, want 2", n)
	}
	if got := cdpText(t, ctx, `li.session[data-current] .device-name`); got != "Headless Chrome on Linux" {
		t.Errorf("this device is named %q", got)
	}
	if got := cdpText(t, ctx, `li.session[data-current] .badge`); got != "This device" {
		t.Errorf("this device's badge = %q", got)
	}
	if got := cdpText(t, ctx, `li.session:not([data-current]) .device-name`); got != "Safari on iOS" {
		t.Errorf("the phone is named %q", got)
	}
	cdp(t, ctx, "scroll to the sessions", chromedp.ScrollIntoView(chromedp.CSS("#sessions")))
	shot("01-sessions")
	checkContrast(t, ctx)
	shot("01b-focus-ring")

	cdp(t, ctx, "sign out the phone",
		chromedp.Click(chromedp.CSS(`li.session:not([data-current]) button`)),
		chromedp.WaitVisible(chromedp.CSS(".flash, [role=status]")),
	)
	if n := cdpCount(t, ctx, "li.session"); n != 1 {
		t.Errorf("%d sessions after signing out the phone, want 1", n)
	}
	resp, err := phone.Get(f.srv.URL + "/api/v1/session")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("the phone after being signed out: %d, want 401", resp.StatusCode)
	}
	shot("02-phone-signed-out")

	// On a phone-sized screen the panel still fits.
	cdp(t, ctx, "phone viewport", chromedp.EmulateViewport(390, 844), chromedp.Navigate(f.srv.URL+"/settings/security#sessions"), chromedp.WaitVisible(chromedp.CSS("#sessions")))
	if fits, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth <= window.innerWidth`)); err != nil || !fits {
		t.Errorf("the Security page overflows a phone screen (%v)", err)
	}
	cdp(t, ctx, "scroll to the sessions", chromedp.ScrollIntoView(chromedp.CSS("#sign-out-everywhere")))
	shot("03-phone")
	// Back to a desktop screen, on a freshly laid-out page: a click computed while the layout
	// still changes can miss its button.
	cdp(t, ctx, "desktop viewport", chromedp.EmulateViewport(1280, 900), chromedp.Navigate(f.srv.URL+"/settings/security"), chromedp.WaitVisible(chromedp.CSS("#sign-out-everywhere")))

	cdp(t, ctx, "sign out everywhere",
		chromedp.Click(chromedp.CSS("#sign-out-everywhere")),
		chromedp.WaitVisible(chromedp.CSS("#username")),
	)
	if body := cdpText(t, ctx, "main"); !strings.Contains(body, "signed out everywhere") {
		t.Errorf("after sign out everywhere the page says %q", body)
	}
	shot("04-signed-out-everywhere")
	cdp(t, ctx, "security page", chromedp.Navigate(f.srv.URL+"/settings/security"), chromedp.WaitVisible(chromedp.CSS("#username")))

	// Settings › Account: the time zone.
	f.clock.Add(time.Minute)
	cdp(t, ctx, "sign in again",
		chromedp.SendKeys(chromedp.CSS("#username"), "alice"),
		chromedp.SendKeys(chromedp.CSS("#password"), pw),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("#code")),
		chromedp.SendKeys(chromedp.CSS("#code"), totp.Code(f.secret, totp.Step(f.clock.Now()))),
		chromedp.Submit(chromedp.CSS("#code")),
		chromedp.WaitVisible(chromedp.CSS("#sessions")),
		chromedp.Navigate(f.srv.URL+"/settings/account"),
		chromedp.WaitVisible(chromedp.CSS("#time_zone")),
		chromedp.SetValue(chromedp.CSS("#time_zone"), "America/New_York"),
		chromedp.Click(chromedp.CSS(`#time-zone-form button`)),
		chromedp.WaitVisible(chromedp.CSS(".flash")), // only on the page after saving
	)
	if v, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('time_zone').value`)); v != "America/New_York" {
		t.Errorf("time zone after saving = %q", v)
	}
	shot("05-account-time-zone")
	u, _ := f.db.FindUserByUsername(context.Background(), "alice")
	if u.TimeZone != "America/New_York" {
		t.Errorf("stored time zone = %q", u.TimeZone)
	}

	// RP-initiated logout without id_token_hint: a page asks first; "Stay signed in" keeps
	// the session.
	rp1 := f.rp("rp1", false)
	q := "client_id=rp1&post_logout_redirect_uri=" + rp1.logoutTo + "&state=s1"
	cdp(t, ctx, "end_session", chromedp.Navigate(f.srv.URL+"/oidc/end_session?"+q), chromedp.WaitVisible(chromedp.CSS("#confirm-sign-out")))
	if h := cdpText(t, ctx, "h1"); h != "Sign out?" {
		t.Errorf("end_session page heading %q", h)
	}
	shot("06-end-session-confirm")
	cdp(t, ctx, "stay signed in", chromedp.Click(chromedp.CSS(`a[href="/settings/security"]`)), chromedp.WaitVisible(chromedp.CSS("#sessions")))
}

// contrastLib is the JavaScript of WCAG 2.2's contrast ratio: rgb parses a computed colour,
// ratio compares two, bg finds the background an element is drawn on.
const contrastLib = `
  const rgb = c => (c.match(/[\d.]+/g) || []).map(Number);
  const lin = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  const lum = ([r, g, b]) => 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  const ratio = (a, b) => { const x = lum(a), y = lum(b); return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05); };
  const bg = el => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
`

// contrastJS measures, on the page, the contrast ratio (WCAG 2.2) of every badge's text to
// its background.
const contrastJS = `(() => {` + contrastLib + `
  const out = [];
  for (const b of document.querySelectorAll('.badge')) {
    out.push({what: 'badge "' + b.textContent.trim() + '"', ratio: ratio(rgb(getComputedStyle(b).color), bg(b)), need: 4.5});
  }
  return out;
})()`

// focusJS reads the focused element's outline against the background around it.
const focusJS = `(() => {` + contrastLib + `
  const el = document.activeElement;
  if (!el || el === document.body) return {what: 'nothing focused', ratio: 0, need: 0};
  const st = getComputedStyle(el);
  const name = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + ' "' + (el.textContent || el.value || '').trim().slice(0, 30) + '"';
  if (st.outlineStyle === 'none' || parseFloat(st.outlineWidth) < 2) return {what: 'focus ring of ' + name + ' (none)', ratio: 0, need: 3};
  // With an offset the ring sits on what is around the element.
  const around = parseFloat(st.outlineOffset) > 0 ? bg(el.parentElement) : bg(el);
  return {what: 'focus ring of ' + name, ratio: ratio(rgb(st.outlineColor), around), need: 3};
})()`

type contrastResult struct {
	What  string  `json:"what"`
	Ratio float64 `json:"ratio"`
	Need  float64 `json:"need"`
}

// checkContrast checks the page's badges (4.5:1, SC 1.4.3) and its focus ring, stop by stop
// (3:1, SC 1.4.11 and 2.4.13), in the real browser's computed styles.
func checkContrast(t *testing.T, ctx context.Context) {
	t.Helper()
	badges, err := chromedp.Run(ctx, chromedp.Evaluate[[]contrastResult](contrastJS))
	if err != nil {
		t.Fatalf("measure contrast: %v", err)
	}
	if len(badges) == 0 {
		t.Fatal("no badge on the page to measure")
	}
	results := badges
	cdp(t, ctx, "start from the top", chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur()`))
	for range 12 {
		cdp(t, ctx, "tab", chromedp.KeyEvent("\t"))
		r, err := chromedp.Run(ctx, chromedp.Evaluate[contrastResult](focusJS))
		if err != nil {
			t.Fatalf("measure the focus ring: %v", err)
		}
		results = append(results, r)
	}
	for _, r := range results {
		if r.Ratio < r.Need {
			t.Errorf("%s: contrast %.2f:1, need %.1f:1", r.What, r.Ratio, r.Need)
		}
	}
}
