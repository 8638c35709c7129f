package sqlstore_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/sqlstore"
)

func mkTicket(t *testing.T, db *sqlstore.DB, email, typ string, hash byte) *latchkey.Ticket {
	t.Helper()
	tk := &latchkey.Ticket{Email: email, Type: typ, Subject: "Lost phone", TrackingHash: []byte{hash, 1, 2, 3}}
	m := &latchkey.TicketMessage{Author: latchkey.AuthorRequester, Body: "I lost my phone."}
	if err := db.CreateTicket(context.Background(), tk, m, latchkey.TicketLimit{}); err != nil {
		t.Fatalf("CreateTicket: %v", err)
	}
	if m.ID == 0 || m.TicketID != tk.ID {
		t.Fatalf("first message = %+v, want an ID and ticket %d", m, tk.ID)
	}
	return tk
}

func TestTickets(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		a := mkTicket(t, db, "Alice@Example.com", "lost_phone", 1)
		if a.ID != 1001 || a.Status != latchkey.TicketNew || !a.CreatedAt.Equal(t0.Truncate(time.Microsecond)) {
			t.Errorf("first ticket = %+v, want number 1001, status new, created at t0", a)
		}
		b := mkTicket(t, db, "bob@example.com", "other", 2)
		if b.ID != 1002 || b.Number() != "#1002" {
			t.Errorf("second ticket = %d (%s), want 1002", b.ID, b.Number())
		}
		dup := &latchkey.Ticket{Email: "x@example.com", Type: "other", Subject: "s", TrackingHash: []byte{1, 1, 2, 3}}
		if err := db.CreateTicket(ctx, dup, &latchkey.TicketMessage{Author: latchkey.AuthorRequester, Body: "x"}, latchkey.TicketLimit{}); errCode(err) != latchkey.EConflict {
			t.Errorf("CreateTicket(same tracking hash) = %v, want conflict", err)
		}
		if got, _, _ := db.FindTickets(ctx, latchkey.TicketFilter{}); len(got) != 2 {
			t.Errorf("after a refused ticket there are %d tickets, want 2 (nothing half-written)", len(got))
		}

		got, err := db.FindTicketByTrackingHash(ctx, []byte{1, 1, 2, 3})
		if err != nil || got.ID != a.ID || got.Email != "Alice@Example.com" {
			t.Errorf("FindTicketByTrackingHash = %+v, %v", got, err)
		}
		if _, err := db.FindTicketByTrackingHash(ctx, []byte{9}); errCode(err) != latchkey.ENotFound {
			t.Errorf("FindTicketByTrackingHash(unknown) = %v, want not_found", err)
		}
		if _, err := db.FindTicketByID(ctx, 5); errCode(err) != latchkey.ENotFound {
			t.Errorf("FindTicketByID(unknown) = %v, want not_found", err)
		}
		// Conversation and status in one step.
		waiting := latchkey.TicketWaiting
		reply := &latchkey.TicketMessage{TicketID: a.ID, Author: latchkey.AuthorAgent, AgentID: 7, AgentName: "sam", Body: "Please call us."}
		if err := db.AddTicketMessage(ctx, reply, &waiting); err != nil {
			t.Fatal(err)
		}
		if err := db.AddTicketMessage(ctx, &latchkey.TicketMessage{TicketID: 9999, Author: latchkey.AuthorRequester, Body: "x"}, nil); errCode(err) != latchkey.ENotFound {
			t.Errorf("AddTicketMessage(unknown ticket) = %v, want not_found", err)
		}
		msgs, err := db.FindTicketMessages(ctx, a.ID)
		if err != nil || len(msgs) != 2 || msgs[0].Author != latchkey.AuthorRequester || msgs[1].AgentName != "sam" || msgs[1].Body != "Please call us." {
			t.Errorf("FindTicketMessages = %+v, %v", msgs, err)
		}
		a, _ = db.FindTicketByID(ctx, a.ID)
		if a.Status != latchkey.TicketWaiting {
			t.Errorf("status after reply = %q, want waiting", a.Status)
		}

		// Checks and status.
		checks := []string{"callback", "manager"}
		resolved := latchkey.TicketResolved
		up, err := db.UpdateTicket(ctx, a.ID, latchkey.TicketUpdate{Checks: &checks, CheckedBy: 7, Status: &resolved})
		if err != nil || !slices.Equal(up.Checks, checks) || up.CheckedBy != 7 || up.CheckedAt == nil || up.Status != resolved {
			t.Errorf("UpdateTicket = %+v, %v", up, err)
		}
		if _, err := db.UpdateTicket(ctx, 9999, latchkey.TicketUpdate{Status: &resolved}); errCode(err) != latchkey.ENotFound {
			t.Errorf("UpdateTicket(unknown) = %v, want not_found", err)
		}

		// Queue filters.
		// A refused insert may use up a number on PostgreSQL (sequences have gaps).
		c := mkTicket(t, db, "carol@example.com", "lost_phone", 3)
		typ := "lost_phone"
		list, n, err := db.FindTickets(ctx, latchkey.TicketFilter{Type: &typ})
		if err != nil || n != 2 || len(list) != 2 || list[0].ID != c.ID || list[1].ID != 1001 {
			t.Errorf("FindTickets(type lost_phone) = %v, %d, %v, want %d then 1001", list, n, err, c.ID)
		}
		list, n, _ = db.FindTickets(ctx, latchkey.TicketFilter{Open: true})
		if n != 2 || list[0].ID != c.ID || list[1].ID != 1002 {
			t.Errorf("FindTickets(open) = %v, %d, want %d, 1002", list, n, c.ID)
		}
		list, _, _ = db.FindTickets(ctx, latchkey.TicketFilter{Status: &resolved})
		if len(list) != 1 || list[0].ID != a.ID {
			t.Errorf("FindTickets(resolved) = %v", list)
		}
		before := t0
		if _, n, _ := db.FindTickets(ctx, latchkey.TicketFilter{CreatedBefore: &before}); n != 0 {
			t.Errorf("FindTickets(created before t0) = %d, want 0", n)
		}
		list, n, _ = db.FindTickets(ctx, latchkey.TicketFilter{Offset: 1, Limit: 1})
		if n != 3 || len(list) != 1 || list[0].ID != 1002 {
			t.Errorf("FindTickets(offset 1, limit 1) = %v, %d", list, n)
		}
		list, _, _ = db.FindTickets(ctx, latchkey.TicketFilter{Offset: 2})
		if len(list) != 1 || list[0].ID != 1001 {
			t.Errorf("FindTickets(offset 2) = %v", list)
		}
	})
}

