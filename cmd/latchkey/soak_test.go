package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/totp"
)

// TestSoak runs the real latchkey binary on SQLite under sustained mixed load for a bounded
// time (8 s; LATCHKEY_SOAK=5m for longer): password sign-ins followed by TOTP codes, session
// reads and sign-outs, wrong passwords and wrong codes from another address (intended 401 and
// 429), push sign-ins answered by a real `latch` (approved, denied or left pending), /healthz
// and /readyz. It asserts that no request gets anything but the answer it should (401 and 429
// only where intended), that the server logs no error, no panic and (when the test runs under
// the race detector, which then builds the server with it too) no data race, and that after
// the load, once the connections are closed, the server's goroutines return to their
// baseline and its heap after garbage collection has not grown beyond a bound. The figures
// come from the server's own /metrics (go_goroutines, go_gc_heap_live_bytes).
func TestSoak(t *testing.T) {
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip("builds the server and drives it for 8 s")
	}
	d := 8 * time.Second
	if v := os.Getenv("LATCHKEY_SOAK"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil || d <= 0 {
			t.Fatalf("LATCHKEY_SOAK=%q: want a duration such as 5m", v)
		}
	}
	t0 := time.Now()
	bin := buildServer(t)
	data := filepath.Join(t.TempDir(), "data")
	env, secretsKey := processEnv("GOTRACEBACK=all")
	// Each TOTP user signs in at most three times in the first 30-second window and once in
	// each later one (a code is accepted once), so the pool grows with the duration.
	nTOTP := 200
	if d > time.Minute {
		nTOTP = 600
	}
	pool, victims := soakSeed(t, data, secretsKey, nTOTP)
	srv := startSoakServer(t, bin, data, env)

	// alice signs in with push: her Latch is activated through the API by a real `latch`.
	b := newBrowserAPI(t, srv.url)
	if st := b.login(); st != "authenticated" {
		t.Fatalf("alice's first sign-in: state %q", st)
	}
	phone := newLatch(t)
	phone.must("activate", b.activation()["code"].(string), "--server", srv.url, "--name", "Phone")
	b.hc.CloseIdleConnections()

	// The attacker's requests come from 127.0.0.2, so that its failures fill another per-IP
	// bucket than the users' (the server does not trust X-Forwarded-For). Where that address
	// cannot be bound, it stays under the bucket of 127.0.0.1 (50 failures, one back every
	// 10 s) with a budget, so that the users' sign-ins never wait because of it.
	attackerAddr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}
	if conn, err := (&net.Dialer{LocalAddr: attackerAddr, Timeout: 5 * time.Second}).Dial("tcp", strings.TrimPrefix(srv.url, "http://")); err != nil {
		t.Logf("cannot send from 127.0.0.2 (%v): wrong passwords come from 127.0.0.1, within a budget", err)
		attackerAddr = nil
	} else {
		conn.Close()
	}

	load := &soakLoad{t: t, base: srv.url, pool: pool, victims: victims, phone: phone, attacker: attackerAddr, totpUsers: nTOTP}

	// Warm-up: every kind of request once or more, so that what the server starts lazily
	// (pool connections, templates, caches) is in the baseline.
	warm := load.run(2 * time.Second)
	if warm.failures() > 0 {
		t.Fatalf("warm-up: %d unexpected answers:\n%s\nserver log:\n%s", warm.failures(), warm.report(), srv.log())
	}
	load.closeIdle()
	baseG := soakSettle(t, srv)
	baseHeap := soakHeapAfterGC(t, srv)
	t.Logf("baseline after warm-up: %d goroutines, heap %s after GC", baseG, soakMiB(baseHeap))

	t.Logf("set up in %v (build, seed, latch activation, warm-up, baseline)", time.Since(t0))
	start := time.Now()
	st := load.run(d)
	elapsed := time.Since(start)
	t.Logf("load for %v:\n%s", elapsed.Round(time.Millisecond), st.summary(elapsed))
	if st.failures() > 0 {
		t.Errorf("%d unexpected answers under load:\n%s", st.failures(), st.report())
	}
	for _, need := range []string{"password 200", "totp 200", "session 200", "wrong-password 401", "push-approved 200", "healthz 200"} {
		if st.count(need) == 0 {
			t.Errorf("no %q under load: the soak did not exercise it", need)
		}
	}

	// After the load: the clients close their connections; the server's goroutines go back
	// to the baseline and its heap, after two collections (sync.Pool keeps objects through
	// one), stays within a bound.
	load.closeIdle()
	const goroutineMargin = 5
	var afterG int
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		afterG = int(soakMetrics(t, srv.url)["go_goroutines"])
		if afterG <= baseG+goroutineMargin || time.Now().After(deadline) {
			break
		}
	}
	afterHeap := soakHeapAfterGC(t, srv)
	heapBound := baseHeap + max(10<<20, baseHeap/2)
	t.Logf("after the load: %d goroutines (baseline %d), heap %s after GC (baseline %s, bound %s)",
		afterG, baseG, soakMiB(afterHeap), soakMiB(baseHeap), soakMiB(heapBound))
	if afterG > baseG+goroutineMargin {
		dump := srv.quit(t)
		t.Errorf("goroutines after the load: %d, baseline %d (margin %d): a leak; the server's goroutines by where they wait:\n%s", afterG, baseG, goroutineMargin, soakGoroutines(dump))
	}
	if afterHeap > heapBound {
		t.Errorf("heap after GC after the load: %s, baseline %s: grew beyond %s", soakMiB(afterHeap), soakMiB(baseHeap), soakMiB(heapBound))
	}
	srv.stop(t)
}

