package sqlstore_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/sqlstore"
)

func TestInvitations(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		u := mkUser(t, db, "bob")
		inv := &latchkey.Invitation{Hash: "aa11", UserID: u.ID, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
		if err := db.CreateInvitation(ctx, inv); err != nil {
			t.Fatal(err)
		}
		// A new invitation replaces the old one.
		if err := db.CreateInvitation(ctx, &latchkey.Invitation{Hash: "bb22", UserID: u.ID, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.FindInvitation(ctx, "aa11", t0); errCode(err) != latchkey.ENotFound {
			t.Errorf("replaced invitation: %v", err)
		}
		got, err := db.FindInvitation(ctx, "bb22", t0)
		if err != nil || got.UserID != u.ID || !got.ExpiresAt.Equal(t0.Add(time.Hour).Truncate(time.Microsecond)) {
			t.Errorf("FindInvitation = %+v, %v", got, err)
		}
		if _, err := db.FindInvitation(ctx, "bb22", t0.Add(time.Hour)); errCode(err) != latchkey.ENotFound {
			t.Errorf("expired invitation found: %v", err)
		}
		p, err := db.PendingInvitations(ctx, []latchkey.UserID{u.ID, 999}, t0)
		if _, ok := p[u.ID]; err != nil || len(p) != 1 || !ok {
			t.Errorf("PendingInvitations = %v, %v", p, err)
		}
		if _, err := db.ConsumeInvitation(ctx, "bb22", t0.Add(time.Hour)); errCode(err) != latchkey.ENotFound {
			t.Errorf("consume expired: %v", err)
		}
		// Twelve concurrent uses: exactly one wins.
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for range 12 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id, err := db.ConsumeInvitation(ctx, "bb22", t0)
				if err == nil && id == u.ID {
					mu.Lock()
					wins++
					mu.Unlock()
				} else if errCode(err) != latchkey.ENotFound {
					t.Errorf("ConsumeInvitation: %v", err)
				}
			}()
		}
		wg.Wait()
		if wins != 1 {
			t.Errorf("%d concurrent consumers won, want 1", wins)
		}
	})
}

