package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/sqlstore"
)

func TestWebAuthnCredentials(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		alice, bob := mkUser(t, db, "alice"), mkUser(t, db, "bob")
		k1 := &latchkey.WebAuthnCredential{UserID: alice.ID, Name: "Blue key", CredentialID: []byte("cred-1"), Data: []byte(`{"id":"1"}`), SignCount: 5}
		if err := db.CreateWebAuthnCredential(ctx, k1, [][]byte{[]byte("h1"), []byte("h2")}, false); err != nil {
			t.Fatal(err)
		}
		if k1.ID == 0 || k1.CreatedAt.IsZero() {
			t.Fatalf("not filled in: %+v", k1)
		}
		if codes, _ := db.FindRecoveryCodes(ctx, alice.ID); len(codes) != 2 {
			t.Fatalf("recovery codes %d, want 2", len(codes))
		}
		// The same credential ID is refused, for another user too, and nothing else is written.
		dup := &latchkey.WebAuthnCredential{UserID: bob.ID, Name: "Stolen", CredentialID: []byte("cred-1"), Data: []byte(`{}`)}
		if err := db.CreateWebAuthnCredential(ctx, dup, [][]byte{[]byte("x")}, false); errCode(err) != latchkey.EConflict {
			t.Fatalf("duplicate credential ID: %v", err)
		}
		if codes, _ := db.FindRecoveryCodes(ctx, bob.ID); len(codes) != 0 {
			t.Fatal("a refused key wrote recovery codes")
		}
		k2 := &latchkey.WebAuthnCredential{UserID: alice.ID, Name: "Passkey", CredentialID: []byte("cred-2"), Data: []byte(`{}`), Discoverable: true}
		if err := db.CreateWebAuthnCredential(ctx, k2, nil, false); err != nil {
			t.Fatal(err)
		}
		got, err := db.FindWebAuthnCredential(ctx, []byte("cred-2"))
		if err != nil || got.ID != k2.ID || got.UserID != alice.ID || !got.Discoverable {
			t.Fatalf("find by credential ID: %v %+v", err, got)
		}
		if _, err := db.FindWebAuthnCredential(ctx, []byte("nope")); errCode(err) != latchkey.ENotFound {
			t.Fatalf("unknown credential: %v", err)
		}
		// The counter only rises; the clone warning only sets.
		if err := db.UseWebAuthnCredential(ctx, k1.ID, 9, false, t0); err != nil {
			t.Fatal(err)
		}
		if err := db.UseWebAuthnCredential(ctx, k1.ID, 3, true, t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := db.UseWebAuthnCredential(ctx, k1.ID, 10, false, t0.Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
		keys, err := db.FindWebAuthnCredentials(ctx, alice.ID)
		if err != nil || len(keys) != 2 || keys[0].ID != k1.ID {
			t.Fatalf("list: %v %d", err, len(keys))
		}
		if k := keys[0]; k.SignCount != 10 || !k.CloneWarning || k.LastUsedAt == nil || !k.LastUsedAt.Equal(us0.Add(2*time.Minute)) {
			t.Fatalf("after use: count %d warning %v used %v", k.SignCount, k.CloneWarning, k.LastUsedAt)
		}
		// Rename and delete only touch the owner's keys.
		if err := db.RenameWebAuthnCredential(ctx, bob.ID, k1.ID, "Mine"); errCode(err) != latchkey.ENotFound {
			t.Fatalf("rename another's key: %v", err)
		}
		if err := db.RenameWebAuthnCredential(ctx, alice.ID, k1.ID, "Yellow key"); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteWebAuthnCredential(ctx, bob.ID, k1.ID, false); errCode(err) != latchkey.ENotFound {
			t.Fatalf("delete another's key: %v", err)
		}
		if err := db.DeleteWebAuthnCredential(ctx, alice.ID, k1.ID, true); err != nil {
			t.Fatal(err)
		}
		if codes, _ := db.FindRecoveryCodes(ctx, alice.ID); len(codes) != 2 {
			t.Fatalf("%d recovery codes after removing a key beside another, want the 2", len(codes))
		}
		keys, _ = db.FindWebAuthnCredentials(ctx, alice.ID)
		if len(keys) != 1 || keys[0].ID != k2.ID {
			t.Fatalf("after delete: %d keys", len(keys))
		}
		// The last one stays with keepOne; without, the recovery codes go with it.
		if err := db.DeleteWebAuthnCredential(ctx, alice.ID, k2.ID, true); !errors.Is(err, latchkey.ErrLastFactor) {
			t.Fatalf("delete the last key with keepOne = %v, want ErrLastFactor", err)
		}
		if keys, _ := db.FindWebAuthnCredentials(ctx, alice.ID); len(keys) != 1 {
			t.Fatalf("%d keys after the refusal, want 1", len(keys))
		}
		if err := db.DeleteWebAuthnCredential(ctx, alice.ID, k2.ID, false); err != nil {
			t.Fatal(err)
		}
		if codes, _ := db.FindRecoveryCodes(ctx, alice.ID); len(codes) != 0 {
			t.Fatalf("%d recovery codes left with no factor", len(codes))
		}
	})
}

