package main

import (
	"bufio"
	"database/sql"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/mail/mailtest"
)

// TestMailOutboxWiring: notifications go through the persisted outbox. With the mail server
// down, a password change still answers at once and the mail waits in the outbox (the gauge
// on /metrics says so); once the server is back on the same port the mail arrives, once, and
// the gauge returns to zero. mail_retry: 200ms keeps the retries quick.
func TestMailOutboxWiring(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "latchkey.yaml")
	if err := os.WriteFile(cfg, []byte("mail_retry: 200ms\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServerArgs(t, []string{"--config", cfg}, "alice")
	if m := soakMetrics(t, s.url); m["latchkey_mail_outbox_pending"] != 0 || m["latchkey_mail_outbox_failed"] != 0 {
		t.Fatalf("outbox gauges at start: pending %v, failed %v; want both exported as 0", m["latchkey_mail_outbox_pending"], m["latchkey_mail_outbox_failed"])
	} else if _, ok := m["latchkey_mail_outbox_pending"]; !ok {
		t.Fatal("/metrics has no latchkey_mail_outbox_pending")
	}
	c := newCrashClient(s.url)
	if err := c.post("/api/v1/login", map[string]string{"username": "alice", "password": alicePassword}, nil); err != nil {
		t.Fatal(err)
	}
	// Delivered through the queue while the server is up.
	const first = "a brand new passphrase 1"
	if err := c.post("/api/v1/account/password", map[string]string{"current_password": alicePassword, "new_password": first}, nil); err != nil {
		t.Fatal(err)
	}
	waitMail(t, s, "Your password was changed")
	// The test server keeps a message before it answers 250: closing it in between would
	// leave the first message pending (its sender saw no answer) and make two pending below.
	for deadline := time.Now().Add(10 * time.Second); soakMetrics(t, s.url)["latchkey_mail_outbox_pending"] != 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			logOutbox(t, s)
			t.Fatal("the first message is still pending after it arrived")
		}
	}

	s.mail.Close()
	start := time.Now()
	if err := c.post("/api/v1/account/password", map[string]string{"current_password": first, "new_password": "a brand new passphrase 2"}, nil); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the password change took %v with the mail server down; mail should not hold up requests", d)
	}
	// The gauge follows the worker's round, which the password change started.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		m := soakMetrics(t, s.url)
		if m["latchkey_mail_outbox_pending"] == 1 {
			break
		}
		if time.Now().After(deadline) {
			logOutbox(t, s)
			t.Fatalf("latchkey_mail_outbox_pending = %v with the mail server down, want 1", m["latchkey_mail_outbox_pending"])
		}
	}
	if n := len(s.mail.Messages()); n != 1 {
		t.Errorf("%d messages arrived, want only the first", n)
	}

	// The mail server comes back on the same port: the waiting message arrives, once.
	s.mail = mailtest.StartServerWith(t, mailtest.Options{Addr: s.mail.Addr()})
	waitMail(t, s, "Your password was changed")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		m := soakMetrics(t, s.url)
		if m["latchkey_mail_outbox_pending"] == 0 && m["latchkey_mail_outbox_failed"] == 0 {
			break
		}
		if time.Now().After(deadline) {
			logOutbox(t, s)
			t.Fatalf("outbox gauges after the mail server came back: pending %v, failed %v; want 0", m["latchkey_mail_outbox_pending"], m["latchkey_mail_outbox_failed"])
		}
	}
	if n := len(s.mail.Messages()); n != 1 {
		t.Errorf("%d messages arrived after the mail server came back, want 1", n)
	}
}

