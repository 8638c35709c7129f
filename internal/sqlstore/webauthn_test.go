package sqlstore_test

import (
	"context"
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
		if err := db.CreateWebAuthnCredential(ctx, k1, [][]byte{[]byte("h1"), []byte("h2")}); err != nil {
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
		if err := db.CreateWebAuthnCredential(ctx, dup, [][]byte{[]byte("x")}); errCode(err) != latchkey.EConflict {
			t.Fatalf("duplicate credential ID: %v", err)
		}
		if codes, _ := db.FindRecoveryCodes(ctx, bob.ID); len(codes) != 0 {
			t.Fatal("a refused key wrote recovery codes")
		}
		k2 := &latchkey.WebAuthnCredential{UserID: alice.ID, Name: "Passkey", CredentialID: []byte("cred-2"), Data: []byte(`{}`), Discoverable: true}
		if err := db.CreateWebAuthnCredential(ctx, k2, nil); err != nil {
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
		if codes, _ := db.FindRecoveryCodes(ctx, alice.ID); len(codes) != 0 {
			t.Fatal("recovery codes left after removing with dropRecovery")
		}
		keys, _ = db.FindWebAuthnCredentials(ctx, alice.ID)
		if len(keys) != 1 || keys[0].ID != k2.ID {
			t.Fatalf("after delete: %d keys", len(keys))
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
			if err := db.CreateTOTPCredential(ctx, &latchkey.TOTPCredential{UserID: u.ID, Name: "App", Secret: []byte("12345678901234567890")}); err != nil {
				t.Fatal(err)
			}
			if err := db.CreateWebAuthnCredential(ctx, &latchkey.WebAuthnCredential{UserID: u.ID, Name: "Key", CredentialID: []byte("cred-" + u.Username), Data: []byte(`{}`)}, [][]byte{[]byte("h-" + u.Username)}); err != nil {
				t.Fatal(err)
			}
		}
		removed, err := db.ResetMFA(ctx, alice.ID)
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