func TestWebAuthnCeremoniesSingleUse(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		u := mkUser(t, db, "alice")
		c := &latchkey.WebAuthnCeremony{ID: "c1", Kind: latchkey.CeremonyLogin, UserID: u.ID, SessionID: "s1", Data: []byte(`{"challenge":"x"}`), ExpiresAt: t0.Add(time.Minute)}
		if err := db.CreateWebAuthnCeremony(ctx, c); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		won := 0
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := db.TakeWebAuthnCeremony(ctx, "c1")
				if err == nil {
					mu.Lock()
					won++
					mu.Unlock()
					if got.Kind != latchkey.CeremonyLogin || got.SessionID != "s1" || string(got.Data) != `{"challenge":"x"}` || !got.ExpiresAt.Equal(us0.Add(time.Minute)) {
						t.Errorf("taken: %+v", got)
					}
				} else if errCode(err) != latchkey.ENotFound {
					t.Errorf("take: %v", err)
				}
			}()
		}
		wg.Wait()
		if won != 1 {
			t.Fatalf("%d takers won, want 1", won)
		}
		// Put replaces a ceremony with the same ID; Create refuses it.
		for _, data := range []string{`{"challenge":"a"}`, `{"challenge":"b"}`} {
			c := &latchkey.WebAuthnCeremony{ID: "c3", Kind: latchkey.CeremonyRegister, UserID: u.ID, SessionID: "s1", Data: []byte(data), ExpiresAt: t0.Add(time.Hour)}
			if err := db.PutWebAuthnCeremony(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.CreateWebAuthnCeremony(ctx, &latchkey.WebAuthnCeremony{ID: "c3", Kind: latchkey.CeremonyPasskey, Data: []byte(`{}`), ExpiresAt: t0}); errCode(err) != latchkey.EConflict {
			t.Fatalf("Create over an existing ceremony: %v, want conflict", err)
		}
		if got, err := db.TakeWebAuthnCeremony(ctx, "c3"); err != nil || string(got.Data) != `{"challenge":"b"}` || !got.ExpiresAt.Equal(us0.Add(time.Hour)) {
			t.Fatalf("after two puts: %+v, %v; want the second", got, err)
		}
		old := &latchkey.WebAuthnCeremony{ID: "c2", Kind: latchkey.CeremonyPasskey, Data: []byte(`{}`), ExpiresAt: t0}
		db.CreateWebAuthnCeremony(ctx, old)
		if n, err := db.DeleteExpiredWebAuthnCeremonies(ctx, t0.Add(time.Second)); err != nil || n != 1 {
			t.Fatalf("expired: %d %v", n, err)
		}
	})
}

