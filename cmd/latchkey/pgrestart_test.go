package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/pgtest"
	"github.com/latchkey/latchkey/internal/sqlstore"
	"github.com/latchkey/latchkey/internal/totp"
)

// TestPGRestartDuringLoad restarts PostgreSQL under two nodes while clients keep enrolling
// authenticator apps on one node and signing in with them on the other. While the database
// is away, requests fail cleanly and quickly (a 503 within seconds, never a hang, never
// another answer); the nodes recover by themselves (no restart) within a few seconds, and no
// request begun after the database is back fails; and every enrolment a node acknowledged
// (200 to the confirmation) is in the database afterwards with the secret the client was
// given, as is every code a node accepted at sign-in (the replay guard's step).
func TestPGRestartDuringLoad(t *testing.T) {
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip("restarts a PostgreSQL server under load")
	}
	const (
		workers = 4
		nUsers  = 400
		before  = 3 * time.Second         // load before the restart
		down    = 1500 * time.Millisecond // the database stopped
		// grace is how long after the database is back requests may still fail (pool
		// connections that died are dropped as they are next used); recovery must happen
		// within it, and the load goes on for after beyond it, when everything must succeed.
		grace     = 5 * time.Second
		after     = 4 * time.Second
		hangBound = 10 * time.Second // a failure must come quicker than this (connect timeout 5 s)
	)
	srv := pgtest.NewServer(t)
	dbURL := srv.Database(t)
	environ := multiNodeEnv(dbURL)
	secretsKey := multiNodeSecretsKey
	seedUsers(t, dbURL, secretsKey, alicePassword, nUsers, pgrUsername)
	nodes := []*pgNode{startNode(t, environ), startNode(t, environ)}

	users := make(chan string, nUsers)
	for i := range nUsers {
		users <- pgrUsername(i)
	}
	l := &pgrLoad{nodes: nodes, users: users, stop: make(chan struct{})}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { l.worker(w) })
	}
	for n := range nodes {
		wg.Go(func() { l.ready(n) })
	}

	time.Sleep(before)
	stopAt := time.Now()
	srv.Stop(t)
	time.Sleep(down)
	srv.Start(t)
	backAt := time.Now()
	t.Logf("PostgreSQL stopped at +%v, back at +%v", stopAt.Sub(l.t0()).Round(time.Millisecond), backAt.Sub(l.t0()).Round(time.Millisecond))
	time.Sleep(grace + after)
	close(l.stop)
	wg.Wait()

	// Classify every request by when it ran.
	okBy := backAt.Add(grace) // requests that begin after this must succeed
	var unexpected []string
	failedInOutage, worst := 0, time.Duration(0)
	var failedAfterBack []string // failures of requests that began after the database was back
	outageCodes := map[int]int{}
	recovered := make([]time.Duration, len(nodes))
	for i := range recovered {
		recovered[i] = -1
	}
	ackedBefore, ackedAfter := 0, 0
	l.mu.Lock()
	recs := l.recs
	acked := l.acked
	l.mu.Unlock()
	sort.Slice(recs, func(i, j int) bool { return recs[i].start.Before(recs[j].start) })
	for _, r := range recs {
		inOutage := r.end.After(stopAt) && r.start.Before(okBy)
		if r.ok() {
			if r.db && r.start.After(backAt) && recovered[r.node] < 0 {
				recovered[r.node] = r.end.Sub(backAt)
			}
			if r.op == "confirm" {
				if r.end.Before(stopAt) {
					ackedBefore++
				} else if r.start.After(backAt) {
					ackedAfter++
				}
			}
			continue
		}
		switch {
		case !inOutage:
			unexpected = append(unexpected, r.String(l.t0())+" (outside the outage)")
		case r.err != nil || r.code != http.StatusServiceUnavailable:
			unexpected = append(unexpected, r.String(l.t0())+" (during the outage: want a 503)")
		default:
			failedInOutage++
			outageCodes[r.code]++
			if r.start.After(backAt) {
				failedAfterBack = append(failedAfterBack, r.String(l.t0()))
			}
			worst = max(worst, r.end.Sub(r.start))
			if r.end.Sub(r.start) > hangBound {
				unexpected = append(unexpected, r.String(l.t0())+fmt.Sprintf(" (took longer than %v)", hangBound))
			}
		}
	}
	t.Logf("%d requests; %d failed cleanly during the outage %v (slowest failure %v), %d of them begun after the database was back; %d enrolments acknowledged before the stop, %d after the restart, %d in all; recovered %v after the database was back",
		len(recs), failedInOutage, outageCodes, worst.Round(time.Millisecond), len(failedAfterBack), ackedBefore, ackedAfter, len(acked), recovered)
	// The pools' dead connections are checked before they are reused once the server was
	// seen going away (sqlstore's ServerLost), so a request begun after the database is back
	// does not fail.
	if len(failedAfterBack) > 0 {
		t.Errorf("%d requests begun after the database was back failed:\n%s", len(failedAfterBack), strings.Join(failedAfterBack[:min(len(failedAfterBack), 30)], "\n"))
	}
	if len(unexpected) > 0 {
		t.Errorf("%d unexpected answers:\n%s", len(unexpected), strings.Join(unexpected[:min(len(unexpected), 30)], "\n"))
	}
	if failedInOutage == 0 {
		t.Errorf("no request failed while PostgreSQL was down: the test did not exercise the outage")
	}
	if ackedBefore == 0 || ackedAfter == 0 {
		t.Errorf("acknowledged enrolments: %d before the stop, %d after the restart; want some of each", ackedBefore, ackedAfter)
	}
	for n, d := range recovered {
		if d < 0 || d > grace {
			t.Errorf("node %s did not recover within %v of the database coming back (first success after %v)\n%s", nodes[n].url, grace, d, soakTail(nodes[n].log(), 40))
		}
	}

	// Every acknowledged enrolment and accepted code is in the database.
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, dbURL, sqlstore.Options{SecretsKey: secretsKey})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, a := range acked {
		u, err := db.FindUserByUsername(ctx, a.username)
		if err != nil {
			t.Errorf("%s: %v", a.username, err)
			continue
		}
		creds, err := db.FindTOTPCredentials(ctx, u.ID)
		if err != nil {
			t.Errorf("%s: %v", a.username, err)
			continue
		}
		var found *latchkey.TOTPCredential
		for _, c := range creds {
			if c.Confirmed() && bytes.Equal(c.Secret, a.secret) {
				found = c
			}
		}
		if found == nil {
			t.Errorf("the acknowledged enrolment of %s is not in the database (%d credentials)", a.username, len(creds))
			continue
		}
		if found.LastStep < a.accepted {
			t.Errorf("%s: last used step %d in the database, but step %d was accepted", a.username, found.LastStep, a.accepted)
		}
		if codes, err := db.FindRecoveryCodes(ctx, u.ID); err != nil || len(codes) != 10 {
			t.Errorf("%s: %d recovery codes, %v; want the 10 shown", a.username, len(codes), err)
		}
	}
	// And the nodes sign some of them in, each on both nodes.
	for i, a := range acked[:min(len(acked), 4)] {
		for n := range nodes {
			if err := l.signIn((i+n)%len(nodes), a); err != nil {
				t.Errorf("after the load: %v", err)
			}
		}
	}
}

