package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/latchkey/latchkey/internal/browsertest"
)

// The tests in this file drive real `latch` processes, built from ./cmd/latch, against the
// real server: activation, codes, push approval, deny, fraud, expiry, a second device,
// switching device, removal; in Chromium and in the terminal view under tmux.

var (
	latchOnce sync.Once
	latchBin  string
	latchErr  error
)

// buildLatch builds the latch binary once per test run.
func buildLatch(t *testing.T) string {
	t.Helper()
	latchOnce.Do(func() {
		dir, err := os.MkdirTemp("", "latch-bin-")
		if err != nil {
			latchErr = err
			return
		}
		latchBin = filepath.Join(dir, "latch")
		out, err := exec.Command("go", "build", "-o", latchBin, "github.com/latchkey/latchkey/cmd/latch").CombinedOutput()
		if err != nil {
			latchErr = fmt.Errorf("go build ./cmd/latch: %v\n%s", err, out)
		}
	})
	if latchErr != nil {
		t.Fatal(latchErr)
	}
	return latchBin
}

// latchApp is one installation of the app: its own --home.
type latchApp struct {
	t    *testing.T
	bin  string
	home string
}

func newLatch(t *testing.T) *latchApp {
	return &latchApp{t: t, bin: buildLatch(t), home: t.TempDir()}
}

func (l *latchApp) cmd(ctx context.Context, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, l.bin, append([]string{"--home", l.home}, args...)...)
	c.Env = append(os.Environ(), "LATCH_PASSPHRASE=test passphrase for the vault")
	return c
}

// run runs latch and returns its stdout, stderr and exit error.
func (l *latchApp) run(args ...string) (string, string, error) {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	c := l.cmd(ctx, args...)
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	return out.String(), errb.String(), err
}

// must runs latch and fails the test when it exits non-zero.
func (l *latchApp) must(args ...string) string {
	l.t.Helper()
	out, errs, err := l.run(args...)
	if err != nil {
		l.t.Fatalf("latch %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errs)
	}
	return out
}

// mustFail runs latch and fails the test when it exits zero.
func (l *latchApp) mustFail(args ...string) string {
	l.t.Helper()
	out, errs, err := l.run(args...)
	if err == nil {
		l.t.Fatalf("latch %s succeeded, want a failure\nstdout: %s\nstderr: %s", strings.Join(args, " "), out, errs)
	}
	return out + errs
}

// codes returns the codes `latch codes` prints, by label.
func (l *latchApp) codes() map[string]string {
	l.t.Helper()
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(l.must("codes")), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 {
			m[strings.Join(f[:len(f)-1], " ")] = f[len(f)-1]
		}
	}
	return m
}

// browserAPI is a cookie-keeping JSON client: the browser's side of a sign-in.
type browserAPI struct {
	t    *testing.T
	base string
	hc   *http.Client
}

func newBrowserAPI(t *testing.T, base string) *browserAPI {
	jar, _ := cookiejar.New(nil)
	return &browserAPI{t: t, base: base, hc: &http.Client{Jar: jar, Timeout: 60 * time.Second}}
}

// call sends a JSON request and returns the status and the decoded answer; a failed request
// ends the test, so call it only from the test's goroutine (see try).
func (b *browserAPI) call(method, path string, v any) (int, map[string]any) {
	b.t.Helper()
	code, m, err := b.try(method, path, v)
	if err != nil {
		b.t.Fatal(err)
	}
	return code, m
}

// try is call that returns a failed request as an error: safe in other goroutines.
func (b *browserAPI) try(method, path string, v any) (int, map[string]any, error) {
	var body io.Reader
	if v != nil {
		j, _ := json.Marshal(v)
		body = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, b.base+path, body)
	if v != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	if m == nil {
		m = map[string]any{"raw": string(raw)}
	}
	return resp.StatusCode, m, nil
}

func (b *browserAPI) login() string {
	b.t.Helper()
	code, m := b.call("POST", "/api/v1/login", map[string]string{"username": "alice", "password": alicePassword})
	if code != 200 {
		b.t.Fatalf("login: %d %v", code, m)
	}
	return m["state"].(string)
}