// soakUser is a seeded user with a confirmed authenticator app. A user is taken from the
// pool by one client at a time, so last needs no lock.
type soakUser struct {
	name   string
	secret []byte
	last   int64 // the highest step a code was sent for
}

// soakSeed creates the users straight in the database, with one argon2id hash of
// alicePassword (the server still verifies it in full at every sign-in): n users with an
// authenticator app (step 1 used), two victims without a second factor and two with one
// (for wrong passwords and wrong codes), a reader, and alice without a second factor (her
// Latch is activated over the API).
func soakSeed(t *testing.T, data string, secretsKey []byte, n int) (pool chan *soakUser, victims []*soakUser) {
	t.Helper()
	sd := newSeeder(t, data, secretsKey, alicePassword)
	defer sd.Close()
	withTOTP := func(name string) *soakUser {
		return &soakUser{name: name, secret: sd.userWithTOTP(t, name), last: 1}
	}
	for _, name := range []string{"alice", "reader", "victim1", "victim2"} {
		sd.user(t, name)
	}
	victims = []*soakUser{withTOTP("victim3"), withTOTP("victim4")}
	pool = make(chan *soakUser, n)
	for i := range n {
		pool <- withTOTP(fmt.Sprintf("soak%04d", i))
	}
	return pool, victims
}

// soakServer is a running `latchkey serve`. Its access log is counted, not kept; every other
// line is kept.
type soakServer struct {
	*serverProcess
	access  int      // guarded by mu
	status5 []string // access lines with a 5xx status; guarded by mu
}

func startSoakServer(t *testing.T, bin, data string, env []string) *soakServer {
	t.Helper()
	s := &soakServer{}
	s.serverProcess = startProcess(t, bin, data, env, func(line string) bool {
		if !strings.Contains(line, `msg="http request"`) {
			return true
		}
		s.access++
		if strings.Contains(line, " status=5") {
			s.status5 = append(s.status5, line)
		}
		return false
	})
	return s
}

// quit ends the server with SIGQUIT and returns its log, which ends with every goroutine's
// stack.
func (s *soakServer) quit(t *testing.T) string {
	t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
	}
	return s.log()
}

// stop ends the server as SIGTERM does and checks that it shut down cleanly and logged no
// error, panic or data race, and that no request got a 5xx.
func (s *soakServer) stop(t *testing.T) {
	t.Helper()
	select {
	case <-s.done:
		return // quit already ended it
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the server did not shut down within 30 s of SIGTERM:\n%s", soakTail(s.log(), 200))
	}
	log := s.log()
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("the server exited with %d after SIGTERM (66: the race detector found a race):\n%s", code, soakTail(log, 400))
	}
	var bad []string
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "level=ERROR") || strings.Contains(line, "DATA RACE") || strings.Contains(line, "panic") {
			bad = append(bad, line)
		}
	}
	if len(bad) > 0 {
		t.Errorf("the server logged %d errors, panics or races under load:\n%s\n\nlog:\n%s", len(bad), soakTail(strings.Join(bad, "\n"), 50), soakTail(log, 400))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.status5) > 0 {
		t.Errorf("%d of %d requests got a 5xx:\n%s", len(s.status5), s.access, soakTail(strings.Join(s.status5, "\n"), 20))
	}
}