func TestResetMFA(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		alice, bob := mkUser(t, db, "alice"), mkUser(t, db, "bob")
		var aliceDevices []int64
		for _, u := range []*latchkey.User{alice, bob} {
			d, _ := mkDevice(t, db, u, "pub-"+u.Username, latchkey.DeviceActive, "seed-"+u.Username)
			if u == alice {
				pending, _ := mkDevice(t, db, u, "pub-pending", latchkey.DevicePending, "")
				aliceDevices = []int64{d.ID, pending.ID}
			}
			mkPendingApp(t, db, u)
			if err := db.CreateWebAuthnCredential(ctx, &latchkey.WebAuthnCredential{UserID: u.ID, Name: "Key", CredentialID: []byte("cred-" + u.Username), Data: []byte(`{}`)}, [][]byte{[]byte("h-" + u.Username)}, false); err != nil {
				t.Fatal(err)
			}
		}
		removed, err := db.ResetMFA(ctx, alice.ID, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(removed, aliceDevices) {
			t.Errorf("ResetMFA removed devices %v, want alice's %v (and none of bob's)", removed, aliceDevices)
		}
		count := func(u *latchkey.User) (n int) {
			totps, _ := db.FindTOTPCredentials(ctx, u.ID)
			devs, _ := db.FindDevices(ctx, u.ID)
			keys, _ := db.FindWebAuthnCredentials(ctx, u.ID)
			codes, _ := db.FindRecoveryCodes(ctx, u.ID)
			return len(totps) + len(devs) + len(keys) + len(codes)
		}
		if n := count(alice); n != 0 {
			t.Fatalf("%d factors left after reset", n)
		}
		if n := count(bob); n != 5 {
			t.Fatalf("another user's factors changed: %d, want 5", n)
		}
	})
}

// TestResetMFARecoveryCode: a reset proved by a recovery code spends it in its own
// transaction: a used code (EConflict), an unknown one or another user's (ENotFound) refuse
// the reset and nothing changes, audit entry included; of several resets at once with one
// code, one happens and the others, which find no factor left (ErrNoFactor), change nothing.
func TestResetMFARecoveryCode(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		alice, bob := mkUser(t, db, "alice"), mkUser(t, db, "bob")
		mkApp(t, db, alice, 1)
		mkApp(t, db, bob, 1)
		if err := db.ReplaceRecoveryCodes(ctx, alice.ID, [][]byte{[]byte("code-a"), []byte("code-b")}, t0); err != nil {
			t.Fatal(err)
		}
		if err := db.ReplaceRecoveryCodes(ctx, bob.ID, [][]byte{[]byte("code-bob")}, t0); err != nil {
			t.Fatal(err)
		}
		if err := spendRecoveryCode(t, db, alice, "flow-b", "code-b"); err != nil {
			t.Fatal(err)
		}
		reset := func(hash string) error {
			e := &latchkey.AuditEvent{UserID: alice.ID, Username: "alice", Action: latchkey.ActionMFAReset, Outcome: latchkey.OutcomeSuccess, Detail: "by the user"}
			_, err := db.ResetMFA(ctx, alice.ID, &latchkey.MFAResetProof{RecoveryCodeHash: []byte(hash)}, e)
			return err
		}
		// state is what a reset changes: alice's factors and unused codes, bob's, and the
		// reset entries of the trail.
		type state struct{ totps, unused, bobUnused, entries int }
		read := func() (st state) {
			t.Helper()
			totps, err := db.FindTOTPCredentials(ctx, alice.ID)
			if err != nil {
				t.Fatal(err)
			}
			st.totps = len(totps)
			for _, u := range []*latchkey.User{alice, bob} {
				codes, err := db.FindRecoveryCodes(ctx, u.ID)
				if err != nil {
					t.Fatal(err)
				}
				for _, rc := range codes {
					if rc.UsedAt != nil {
						continue
					}
					if u == alice {
						st.unused++
					} else {
						st.bobUnused++
					}
				}
			}
			st.entries = resetEntries(t, db, alice.ID)
			return st
		}
		before := read()
		if want := (state{totps: 1, unused: 1, bobUnused: 1}); before != want {
			t.Fatalf("before: %+v, want %+v", before, want)
		}
		for _, tt := range []struct{ name, hash, want string }{
			{"used", "code-b", latchkey.EConflict},
			{"unknown", "code-x", latchkey.ENotFound},
			{"another user's", "code-bob", latchkey.ENotFound},
		} {
			if err := reset(tt.hash); errCode(err) != tt.want {
				t.Errorf("ResetMFA(%s code) = %v, want %s", tt.name, err, tt.want)
			}
			if got := read(); got != before {
				t.Errorf("after ResetMFA(%s code): %+v, want %+v", tt.name, got, before)
			}
		}
		const n = 8
		oneWinsAs(t, n, latchkey.ErrNoFactor, func(int) error { return reset("code-a") })
		if got, want := read(), (state{bobUnused: 1, entries: 1}); got != want {
			t.Errorf("after %d resets with one code: %+v, want %+v", n, got, want)
		}
	})
}