func TestSupportLookups(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		u := mkUser(t, db, "alice")
		mkUser(t, db, "bob")
		got, err := db.FindUsersByEmail(ctx, "ALICE@example.com")
		if err != nil || len(got) != 1 || got[0].ID != u.ID {
			t.Errorf("FindUsersByEmail = %v, %v", got, err)
		}
		for i, a := range []string{latchkey.ActionLogin, latchkey.ActionTOTPEnabled, latchkey.ActionLoginTOTP} {
			if err := db.AppendAuditEvent(ctx, &latchkey.AuditEvent{UserID: u.ID, Username: "alice", Action: a, Outcome: latchkey.OutcomeSuccess, IP: "192.0.2.1", Detail: string(rune('a' + i))}); err != nil {
				t.Fatal(err)
			}
		}
		ev, err := db.RecentSignIns(ctx, u.ID, 5)
		if err != nil || len(ev) != 2 || ev[0].Action != latchkey.ActionLoginTOTP || ev[1].Action != latchkey.ActionLogin {
			t.Errorf("RecentSignIns = %v, %v, want login.totp then login.password", ev, err)
		}
	})
}

// TestTicketLimit: of twelve concurrent tickets from one address (in any letter case) with a
// limit of five, exactly five are created; other addresses and older tickets do not count.
func TestTicketLimit(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		mkTicket(t, db, "other@example.com", "other", 200)
		limit := latchkey.TicketLimit{Max: 5, Since: t0.Add(-time.Hour)}
		// A few rounds, each with its own address: one round alone does not always race.
		for round := range 4 {
			var wg sync.WaitGroup
			var mu sync.Mutex
			codes := map[string]int{}
			for i := range 12 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					email := fmt.Sprintf("Bob%d@example.com", round)
					if i%2 == 1 {
						email = strings.ToUpper(email)
					}
					tk := &latchkey.Ticket{Email: email, Type: "other", Subject: "s", TrackingHash: []byte{byte(round), byte(i), 9, 9}}
					err := db.CreateTicket(ctx, tk, &latchkey.TicketMessage{Author: latchkey.AuthorRequester, Body: "x"}, limit)
					mu.Lock()
					codes[errCode(err)]++
					mu.Unlock()
				}()
			}
			wg.Wait()
			if codes[""] != 5 || codes[latchkey.EThrottled] != 7 {
				t.Errorf("round %d: outcomes = %v, want 5 created and 7 throttled", round, codes)
			}
		}
		if _, n, _ := db.FindTickets(ctx, latchkey.TicketFilter{}); n != 21 {
			t.Errorf("%d tickets, want 21 (nothing half-written)", n)
		}
		later := latchkey.TicketLimit{Max: 5, Since: t0.Add(time.Second)}
		if err := db.CreateTicket(ctx, &latchkey.Ticket{Email: "bob0@example.com", Type: "other", Subject: "s", TrackingHash: []byte{99}}, &latchkey.TicketMessage{Author: latchkey.AuthorRequester, Body: "x"}, later); err != nil {
			t.Errorf("tickets before Since counted: %v", err)
		}
	})
}

// TestTicketLimitCountsTheKey: the limit counts tickets by their mailbox key, whatever their
// addresses' spelling; the address is kept as written.
func TestTicketLimitCountsTheKey(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		limit := latchkey.TicketLimit{Max: 2, Since: t0.Add(-time.Hour)}
		for i, addr := range []string{"jörg@müller.de", "JÖRG@xn--mller-kva.de", "jörg+x@MÜLLER.DE"} {
			tk := &latchkey.Ticket{Email: addr, EmailKey: "jörg@xn--mller-kva.de", Type: "other", Subject: "s", TrackingHash: []byte{byte(i), 7}}
			err := db.CreateTicket(ctx, tk, &latchkey.TicketMessage{Author: latchkey.AuthorRequester, Body: "x"}, limit)
			if want := map[bool]string{true: "", false: latchkey.EThrottled}[i < 2]; errCode(err) != want {
				t.Errorf("ticket %d (%s) = %v, want %q", i, addr, err, want)
			}
			if i == 0 {
				got, err := db.FindTicketByID(ctx, tk.ID)
				if err != nil || got.Email != addr || got.EmailKey != "jörg@xn--mller-kva.de" {
					t.Errorf("stored %+v, %v", got, err)
				}
			}
		}
	})
}