// push signs in with the password and starts a push; it returns the challenge and number.
func (b *browserAPI) push() (string, string) {
	b.t.Helper()
	if st := b.login(); st != "second_factor" {
		b.t.Fatalf("login state %q", st)
	}
	code, m := b.call("POST", "/api/v1/login/push", nil)
	if code != 200 {
		b.t.Fatalf("login/push: %d %v", code, m)
	}
	return m["challenge_id"].(string), m["number"].(string)
}

func (b *browserAPI) pushState(id string) string {
	b.t.Helper()
	_, m := b.call("GET", "/api/v1/login/push/"+id, nil)
	s, _ := m["state"].(string)
	return s
}

// reauth re-authenticates b's session fully: the password, then, when the server goes on to
// the second step (a user with a factor who gave none in the last 10 minutes), a push that
// approver approves.
func (b *browserAPI) reauth(password string, approver *latchApp) {
	b.t.Helper()
	code, m := b.call("POST", "/api/v1/account/reauthenticate", map[string]string{"password": password})
	if code != 200 {
		b.t.Fatalf("reauthenticate: %d %v", code, m)
	}
	if m["state"] != "second_factor" {
		return
	}
	code, m = b.call("POST", "/api/v1/login/push", nil)
	if code != 200 {
		b.t.Fatalf("login/push: %d %v", code, m)
	}
	id := m["challenge_id"].(string)
	approver.must("approve", "--number", m["number"].(string), "--timeout", "20s")
	if st := b.pushState(id); st != "approved" {
		b.t.Fatalf("re-authentication's push: %q", st)
	}
}

func (b *browserAPI) activation() map[string]any {
	b.t.Helper()
	code, m := b.call("POST", "/api/v1/account/devices/activation", nil)
	if code != 200 {
		b.t.Fatalf("activation: %d %v", code, m)
	}
	return m
}

func otherNumber(n string) string {
	v, _ := strconv.Atoi(n)
	return strconv.Itoa(10 + (v-10+1)%90)
}

