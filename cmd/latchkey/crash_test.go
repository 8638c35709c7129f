package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/sqlstore"
	"github.com/latchkey/latchkey/internal/totp"
)

// TestCrashDuringEnrolments runs the real latchkey binary on SQLite, drives concurrent TOTP
// enrolments and sign-ins over the JSON API, and kills the process with SIGKILL in the
// middle, three times at different points. After each kill: every enrolment the server
// acknowledged (200 to the confirmation) is in the database with its secret and its recovery
// codes, no credential or recovery code set is half-written, SQLite's integrity check passes,
// `latchkey audit verify` succeeds, and the restarted server signs the users in with their
// codes.
func TestCrashDuringEnrolments(t *testing.T) {
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip("builds and kills the server")
	}
	bin := buildServer(t)
	data := filepath.Join(t.TempDir(), "data")
	env, secretsKey := processEnv()

	// Seed users without a second factor straight into the database, as bench/seed.go does:
	// one argon2id hash with the server's parameters, shared by every user.
	const workers, perRound, rounds = 8, 120, 3
	seedUsers(t, data, secretsKey, crashPassword, rounds*perRound, crashUsername)

	acked := map[string]*crashAck{} // username → acknowledged enrolment
	kills := []time.Duration{700 * time.Millisecond, 1500 * time.Millisecond, 2300 * time.Millisecond}
	for round, after := range kills {
		srv := startCrashServer(t, bin, data, env)
		// Acknowledged enrolments of earlier rounds sign in on the restarted server.
		crashSignInSample(t, srv.url, acked, 4)

		users := make(chan string, perRound)
		for i := range perRound {
			users <- crashUsername(round*perRound + i)
		}
		close(users)
		var mu sync.Mutex
		var unexpected []string
		done := make(chan struct{})
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				c := newCrashClient(srv.url)
				var mine []*crashAck
				for name := range users {
					select {
					case <-done:
						return
					default:
					}
					a, err := c.enrol(name, round)
					if errors.Is(err, errServerGone) {
						return
					} else if err != nil {
						mu.Lock()
						unexpected = append(unexpected, err.Error())
						mu.Unlock()
						return
					}
					mu.Lock()
					acked[name] = a
					mu.Unlock()
					mine = append(mine, a)
					// A sign-in of an earlier enrolment of this worker, mixed into the load.
					if len(mine) > 1 {
						if err := c.signIn(mine[len(mine)-2]); errors.Is(err, errServerGone) {
							return
						} else if err != nil {
							mu.Lock()
							unexpected = append(unexpected, err.Error())
							mu.Unlock()
						}
					}
				}
			})
		}
		time.Sleep(after)
		// On a busy machine (race detector, parallel packages) the first enrolments can take
		// longer than the planned moment: kill once this round has at least one acknowledged.
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			mu.Lock()
			ackedNow := slices.ContainsFunc(slices.Collect(maps.Values(acked)), func(a *crashAck) bool { return a.round == round })
			mu.Unlock()
			if ackedNow {
				break
			}
		}
		srv.kill(t)
		close(done)
		wg.Wait()
		if len(unexpected) > 0 {
			t.Fatalf("round %d: errors before the kill (not caused by it):\n%s\nserver log:\n%s", round, strings.Join(unexpected, "\n"), srv.log())
		}
		n := 0
		for _, a := range acked {
			if a.round == round {
				n++
			}
		}
		t.Logf("round %d: killed after %v with %d enrolments acknowledged in this round (%d in all)", round, after, n, len(acked))
		if n == 0 {
			t.Fatalf("round %d: no enrolment was acknowledged before the kill; the test proves nothing\n%s", round, srv.log())
		}
		crashCheckDatabase(t, data, secretsKey, acked)
		crashAuditVerify(t, bin, data, env)
	}
	// The last restart: every acknowledged enrolment signs in, with a code, or with one of its
	// recovery codes when every code of the current window was used during the load.
	srv := startCrashServer(t, bin, data, env)
	n := crashSignInSample(t, srv.url, acked, len(acked))
	t.Logf("after the last restart, %d acknowledged enrolments signed in with a code, %d with a recovery code", n, len(acked)-n)
	srv.kill(t)
}

// crashAck is an enrolment the server acknowledged.
type crashAck struct {
	username string
	secret   []byte
	step     int64 // the highest TOTP step sent for this user, acknowledged or not
	codes    []string
	used     int // recovery codes sent so far: codes[used] is the next
	round    int
}

const crashPassword = "correct horse battery staple, crash"

func crashUsername(i int) string { return fmt.Sprintf("crash%04d", i) }

// startCrashServer starts the binary on data and waits until /readyz answers 200.
func startCrashServer(t *testing.T, bin, data string, env []string) *serverProcess {
	t.Helper()
	p := startProcess(t, bin, data, env, nil)
	waitReady(t, p.url, http.StatusOK)
	return p
}