// soakGoroutines summarises a goroutine dump (SIGQUIT): how many goroutines wait in each
// function of ours (or the first frame outside the runtime) and who created them.
func soakGoroutines(dump string) string {
	count := map[string]int{}
	for _, block := range strings.Split(dump, "\n\n") {
		lines := strings.Split(strings.TrimSpace(block), "\n")
		if len(lines) == 0 || !strings.HasPrefix(lines[0], "goroutine ") {
			continue
		}
		var where, created string
		for _, line := range lines[1:] {
			switch {
			case strings.HasPrefix(line, "created by "):
				created = strings.TrimPrefix(line, "created by ")
			case where == "" && !strings.HasPrefix(line, "\t") && !strings.HasPrefix(line, "runtime.") && !strings.HasPrefix(line, "internal/"):
				where = line
				if i := strings.LastIndex(where, "("); i > 0 {
					where = where[:i]
				}
			}
		}
		if i := strings.Index(created, " in goroutine"); i > 0 {
			created = created[:i]
		}
		count[where+" ← "+created]++
	}
	keys := make([]string, 0, len(count))
	for k := range count {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return count[keys[i]] > count[keys[j]] || count[keys[i]] == count[keys[j]] && keys[i] < keys[j]
	})
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%5d  %s\n", count[k], k)
	}
	return b.String()
}

// soakTail returns the last n lines of s.
func soakTail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[... %d lines before]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

func soakMiB(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }

// soakMetrics reads the server's unlabelled Prometheus metrics, on a connection of its own
// that the server closes after the answer.
func soakMetrics(t *testing.T, base string) map[string]float64 {
	t.Helper()
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	m, err := soakScrape(c, base)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func soakScrape(c *http.Client, base string) (map[string]float64, error) {
	resp, err := c.Get(base + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("/metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("/metrics: %d", resp.StatusCode)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 || strings.HasPrefix(f[0], "#") || strings.Contains(f[0], "{") {
			continue
		}
		if v, err := strconv.ParseFloat(f[1], 64); err == nil {
			m[f[0]] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("/metrics: %v", err)
	}
	return m, nil
}

// soakSettle waits until the server's goroutine count holds still for a second and returns
// it.
func soakSettle(t *testing.T, s *soakServer) int {
	t.Helper()
	prev := -1
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		g := int(soakMetrics(t, s.url)["go_goroutines"])
		if g == prev || time.Now().After(deadline) {
			return g
		}
		prev = g
	}
}

// soakHeapAfterGC returns the server's heap just after a garbage collection that began once
// the load was over. The server has no endpoint that forces one, so two clients scrape
// /metrics (about 150 KB of garbage each time) until two more collections have run (sync.Pool
// keeps objects through one), and the first scrape that sees the second gives
// go_gc_heap_live_bytes: what the last collection found live. (go_memstats_heap_alloc_bytes
// also counts what that collection freed but has not swept yet: a 46 MiB argon2 matrix the
// sync.Pool dropped could still be in it, and the test failed on that now and then.)
func soakHeapAfterGC(t *testing.T, s *soakServer) float64 {
	t.Helper()
	const gcs = "go_gc_duration_seconds_count"
	first := soakMetrics(t, s.url)[gcs]
	var (
		once sync.Once
		heap float64
		err  error
		done = make(chan struct{})
	)
	deadline := time.Now().Add(60 * time.Second)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			c := &http.Client{Timeout: 30 * time.Second, Transport: tr}
			for {
				select {
				case <-done:
					return
				default:
				}
				m, e := soakScrape(c, s.url)
				if e == nil && m[gcs] < first+2 && time.Now().Before(deadline) {
					continue
				}
				once.Do(func() {
					switch {
					case e != nil:
						err = e
					case m[gcs] < first+2:
						err = fmt.Errorf("no two garbage collections within 60 s of scraping /metrics")
					default:
						heap = m["go_gc_heap_live_bytes"]
					}
					close(done)
				})
				return
			}
		})
	}
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	return heap
}

// soakStats counts answers by "kind status" and keeps the unexpected ones.
type soakStats struct {
	mu         sync.Mutex
	counts     map[string]int
	unexpected []string
	nUnexp     int
}