// TestResetMFATOTPStep: a reset proved by an app code records the code's time step in its
// own transaction: a step no longer newer than the credential's last one, or a credential
// of another user, refuse the reset (EConflict) and nothing changes; a reset that fails (its
// audit entry refused) leaves the step unused; of several resets at once with one code, one
// happens and the others, which find no factor left (ErrNoFactor), change nothing.
func TestResetMFATOTPStep(t *testing.T) {
	eachWithFailAudit(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		alice, bob := mkUser(t, db, "alice"), mkUser(t, db, "bob")
		creds := map[*latchkey.User]*latchkey.TOTPCredential{alice: mkApp(t, db, alice, 100), bob: mkApp(t, db, bob, 100)}
		reset := func(cred int64, step int64, detail string) error {
			e := &latchkey.AuditEvent{UserID: alice.ID, Username: "alice", Action: latchkey.ActionMFAReset, Outcome: latchkey.OutcomeSuccess, Detail: detail}
			_, err := db.ResetMFA(ctx, alice.ID, &latchkey.MFAResetProof{TOTPCredentialID: cred, TOTPStep: step}, e)
			return err
		}
		// state is what a reset changes: alice's apps and the last step of her app, bob's
		// last step, and the reset entries of the trail.
		type state struct {
			totps             int
			lastStep, bobStep int64
			entries           int
		}
		read := func() (st state) {
			t.Helper()
			for _, u := range []*latchkey.User{alice, bob} {
				cs, err := db.FindTOTPCredentials(ctx, u.ID)
				if err != nil {
					t.Fatal(err)
				}
				if u == bob {
					st.bobStep = cs[0].LastStep
					continue
				}
				st.totps = len(cs)
				if len(cs) > 0 {
					st.lastStep = cs[0].LastStep
				}
			}
			st.entries = resetEntries(t, db, alice.ID)
			return st
		}
		before := read()
		if want := (state{totps: 1, lastStep: 100, bobStep: 100}); before != want {
			t.Fatalf("before: %+v, want %+v", before, want)
		}
		for _, tt := range []struct {
			name   string
			cred   int64
			step   int64
			detail string
			want   string
		}{
			{"a step used already", creds[alice].ID, 100, "by the user", latchkey.EConflict},
			{"an older step", creds[alice].ID, 99, "by the user", latchkey.EConflict},
			{"bob's app", creds[bob].ID, 101, "by the user", latchkey.EConflict},
			{"a new step, audit refused", creds[alice].ID, 101, "fail", latchkey.EInternal},
		} {
			if err := reset(tt.cred, tt.step, tt.detail); errCode(err) != tt.want {
				t.Errorf("ResetMFA(%s) = %v, want %s", tt.name, err, tt.want)
			}
			if got := read(); got != before {
				t.Errorf("after ResetMFA(%s): %+v, want %+v", tt.name, got, before)
			}
		}
		const n = 8
		oneWinsAs(t, n, latchkey.ErrNoFactor, func(int) error { return reset(creds[alice].ID, 101, "by the user") })
		if got, want := read(), (state{bobStep: 100, entries: 1}); got != want {
			t.Errorf("after %d resets with one code: %+v, want %+v", n, got, want)
		}
	})
}