func pgrUsername(i int) string { return fmt.Sprintf("pgr%04d", i) }

// pgrRec is one request and its answer.
type pgrRec struct {
	op         string
	node       int
	db         bool // the request needs the database
	start, end time.Time
	code       int
	want       int
	err        error
	user       string
}

func (r *pgrRec) ok() bool { return r.err == nil && r.code == r.want }

func (r *pgrRec) String(t0 time.Time) string {
	res := fmt.Sprint(r.code)
	if r.err != nil {
		res = r.err.Error()
	}
	return fmt.Sprintf("+%v..+%v node %d %s %s: %s, want %d", r.start.Sub(t0).Round(time.Millisecond), r.end.Sub(t0).Round(time.Millisecond), r.node, r.op, r.user, res, r.want)
}

// pgrAck is an acknowledged enrolment.
type pgrAck struct {
	username string
	secret   []byte
	accepted int64 // the highest step a node accepted a code for (the confirmation's, or a sign-in's)
	sent     int64 // the highest step a code was sent for
}

type pgrLoad struct {
	nodes []*pgNode
	users chan string
	stop  chan struct{}

	mu    sync.Mutex
	start time.Time
	recs  []*pgrRec
	acked []*pgrAck
}

func (l *pgrLoad) t0() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.start
}

