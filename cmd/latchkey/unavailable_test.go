package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/latchkey/latchkey/internal/browsertest"
	"github.com/latchkey/latchkey/internal/pgtest"
)

// TestPostgresOutageAnswers503: while PostgreSQL is down, the JSON API and the pages answer
// 503 with Retry-After and a message that says to try again (not a 500 "something went
// wrong"), /readyz says 503 too, and once the database is back the same requests succeed
// without restarting the node.
func TestPostgresOutageAnswers503(t *testing.T) {
	srv := pgtest.NewServer(t)
	environ := multiNodeEnv(srv.Database(t))
	createUsers(t, environ, "alice")
	node := startNode(t, environ)
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	send := func(method, path, body string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, node.url+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp, string(raw)
	}
	login := `{"username":"alice","password":"` + alicePassword + `"}`
	if resp, body := send("POST", "/api/v1/login", login); resp.StatusCode != 200 {
		t.Fatalf("sign-in before the outage: %d %s", resp.StatusCode, body)
	}

	// A person signing in when the database goes away is told to try again shortly.
	ctx := browsertest.New(t, 3*time.Minute)
	do(t, ctx, "open the sign-in page",
		chromedp.Navigate(node.url+"/login"),
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), "alice"),
		chromedp.SendKeys(chromedp.CSS("#password"), alicePassword),
	)
	srv.Stop(t)
	do(t, ctx, "sign in during the outage",
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)),
		// The error page's own link: "h1" would match the sign-in page still showing.
		chromedp.WaitVisible(chromedp.CSS(`main a.button.secondary[href="/"]`)),
	)
	browsertest.Screenshot(t, ctx, "mailq-outage-sign-in")
	if h, page := text(t, ctx, "h1"), text(t, ctx, "main"); h != "Briefly unavailable" || !strings.Contains(page, "try again in a few seconds") {
		t.Errorf("sign-in page during the outage: %q / %q, want it to say to try again in a few seconds", h, page)
	}

	for _, c := range []struct {
		name, method, path, body string
		json                     bool
	}{
		{"sign-in", "POST", "/api/v1/login", login, true},
		{"session", "GET", "/api/v1/session", "", true},
		{"security API", "GET", "/api/v1/account/security", "", true},
		{"security page", "GET", "/settings/security", "", false},
	} {
		start := time.Now()
		resp, body := send(c.method, c.path, c.body)
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("%s: answered after %v, want a quick failure", c.name, took)
		}
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "5" {
			t.Errorf("%s during the outage: %d, Retry-After %q; want 503 with Retry-After 5\n%s", c.name, resp.StatusCode, resp.Header.Get("Retry-After"), body)
			continue
		}
		if c.json {
			var e errorJSON
			if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Code != "unavailable" || !strings.Contains(e.Error.Message, "try again") {
				t.Errorf("%s during the outage: body %s, want code unavailable and a message to try again", c.name, body)
			}
		} else if !strings.Contains(body, "try again in a few seconds") {
			t.Errorf("%s during the outage: the page does not say to try again:\n%s", c.name, body)
		}
	}
	if resp, _ := send("GET", "/readyz", ""); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz during the outage: %d, want 503", resp.StatusCode)
	}
	if strings.Contains(node.log(), "alicePassword") || strings.Contains(node.log(), alicePassword) {
		t.Error("the password appears in the log")
	}

	srv.Start(t)
	// Pool connections that died are dropped as they are next used; recovery takes moments.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, body := send("GET", "/api/v1/session", "")
		if resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the session is not back 15 s after the database: %d %s", resp.StatusCode, body)
		}
	}
	if resp, body := send("POST", "/api/v1/login", login); resp.StatusCode != 200 {
		t.Errorf("sign-in after the outage: %d %s", resp.StatusCode, body)
	}
}

type errorJSON struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}