func (s *soakStats) add(kind string, code int) {
	s.mu.Lock()
	s.counts[fmt.Sprintf("%s %d", kind, code)]++
	s.mu.Unlock()
}

func (s *soakStats) failf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nUnexp++
	if len(s.unexpected) < 30 {
		s.unexpected = append(s.unexpected, time.Now().Format("15:04:05.000 ")+fmt.Sprintf(format, args...))
	}
}

func (s *soakStats) failures() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nUnexp
}

func (s *soakStats) count(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[key]
}

func (s *soakStats) report() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.unexpected, "\n")
}

func (s *soakStats) summary(d time.Duration) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.counts))
	total := 0
	for k, n := range s.counts {
		keys = append(keys, k)
		total += n
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  %-24s %7d\n", k, s.counts[k])
	}
	fmt.Fprintf(&b, "  %d requests, %.0f/s", total, float64(total)/d.Seconds())
	return b.String()
}

// soakLoad drives the mixed load.
type soakLoad struct {
	t         *testing.T
	base      string
	pool      chan *soakUser
	totpUsers int
	victims   []*soakUser // with an authenticator app; the attacker knows their password
	phone     *latchApp
	attacker  *net.TCPAddr // nil: the attacker shares 127.0.0.1, within a budget

	mu         sync.Mutex
	transports []*http.Transport
	attempts   int // the attacker's failures so far, when it shares 127.0.0.1
	since      time.Time
}

// soakClient is one client: its own connections, and a cookie jar per sign-in.
type soakClient struct {
	base string
	hc   *http.Client
}

func (l *soakLoad) client(local *net.TCPAddr) *soakClient {
	d := &net.Dialer{Timeout: 10 * time.Second}
	if local != nil {
		d.LocalAddr = local
	}
	tr := &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 4}
	l.mu.Lock()
	l.transports = append(l.transports, tr)
	l.mu.Unlock()
	return &soakClient{base: l.base, hc: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

// closeIdle closes every client connection, as clients going away do.
func (l *soakLoad) closeIdle() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, tr := range l.transports {
		tr.CloseIdleConnections()
	}
	l.transports = nil
}

// fresh starts a new browser: an empty cookie jar on the same connections.
func (c *soakClient) fresh() {
	jar, _ := cookiejar.New(nil)
	c.hc = &http.Client{Transport: c.hc.Transport, Timeout: c.hc.Timeout, Jar: jar}
}

func (c *soakClient) do(method, path string, body any) (int, map[string]any, error) {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, r)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, err
	}
	m := map[string]any{}
	if len(raw) > 0 && raw[0] == '{' {
		if err := json.Unmarshal(raw, &m); err != nil {
			return resp.StatusCode, nil, fmt.Errorf("%s %s: %v in %q", method, path, err, raw)
		}
	} else {
		m["raw"] = string(raw)
	}
	return resp.StatusCode, m, nil
}

// expect sends a request and checks its status against want; it counts the answer under
// kind and returns it, with ok false when it was not one of want.
func (c *soakClient) expect(st *soakStats, kind, method, path string, body any, want ...int) (int, map[string]any, bool) {
	code, m, err := c.do(method, path, body)
	if err != nil {
		st.failf("%s: %s %s: %v", kind, method, path, err)
		return 0, nil, false
	}
	st.add(kind, code)
	for _, w := range want {
		if code == w {
			return code, m, true
		}
	}
	st.failf("%s: %s %s: %d %v, want %v", kind, method, path, code, m, want)
	return code, m, false
}

// soakPickStep returns the step to send a code for, or false when the user has none left
// now (as the benchmark's pickStep: T-1 is left alone in the last 5 s of a window, since the
// server reads its clock later than we do).
func soakPickStep(now time.Time, last int64) (int64, bool) {
	s := totp.Step(now)
	for _, c := range [...]int64{s - 1, s, s + 1} {
		if c <= last {
			continue
		}
		if c == s-1 && time.Unix((s+1)*totp.Period, 0).Sub(now) < 5*time.Second {
			continue
		}
		return c, true
	}
	return 0, false
}

// run drives every kind of client for d and returns what they saw.
func (l *soakLoad) run(d time.Duration) *soakStats {
	st := &soakStats{counts: map[string]int{}}
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { l.signIns(st, end) })
	}
	wg.Go(func() { l.attack(st, end) })
	wg.Go(func() { l.pushes(st, end) })
	wg.Go(func() { l.reads(st, end) })
	wg.Go(func() { l.health(st, end) })
	wg.Wait()
	return st
}