// TestResetMFANoFactorLeft: a user's own reset (any proof, a key's empty one too) of a user
// who has no factor left is refused with ErrNoFactor and changes nothing, audit entry
// included, even with the user's recovery code; a reset without a proof (an
// administrator's, the support desk's) still runs.
func TestResetMFANoFactorLeft(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		alice := mkUser(t, db, "alice")
		// A pending app is no factor; a recovery code left behind (none is, normally) does
		// not make one either.
		pending := mkPendingApp(t, db, alice)
		if err := db.ReplaceRecoveryCodes(ctx, alice.ID, [][]byte{[]byte("code-a")}, t0); err != nil {
			t.Fatal(err)
		}
		entries := func() int {
			t.Helper()
			return len(userAuditEvents(t, db, alice.ID))
		}
		event := func() *latchkey.AuditEvent {
			return &latchkey.AuditEvent{UserID: alice.ID, Username: "alice", Action: latchkey.ActionMFAReset, Outcome: latchkey.OutcomeSuccess, Detail: "by the user"}
		}
		for name, proof := range map[string]*latchkey.MFAResetProof{
			"a key's":         {},
			"an app code's":   {TOTPCredentialID: pending.ID, TOTPStep: 5},
			"a recovery code": {RecoveryCodeHash: []byte("code-a")},
		} {
			if _, err := db.ResetMFA(ctx, alice.ID, proof, event()); !errors.Is(err, latchkey.ErrNoFactor) {
				t.Errorf("ResetMFA with %s proof = %v, want ErrNoFactor", name, err)
			}
		}
		codes, _ := db.FindRecoveryCodes(ctx, alice.ID)
		cs, _ := db.FindTOTPCredentials(ctx, alice.ID)
		if n := entries(); n != 0 || len(codes) != 1 || codes[0].UsedAt != nil || len(cs) != 1 || cs[0].LastStep != 0 {
			t.Fatalf("after refused resets: %d entries, codes %+v, apps %+v; want none, the code unused, the app as it was", n, codes, cs)
		}
		if _, err := db.ResetMFA(ctx, alice.ID, nil, event()); err != nil {
			t.Fatalf("ResetMFA without a proof: %v", err)
		}
		if n := entries(); n != 1 {
			t.Errorf("%d entries after the reset without a proof, want 1", n)
		}
	})
}

// failAudit makes the database refuse audit entries whose detail is "fail", as a full disk or
// a lost connection would refuse the write at that point.
func failAudit(t *testing.T, db *sqlstore.DB, postgres bool) {
	t.Helper()
	stmts := []string{`CREATE TRIGGER audit_fail BEFORE INSERT ON audit_events WHEN NEW.detail = 'fail'
		BEGIN SELECT RAISE(ABORT, 'audit write refused'); END`}
	if postgres {
		stmts = []string{`CREATE FUNCTION audit_fail() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN IF NEW.detail = 'fail' THEN RAISE EXCEPTION 'audit write refused'; END IF; RETURN NEW; END $$`,
			`CREATE TRIGGER audit_fail BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION audit_fail()`}
	}
	for _, q := range stmts {
		if _, err := db.SQL().Exec(q); err != nil {
			t.Fatal(err)
		}
	}
}

