package main

// The set-up shared by the fault and load tests (crash_test.go, soak_test.go,
// pgrestart_test.go, multinode_test.go, unavailable_test.go): building the server binary,
// its environment with fresh keys, users seeded straight into the database, a `latchkey
// serve` process, and in-process nodes on one PostgreSQL.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/password"
	"github.com/latchkey/latchkey/internal/sqlstore"
	"github.com/latchkey/latchkey/internal/totp"
)

// buildServer builds the latchkey binary into a temporary folder; with the race detector
// when this test binary has it, so that load on the server also looks for data races in it.
func buildServer(t *testing.T) string {
	t.Helper()
	race := false
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" && s.Value == "true" {
				race = true
			}
		}
	}
	bin := filepath.Join(t.TempDir(), "latchkey")
	args := []string{"build", "-o", bin}
	if race {
		args = append(args, "-race")
	}
	args = append(args, "github.com/latchkey/latchkey/cmd/latchkey")
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return bin
}

// processEnv is the environment of a server process: fresh random secrets and session keys,
// the extra variables, and this process's environment without its LATCHKEY_* variables (and
// without the variables extra sets). It returns the secrets key too, for seeding and checks.
func processEnv(extra ...string) (env []string, secretsKey []byte) {
	secretsKey, sessionKey := make([]byte, 32), make([]byte, 32)
	rand.Read(secretsKey)
	rand.Read(sessionKey)
	env = append([]string{
		"LATCHKEY_SECRETS_KEY=" + base64.StdEncoding.EncodeToString(secretsKey),
		"LATCHKEY_SESSION_KEY=" + base64.StdEncoding.EncodeToString(sessionKey),
	}, extra...)
	overridden := func(kv string) bool {
		if strings.HasPrefix(kv, "LATCHKEY_") {
			return true
		}
		for _, e := range extra {
			if name, _, _ := strings.Cut(e, "="); strings.HasPrefix(kv, name+"=") {
				return true
			}
		}
		return false
	}
	for _, kv := range os.Environ() {
		if !overridden(kv) {
			env = append(env, kv)
		}
	}
	return env, secretsKey
}

// seeder creates users straight in the database, as bench/seed.go does: one argon2id hash
// of the password with the server's parameters, shared by every user (the server still
// verifies it in full at every sign-in).
type seeder struct {
	db   *sqlstore.DB
	hash string
}

// newSeeder opens the database at dsn: a PostgreSQL URL, or the data folder of a SQLite
// server (created if missing). It is closed when the test ends; call Close to close it
// sooner.
func newSeeder(t *testing.T, dsn string, secretsKey []byte, pw string) *seeder {
	t.Helper()
	ctx := context.Background()
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		if err := os.MkdirAll(dsn, 0o700); err != nil {
			t.Fatal(err)
		}
		dsn = filepath.Join(dsn, "latchkey.db")
	}
	db, err := sqlstore.Open(ctx, dsn, sqlstore.Options{SecretsKey: secretsKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	hash, err := password.New(password.Options{}).Hash(ctx, pw)
	if err != nil {
		t.Fatal(err)
	}
	return &seeder{db: db, hash: hash}
}

// Close closes the database.
func (s *seeder) Close() { s.db.Close() }

// user creates a user without a second factor, with the email name@example.com.
func (s *seeder) user(t *testing.T, name string) *latchkey.User {
	t.Helper()
	u := &latchkey.User{Username: name, Email: name + "@example.com", Role: latchkey.RoleUser, PasswordHash: s.hash}
	if err := s.db.CreateUser(context.Background(), u); err != nil {
		t.Fatalf("seed %s: %v", name, err)
	}
	return u
}

// userWithTOTP creates a user with a confirmed authenticator app whose step 1 counts as
// used, and returns the app's secret.
func (s *seeder) userWithTOTP(t *testing.T, name string) []byte {
	t.Helper()
	ctx := context.Background()
	u := s.user(t, name)
	secret, err := totp.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	c := &latchkey.TOTPCredential{UserID: u.ID, Name: "Authenticator app", Secret: secret}
	if err := s.db.CreateTOTPCredential(ctx, c); err != nil {
		t.Fatalf("seed %s: %v", name, err)
	}
	if err := s.db.ConfirmTOTPCredential(ctx, c.ID, 1, time.Now(), nil, false); err != nil {
		t.Fatalf("seed %s: %v", name, err)
	}
	return secret
}

// seedUsers creates users without a second factor, named name(0) … name(n-1), and closes
// the database.
func seedUsers(t *testing.T, dsn string, secretsKey []byte, pw string, n int, name func(int) string) {
	t.Helper()
	s := newSeeder(t, dsn, secretsKey, pw)
	defer s.Close()
	for i := range n {
		s.user(t, name(i))
	}
}

// serverProcess is a running `latchkey serve` process. Lines of its log that keep accepts
// (all when nil) are kept; keep runs with mu held, so it may update state guarded by mu.
type serverProcess struct {
	cmd  *exec.Cmd
	url  string
	done chan struct{} // closed when the process has exited

	mu    sync.Mutex
	lines []string
	keep  func(line string) bool
}

func (p *serverProcess) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// noWorkday is the session block of every test server's configuration: no workday rule. The
// tests run real servers at the real time; with the default workday end (19:00 in the
// server's zone, UTC here) a test that signed in with a second factor just before it would
// find its session ended just after. The workday rule is tested on a clock of its own in
// internal/login and internal/web.
const noWorkday = "session:\n  workday_end: \"\"\n"

// withConfig returns the arguments of `latchkey serve` with a configuration file that turns
// the workday rule off, unless they name a file already (writeConfig's files turn it off too).
// A server given its file in LATCHKEY_CONFIG gets none: the flag would win over it.
func withConfig(t *testing.T, args ...string) []string {
	t.Helper()
	if slices.Contains(args, "--config") {
		return args
	}
	return append(args, "--config", writeConfig(t, ""))
}

// startProcess runs `bin serve --addr 127.0.0.1:0 --data data` with env and waits until it
// listens (at most 60 s). The process is killed when the test ends, if it still runs.
func startProcess(t *testing.T, bin, data string, env []string, keep func(string) bool) *serverProcess {
	t.Helper()
	args := []string{"serve", "--addr", "127.0.0.1:0", "--data", data}
	if !slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "LATCHKEY_CONFIG=") }) {
		args = withConfig(t, args...)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &serverProcess{cmd: cmd, done: make(chan struct{}), keep: keep}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-p.done })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			if p.keep == nil || p.keep(line) {
				p.lines = append(p.lines, line)
			}
			p.mu.Unlock()
			if m := listenRe.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		_ = cmd.Wait()
		close(p.done)
	}()
	select {
	case a := <-addr:
		p.url = "http://" + a
	case <-p.done:
		t.Fatalf("latchkey serve exited before listening:\n%s", p.log())
	case <-time.After(60 * time.Second):
		t.Fatalf("latchkey serve did not listen within 60 s:\n%s", p.log())
	}
	return p
}