// writeConfig writes a configuration file for a test server. Unless yaml sets workday_end,
// the file turns the workday rule off (see noWorkday).
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	switch {
	case strings.Contains(yaml, "workday_end"):
	case strings.HasPrefix(yaml, "session:\n") || strings.Contains(yaml, "\nsession:\n"):
		yaml = strings.Replace(yaml, "session:\n", noWorkday, 1)
	default:
		if yaml != "" && !strings.HasSuffix(yaml, "\n") {
			yaml += "\n"
		}
		yaml += noWorkday
	}
	p := filepath.Join(t.TempDir(), "latchkey.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLatchEndToEnd(t *testing.T) {
	cfg := writeConfig(t, "push:\n  expiry: 3s\n  fraud_pause: 3s\n")
	s := startServerArgs(t, []string{"--config", cfg}, "alice")
	phone := newLatch(t)

	// Journey 6: activation with the short code and the server's URL.
	b := newBrowserAPI(t, s.url)
	if st := b.login(); st != "authenticated" {
		t.Fatalf("state %q", st)
	}
	act := b.activation()
	phone.must("activate", act["code"].(string), "--server", s.url, "--name", "Phone")
	waitMail(t, s, "A new authenticator device was added")
	vaultPath := filepath.Join(phone.home, "vault.json")
	vault, err := os.ReadFile(vaultPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(vaultPath); fi.Mode().Perm() != 0o600 {
		t.Errorf("vault mode %v", fi.Mode().Perm())
	}
	if bytes.Contains(vault, []byte("alice")) || bytes.Contains(vault, []byte("private_key")) || bytes.Contains(vault, []byte(s.url)) {
		t.Error("the vault holds plain text")
	}

	// `latch codes` prints a code the server accepts (offline codes).
	codes := phone.codes()
	if len(codes) != 1 {
		t.Fatalf("codes = %v", codes)
	}
	var code string
	for _, c := range codes {
		code = c
	}
	b2 := newBrowserAPI(t, s.url)
	if st := b2.login(); st != "second_factor" {
		t.Fatalf("state %q", st)
	}
	if c, m := b2.call("POST", "/api/v1/login/totp", map[string]string{"code": code}); c != 200 {
		t.Fatalf("code from latch: %d %v", c, m)
	}

	// Journey 7: push approved with the number.
	b3 := newBrowserAPI(t, s.url)
	id, number := b3.push()
	phone.must("approve", "--number", number, "--timeout", "20s")
	if st := b3.pushState(id); st != "approved" {
		t.Fatalf("state after approve: %q", st)
	}
	if c, m := b3.call("GET", "/api/v1/session", nil); c != 200 || m["mfa"] != true {
		t.Fatalf("session: %d %v", c, m)
	}

	// A wrong number: nothing approved, the request is denied.
	b4 := newBrowserAPI(t, s.url)
	id, number = b4.push()
	phone.mustFail("approve", "--number", otherNumber(number), "--timeout", "20s")
	if st := b4.pushState(id); st != "denied" {
		t.Fatalf("state after a wrong number: %q", st)
	}

	// Deny.
	id, _ = b4.push()
	phone.must("deny", "--timeout", "20s")
	if st := b4.pushState(id); st != "denied" {
		t.Fatalf("state after deny: %q", st)
	}

	// Expiry (3 s here): the request expires, and nothing is left to approve.
	id, number = b4.push()
	time.Sleep(3500 * time.Millisecond)
	if st := b4.pushState(id); st != "expired" {
		t.Fatalf("state after expiry: %q", st)
	}
	phone.mustFail("approve", "--number", number, "--timeout", "2s")

	// "This wasn't me": denied, mailed, and pushes pause.
	id, _ = b4.push()
	phone.must("deny", "--fraud", "--timeout", "20s")
	if st := b4.pushState(id); st != "denied" {
		t.Fatalf("state after fraud: %q", st)
	}
	waitMail(t, s, "A sign-in request was reported as not yours")
	if c, _ := b4.call("POST", "/api/v1/login/push", nil); c != 429 {
		t.Fatalf("push during the pause: %d", c)
	}
	time.Sleep(3500 * time.Millisecond)

	// Journey 8: a second device, activated by URI, needs approval from the first.
	desk := newLatch(t)
	act = b.activation()
	if act["approval_required"] != true {
		t.Fatalf("second activation: %v", act)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := desk.cmd(ctx, "activate", act["uri"].(string), "--name", "Desktop")
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	numRe := regexp.MustCompile(`type (\d+)`)
	sc := bufio.NewScanner(stdout)
	var addNumber string
	var rest strings.Builder
	for sc.Scan() {
		rest.WriteString(sc.Text() + "\n")
		if m := numRe.FindStringSubmatch(sc.Text()); m != nil {
			addNumber = m[1]
			break
		}
	}
	if addNumber == "" {
		t.Fatalf("the new device did not ask for approval:\n%s\n%s", rest.String(), stderr.String())
	}
	phone.must("approve", "--number", addNumber, "--timeout", "20s")
	go io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("activation of the second device: %v\n%s", err, stderr.String())
	}
	if len(desk.codes()) != 1 {
		t.Fatal("the second device has no code")
	}
	if out := phone.must("devices"); !strings.Contains(out, "Desktop") || !strings.Contains(out, "Phone") {
		t.Errorf("devices:\n%s", out)
	}

	// Journey 9: switch device. The old one stops working at once.
	out := phone.must("switch-device")
	m := regexp.MustCompile(`\b([0-9A-Z]{5}-[0-9A-Z]{5})\b`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("switch-device printed no code:\n%s", out)
	}
	newPhone := newLatch(t)
	newPhone.must("activate", "--transfer", m[1], "--server", s.url, "--name", "New phone")
	waitMail(t, s, "Your authenticator moved to a new device")
	phone.mustFail("devices")
	id, number = b4.push()
	phone.mustFail("approve", "--number", number, "--timeout", "2s")
	newPhone.must("approve", "--number", number, "--timeout", "20s")
	if st := b4.pushState(id); st != "approved" {
		t.Fatalf("state after approval by the new phone: %q", st)
	}

	// Removal: the removed device's next answer fails.
	_, list := b.call("GET", "/api/v1/account/devices", nil)
	var newID float64
	for _, d := range list["devices"].([]any) {
		if d.(map[string]any)["name"] == "New phone" {
			newID = d.(map[string]any)["id"].(float64)
		}
	}
	b.reauth(alicePassword, newPhone) // the primary device, where pushes go
	if c, m := b.call("DELETE", fmt.Sprintf("/api/v1/account/devices/%d", int64(newID)), nil); c != 204 {
		t.Fatalf("remove: %d %v", c, m)
	}
	waitMail(t, s, "An authenticator device was removed")
	b5 := newBrowserAPI(t, s.url)
	_, number = b5.push() // now goes to the desktop, the only device left
	newPhone.mustFail("approve", "--number", number, "--timeout", "2s")
	desk.must("approve", "--number", number, "--timeout", "20s")
}

// TestBrowserPushSignIn signs in with push in Chromium: the page shows the number, `latch
// approve` types it, and the page moves on by itself.
func TestBrowserPushSignIn(t *testing.T) {
	s := startServer(t, "alice")
	phone := newLatch(t)
	ctx := browsertest.New(t, 3*time.Minute)
	shot := func(name string) { browsertest.Screenshot(t, ctx, "push-"+name) }

	signIn(t, ctx, s.url, "alice")
	do(t, ctx, "add authenticator page",
		chromedp.Navigate(s.url+"/settings/security/devices/add"),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/settings/security/devices/add"] button`)),
		chromedp.Click(chromedp.CSS(`form[action="/settings/security/devices/add"] button`)),
		chromedp.WaitVisible(chromedp.CSS("#activation-code")),
	)
	shot("01-activation")
	phone.must("activate", text(t, ctx, "#activation-code"), "--server", s.url, "--name", "Work laptop")
	do(t, ctx, "security page", chromedp.Navigate(s.url+"/settings/security"), chromedp.WaitVisible(chromedp.CSS(".device-name")))
	if name := text(t, ctx, ".device-name"); name != "Work laptop" {
		t.Errorf("device listed as %q", name)
	}
	shot("02-security-devices")
	signOut(t, ctx)

	signIn(t, ctx, s.url, "alice")
	do(t, ctx, "send push",
		chromedp.WaitVisible(chromedp.CSS(`form[action="/login/push"] button`)),
		chromedp.Click(chromedp.CSS(`form[action="/login/push"] button`)),
		chromedp.WaitVisible(chromedp.CSS("#push-number")),
	)
	number := text(t, ctx, "#push-number")
	if !regexp.MustCompile(`^\d{2}$`).MatchString(number) {
		t.Fatalf("number shown: %q", number)
	}
	shot("03-push-number")
	phone.must("approve", "--number", number, "--timeout", "20s")
	do(t, ctx, "page continues by itself", chromedp.WaitVisible(chromedp.CSS("h1.page-title")))
	if l := location(t, ctx); l != s.url+"/settings/security" {
		t.Fatalf("after approval at %s", l)
	}
	shot("04-signed-in")
}

// TestLatchTerminalView runs `latch` with no arguments in tmux: the request appears with its
// context, the user types the number and Enter, and the browser is signed in.
func TestLatchTerminalView(t *testing.T) {
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tmux is required (scripts/install-test-deps.sh installs it)")
		}
		t.Skip("tmux not installed")
	}
	s := startServer(t, "alice")
	phone := newLatch(t)
	b := newBrowserAPI(t, s.url)
	b.login()
	phone.must("activate", b.activation()["code"].(string), "--server", s.url, "--name", "Terminal")

	session := fmt.Sprintf("latch-test-%d", time.Now().UnixNano())
	cmdline := fmt.Sprintf("env LATCH_PASSPHRASE='test passphrase for the vault' %s --home %s", phone.bin, phone.home)
	if out, err := exec.Command(tmux, "new-session", "-d", "-s", session, "-x", "100", "-y", "30", cmdline).CombinedOutput(); err != nil {
		t.Fatalf("tmux: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command(tmux, "kill-session", "-t", session).Run() })
	capture := func() string {
		out, _ := exec.Command(tmux, "capture-pane", "-p", "-t", session).CombinedOutput()
		return string(out)
	}
	waitFor := func(what string, ok func(string) bool) string {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if sc := capture(); ok(sc) {
				return sc
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("terminal view never showed %s:\n%s", what, capture())
		return ""
	}
	// Accounts with a live code and a countdown.
	waitFor("the account with its code", func(sc string) bool {
		return strings.Contains(sc, "alice") && regexp.MustCompile(`\b\d{3} ?\d{3}\b`).MatchString(sc)
	})
	b2 := newBrowserAPI(t, s.url)
	id, number := b2.push()
	sc := waitFor("the sign-in request", func(sc string) bool { return strings.Contains(sc, "127.0.0.1") })
	if !strings.Contains(sc, "Latchkey") {
		t.Errorf("the request shows no application:\n%s", sc)
	}
	exec.Command(tmux, "send-keys", "-t", session, number, "Enter").Run()
	deadline := time.Now().Add(20 * time.Second)
	for b2.pushState(id) != "approved" {
		if time.Now().After(deadline) {
			t.Fatalf("not approved; screen:\n%s", capture())
		}
		time.Sleep(200 * time.Millisecond)
	}
	waitFor("the approval", func(sc string) bool { return strings.Contains(sc, "Approved") })
	// Deny from the view.
	b3 := newBrowserAPI(t, s.url)
	id, _ = b3.push()
	waitFor("the second request", func(sc string) bool { return strings.Contains(sc, "Sign-in request") })
	exec.Command(tmux, "send-keys", "-t", session, "d", "Enter").Run()
	deadline = time.Now().Add(20 * time.Second)
	for b3.pushState(id) != "denied" {
		if time.Now().After(deadline) {
			t.Fatalf("not denied; screen:\n%s", capture())
		}
		time.Sleep(200 * time.Millisecond)
	}
	exec.Command(tmux, "send-keys", "-t", session, "q", "Enter").Run()
}

// TestLatchVaultSafety: latch never registers a key it cannot keep, never acts when asked
// for help, and one account's removed device does not stop the others.
//   - activate without a passphrase to be had (no LATCH_PASSPHRASE, no OS keyring, no
//     terminal) fails before it reaches the server: the same code then activates;
//   - switch-device --help prints its usage and makes no transfer code;
//   - with two accounts in the vault and the device removed from one (bob's), approve still
//     answers the other's (alice's) request, devices lists alice's and fails for bob, and
//     switch-device asks which account; latch remove takes bob's out of the vault.
func TestLatchVaultSafety(t *testing.T) {
	s := startServerArgs(t, nil, "alice", "bob")
	phone := newLatch(t)
	ba := newBrowserAPI(t, s.url)
	ba.login()
	act := ba.activation()["code"].(string)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, phone.bin, "--home", phone.home, "activate", act, "--server", s.url, "--name", "Phone")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LATCH_PASSPHRASE=") && !strings.HasPrefix(kv, "DBUS_SESSION_BUS_ADDRESS=") {
			c.Env = append(c.Env, kv)
		}
	}
	c.Env = append(c.Env, "DBUS_SESSION_BUS_ADDRESS=unix:path=/nonexistent/latch-test-bus")
	if out, err := c.CombinedOutput(); err == nil || !strings.Contains(string(out), "LATCH_PASSPHRASE") {
		t.Fatalf("activate without a passphrase: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(phone.home, "vault.json")); err == nil {
		t.Fatal("a vault was written without a passphrase")
	}
	phone.must("activate", act, "--server", s.url, "--name", "Phone") // the code was not used up

	bb := newBrowserAPI(t, s.url)
	if c, m := bb.call("POST", "/api/v1/login", map[string]string{"username": "bob", "password": alicePassword}); c != 200 {
		t.Fatalf("bob's login: %d %v", c, m)
	}
	phone.must("activate", bb.activation()["code"].(string), "--server", s.url, "--name", "Phone")

	if out := phone.must("switch-device", "--help"); !strings.HasPrefix(out, "usage: latch [--home DIR] switch-device") || strings.Contains(out, "Transfer code") {
		t.Fatalf("switch-device --help:\n%s", out)
	}
	if out := phone.must("codes", "-h"); strings.Contains(out, "alice") {
		t.Fatalf("codes -h printed codes:\n%s", out)
	}
	if out := phone.mustFail("switch-device"); !strings.Contains(out, "--account") || strings.Contains(out, "Transfer code") {
		t.Fatalf("switch-device with two accounts:\n%s", out)
	}

	// Bob removes the phone.
	_, list := bb.call("GET", "/api/v1/account/devices", nil)
	devs := list["devices"].([]any)
	if len(devs) != 1 {
		t.Fatalf("bob's devices: %v", list)
	}
	bb.reauth(alicePassword, phone)
	if c, m := bb.call("DELETE", fmt.Sprintf("/api/v1/account/devices/%d", int64(devs[0].(map[string]any)["id"].(float64))), nil); c != 204 {
		t.Fatalf("remove: %d %v", c, m)
	}

	// approve starts before the request exists, so it goes round both accounts (bob's
	// refused) until alice's request comes. latch approve takes the number as a flag, so the
	// request is started first and answered by a second approve if the first found nothing.
	b2 := newBrowserAPI(t, s.url)
	if st := b2.login(); st != "second_factor" {
		t.Fatalf("login state %q", st)
	}
	polls := func() int { return strings.Count(s.log(), "path=/api/v1/device/challenges") }
	before := polls()
	out, errOut, err := phone.run("deny", "--timeout", "3s")
	if err == nil || !strings.Contains(errOut, "bob") || !strings.Contains(errOut, "no pending sign-in request") {
		t.Fatalf("deny with nothing pending and bob's registration refused: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}
	// About a poll a second for alice, one for bob: latch does not spin while it waits.
	if n := polls() - before; n > 8 {
		t.Errorf("deny --timeout 3s polled %d times", n)
	}
	code, m := b2.call("POST", "/api/v1/login/push", nil)
	if code != 200 {
		t.Fatalf("login/push: %d %v", code, m)
	}
	id, number := m["challenge_id"].(string), m["number"].(string)
	if out, errOut, err := phone.run("approve", "--number", number, "--timeout", "20s"); err != nil || b2.pushState(id) != "approved" {
		t.Fatalf("approve with bob's registration refused: %v, state %q\nstdout: %s\nstderr: %s", err, b2.pushState(id), out, errOut)
	}
	if out := phone.mustFail("devices"); !strings.Contains(out, "alice on") || !strings.Contains(out, "Phone") || !strings.Contains(out, "bob on") {
		t.Fatalf("devices with bob's registration refused:\n%s", out)
	}
	var bobLabel string
	for _, line := range strings.Split(phone.must("accounts"), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasSuffix(f[0], ":bob") {
			bobLabel = f[0]
		}
	}
	if bobLabel == "" {
		t.Fatal("accounts does not list bob")
	}
	if out := phone.must("remove", bobLabel); !strings.Contains(out, "Removed") {
		t.Fatalf("remove: %s", out)
	}
	if out := phone.must("devices"); strings.Contains(out, "bob") || !strings.Contains(out, "alice on") {
		t.Fatalf("devices after remove:\n%s", out)
	}
	phone.mustFail("remove", bobLabel)
}

// TestLatchInterrupted: Ctrl-C while approve waits for a request says it was interrupted and
// nothing was answered, and exits 130: not a failure to reach the server.
func TestLatchInterrupted(t *testing.T) {
	s := startServer(t, "alice")
	phone := newLatch(t)
	b := newBrowserAPI(t, s.url)
	b.login()
	phone.must("activate", b.activation()["code"].(string), "--server", s.url, "--name", "Phone")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	c := phone.cmd(ctx, "approve", "--number", "12", "--timeout", "30s")
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // it is waiting for a request now
	if err := c.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := c.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 || strings.TrimSpace(errb.String()) != "latch: interrupted; nothing was answered" {
		t.Fatalf("approve after Ctrl-C: %v, stderr %q", err, errb.String())
	}
}

// TestLatchApprovesNoneOfSeveral: with two requests waiting, the number the user read in one
// browser approves neither: latch cannot tell which is that browser's, and the other may be
// someone's who knows the password.
func TestLatchApprovesNoneOfSeveral(t *testing.T) {
	s := startServer(t, "alice")
	phone := newLatch(t)
	b := newBrowserAPI(t, s.url)
	if st := b.login(); st != "authenticated" {
		t.Fatalf("state %q", st)
	}
	phone.must("activate", b.activation()["code"].(string), "--server", s.url, "--name", "Phone")
	user, other := newBrowserAPI(t, s.url), newBrowserAPI(t, s.url)
	userID, number := user.push()
	otherID, _ := other.push()
	if out := phone.mustFail("approve", "--number", number, "--timeout", "20s"); !strings.Contains(out, "2 requests are waiting") || !strings.Contains(out, "approved none") {
		t.Errorf("latch approve with two requests waiting: %s", out)
	}
	if st := user.pushState(userID); st != "pending" {
		t.Errorf("the user's request: %q, want pending", st)
	}
	if st := other.pushState(otherID); st != "pending" {
		t.Errorf("the other request: %q, want pending", st)
	}
}