// TestInvitationMailFailed: an invitation whose activation mail could not be sent keeps when
// (MarkInvitationMailFailed), read with the invitation by its user, expired or not, and by
// its hash; a new link is a new invitation, without it; an invitation used or replaced
// meanwhile is not found to mark, and an account with no invitation has none to find.
func TestInvitationMailFailed(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		u := mkUser(t, db, "bob")
		if _, err := db.FindInvitationByUserID(ctx, u.ID); errCode(err) != latchkey.ENotFound {
			t.Errorf("FindInvitationByUserID without an invitation = %v, want ENotFound", err)
		}
		if err := db.CreateInvitation(ctx, &latchkey.Invitation{Hash: "aa11", UserID: u.ID, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if got, err := db.FindInvitationByUserID(ctx, u.ID); err != nil || got.Hash != "aa11" || got.UserID != u.ID || !got.ExpiresAt.Equal(t0.Add(time.Hour).Truncate(time.Microsecond)) || got.MailFailedAt != nil {
			t.Errorf("FindInvitationByUserID = %+v, %v; want aa11, mail not failed", got, err)
		}
		failed := t0.Add(time.Second)
		if err := db.MarkInvitationMailFailed(ctx, "aa11", failed); err != nil {
			t.Fatal(err)
		}
		want := failed.Truncate(time.Microsecond)
		// By its user (expired or not: there is no time to ask about), and by its hash.
		if got, err := db.FindInvitationByUserID(ctx, u.ID); err != nil || got.MailFailedAt == nil || !got.MailFailedAt.Equal(want) {
			t.Errorf("FindInvitationByUserID after the failed mail = %+v, %v; want MailFailedAt %v", got, err, want)
		}
		if got, err := db.FindInvitation(ctx, "aa11", t0); err != nil || got.MailFailedAt == nil || !got.MailFailedAt.Equal(want) {
			t.Errorf("FindInvitation after the failed mail = %+v, %v; want MailFailedAt %v", got, err, want)
		}
		// A new link replaces the invitation: its mail has not failed.
		if err := db.CreateInvitation(ctx, &latchkey.Invitation{Hash: "bb22", UserID: u.ID, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if got, err := db.FindInvitationByUserID(ctx, u.ID); err != nil || got.Hash != "bb22" || got.MailFailedAt != nil {
			t.Errorf("FindInvitationByUserID after a new link = %+v, %v; want bb22, mail not failed", got, err)
		}
		if err := db.MarkInvitationMailFailed(ctx, "aa11", failed); errCode(err) != latchkey.ENotFound {
			t.Errorf("MarkInvitationMailFailed of a replaced invitation = %v, want ENotFound", err)
		}
		if got, _ := db.FindInvitationByUserID(ctx, u.ID); got == nil || got.MailFailedAt != nil {
			t.Errorf("marking the replaced invitation marked the new one: %+v", got)
		}
		// Used: the account is active, nothing to find.
		if _, err := db.ConsumeInvitation(ctx, "bb22", t0); err != nil {
			t.Fatal(err)
		}
		if _, err := db.FindInvitationByUserID(ctx, u.ID); errCode(err) != latchkey.ENotFound {
			t.Errorf("FindInvitationByUserID after activation = %v, want ENotFound", err)
		}
	})
}

// TestFactorAdoptionAwaitingActivation: an account whose owner has not activated it (an
// invitation row, expired or not) is counted apart, as awaiting activation, and neither among
// the active users nor among those without a second factor (whom the dashboard's link lists
// with SearchUsers' WithoutFactor); once activated it is an active user like any other. A
// disabled account counts nowhere.
func TestFactorAdoptionAwaitingActivation(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		alice, bob := mkUser(t, db, "alice"), mkUser(t, db, "bob")
		newbie, late, carol, gone := mkUser(t, db, "newbie"), mkUser(t, db, "late"), mkUser(t, db, "carol"), mkUser(t, db, "gone")
		for _, inv := range []*latchkey.Invitation{
			{Hash: "h-newbie", UserID: newbie.ID, CreatedAt: t0, ExpiresAt: t0.Add(72 * time.Hour)},
			{Hash: "h-late", UserID: late.ID, CreatedAt: t0.Add(-100 * time.Hour), ExpiresAt: t0.Add(-28 * time.Hour)}, // expired
			{Hash: "h-carol", UserID: carol.ID, CreatedAt: t0, ExpiresAt: t0.Add(72 * time.Hour)},
			{Hash: "h-gone", UserID: gone.ID, CreatedAt: t0, ExpiresAt: t0.Add(72 * time.Hour)},
		} {
			if err := db.CreateInvitation(ctx, inv); err != nil {
				t.Fatal(err)
			}
		}
		if id, err := db.ConsumeInvitation(ctx, "h-carol", t0); err != nil || id != carol.ID { // carol activates
			t.Fatalf("ConsumeInvitation = %d, %v", id, err)
		}
		yes := true
		if _, err := db.UpdateUser(ctx, gone.ID, latchkey.UserUpdate{Disabled: &yes}); err != nil {
			t.Fatal(err)
		}
		c := &latchkey.TOTPCredential{UserID: bob.ID, Name: "Phone", Secret: make([]byte, 20)}
		if err := db.CreateTOTPCredential(ctx, c); err != nil {
			t.Fatal(err)
		}
		if err := db.ConfirmTOTPCredential(ctx, c.ID, 1, t0, nil, false); err != nil {
			t.Fatal(err)
		}

		a, err := db.FactorAdoption(ctx)
		if want := (latchkey.FactorAdoption{Users: 3, TOTP: 1, NoFactor: 2, AwaitingActivation: 2}); err != nil || a != want {
			t.Errorf("FactorAdoption = %+v, %v; want %+v", a, err, want)
		}
		users, n, err := db.SearchUsers(ctx, latchkey.UserSearch{WithoutFactor: true})
		var names []string
		for _, u := range users {
			names = append(names, u.Username)
		}
		if err != nil || n != 2 || len(users) != 2 || users[0].ID != alice.ID || users[1].ID != carol.ID {
			t.Errorf("SearchUsers(WithoutFactor) = %v, %d, %v; want alice and carol", names, n, err)
		}
	})
}