// eachWithFailAudit is each with failAudit on every backend's store.
func eachWithFailAudit(t *testing.T, f func(t *testing.T, db *sqlstore.DB)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			db := open(t, b.dsn(t), key)
			failAudit(t, db, b.name == "postgres")
			f(t, db)
		})
	}
}

// userAuditEvents chains the audit trail and returns the entries of user id.
func userAuditEvents(t *testing.T, db *sqlstore.DB, id latchkey.UserID) []*latchkey.AuditEvent {
	t.Helper()
	ctx := context.Background()
	if _, err := db.ChainAuditEvents(ctx); err != nil {
		t.Fatal(err)
	}
	evs, err := db.FindAuditEvents(ctx, latchkey.AuditFilter{UserID: &id})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// resetEntries is the number of Reset all MFA entries of user id in the chained trail.
func resetEntries(t *testing.T, db *sqlstore.DB, id latchkey.UserID) int {
	t.Helper()
	n := 0
	for _, e := range userAuditEvents(t, db, id) {
		if e.Action == latchkey.ActionMFAReset {
			n++
		}
	}
	return n
}

// TestActionsWithTheirAuditEntry: a reset of all MFA and an update of a user are written
// with their audit entry or not at all: when the entry cannot be written, nothing changed.
func TestActionsWithTheirAuditEntry(t *testing.T) {
	eachWithFailAudit(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		alice := mkUser(t, db, "alice")
		mkDevice(t, db, alice, "pub-alice", latchkey.DeviceActive, "seed-alice")
		bad := &latchkey.AuditEvent{UserID: alice.ID, Username: "alice", ActorID: 9, Actor: "root", Action: latchkey.ActionAdminMFAReset, Outcome: latchkey.OutcomeSuccess, Detail: "fail"}
		if _, err := db.ResetMFA(ctx, alice.ID, nil, bad); err == nil {
			t.Fatal("ResetMFA succeeded without its audit entry")
		}
		if devs, _ := db.FindDevices(ctx, alice.ID); len(devs) != 1 {
			t.Errorf("%d devices after a reset whose audit entry failed, want 1", len(devs))
		}
		role := latchkey.RoleAdmin
		badRole := &latchkey.AuditEvent{UserID: alice.ID, Username: "alice", Action: latchkey.ActionUserRole, Outcome: latchkey.OutcomeSuccess, Detail: "fail"}
		if _, err := db.UpdateUser(ctx, alice.ID, latchkey.UserUpdate{Role: &role, Audit: badRole}); err == nil {
			t.Fatal("UpdateUser succeeded without its audit entry")
		}
		if u, _ := db.FindUserByID(ctx, alice.ID); u.Role != latchkey.RoleUser {
			t.Errorf("role %q after an update whose audit entry failed", u.Role)
		}
		good := &latchkey.AuditEvent{UserID: alice.ID, Username: "alice", Action: latchkey.ActionUserRole, Outcome: latchkey.OutcomeSuccess, Detail: "user → admin"}
		if u, err := db.UpdateUser(ctx, alice.ID, latchkey.UserUpdate{Role: &role, Audit: good}); err != nil || u.Role != latchkey.RoleAdmin {
			t.Fatalf("UpdateUser = %v, %v", u, err)
		}
		reset := &latchkey.AuditEvent{UserID: alice.ID, Username: "alice", Action: latchkey.ActionAdminMFAReset, Outcome: latchkey.OutcomeSuccess, Detail: "reason: lost phone"}
		if _, err := db.ResetMFA(ctx, alice.ID, nil, reset); err != nil {
			t.Fatal(err)
		}
		if good.ID == 0 || reset.ID == 0 {
			t.Errorf("audit IDs %d, %d: not set", good.ID, reset.ID)
		}
		if _, err := db.ChainAuditEvents(ctx); err != nil {
			t.Fatal(err)
		}
		events, err := db.FindAuditEvents(ctx, latchkey.AuditFilter{})
		if err != nil || len(events) != 2 || events[0].Detail != "user → admin" || events[1].Action != latchkey.ActionAdminMFAReset {
			t.Fatalf("audit trail = %v, %v", events, err)
		}
	})
}

