package mail_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/mail"
	"github.com/latchkey/latchkey/internal/mail/mailtest"
	"github.com/latchkey/latchkey/internal/pgtest"
	"github.com/latchkey/latchkey/internal/sqlstore"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var outboxBackends = []struct {
	name string
	dsn  func(t *testing.T) string
}{
	{"sqlite", func(t *testing.T) string { return filepath.Join(t.TempDir(), "outbox.db") }},
	{"postgres", func(t *testing.T) string { return pgtest.Start(t) }},
}

func openStore(t *testing.T, dsn string, now func() time.Time) *sqlstore.DB {
	t.Helper()
	db, err := sqlstore.Open(context.Background(), dsn, sqlstore.Options{SecretsKey: bytes.Repeat([]byte{7}, 32), Now: now})
	if err != nil {
		t.Fatalf("sqlstore.Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func smtpSender(t *testing.T, url string) mail.Sender {
	t.Helper()
	s, err := mail.New(mail.Options{SMTPURL: url, From: "Latchkey <latchkey@example.com>"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// observed passes messages to a real transport and reports every attempt's outcome, so a
// test can wait for attempts instead of sleeping.
type observed struct {
	mail.Sender
	attempts chan error
}

func (o *observed) Send(ctx context.Context, m mail.Message) error {
	err := o.Sender.Send(ctx, m)
	select {
	case o.attempts <- err:
	default:
	}
	return err
}

// runQueue runs q until the test ends and checks that it stops when asked.
func runQueue(t *testing.T, q *mail.Queue) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v, want nil after cancel", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return within 10 s of cancel")
		}
	})
}

func msg(i int) mail.Message {
	return mail.Message{To: "alice@example.com", Subject: fmt.Sprintf("Message %d", i), Text: fmt.Sprintf("Body %d: https://latchkey.example/t?token=abc%d", i, i), HTML: fmt.Sprintf("<p>Body %d</p>", i)}
}

