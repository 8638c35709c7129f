package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/mail"
	"github.com/latchkey/latchkey/internal/sqlstore"
)

func TestMailOutbox(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		m := mail.Message{To: "alice@example.com", Subject: "Hello", Text: "link: https://x/t?token=secret", HTML: "<p>hi</p>",
			Headers: map[string]string{"Message-ID": "<ticket-7@latchkey>", "References": "<ticket-7@latchkey>"}}
		id, err := db.EnqueueMail(ctx, m, t0)
		if err != nil || id == 0 {
			t.Fatalf("EnqueueMail = %d, %v", id, err)
		}
		if st, err := db.MailStats(ctx, t0); err != nil || st.Pending != 1 || st.Busy != 1 || st.Failed != 0 || !st.NextDue.Equal(t0.Truncate(time.Microsecond)) {
			t.Errorf("MailStats after enqueue = %+v, %v", st, err)
		}
		if q, err := db.ClaimMail(ctx, t0.Add(-time.Second), t0.Add(time.Minute), "early"); q != nil || err != nil {
			t.Errorf("ClaimMail before due = %+v, %v; want nil", q, err)
		}
		lease := t0.Add(2 * time.Minute)
		q, err := db.ClaimMail(ctx, t0, lease, "c1")
		if err != nil || q == nil {
			t.Fatalf("ClaimMail = %v, %v", q, err)
		}
		want := m
		if q.ID != id || !sameMessage(q.Message, want) || q.Attempts != 1 || q.Claim != "c1" || !q.CreatedAt.Equal(t0.Truncate(time.Microsecond)) {
			t.Errorf("ClaimMail = %+v", q)
		}
		if q2, err := db.ClaimMail(ctx, t0, lease, "c2"); q2 != nil || err != nil {
			t.Errorf("second ClaimMail while leased = %+v, %v; want nil", q2, err)
		}
		if st, _ := db.MailStats(ctx, t0); st.Busy != 1 {
			t.Errorf("MailStats while claimed: Busy = %d, want 1", st.Busy)
		}
		// The worker died: after the lease another claim takes the message.
		q2, err := db.ClaimMail(ctx, lease, lease.Add(2*time.Minute), "c2")
		if err != nil || q2 == nil || q2.ID != id || q2.Attempts != 2 {
			t.Fatalf("ClaimMail after the lease = %+v, %v", q2, err)
		}
		if err := db.MarkMailSent(ctx, id, "c1", lease); !errors.Is(err, mail.ErrClaimLost) {
			t.Errorf("MarkMailSent with the stale claim = %v, want ErrClaimLost", err)
		}
		next := lease.Add(30 * time.Second)
		if err := db.RetryMail(ctx, id, "c2", next, "connection refused"); err != nil {
			t.Fatalf("RetryMail: %v", err)
		}
		if st, _ := db.MailStats(ctx, lease); st.Pending != 1 || st.Busy != 0 || !st.NextDue.Equal(next.Truncate(time.Microsecond)) {
			t.Errorf("MailStats after RetryMail = %+v", st)
		}
		if q3, err := db.ClaimMail(ctx, next.Add(-time.Microsecond), next.Add(time.Minute), "c3"); q3 != nil || err != nil {
			t.Errorf("ClaimMail before the retry is due = %+v, %v", q3, err)
		}
		q3, err := db.ClaimMail(ctx, next, next.Add(time.Minute), "c3")
		if err != nil || q3 == nil || q3.Attempts != 3 || !sameMessage(q3.Message, want) {
			t.Fatalf("ClaimMail of the retry = %+v, %v", q3, err)
		}
		if err := db.MarkMailSent(ctx, id, "c3", next); err != nil {
			t.Fatalf("MarkMailSent: %v", err)
		}
		var text, html sql.NullString
		var state string
		if err := db.SQL().QueryRow(`SELECT state, body_text, body_html FROM mail_outbox WHERE id = $1`, id).Scan(&state, &text, &html); err != nil || state != "sent" || text.Valid || html.Valid {
			t.Errorf("sent row: state %q, body %v/%v, %v; want sent with the body deleted", state, text, html, err)
		}
		if err := db.RetryMail(ctx, id, "c3", next, "x"); !errors.Is(err, mail.ErrClaimLost) {
			t.Errorf("RetryMail after sent = %v, want ErrClaimLost", err)
		}
		if st, _ := db.MailStats(ctx, next); st != (mail.QueueStats{}) {
			t.Errorf("MailStats after sent = %+v, want zero", st)
		}

		// Giving up.
		id2, _ := db.EnqueueMail(ctx, m, t0)
		q4, err := db.ClaimMail(ctx, next, next.Add(time.Minute), "c4")
		if err != nil || q4 == nil || q4.ID != id2 {
			t.Fatalf("ClaimMail = %+v, %v", q4, err)
		}
		if err := db.MarkMailFailed(ctx, id2, "c4", next, "550 no such user"); err != nil {
			t.Fatalf("MarkMailFailed: %v", err)
		}
		var lastErr string
		if err := db.SQL().QueryRow(`SELECT state, body_text, body_html, last_error FROM mail_outbox WHERE id = $1`, id2).Scan(&state, &text, &html, &lastErr); err != nil || state != "failed" || text.Valid || html.Valid || lastErr != "550 no such user" {
			t.Errorf("failed row: %q %v %v %q, %v", state, text, html, lastErr, err)
		}
		if st, _ := db.MailStats(ctx, next); st.Failed != 1 || st.Pending != 0 {
			t.Errorf("MailStats after failed = %+v", st)
		}
		if q, err := db.ClaimMail(ctx, next.Add(time.Hour), next.Add(2*time.Hour), "c5"); q != nil || err != nil {
			t.Errorf("ClaimMail of a sent or failed message = %+v, %v", q, err)
		}

		// Old records go; a pending message stays however old.
		db.EnqueueMail(ctx, m, t0.Add(-365*24*time.Hour))
		if n, err := db.DeleteOldMail(ctx, next.Add(time.Second)); n != 2 || err != nil {
			t.Errorf("DeleteOldMail = %d, %v; want 2", n, err)
		}
		if st, _ := db.MailStats(ctx, next); st.Pending != 1 || st.Failed != 0 {
			t.Errorf("MailStats after DeleteOldMail = %+v", st)
		}
	})
}

// TestClaimMailConcurrent: workers claiming at once each get different messages, and every
// message is claimed exactly once.
func TestClaimMailConcurrent(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		const n = 40
		for i := range n {
			if _, err := db.EnqueueMail(ctx, mail.Message{To: "a@example.com", Subject: fmt.Sprint(i), Text: "x"}, t0); err != nil {
				t.Fatal(err)
			}
		}
		var mu sync.Mutex
		seen := map[int64]int{}
		var wg sync.WaitGroup
		for w := range 12 {
			wg.Go(func() {
				for {
					q, err := db.ClaimMail(ctx, t0, t0.Add(time.Hour), fmt.Sprint("w", w))
					if err != nil {
						t.Error(err)
						return
					}
					if q == nil {
						return
					}
					mu.Lock()
					seen[q.ID]++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(seen) != n {
			t.Errorf("%d messages claimed, want %d", len(seen), n)
		}
		for id, c := range seen {
			if c != 1 {
				t.Errorf("message %d claimed %d times", id, c)
			}
		}
	})
}

func sameMessage(a, b mail.Message) bool {
	return a.To == b.To && a.Subject == b.Subject && a.Text == b.Text && a.HTML == b.HTML && maps.Equal(a.Headers, b.Headers)
}
