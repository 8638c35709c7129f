package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/pgtest"
	"github.com/latchkey/latchkey/internal/totp"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestServeOnPostgres runs `latchkey serve --database postgres://...` with the keys from the
// environment, as several nodes would, and signs in with a password and TOTP through the JSON
// API; two servers on the same database share sessions.
func TestServeOnPostgres(t *testing.T) {
	dbURL := pgtest.Start(t)
	k := func(b byte) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32)) }
	environ := env(map[string]string{"LATCHKEY_DATABASE": dbURL, "LATCHKEY_SESSION_KEY": k(1), "LATCHKEY_SECRETS_KEY": k(2)})
	var out, errb strings.Builder
	if err := run(context.Background(), []string{"user", "create", "--username", "alice", "--email", "alice@example.com", "--password-stdin"},
		environ, strings.NewReader(alicePassword+"\n"), &out, &errb); err != nil {
		t.Fatalf("user create on postgres: %v\n%s", err, errb.String())
	}
	node := func() string {
		ctx, cancel := context.WithCancel(context.Background())
		pr, pw := io.Pipe()
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, withConfig(t, "serve", "--addr", "127.0.0.1:0", "--data", t.TempDir()), environ, nil, io.Discard, pw)
			pw.Close()
		}()
		addr := make(chan string, 1)
		go func() {
			sc := bufio.NewScanner(pr)
			for sc.Scan() {
				if m := listenRe.FindStringSubmatch(sc.Text()); m != nil {
					addr <- m[1]
				}
			}
		}()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		})
		select {
		case a := <-addr:
			if !strings.Contains(a, ":") {
				t.Fatal(a)
			}
			return "http://" + a
		case err := <-done:
			t.Fatalf("serve on postgres exited: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("serve on postgres did not start")
		}
		return ""
	}
	a, b := node(), node()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	post := func(base, path string, body any) map[string]any {
		t.Helper()
		raw, _ := json.Marshal(body)
		resp, err := c.Post(base+path, "application/json", bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		if resp.StatusCode != 200 {
			t.Fatalf("POST %s%s = %d %v", base, path, resp.StatusCode, m)
		}
		return m
	}
	post(a, "/api/v1/login", map[string]string{"username": "alice", "password": alicePassword})
	en := post(a, "/api/v1/account/totp", nil)
	key, err := totp.ParseURI(en["otpauth_uri"].(string))
	if err != nil {
		t.Fatal(err)
	}
	T := totp.Step(time.Now())
	post(a, "/api/v1/account/totp/confirm", map[string]string{"code": totp.Code(key.Secret, T)})
	post(a, "/api/v1/logout", nil)
	// The password step on node A, the code on node B: the flow lives in the shared database.
	if m := post(a, "/api/v1/login", map[string]string{"username": "alice", "password": alicePassword}); m["state"] != "second_factor" {
		t.Fatalf("login state %v", m)
	}
	// Cookies belong to the host, not the port, so the jar sends node A's cookie to node B.
	post(b, "/api/v1/login/totp", map[string]string{"code": totp.Code(key.Secret, T+1)})
	resp, err := c.Get(b + "/api/v1/session")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("session on node B = %d", resp.StatusCode)
	}
	if resp, err := http.Get(a + "/readyz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("readyz on postgres: %v %v", resp, err)
	}
}

// TestUserCreateOnPostgresLeavesNoFolder: `latchkey user create` on PostgreSQL, with the keys
// from the environment and no --data, writes nothing to the current folder (it once left an
// empty latchkey-data/outbox there, made for mail it never sends).
func TestUserCreateOnPostgresLeavesNoFolder(t *testing.T) {
	dbURL := pgtest.Start(t)
	dir := t.TempDir()
	t.Chdir(dir)
	createUsers(t, multiNodeEnv(dbURL), "alice")
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("user create on PostgreSQL left %v in the current folder", entries)
	}
}