// TestFirstFactor: a rollout's factor (first) is written only while the user has none: an
// authenticator app, a security key, or a device of a rollout's code; otherwise
// ErrNotFirstFactor and nothing written.
func TestFirstFactor(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		u := mkUser(t, db, "alice")
		app := mkPendingApp(t, db, u)
		key := &latchkey.WebAuthnCredential{UserID: u.ID, Name: "Key", CredentialID: []byte("cred-first"), Data: []byte(`{}`)}
		if err := db.CreateWebAuthnCredential(ctx, key, [][]byte{[]byte("h1")}, true); err != nil {
			t.Fatalf("the first factor: %v", err)
		}
		if err := db.ConfirmTOTPCredential(ctx, app.ID, 1, t0, [][]byte{[]byte("h2")}, true); !errors.Is(err, latchkey.ErrNotFirstFactor) {
			t.Errorf("ConfirmTOTPCredential(first) beside a key = %v, want ErrNotFirstFactor", err)
		}
		other := &latchkey.WebAuthnCredential{UserID: u.ID, Name: "Key 2", CredentialID: []byte("cred-second"), Data: []byte(`{}`)}
		if err := db.CreateWebAuthnCredential(ctx, other, nil, true); !errors.Is(err, latchkey.ErrNotFirstFactor) {
			t.Errorf("CreateWebAuthnCredential(first) beside a key = %v, want ErrNotFirstFactor", err)
		}
		code := &latchkey.DeviceActivation{ID: "rollout-code", UserID: u.ID, Kind: latchkey.ActivationNew, FlowSID: "flow", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
		d := &latchkey.Device{UserID: u.ID, Name: "phone", Platform: "ios", PublicKey: []byte("key-rollout"), State: latchkey.DeviceActive, Code: code}
		if err := db.CreateDevice(ctx, d, &latchkey.TOTPCredential{UserID: u.ID, Name: "phone", Secret: []byte("seed-of-rollout-dev1")}); !errors.Is(err, latchkey.ErrNotFirstFactor) {
			t.Errorf("CreateDevice with a rollout's code beside a key = %v, want ErrNotFirstFactor", err)
		}
		creds, _ := db.FindTOTPCredentials(ctx, u.ID)
		keys, _ := db.FindWebAuthnCredentials(ctx, u.ID)
		devs, _ := db.FindDevices(ctx, u.ID)
		codes, _ := db.FindRecoveryCodes(ctx, u.ID)
		if len(creds) != 1 || creds[0].Confirmed() || len(keys) != 1 || len(devs) != 0 || len(codes) != 1 {
			t.Errorf("after the refusals: %d apps (confirmed %v), %d keys, %d devices, %d recovery codes; want the key and its code alone",
				len(creds), len(creds) > 0 && creds[0].Confirmed(), len(keys), len(devs), len(codes))
		}
		// Not first: the same app is confirmed beside the key.
		if err := db.ConfirmTOTPCredential(ctx, app.ID, 1, t0, nil, false); err != nil {
			t.Errorf("ConfirmTOTPCredential beside a key: %v", err)
		}
	})
}