var errServerGone = errors.New("the server is gone")

// crashClient is one browser: a cookie jar and the JSON API.
type crashClient struct {
	base string
	hc   *http.Client
}

func newCrashClient(base string) *crashClient {
	jar, _ := cookiejar.New(nil)
	return &crashClient{base: base, hc: &http.Client{Jar: jar, Timeout: 20 * time.Second}}
}

// post sends a JSON request and decodes a 2xx answer into out. A failed connection (the
// server was killed) is errServerGone; anything else that is not 2xx is an error.
func (c *crashClient) post(path string, body, out any) error {
	b, _ := json.Marshal(body)
	resp, err := c.hc.Post(c.base+path, "application/json", bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("%w: %v", errServerGone, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%w: %v", errServerGone, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %d %s", path, resp.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("POST %s: %v in %s", path, err, raw)
		}
	}
	return nil
}

// enrol signs in with the password, adds an authenticator app and confirms it.
func (c *crashClient) enrol(username string, round int) (*crashAck, error) {
	var login struct{ State string }
	if err := c.post("/api/v1/login", map[string]string{"username": username, "password": crashPassword}, &login); err != nil {
		return nil, err
	}
	if login.State != "authenticated" {
		return nil, fmt.Errorf("%s: state %q after the password, want authenticated", username, login.State)
	}
	var begin struct{ Secret string }
	if err := c.post("/api/v1/account/totp", struct{}{}, &begin); err != nil {
		return nil, err
	}
	secret, err := totp.Decode(begin.Secret)
	if err != nil {
		return nil, err
	}
	step := totp.Step(time.Now())
	var confirm struct {
		Enabled       bool     `json:"enabled"`
		RecoveryCodes []string `json:"recovery_codes"`
	}
	if err := c.post("/api/v1/account/totp/confirm", map[string]string{"code": totp.Code(secret, step)}, &confirm); err != nil {
		return nil, err
	}
	if !confirm.Enabled || len(confirm.RecoveryCodes) != 10 {
		return nil, fmt.Errorf("%s: confirmation answered %+v", username, confirm)
	}
	return &crashAck{username: username, secret: secret, step: step, codes: confirm.RecoveryCodes, round: round}, nil
}

// signIn signs a user in with the password and a code for a step not used before. The step is
// picked after the password step, with soakPickStep's margin: one picked before it could be
// T-1 of a window that ended during the password step (a hash), and refused.
func (c *crashClient) signIn(a *crashAck) error {
	if _, ok := soakPickStep(time.Now(), a.step); !ok {
		return nil // every code of the window is used; not this time
	}
	jar, _ := cookiejar.New(nil)
	c.hc.Jar = jar
	var login struct{ State string }
	if err := c.post("/api/v1/login", map[string]string{"username": a.username, "password": crashPassword}, &login); err != nil {
		return err
	}
	if login.State != "second_factor" {
		return fmt.Errorf("%s: state %q after the password, want second_factor", a.username, login.State)
	}
	step, ok := soakPickStep(time.Now(), a.step)
	if !ok {
		return nil
	}
	a.step = step // sent: the server may have used it even if the answer never arrives
	var done struct{ State string }
	if err := c.post("/api/v1/login/totp", map[string]string{"code": totp.Code(a.secret, step)}, &done); err != nil {
		return err
	}
	if done.State != "authenticated" {
		return fmt.Errorf("%s: state %q after the code", a.username, done.State)
	}
	return nil
}

// signInRecovery signs a user in with the password and the next unused recovery code of those
// the confirmation showed (a sample of an earlier round may have used one).
func (c *crashClient) signInRecovery(a *crashAck) error {
	if a.used == len(a.codes) {
		return fmt.Errorf("%s: every recovery code was used", a.username)
	}
	var login struct{ State string }
	if err := c.post("/api/v1/login", map[string]string{"username": a.username, "password": crashPassword}, &login); err != nil {
		return err
	}
	if login.State != "second_factor" {
		return fmt.Errorf("%s: state %q after the password, want second_factor", a.username, login.State)
	}
	code := a.codes[a.used]
	a.used++ // sent: the server may have used it even if the answer never arrives
	var done struct{ State string }
	if err := c.post("/api/v1/login/recovery", map[string]string{"code": code}, &done); err != nil {
		return err
	}
	if done.State != "authenticated" {
		return fmt.Errorf("%s: state %q after the recovery code", a.username, done.State)
	}
	return nil
}