// logOutbox logs the outbox rows (never the bodies), to explain a failure.
func logOutbox(t *testing.T, s *testServer) {
	db, err := sql.Open("sqlite", filepath.Join(s.data, "latchkey.db"))
	if err != nil {
		t.Log(err)
		return
	}
	defer db.Close()
	rows, err := db.Query(`SELECT id, subject, state, attempts, last_error FROM mail_outbox`)
	if err != nil {
		t.Log(err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var id, attempts int
		var subject, state, lastErr string
		if err := rows.Scan(&id, &subject, &state, &attempts, &lastErr); err == nil {
			t.Logf("outbox %d %q: %s after %d attempts: %s", id, subject, state, attempts, lastErr)
		}
	}
}

// TestConfigMailRetry: mail_retry defaults to 30 s and must be positive and at most an hour.
func TestConfigMailRetry(t *testing.T) {
	cfg, _, err := parse("serve", nil, env(nil), io.Discard, append(commonFlags, serveFlags...), nil)
	if err != nil || time.Duration(cfg.MailRetry) != 30*time.Second {
		t.Fatalf("default mail_retry = %v, %v; want 30s", cfg, err)
	}
	for _, v := range []string{"0s", "-1s", "2h"} {
		file := filepath.Join(t.TempDir(), "latchkey.yaml")
		if err := os.WriteFile(file, []byte("mail_retry: "+v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, err := parse("serve", []string{"--config", file}, env(nil), io.Discard, append(commonFlags, serveFlags...), nil)
		if err == nil || !strings.Contains(err.Error(), "mail_retry") {
			t.Errorf("mail_retry: %s accepted (%v), want an error naming mail_retry", v, err)
		}
	}
}

// TestWriterMetrics: on SQLite /metrics exports what the batch writer did; a sign-in (its
// flow, an audit entry) moves the counters of writes, batches and busy time.
func TestWriterMetrics(t *testing.T) {
	s := startServerArgs(t, nil, "alice")
	m0 := soakMetrics(t, s.url)
	for _, name := range []string{"latchkey_sqlite_writer_busy_seconds_total", "latchkey_sqlite_writer_batches_total", "latchkey_sqlite_writer_writes_total", "latchkey_sqlite_writer_reads_total"} {
		if _, ok := m0[name]; !ok {
			t.Fatalf("/metrics has no %s", name)
		}
	}
	c := newCrashClient(s.url)
	if err := c.post("/api/v1/login", map[string]string{"username": "alice", "password": alicePassword}, nil); err != nil {
		t.Fatal(err)
	}
	m1 := soakMetrics(t, s.url)
	if m1["latchkey_sqlite_writer_writes_total"] <= m0["latchkey_sqlite_writer_writes_total"] ||
		m1["latchkey_sqlite_writer_batches_total"] <= m0["latchkey_sqlite_writer_batches_total"] ||
		m1["latchkey_sqlite_writer_busy_seconds_total"] <= m0["latchkey_sqlite_writer_busy_seconds_total"] {
		t.Errorf("a sign-in did not move the writer's counters: before %v, after %v", writerMetrics(m0), writerMetrics(m1))
	}
}

// writerMetrics are the writer's metrics of m, for messages.
func writerMetrics(m map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		if strings.HasPrefix(k, "latchkey_sqlite_writer_") {
			out[k] = v
		}
	}
	return out
}

// TestAuditMetrics: /metrics counts the audit entries the node committed by action and
// outcome: a wrong password, then the right one, move the password step's failure and success
// counters by one each, and a user created from the command line in another process is not
// this node's to count.
func TestAuditMetrics(t *testing.T) {
	s := startServerArgs(t, nil, "alice")
	const (
		failed = `latchkey_audit_events_total{action="login.password",outcome="failure"}`
		signed = `latchkey_audit_events_total{action="login.password",outcome="success"}`
	)
	m0 := labeledMetrics(t, s.url)
	if _, ok := m0[`latchkey_audit_events_total{action="user.created",outcome="success"}`]; ok {
		t.Errorf("the node counted an entry another process committed: %v", m0)
	}
	c := newCrashClient(s.url)
	if err := c.post("/api/v1/login", map[string]string{"username": "alice", "password": "not the password"}, nil); err == nil {
		t.Fatal("a wrong password signed in")
	}
	if err := c.post("/api/v1/login", map[string]string{"username": "alice", "password": alicePassword}, nil); err != nil {
		t.Fatal(err)
	}
	m1 := labeledMetrics(t, s.url)
	if m1[failed]-m0[failed] != 1 || m1[signed]-m0[signed] != 1 {
		t.Errorf("after one failed and one successful password step: %s %v → %v, %s %v → %v", failed, m0[failed], m1[failed], signed, m0[signed], m1[signed])
	}
}

// labeledMetrics scrapes base/metrics into a map from each sample's name with its labels, as
// the text format writes them, to its value.
func labeledMetrics(t *testing.T, base string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if strings.HasPrefix(line, "#") || i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m
}