func (l *pgrLoad) stopped() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

// pgrClient is a browser on one node.
type pgrClient struct {
	l    *pgrLoad
	node int
	hc   *http.Client
}

func (l *pgrLoad) client(node int, tr http.RoundTripper) *pgrClient {
	jar, _ := cookiejar.New(nil)
	return &pgrClient{l: l, node: node, hc: &http.Client{Jar: jar, Transport: tr, Timeout: 30 * time.Second}}
}

// call sends a JSON request, records it, and decodes the answer into out when it is want.
func (c *pgrClient) call(op, user, method, path string, body any, want int, out any) bool {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	rec := &pgrRec{op: op, node: c.node, db: path != "/readyz", user: user, want: want, start: time.Now()}
	req, _ := http.NewRequest(method, c.l.nodes[c.node].url+path, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err == nil {
		var raw []byte
		raw, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		rec.code = resp.StatusCode
		if err == nil && rec.code == want && out != nil {
			if err = json.Unmarshal(raw, out); err != nil {
				err = fmt.Errorf("%v in %s", err, raw)
			}
		}
	}
	rec.end, rec.err = time.Now(), err
	c.l.mu.Lock()
	c.l.recs = append(c.l.recs, rec)
	c.l.mu.Unlock()
	return rec.ok()
}

// worker enrols users on one node and signs them in on the other, alternating the nodes.
func (l *pgrLoad) worker(w int) {
	l.mu.Lock()
	if l.start.IsZero() {
		l.start = time.Now()
	}
	l.mu.Unlock()
	tr := &http.Transport{MaxIdleConnsPerHost: 2}
	defer tr.CloseIdleConnections()
	var mine []*pgrAck
	for i := w; !l.stopped(); i++ {
		var name string
		select {
		case name = <-l.users:
		default:
			return // every user is enrolled
		}
		a, again := l.enrol(l.client(i%len(l.nodes), tr), name)
		if a != nil {
			mine = append(mine, a)
		}
		if again {
			l.users <- name
			time.Sleep(50 * time.Millisecond) // the database is away: not too fast
		}
		// A sign-in of an earlier enrolment of this worker, on the other node.
		if len(mine) > 0 && !l.stopped() {
			a := mine[i%len(mine)]
			_ = l.signInWith(l.client((i+1)%len(l.nodes), tr), a)
		}
	}
}

// enrol signs a user in with the password, adds an authenticator app and confirms it. It
// returns the acknowledged enrolment, or again when the user can try once more: the attempt
// failed before the confirmation, which alone can leave the user with a second factor.
func (l *pgrLoad) enrol(c *pgrClient, name string) (_ *pgrAck, again bool) {
	var login struct{ State string }
	if !c.call("password", name, "POST", "/api/v1/login", map[string]string{"username": name, "password": alicePassword}, 200, &login) {
		return nil, true
	}
	if login.State != "authenticated" {
		c.l.fail(c, "password", name, fmt.Errorf("state %q, want authenticated", login.State))
		return nil, false
	}
	var begin struct{ Secret string }
	if !c.call("begin", name, "POST", "/api/v1/account/totp", struct{}{}, 200, &begin) {
		return nil, true
	}
	secret, err := totp.Decode(begin.Secret)
	if err != nil {
		c.l.fail(c, "begin", name, err)
		return nil, false
	}
	step := totp.Step(time.Now())
	var confirm struct {
		Enabled       bool     `json:"enabled"`
		RecoveryCodes []string `json:"recovery_codes"`
	}
	if !c.call("confirm", name, "POST", "/api/v1/account/totp/confirm", map[string]string{"code": totp.Code(secret, step)}, 200, &confirm) {
		return nil, false
	}
	if !confirm.Enabled || len(confirm.RecoveryCodes) != 10 {
		c.l.fail(c, "confirm", name, fmt.Errorf("answered %+v", confirm))
		return nil, false
	}
	a := &pgrAck{username: name, secret: secret, accepted: step, sent: step}
	l.mu.Lock()
	l.acked = append(l.acked, a)
	l.mu.Unlock()
	return a, false
}

// signInWith signs an enrolled user in with the password and a code for a step not sent
// before (when one is left in the window). The step is picked after the password step, with
// soakPickStep's margin: one picked before it could be T-1 of a window that ended during the
// password step, and refused.
func (l *pgrLoad) signInWith(c *pgrClient, a *pgrAck) error {
	if _, ok := soakPickStep(time.Now(), a.sent); !ok {
		return nil // every code of the window is spent
	}
	var login struct{ State string }
	if !c.call("signin-password", a.username, "POST", "/api/v1/login", map[string]string{"username": a.username, "password": alicePassword}, 200, &login) {
		return fmt.Errorf("%s: password step failed", a.username)
	}
	if login.State != "second_factor" {
		return l.fail(c, "signin-password", a.username, fmt.Errorf("state %q, want second_factor", login.State))
	}
	step, ok := soakPickStep(time.Now(), a.sent)
	if !ok {
		return nil
	}
	a.sent = step // sent: the node may accept it even if the answer is lost
	var done struct{ State string }
	if !c.call("signin-totp", a.username, "POST", "/api/v1/login/totp", map[string]string{"code": totp.Code(a.secret, step)}, 200, &done) {
		return fmt.Errorf("%s: code refused", a.username)
	}
	if done.State != "authenticated" {
		return l.fail(c, "signin-totp", a.username, fmt.Errorf("state %q, want authenticated", done.State))
	}
	l.mu.Lock()
	a.accepted = max(a.accepted, step)
	l.mu.Unlock()
	return nil
}

// signIn is signInWith for the test's own goroutine after the load, on a fresh client.
func (l *pgrLoad) signIn(node int, a *pgrAck) error {
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	return l.signInWith(l.client(node, tr), a)
}

// fail records an answer with the right status but the wrong content.
func (l *pgrLoad) fail(c *pgrClient, op, user string, err error) error {
	now := time.Now()
	l.mu.Lock()
	l.recs = append(l.recs, &pgrRec{op: op, node: c.node, user: user, start: now, end: now, err: err, want: 200})
	l.mu.Unlock()
	return fmt.Errorf("%s %s: %v", op, user, err)
}

// ready polls /readyz of a node as a load balancer does: 200, or 503 while the database is
// away.
func (l *pgrLoad) ready(n int) {
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := l.client(n, tr)
	for !l.stopped() {
		c.call("readyz", "", "GET", "/readyz", nil, 200, nil)
		time.Sleep(100 * time.Millisecond)
	}
}

// TestNodeAfterItsConnectionsEnded ends every connection of a node on the PostgreSQL server
// at once, as a restart or a fail-over does (FATAL 57P01), right after the node used its
// pool, and signs in at once: within a second, before pgx's own check would ping the
// connections. The push relay's listener, cut with the others, tells the store (ServerLost),
// so the pool checks each connection before it reuses it, and no request fails. Without that
// wiring, the first request met a dead connection and failed with a 503.
func TestNodeAfterItsConnectionsEnded(t *testing.T) {
	dbURL := pgtest.Start(t)
	environ := multiNodeEnv(dbURL)
	createUsers(t, environ, "alice", "bob", "carol", "dave")
	n := startNode(t, environ)
	admin, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	signIn := func(user string) int {
		code, _ := postStatus(t, n.url+"/api/v1/login", map[string]string{"username": user, "password": alicePassword})
		return code
	}
	// Sign-ins side by side, so that the pool holds several connections, the last of them
	// used just now.
	var wg sync.WaitGroup
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		wg.Go(func() {
			if code := signIn(u); code != http.StatusOK {
				t.Errorf("sign-in of %s before: %d", u, code)
			}
		})
	}
	wg.Wait()
	const others = `FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`
	var ended int
	if err := admin.QueryRow(`SELECT count(pg_terminate_backend(pid)) ` + others).Scan(&ended); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	n.waitListening(t) // the relay is back, and has told the store
	t.Logf("ended %d connections; the relay listened again after %v", ended, time.Since(begin).Round(time.Millisecond))
	if ended < 3 {
		t.Fatalf("ended %d connections, want the pool's and the relay's", ended)
	}
	failed, first := 0, time.Since(begin)
	for i := range 8 {
		if code := signIn([]string{"alice", "bob", "carol", "dave"}[i%4]); code != http.StatusOK {
			failed++
			t.Errorf("sign-in %d after the connections ended: %d", i, code)
		}
	}
	t.Logf("%d of 8 sign-ins failed, the first begun %v after the connections ended", failed, first.Round(time.Millisecond))
}