// crashSignInSample signs in up to n acknowledged users, with the password and a code, and
// returns how many it tried. With n = len(acked), those whose every code of the window is
// used sign in with a recovery code instead.
func crashSignInSample(t *testing.T, base string, acked map[string]*crashAck, n int) int {
	t.Helper()
	tried := 0
	for _, a := range acked {
		if tried == n {
			break
		}
		if _, ok := soakPickStep(time.Now(), a.step); !ok {
			if n == len(acked) {
				if err := newCrashClient(base).signInRecovery(a); err != nil {
					t.Errorf("acknowledged enrolment of %s after the restart, with a recovery code: %v", a.username, err)
				}
			}
			continue
		}
		if err := newCrashClient(base).signIn(a); err != nil {
			t.Errorf("acknowledged enrolment of %s after the restart: %v", a.username, err)
		}
		tried++
	}
	return tried
}

// crashCheckDatabase opens the database the killed server left and checks it.
func crashCheckDatabase(t *testing.T, data string, secretsKey []byte, acked map[string]*crashAck) {
	t.Helper()
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, filepath.Join(data, "latchkey.db"), sqlstore.Options{SecretsKey: secretsKey})
	if err != nil {
		t.Fatalf("open the database after the kill: %v", err)
	}
	defer db.Close()
	q := db.SQL()
	var integrity string
	if err := q.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&integrity); err != nil || integrity != "ok" {
		t.Fatalf("PRAGMA integrity_check = %q, %v", integrity, err)
	}
	rows, err := q.QueryContext(ctx, "PRAGMA foreign_key_check")
	if err != nil {
		t.Fatal(err)
	}
	if rows.Next() {
		t.Errorf("PRAGMA foreign_key_check reports a dangling row")
	}
	rows.Close()
	for _, c := range []struct{ what, query string }{
		{"confirmed credentials without a whole secret (nonce, 20 bytes, tag)",
			"SELECT COUNT(*) FROM totp_credentials WHERE confirmed_at IS NOT NULL AND length(secret) < 12 + 20 + 16"},
		{"confirmed credentials without recovery codes",
			"SELECT COUNT(*) FROM totp_credentials t WHERE confirmed_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM recovery_codes r WHERE r.user_id = t.user_id)"},
		{"recovery code sets of another size than 10",
			"SELECT COUNT(*) FROM (SELECT user_id FROM recovery_codes GROUP BY user_id HAVING COUNT(*) != 10)"},
		{"recovery codes of users without a confirmed factor",
			"SELECT COUNT(DISTINCT user_id) FROM recovery_codes r WHERE NOT EXISTS (SELECT 1 FROM totp_credentials t WHERE t.user_id = r.user_id AND t.confirmed_at IS NOT NULL)"},
		{"users with more than one confirmed authenticator app",
			"SELECT COUNT(*) FROM (SELECT user_id FROM totp_credentials WHERE confirmed_at IS NOT NULL GROUP BY user_id HAVING COUNT(*) > 1)"},
		{"confirmed credentials with no step used",
			"SELECT COUNT(*) FROM totp_credentials WHERE confirmed_at IS NOT NULL AND last_step <= 0"},
	} {
		var n int
		if err := q.QueryRowContext(ctx, c.query).Scan(&n); err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		if n != 0 {
			t.Errorf("after the kill: %d %s", n, c.what)
		}
	}
	// Every credential decrypts (the associated data binds it to its row).
	ids, err := q.QueryContext(ctx, "SELECT id FROM users")
	if err != nil {
		t.Fatal(err)
	}
	var users []latchkey.UserID
	for ids.Next() {
		var id latchkey.UserID
		if err := ids.Scan(&id); err != nil {
			t.Fatal(err)
		}
		users = append(users, id)
	}
	ids.Close()
	for _, id := range users {
		if _, err := db.FindTOTPCredentials(ctx, id); err != nil {
			t.Errorf("user %d: the TOTP credentials do not read back: %v", id, err)
		}
	}
	// Every acknowledged enrolment is there, with the secret the user was given.
	for name, a := range acked {
		u, err := db.FindUserByUsername(ctx, name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		creds, err := db.FindTOTPCredentials(ctx, u.ID)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		found := false
		for _, c := range creds {
			if c.Confirmed() && bytes.Equal(c.Secret, a.secret) {
				found = true
			}
		}
		if !found {
			t.Errorf("the acknowledged enrolment of %s is not in the database (%d credentials)", name, len(creds))
		}
		codes, err := db.FindRecoveryCodes(ctx, u.ID)
		if err != nil || len(codes) != 10 {
			t.Errorf("%s: %d recovery codes, %v; want the 10 shown", name, len(codes), err)
		}
	}
}

// crashAuditVerify runs `latchkey audit verify` on the data folder.
func crashAuditVerify(t *testing.T, bin, data string, env []string) {
	t.Helper()
	cmd := exec.Command(bin, "audit", "verify", "--data", data)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "audit trail intact") {
		t.Fatalf("latchkey audit verify after the kill: %v\n%s", err, out)
	}
}