// kill ends the process with SIGKILL: no shutdown, no flush, no WAL checkpoint.
func (p *serverProcess) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
}

// pgNode is one node, run in-process on a free port.
type pgNode struct {
	url       string
	mu        sync.Mutex
	lines     []string
	listening chan struct{} // one per "push relay listening" line: the relay is (re)connected
}

func (n *pgNode) log() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return strings.Join(n.lines, "\n")
}

// waitListening waits until the node's push relay has (re)connected once more.
func (n *pgNode) waitListening(t *testing.T) {
	t.Helper()
	select {
	case <-n.listening:
	case <-time.After(30 * time.Second):
		t.Fatalf("the push relay of %s did not (re)connect within 30 s:\n%s", n.url, n.log())
	}
}

// multiNodeEnv is the environment of every node: the database and the shared keys.
func multiNodeEnv(dbURL string) func(string) string {
	k := func(b byte) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32)) }
	return env(map[string]string{"LATCHKEY_DATABASE": dbURL, "LATCHKEY_SESSION_KEY": k(7), "LATCHKEY_SECRETS_KEY": k(8)})
}

// multiNodeSecretsKey is the secrets key of multiNodeEnv, for seeding and checks.
var multiNodeSecretsKey = bytes.Repeat([]byte{8}, 32)

// createUsers creates users with `latchkey user create` and the password alicePassword.
func createUsers(t *testing.T, environ func(string) string, users ...string) {
	t.Helper()
	for _, u := range users {
		var out, errb strings.Builder
		if err := run(context.Background(), []string{"user", "create", "--username", u, "--email", u + "@example.com", "--password-stdin"},
			environ, strings.NewReader(alicePassword+"\n"), &out, &errb); err != nil {
			t.Fatalf("user create %s: %v\n%s", u, err, errb.String())
		}
	}
}

// startNode runs `latchkey serve` in-process with environ and waits until it listens and
// its push relay is connected. It is stopped, and must shut down cleanly, when the test ends.
func startNode(t *testing.T, environ func(string) string) *pgNode {
	t.Helper()
	n := &pgNode{listening: make(chan struct{}, 16)}
	args := []string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir()}
	if environ("LATCHKEY_CONFIG") == "" {
		args = withConfig(t, args...)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, args, environ, nil, io.Discard, pw)
		pw.Close()
	}()
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			n.mu.Lock()
			n.lines = append(n.lines, line)
			n.mu.Unlock()
			if m := listenRe.FindStringSubmatch(line); m != nil {
				addr <- m[1]
			}
			if strings.Contains(line, `msg="push relay listening`) {
				n.listening <- struct{}{}
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve did not shut down cleanly: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("serve did not shut down within 20 s")
		}
	})
	select {
	case a := <-addr:
		n.url = "http://" + a
	case err := <-done:
		t.Fatalf("serve on postgres exited: %v\n%s", err, n.log())
	case <-time.After(30 * time.Second):
		t.Fatalf("serve on postgres did not start:\n%s", n.log())
	}
	n.waitListening(t)
	return n
}

// readyz returns the status of base/readyz.
func readyz(t *testing.T, base string) int {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(base + "/readyz")
	if err != nil {
		t.Fatalf("readyz: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitReady polls /readyz until it answers want.
func waitReady(t *testing.T, base string, want int) time.Duration {
	t.Helper()
	start := time.Now()
	for got := readyz(t, base); got != want; got = readyz(t, base) {
		if time.Since(start) > 60*time.Second {
			t.Fatalf("%s/readyz = %d for 60 s, want %d", base, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}