// TestLastFactorRemovedAtOnce: two removals at the same moment, of the last two factors
// (a key and an app, then a key and a device) with keepOne, leave one: the other gets
// ErrLastFactor, and the recovery codes stay.
func TestLastFactorRemovedAtOnce(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		for round := range 6 {
			u := mkUser(t, db, fmt.Sprintf("user%d", round))
			key := &latchkey.WebAuthnCredential{UserID: u.ID, Name: "Key", CredentialID: []byte(fmt.Sprintf("cred-%d", round)), Data: []byte(`{}`)}
			if err := db.CreateWebAuthnCredential(ctx, key, [][]byte{[]byte("h")}, false); err != nil {
				t.Fatal(err)
			}
			var remove func() error
			if round%2 == 0 {
				app := mkApp(t, db, u, 1)
				remove = func() error { return db.DeleteTOTPCredential(ctx, u.ID, app.ID, true) }
			} else {
				d, _ := mkDevice(t, db, u, fmt.Sprintf("key-%d", round), latchkey.DeviceActive, fmt.Sprintf("seed-of-device-%03d", round))
				remove = func() error { return db.DeleteDevice(ctx, u.ID, d.ID, true) }
			}
			errs := make([]error, 2)
			var wg sync.WaitGroup
			wg.Go(func() { errs[0] = db.DeleteWebAuthnCredential(ctx, u.ID, key.ID, true) })
			wg.Go(func() { errs[1] = remove() })
			wg.Wait()
			ok, last := 0, 0
			for _, err := range errs {
				switch {
				case err == nil:
					ok++
				case errors.Is(err, latchkey.ErrLastFactor):
					last++
				default:
					t.Fatalf("round %d: %v", round, err)
				}
			}
			if ok != 1 || last != 1 {
				t.Errorf("round %d: %d removed, %d refused as the last; want 1 and 1", round, ok, last)
			}
			if codes, _ := db.FindRecoveryCodes(ctx, u.ID); len(codes) != 1 {
				t.Errorf("round %d: %d recovery codes, want the 1 kept with the last factor", round, len(codes))
			}
		}
	})
}

// TestUseWebAuthnCredentialCounter: an assertion without the clone warning must raise a
// counter that is not 0, in the UPDATE itself: of several assertions recorded at once with
// the same counter, one is recorded and the others get EConflict. A key whose counter stays
// 0 (a synced passkey) is recorded every time, a warning always, and a gone key is ENotFound.
func TestUseWebAuthnCredentialCounter(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		alice := mkUser(t, db, "alice")
		k := &latchkey.WebAuthnCredential{UserID: alice.ID, Name: "Blue key", CredentialID: []byte("cred-1"), Data: []byte(`{}`), SignCount: 5}
		synced := &latchkey.WebAuthnCredential{UserID: alice.ID, Name: "Passkey", CredentialID: []byte("cred-2"), Data: []byte(`{}`)}
		for _, c := range []*latchkey.WebAuthnCredential{k, synced} {
			if err := db.CreateWebAuthnCredential(ctx, c, nil, false); err != nil {
				t.Fatal(err)
			}
		}
		const n = 8
		oneWins(t, n, func(_ int) error { return db.UseWebAuthnCredential(ctx, k.ID, 6, false, t0) })
		for _, tt := range []struct {
			name    string
			id      int64
			count   uint32
			warning bool
			want    string
		}{
			{"a lower counter", k.ID, 4, false, latchkey.EConflict},
			{"a higher counter", k.ID, 7, false, ""},
			{"a warning", k.ID, 7, true, ""},
			{"a counter of 0 after 7", k.ID, 0, false, latchkey.EConflict},
			{"a key without a counter", synced.ID, 0, false, ""},
			{"a key without a counter again", synced.ID, 0, false, ""},
			{"a gone key", 99999, 8, false, latchkey.ENotFound},
		} {
			if err := db.UseWebAuthnCredential(ctx, tt.id, tt.count, tt.warning, t0); errCode(err) != tt.want {
				t.Errorf("%s: UseWebAuthnCredential = %v, want %q", tt.name, err, tt.want)
			}
		}
		keys, err := db.FindWebAuthnCredentials(ctx, alice.ID)
		if err != nil || len(keys) != 2 || keys[0].SignCount != 7 || !keys[0].CloneWarning || keys[1].SignCount != 0 || keys[1].CloneWarning {
			t.Errorf("keys after: %v %+v", err, keys)
		}
	})
}