// signIns signs users in with the password and a code, reads the session and signs out.
func (l *soakLoad) signIns(st *soakStats, end time.Time) {
	c := l.client(nil)
	busy := 0
	for n := 0; time.Now().Before(end); {
		var u *soakUser
		select {
		case u = <-l.pool:
		case <-time.After(time.Until(end)):
			return
		}
		step, ok := soakPickStep(time.Now(), u.last)
		if !ok {
			l.pool <- u
			if busy++; busy >= l.totpUsers {
				st.add("totp-pool-spent", 0)
				time.Sleep(250 * time.Millisecond)
				busy = 0
			}
			continue
		}
		busy = 0
		n++
		c.fresh()
		_, m, ok := c.expect(st, "password", "POST", "/api/v1/login", map[string]string{"username": u.name, "password": alicePassword}, 200)
		if ok && m["state"] != "second_factor" {
			st.failf("password: %s: state %v, want second_factor", u.name, m["state"])
			ok = false
		}
		if !ok {
			l.pool <- u
			continue
		}
		u.last = step // sent: the server may use it even if the answer is lost
		_, m, ok = c.expect(st, "totp", "POST", "/api/v1/login/totp", map[string]string{"code": totp.Code(u.secret, step)}, 200)
		l.pool <- u
		if !ok {
			continue
		}
		if m["state"] != "authenticated" {
			st.failf("totp: %s: state %v, want authenticated", u.name, m["state"])
			continue
		}
		for range 3 {
			if _, m, ok := c.expect(st, "session", "GET", "/api/v1/session", nil, 200); ok && m["mfa"] != true {
				st.failf("session: %s: %v, want mfa", u.name, m)
			}
		}
		if n%2 == 0 {
			c.expect(st, "logout", "POST", "/api/v1/logout", nil, 200)
			c.expect(st, "session-after-logout", "GET", "/api/v1/session", nil, 401)
		}
	}
}

// attackAllowed reports whether the attacker may send another failure now: always from its
// own address; from 127.0.0.1, 30 at first and then one every 15 s (the bucket gives one
// back every 10 s).
func (l *soakLoad) attackAllowed() bool {
	if l.attacker != nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.since.IsZero() {
		l.since = time.Now()
	}
	if l.attempts >= 30+int(time.Since(l.since)/(15*time.Second)) {
		return false
	}
	l.attempts++
	return true
}

// attack sends wrong passwords (known and unknown users) and, with the right password of a
// user with an authenticator app, wrong codes: 401 until the account or the address waits,
// then 429. Nothing it sends may sign in.
func (l *soakLoad) attack(st *soakStats, end time.Time) {
	c := l.client(l.attacker)
	for i := 0; time.Now().Before(end); i++ {
		time.Sleep(50 * time.Millisecond)
		if !l.attackAllowed() {
			continue
		}
		c.fresh()
		switch i % 4 {
		case 0, 1:
			c.expect(st, "wrong-password", "POST", "/api/v1/login", map[string]string{"username": fmt.Sprintf("victim%d", 1+i%2), "password": "not the password " + strconv.Itoa(i)}, 401, 429)
		case 2:
			c.expect(st, "unknown-user", "POST", "/api/v1/login", map[string]string{"username": fmt.Sprintf("nobody%d", i), "password": "not the password"}, 401, 429)
		case 3:
			v := l.victims[i/4%len(l.victims)]
			code, m, ok := c.expect(st, "attacker-password", "POST", "/api/v1/login", map[string]string{"username": v.name, "password": alicePassword}, 200, 401, 429)
			if !ok || code != 200 {
				continue
			}
			if m["state"] != "second_factor" {
				st.failf("attacker-password: state %v, want second_factor", m["state"])
				continue
			}
			c.expect(st, "wrong-code", "POST", "/api/v1/login/totp", map[string]string{"code": soakWrongCode(v.secret)}, 401, 429)
			c.expect(st, "attacker-session", "GET", "/api/v1/session", nil, 401)
		}
	}
}