func TestAdminQueries(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		alice, bob, carol := mkUser(t, db, "alice"), mkUser(t, db, "bob"), mkUser(t, db, "carol_x")
		admin := latchkey.RoleAdmin
		if _, err := db.UpdateUser(ctx, alice.ID, latchkey.UserUpdate{Role: &admin}); err != nil {
			t.Fatal(err)
		}
		if n, err := db.CountEnabledAdmins(ctx); err != nil || n != 1 {
			t.Errorf("CountEnabledAdmins = %d, %v", n, err)
		}
		yes := true
		if _, err := db.UpdateUser(ctx, alice.ID, latchkey.UserUpdate{Disabled: &yes}); err != nil {
			t.Fatal(err)
		}
		if n, _ := db.CountEnabledAdmins(ctx); n != 0 {
			t.Errorf("CountEnabledAdmins with the admin disabled = %d", n)
		}

		// Search: part of username or email, case-insensitive; % and _ are literal.
		for _, tt := range []struct {
			q    string
			want []string
		}{
			{"", []string{"alice", "bob", "carol_x"}},
			{"BO", []string{"bob"}},
			{"example.com", []string{"alice", "bob", "carol_x"}},
			{"_", []string{"carol_x"}},
			{"%", nil},
		} {
			users, total, err := db.SearchUsers(ctx, latchkey.UserSearch{Query: tt.q, Limit: 2})
			var names []string
			for _, u := range users {
				names = append(names, u.Username)
			}
			if err != nil || total != len(tt.want) || len(names) != min(2, len(tt.want)) || (len(names) > 0 && names[0] != tt.want[0]) {
				t.Errorf("SearchUsers(%q) = %v, %d, %v; want %v", tt.q, names, total, err, tt.want)
			}
		}
		if users, _, _ := db.SearchUsers(ctx, latchkey.UserSearch{Offset: 2, Limit: 2}); len(users) != 1 || users[0].Username != "carol_x" {
			t.Errorf("second page = %v", users)
		}

		// Factor adoption: bob has an app, carol a key, alice is disabled.
		c := &latchkey.TOTPCredential{UserID: bob.ID, Name: "Phone", Secret: make([]byte, 20)}
		if err := db.CreateTOTPCredential(ctx, c); err != nil {
			t.Fatal(err)
		}
		if err := db.ConfirmTOTPCredential(ctx, c.ID, 1, t0, nil, false); err != nil {
			t.Fatal(err)
		}
		if err := db.CreateWebAuthnCredential(ctx, &latchkey.WebAuthnCredential{UserID: carol.ID, Name: "Key", CredentialID: []byte{1, 2, 3}, Data: []byte("{}")}, nil, false); err != nil {
			t.Fatal(err)
		}
		kinds, err := db.FindFactorKinds(ctx, []latchkey.UserID{alice.ID, bob.ID, carol.ID})
		if err != nil || len(kinds) != 2 || kinds[bob.ID] != (latchkey.FactorKinds{TOTP: true}) || kinds[carol.ID] != (latchkey.FactorKinds{Key: true}) {
			t.Errorf("FindFactorKinds = %v, %v", kinds, err)
		}
		no := false
		if _, err := db.UpdateUser(ctx, alice.ID, latchkey.UserUpdate{Disabled: &no}); err != nil {
			t.Fatal(err)
		}
		if users, n, err := db.SearchUsers(ctx, latchkey.UserSearch{WithoutFactor: true}); err != nil || n != 1 || users[0].ID != alice.ID {
			t.Errorf("SearchUsers(WithoutFactor) = %v, %d, %v", users, n, err)
		}
		if _, n, _ := db.SearchUsers(ctx, latchkey.UserSearch{WithoutFactor: true, Query: "bob"}); n != 0 {
			t.Errorf("SearchUsers(WithoutFactor, bob) = %d", n)
		}
		if _, err := db.UpdateUser(ctx, alice.ID, latchkey.UserUpdate{Disabled: &yes}); err != nil {
			t.Fatal(err)
		}
		a, err := db.FactorAdoption(ctx)
		if want := (latchkey.FactorAdoption{Users: 2, TOTP: 1, Key: 1}); err != nil || a != want {
			t.Errorf("FactorAdoption = %+v, %v; want %+v", a, err, want)
		}

		// Sessions: only signed-in, unexpired ones.
		for i, s := range []latchkey.Session{
			{ID: "s1", State: latchkey.StateAuthenticated, ExpiresAt: t0.Add(time.Hour)},
			{ID: "s2", State: latchkey.StateSecondFactor, ExpiresAt: t0.Add(time.Hour)},
			{ID: "s3", State: latchkey.StateAuthenticated, ExpiresAt: t0.Add(-time.Second)},
		} {
			s.UserID, s.AMR, s.PasswordAt, s.CreatedAt, s.LastSeenAt = bob.ID, []string{"pwd"}, t0, t0, t0.Add(time.Duration(i)*time.Second)
			if err := db.CreateSession(ctx, &s); err != nil {
				t.Fatal(err)
			}
		}
		if ss, err := db.FindSignedInSessions(ctx, bob.ID, t0); err != nil || len(ss) != 1 || ss[0].ID != "s1" {
			t.Errorf("FindSignedInSessions = %v, %v", ss, err)
		}

		// Audit counts by bucket and outcome; queries with filters, newest first.
		base := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
		for _, e := range []latchkey.AuditEvent{
			{Action: "login.password", Outcome: "success", Username: "bob", Time: base.Add(5 * time.Minute)},
			{Action: "login.totp", Outcome: "failure", Username: "bob", Time: base.Add(10 * time.Minute)},
			{Action: "login.totp", Outcome: "failure", Username: "bob", Time: base.Add(70 * time.Minute)},
			{Action: "lockout", Outcome: "denied", Username: "carol_x", Time: base.Add(80 * time.Minute)},
			{Action: "user.created", Outcome: "success", Username: "carol_x", Time: base.Add(90 * time.Minute)},
			{Action: "loginx", Outcome: "success", Username: "bob", Time: base.Add(95 * time.Minute)},
		} {
			if err := db.AppendAuditEvent(ctx, &e); err != nil {
				t.Fatal(err)
			}
		}
		counts, err := db.CountAuditEvents(ctx, []string{"login.", "lockout"}, base, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		want := []latchkey.AuditCount{{Bucket: base, Outcome: "failure", N: 1}, {Bucket: base, Outcome: "success", N: 1}, {Bucket: base.Add(time.Hour), Outcome: "denied", N: 1}, {Bucket: base.Add(time.Hour), Outcome: "failure", N: 1}}
		if len(counts) != len(want) {
			t.Fatalf("CountAuditEvents = %+v", counts)
		}
		got := map[latchkey.AuditCount]bool{}
		for _, c := range counts {
			got[c] = true
		}
		for _, w := range want {
			if !got[w] {
				t.Errorf("CountAuditEvents lacks %+v: %+v", w, counts)
			}
		}
		for _, tt := range []struct {
			name string
			q    latchkey.AuditQuery
			want []string // actions, newest first
		}{
			{"all", latchkey.AuditQuery{}, []string{"loginx", "user.created", "lockout", "login.totp", "login.totp", "login.password"}},
			{"prefix", latchkey.AuditQuery{Action: "login."}, []string{"login.totp", "login.totp", "login.password"}},
			{"exact", latchkey.AuditQuery{Action: "lockout"}, []string{"lockout"}},
			{"user+outcome", latchkey.AuditQuery{Username: "bob", Outcome: "failure"}, []string{"login.totp", "login.totp"}},
			{"time", latchkey.AuditQuery{Since: base.Add(time.Hour), Until: base.Add(85 * time.Minute)}, []string{"lockout", "login.totp"}},
			{"limit", latchkey.AuditQuery{Limit: 2}, []string{"loginx", "user.created"}},
		} {
			evs, err := db.QueryAuditEvents(ctx, tt.q)
			var acts []string
			for _, e := range evs {
				acts = append(acts, e.Action)
			}
			if err != nil || len(acts) != len(tt.want) || (len(acts) > 0 && acts[0] != tt.want[0]) {
				t.Errorf("%s: QueryAuditEvents = %v, %v; want %v", tt.name, acts, err, tt.want)
			}
		}
		all, _ := db.QueryAuditEvents(ctx, latchkey.AuditQuery{})
		if page, _ := db.QueryAuditEvents(ctx, latchkey.AuditQuery{BeforeID: all[1].ID, Limit: 10}); len(page) != 4 || page[0].ID != all[2].ID {
			t.Errorf("page before %d = %d entries", all[1].ID, len(page))
		}
	})
}
