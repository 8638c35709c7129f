package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/pgtest"
	"github.com/latchkey/latchkey/internal/totp"
)

// The tests in this file run two `latchkey serve` nodes on one PostgreSQL database with the
// same keys, as behind a load balancer: what decides security holds across the nodes, and a
// push started on one node reaches a Latch app waiting on the other through LISTEN/NOTIFY.

// postStatus posts JSON without a session and returns the status and the Retry-After header.
func postStatus(t *testing.T, url string, body any) (int, string) {
	t.Helper()
	raw, _ := json.Marshal(body)
	resp, err := http.Post(url, "application/json", bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

// activatePhone activates a real `latch` for alice against node a.
func activatePhone(t *testing.T, a *pgNode) *latchApp {
	t.Helper()
	b := newBrowserAPI(t, a.url)
	if st := b.login(); st != "authenticated" {
		t.Fatalf("alice's first sign-in: state %q", st)
	}
	act := b.activation()
	phone := newLatch(t)
	phone.must("activate", act["code"].(string), "--server", a.url, "--name", "Phone")
	return phone
}

// Fan-out bounds. Without a wake-up from the other node, a waiting long poll sees a new
// challenge (or the browser an answer) only at its next database re-read, 2 s after the poll
// began; the polls here begin just before the event, so the delay would be close to 2 s (it
// is, with the relay taken out: 2.01 s and 1.8 s). With LISTEN/NOTIFY it is some
// milliseconds plus the latch process's own work.
const (
	deviceWakeBound  = time.Second
	browserWakeBound = 500 * time.Millisecond
)

// pushRound runs one deny and one approval of a push started on node b and answered by
// phone, which is activated against node a; it fails when either wake-up crosses the nodes
// slower than the bounds above.
func pushRound(t *testing.T, db *sql.DB, a, b *pgNode, phone *latchApp) {
	t.Helper()
	// Device direction: `latch deny` is already waiting on A (its signed long poll has left
	// a nonce in the database) when the push starts on B.
	br := newBrowserAPI(t, b.url)
	if st := br.login(); st != "second_factor" {
		t.Fatalf("login on B: state %q", st)
	}
	nonces := func() int {
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM device_nonces`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := nonces()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	deny := phone.cmd(ctx, "deny", "--timeout", "30s")
	var denyOut bytes.Buffer
	deny.Stdout, deny.Stderr = &denyOut, &denyOut
	if err := deny.Start(); err != nil {
		t.Fatal(err)
	}
	denied := make(chan error, 1)
	go func() { denied <- deny.Wait() }()
	for deadline := time.Now().Add(30 * time.Second); nonces() == before; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("latch deny did not reach node A:\n%s", denyOut.String())
		}
	}
	start := time.Now()
	code, m := br.call("POST", "/api/v1/login/push", nil)
	if code != 200 {
		t.Fatalf("push on B: %d %v", code, m)
	}
	if err := <-denied; err != nil {
		t.Fatalf("latch deny: %v\n%s", err, denyOut.String())
	}
	deviceWake := time.Since(start)
	if st := br.pushState(m["challenge_id"].(string)); st != "denied" {
		t.Fatalf("push state on B after deny on A: %q", st)
	}

	// Browser direction: the browser waits on B (long poll) while the phone approves on A.
	br = newBrowserAPI(t, b.url)
	id, number := br.push()
	// The long poll runs in its own goroutine, which must not end the test: it sends its
	// outcome back and the test goroutine judges it.
	type pollResult struct {
		state string
		at    time.Time
		err   error
	}
	seen := make(chan pollResult, 1)
	go func() {
		_, m, err := br.try("GET", "/api/v1/login/push/"+id+"?wait=25s", nil)
		state, _ := m["state"].(string)
		seen <- pollResult{state, time.Now(), err}
	}()
	phone.must("approve", "--number", number, "--timeout", "20s")
	approved := time.Now()
	poll := <-seen
	if poll.err != nil {
		t.Fatalf("long poll on B: %v", poll.err)
	}
	browserWake, state := poll.at.Sub(approved), poll.state
	if state != "approved" {
		t.Fatalf("push state on B after approval on A: %q", state)
	}
	if c, m := br.call("GET", "/api/v1/session", nil); c != 200 || m["mfa"] != true {
		t.Fatalf("session on B after push: %d %v", c, m)
	}
	t.Logf("push fan-out: device woken on A %v after the push on B; browser on B woken %v after the approval on A", deviceWake, browserWake)
	if deviceWake > deviceWakeBound {
		t.Errorf("a push started on B reached the device waiting on A after %v, want under %v (LISTEN/NOTIFY)", deviceWake, deviceWakeBound)
	}
	if browserWake > browserWakeBound {
		t.Errorf("an approval on A reached the browser waiting on B %v after the device finished, want under %v (LISTEN/NOTIFY)", browserWake, browserWakeBound)
	}
}

func TestMultiNode(t *testing.T) {
	dbURL := pgtest.Start(t)
	environ := multiNodeEnv(dbURL)
	createUsers(t, environ, "alice", "bob", "carol")
	a, b := startNode(t, environ), startNode(t, environ)
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	t.Run("totp replay across nodes", func(t *testing.T) {
		// Each browser has its own cookie jar; within one, the cookie goes to both nodes
		// (cookies belong to the host, 127.0.0.1, not the port).
		login := func(br *browserAPI, want string) {
			t.Helper()
			code, m := br.call("POST", "/api/v1/login", map[string]string{"username": "bob", "password": alicePassword})
			if code != 200 || m["state"] != want {
				t.Fatalf("login on %s: %d %v, want state %q", br.base, code, m, want)
			}
		}
		ba := newBrowserAPI(t, a.url)
		login(ba, "authenticated")
		code, en := ba.call("POST", "/api/v1/account/totp", nil)
		if code != 200 {
			t.Fatalf("enrol: %d %v", code, en)
		}
		key, err := totp.ParseURI(en["otpauth_uri"].(string))
		if err != nil {
			t.Fatal(err)
		}
		T := totp.Step(time.Now())
		if code, m := ba.call("POST", "/api/v1/account/totp/confirm", map[string]string{"code": totp.Code(key.Secret, T)}); code != 200 {
			t.Fatalf("confirm: %d %v", code, m)
		}
		next := totp.Code(key.Secret, T+1)
		ba = newBrowserAPI(t, a.url)
		login(ba, "second_factor")
		if code, m := ba.call("POST", "/api/v1/login/totp", map[string]string{"code": next}); code != 200 {
			t.Fatalf("code on node A: %d %v", code, m)
		}
		bb := newBrowserAPI(t, b.url)
		login(bb, "second_factor")
		if code, m := bb.call("POST", "/api/v1/login/totp", map[string]string{"code": next}); code != 401 {
			t.Fatalf("the same code on node B: %d %v, want 401", code, m)
		}
		if code, _ := bb.call("GET", "/api/v1/session", nil); code != 401 {
			t.Errorf("session on node B after the replay: %d, want 401", code)
		}
		var replays int
		if err := db.QueryRow(`SELECT COUNT(*) FROM audit_events WHERE action = 'totp.replayed'`).Scan(&replays); err != nil || replays != 1 {
			t.Errorf("totp.replayed audit events: %d, %v; want 1", replays, err)
		}
	})

	t.Run("throttling across nodes", func(t *testing.T) {
		wrong := map[string]string{"username": "carol", "password": "not carol's password at all"}
		// Five free failures, spread over the nodes: neither node alone has seen five.
		for i, n := range []*pgNode{a, b, a, b, a} {
			if code, _ := postStatus(t, n.url+"/api/v1/login", wrong); code != 401 {
				t.Fatalf("failure %d on %s: %d, want 401", i+1, n.url, code)
			}
		}
		var failures int
		if err := db.QueryRow(`SELECT failures FROM throttles WHERE key = 'user:carol'`).Scan(&failures); err != nil || failures != 5 {
			t.Errorf("carol's failures in the database: %d, %v; want 5", failures, err)
		}
		// The sixth attempt waits, on either node, even with the right password.
		if code, retry := postStatus(t, b.url+"/api/v1/login", wrong); code != 429 || retry == "" {
			t.Errorf("sixth attempt on B: %d (Retry-After %q), want 429 with Retry-After", code, retry)
		}
		if code, _ := postStatus(t, a.url+"/api/v1/login", map[string]string{"username": "carol", "password": alicePassword}); code != 429 {
			t.Errorf("right password on A while throttled: %d, want 429", code)
		}
	})

	t.Run("push from B approved by a device on A", func(t *testing.T) {
		phone := activatePhone(t, a)
		for range 3 {
			pushRound(t, db, a, b, phone)
		}
	})
}

// TestMultiNodePostgresRestart restarts PostgreSQL under two running nodes: /readyz answers
// 503 while the database is down and 200 once it is back, and the push relay reconnects by
// itself so that a push after the restart still crosses the nodes at once.
func TestMultiNodePostgresRestart(t *testing.T) {
	srv := pgtest.NewServer(t)
	dbURL := srv.Database(t)
	environ := multiNodeEnv(dbURL)
	createUsers(t, environ, "alice")
	a, b := startNode(t, environ), startNode(t, environ)
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	phone := activatePhone(t, a)
	pushRound(t, db, a, b, phone)

	srv.Stop(t)
	for _, n := range []*pgNode{a, b} {
		if code := readyz(t, n.url); code != http.StatusServiceUnavailable {
			t.Errorf("%s/readyz with the database down = %d, want 503", n.url, code)
		}
	}
	srv.Start(t)
	for _, n := range []*pgNode{a, b} {
		d := waitReady(t, n.url, http.StatusOK)
		t.Logf("%s ready %v after the database came back", n.url, d)
	}
	a.waitListening(t)
	b.waitListening(t)
	// The test's own connections died with the server; the nodes' pools recover by themselves.
	db.Close()
	if db, err = sql.Open("pgx", dbURL); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for range 2 {
		pushRound(t, db, a, b, phone)
	}
}