// soakWrongCode returns a code that is none of the codes the server accepts around now.
func soakWrongCode(secret []byte) string {
	now := totp.Step(time.Now())
	for n := 0; ; n++ {
		code := fmt.Sprintf("%06d", n)
		ok := true
		for s := now - 2; s <= now+2; s++ {
			if totp.Code(secret, s) == code {
				ok = false
			}
		}
		if ok {
			return code
		}
	}
}

// pushes signs alice in with push, in turns: approved by `latch approve` while the browser
// long-polls, left pending (and then denied, since latch approves nothing while two wait),
// approved again, denied by `latch deny`.
func (l *soakLoad) pushes(st *soakStats, end time.Time) {
	c := l.client(nil)
	for i := 0; time.Now().Before(end); i++ {
		c.fresh()
		_, m, ok := c.expect(st, "push-password", "POST", "/api/v1/login", map[string]string{"username": "alice", "password": alicePassword}, 200)
		if !ok {
			continue
		}
		if m["state"] != "second_factor" {
			st.failf("push-password: state %v, want second_factor", m["state"])
			continue
		}
		_, m, ok = c.expect(st, "push-start", "POST", "/api/v1/login/push", nil, 200)
		if !ok {
			continue
		}
		id, _ := m["challenge_id"].(string)
		number, _ := m["number"].(string)
		if id == "" || number == "" {
			st.failf("push-start: %v", m)
			continue
		}
		path := "/api/v1/login/push/" + id
		switch i % 4 {
		case 0, 2:
			type answer struct {
				m  map[string]any
				ok bool
			}
			seen := make(chan answer, 1)
			go func() {
				_, m, ok := c.expect(st, "push-wait", "GET", path+"?wait=25s", nil, 200)
				seen <- answer{m, ok}
			}()
			out, errs, err := l.phone.run("approve", "--number", number, "--timeout", "30s")
			a := <-seen
			if err != nil {
				st.failf("latch approve: %v\n%s%s", err, out, errs)
				continue
			}
			st.add("push-approved", 200)
			if !a.ok {
				continue
			}
			if a.m["state"] == "pending" { // the long poll ended just before the answer
				_, a.m, a.ok = c.expect(st, "push-state", "GET", path, nil, 200)
			}
			if a.ok && a.m["state"] != "approved" {
				st.failf("push-wait: state %v after the approval, want approved", a.m["state"])
				continue
			}
			if _, m, ok := c.expect(st, "session", "GET", "/api/v1/session", nil, 200); ok && m["mfa"] != true {
				st.failf("session after push: %v, want mfa", m)
			}
		case 1:
			if _, m, ok := c.expect(st, "push-state", "GET", path, nil, 200); ok && m["state"] != "pending" {
				st.failf("push-state: %v, want pending", m["state"])
			}
			if out, errs, err := l.phone.run("deny", "--timeout", "30s"); err != nil {
				st.failf("latch deny of the request left pending: %v\n%s%s", err, out, errs)
			}
		case 3:
			if out, errs, err := l.phone.run("deny", "--timeout", "30s"); err != nil {
				st.failf("latch deny: %v\n%s%s", err, out, errs)
				continue
			}
			st.add("push-denied", 200)
			if _, m, ok := c.expect(st, "push-state", "GET", path, nil, 200); ok && m["state"] != "denied" {
				st.failf("push-state after deny: %v, want denied", m["state"])
			}
		}
	}
}

// reads keeps one signed-in session (reader, no second factor) and reads it and its
// security status.
func (l *soakLoad) reads(st *soakStats, end time.Time) {
	c := l.client(nil)
	c.fresh()
	if _, m, ok := c.expect(st, "reader-password", "POST", "/api/v1/login", map[string]string{"username": "reader", "password": alicePassword}, 200); !ok || m["state"] != "authenticated" {
		st.failf("reader: sign-in %v", m)
		return
	}
	for i := 0; time.Now().Before(end); i++ {
		if i%10 == 9 {
			c.expect(st, "security", "GET", "/api/v1/account/security", nil, 200)
		} else {
			c.expect(st, "session", "GET", "/api/v1/session", nil, 200)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// health asks /healthz, and /readyz now and then, as a load balancer does (more often).
func (l *soakLoad) health(st *soakStats, end time.Time) {
	c := l.client(nil)
	for i := 1; time.Now().Before(end); i++ {
		if i%20 == 0 {
			c.expect(st, "readyz", "GET", "/readyz", nil, 200)
		} else {
			c.expect(st, "healthz", "GET", "/healthz", nil, 200)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