// TestQueueSMTPDown: while the mail server is down, messages wait in the outbox and are
// retried; once it is back on the same port they all arrive, once each, and their bodies
// are deleted from the database.
func TestQueueSMTPDown(t *testing.T) {
	for _, b := range outboxBackends {
		t.Run(b.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			srv := mailtest.StartServer(t)
			addr, url := srv.Addr(), srv.URL()
			srv.Close()
			db := openStore(t, b.dsn(t), nil)
			tr := &observed{Sender: smtpSender(t, url), attempts: make(chan error, 100)}
			// Poll is an hour: delivery must come from the wake-up on Send and the retry timer.
			q := mail.NewQueue(mail.QueueOptions{Store: db, Transport: tr, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Poll: time.Hour})
			runQueue(t, q)
			const n = 3
			for i := range n {
				if err := q.Send(ctx, msg(i)); err != nil {
					t.Fatalf("Send: %v", err)
				}
			}
			// Every message is tried and fails, some more than once.
			for range 2 * n {
				select {
				case err := <-tr.attempts:
					if err == nil {
						t.Fatal("a message was delivered while the server was down")
					}
				case <-ctx.Done():
					t.Fatal("no delivery attempts while the server is down")
				}
			}
			st, err := db.MailStats(ctx, time.Now())
			if err != nil || st.Pending != n {
				t.Fatalf("MailStats while down = %+v, %v; want %d pending", st, err, n)
			}
			if p, _ := q.Stats(); p != n {
				t.Errorf("Stats pending = %d, want %d", p, n)
			}

			back := mailtest.StartServerWith(t, mailtest.Options{Addr: addr})
			got, err := back.Wait(ctx, n)
			if err != nil {
				t.Fatal(err)
			}
			if err := q.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			subjects := map[string]int{}
			for _, m := range back.Messages() {
				subjects[m.Subject]++
			}
			for i := range n {
				if c := subjects[msg(i).Subject]; c != 1 {
					t.Errorf("%q arrived %d times, want once", msg(i).Subject, c)
				}
			}
			if len(got) > 0 && !strings.Contains(got[0].Text, "Body") {
				t.Errorf("text part = %q", got[0].Text)
			}

			var bodies int
			if err := db.SQL().QueryRowContext(ctx, `SELECT COUNT(*) FROM mail_outbox WHERE body_text IS NOT NULL OR body_html IS NOT NULL`).Scan(&bodies); err != nil || bodies != 0 {
				t.Errorf("%d bodies left in the outbox (%v), want 0", bodies, err)
			}
			if st, err := db.MailStats(ctx, time.Now()); err != nil || st.Pending != 0 || st.Failed != 0 {
				t.Errorf("MailStats after delivery = %+v, %v", st, err)
			}
		})
	}
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time)     { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// TestQueuePermanentFailure: a message the server refuses is retried after 30 s, doubling to
// an hour, and marked failed (body deleted, the error kept and logged) once it has been
// failing for three days; other messages are not held up.
func TestQueuePermanentFailure(t *testing.T) {
	ctx := context.Background()
	srv := mailtest.StartServerWith(t, mailtest.Options{Reject: func(to string) error {
		if strings.HasPrefix(to, "nobody@") {
			return fmt.Errorf("no such user here")
		}
		return nil
	}})
	start := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	c := &clock{t: start}
	db := openStore(t, filepath.Join(t.TempDir(), "outbox.db"), c.Now)
	var logs bytes.Buffer
	q := mail.NewQueue(mail.QueueOptions{Store: db, Transport: smtpSender(t, srv.URL()), Now: c.Now, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	bad := mail.Message{To: "nobody@example.com", Subject: "Bounce", Text: "token=s3cret-link"}
	if err := q.Send(ctx, bad); err != nil {
		t.Fatal(err)
	}
	if err := q.Send(ctx, msg(1)); err != nil {
		t.Fatal(err)
	}
	if sent, err := q.DeliverDue(ctx); sent != 1 || err != nil {
		t.Fatalf("DeliverDue = %d, %v; want the good message sent", sent, err)
	}
	if _, err := srv.WaitFor(ctx, "alice@example.com", msg(1).Subject); err != nil {
		t.Fatal(err)
	}
	var gaps []time.Duration
	last := c.Now()
	for attempt := 2; ; attempt++ {
		st, err := db.MailStats(ctx, c.Now())
		if err != nil {
			t.Fatal(err)
		}
		if st.Pending == 0 {
			if st.Failed != 1 {
				t.Fatalf("MailStats = %+v, want 1 failed", st)
			}
			break
		}
		if attempt > 200 {
			t.Fatal("still pending after 200 attempts")
		}
		if st.Busy != 0 {
			t.Fatalf("attempt %d: a message is due before its backoff ended: %+v", attempt, st)
		}
		c.Set(st.NextDue)
		gaps = append(gaps, st.NextDue.Sub(last))
		last = st.NextDue
		if sent, err := q.DeliverDue(ctx); sent != 0 || err != nil {
			t.Fatalf("DeliverDue = %d, %v", sent, err)
		}
	}
	want := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 16 * time.Minute, 32 * time.Minute, time.Hour, time.Hour}
	for i, w := range want {
		if i >= len(gaps) || gaps[i] != w {
			t.Fatalf("waits between attempts = %v, want them to start %v", gaps, want)
		}
	}
	for _, g := range gaps[len(want):] {
		if g != time.Hour {
			t.Fatalf("waits between attempts = %v, want at most an hour", gaps)
		}
	}
	if elapsed := c.Now().Sub(start); elapsed < 72*time.Hour || elapsed > 73*time.Hour {
		t.Errorf("given up after %v, want after 72 h", elapsed)
	}
	var state, lastErr string
	var text sql.NullString
	if err := db.SQL().QueryRow(`SELECT state, body_text, last_error FROM mail_outbox WHERE subject = 'Bounce'`).Scan(&state, &text, &lastErr); err != nil {
		t.Fatal(err)
	}
	if state != "failed" || text.Valid || !strings.Contains(lastErr, "no such user") {
		t.Errorf("failed message: state %q, body %v, last error %q", state, text, lastErr)
	}
	if !strings.Contains(logs.String(), `msg="mail given up"`) || strings.Contains(logs.String(), "s3cret") {
		t.Errorf("log should say the message was given up on, without its body:\n%s", logs.String())
	}
	if n := len(srv.Messages()); n != 1 {
		t.Errorf("the server received %d messages, want 1", n)
	}
	if _, err := q.DeliverDue(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Messages()); n != 1 {
		t.Errorf("a failed message was tried again: %d messages", n)
	}
}

// TestQueueTwoWorkers: two nodes' workers on one PostgreSQL database deliver every message
// exactly once.
func TestQueueTwoWorkers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dsn := pgtest.Start(t)
	srv := mailtest.StartServer(t)
	var queues []*mail.Queue
	for range 2 {
		q := mail.NewQueue(mail.QueueOptions{Store: openStore(t, dsn, nil), Transport: smtpSender(t, srv.URL()), Poll: 50 * time.Millisecond})
		runQueue(t, q)
		queues = append(queues, q)
	}
	const n = 60
	for i := range n {
		if err := queues[i%2].Send(ctx, msg(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := srv.Wait(ctx, n); err != nil {
		t.Fatal(err)
	}
	for _, q := range queues {
		if err := q.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	got := srv.Messages()
	seen := map[string]int{}
	for _, m := range got {
		seen[m.Subject]++
	}
	if len(got) != n || len(seen) != n {
		t.Errorf("%d messages with %d subjects arrived, want %d once each", len(got), len(seen), n)
	}
}

// TestQueueRefusesBadRecipient: a message without a valid recipient is refused at once and
// not stored.
func TestQueueRefusesBadRecipient(t *testing.T) {
	ctx := context.Background()
	db := openStore(t, filepath.Join(t.TempDir(), "outbox.db"), nil)
	q := mail.NewQueue(mail.QueueOptions{Store: db, Transport: smtpSender(t, "smtp://127.0.0.1:1")})
	for _, to := range []string{"", "not an address", "a@b, c@d"} {
		if err := q.Send(ctx, mail.Message{To: to, Subject: "x", Text: "y"}); err == nil {
			t.Errorf("Send(To: %q) = nil, want an error", to)
		}
	}
	if st, err := db.MailStats(ctx, time.Now()); err != nil || st.Pending != 0 {
		t.Errorf("MailStats = %+v, %v; want nothing stored", st, err)
	}
}

// TestQueueKeepsDateAndHeaders: a message delivered late carries the time it was queued in
// its Date header, not the time it was finally sent, and the outbox keeps its extra header
// fields (a ticket's threading).
func TestQueueKeepsDateAndHeaders(t *testing.T) {
	ctx := context.Background()
	srv := mailtest.StartServer(t)
	queued := time.Date(2026, 11, 23, 9, 15, 0, 0, time.UTC)
	c := &clock{t: queued}
	q := mail.NewQueue(mail.QueueOptions{Store: openStore(t, filepath.Join(t.TempDir(), "outbox.db"), c.Now), Transport: smtpSender(t, srv.URL()), Now: c.Now})
	m := msg(1)
	m.Headers = map[string]string{"Message-ID": "<ticket-7-reply@latchkey.example>", "In-Reply-To": "<ticket-7@latchkey.example>"}
	if err := q.Send(ctx, m); err != nil {
		t.Fatal(err)
	}
	c.Add(2 * time.Hour)
	if sent, err := q.DeliverDue(ctx); sent != 1 || err != nil {
		t.Fatalf("DeliverDue = %d, %v", sent, err)
	}
	got, err := srv.Wait(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := got[0].Header.Date(); err != nil || !d.Equal(queued) {
		t.Errorf("Date header = %v (%v), want %v, when the message was queued", d, err, queued)
	}
	if id, irt := got[0].Header.Get("Message-Id"), got[0].Header.Get("In-Reply-To"); id != "<ticket-7-reply@latchkey.example>" || irt != "<ticket-7@latchkey.example>" {
		t.Errorf("Message-ID %q, In-Reply-To %q; want the message's own", id, irt)
	}
}
