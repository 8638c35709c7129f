package sqlstore_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/sqlstore"
)

// The joined reads of a push round trip give what their separate reads give.

func TestFindDeviceWithUser(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		mkUser(t, db, "bob")
		u := mkUser(t, db, "alice")
		mkDevice(t, db, u, "k0", latchkey.DeviceActive, "s0")
		d, _ := mkDevice(t, db, u, "k1", latchkey.DeviceActive, "s1")
		if err := db.UseDeviceNonce(ctx, d.ID, "n", t0.Add(time.Minute), t0); err != nil {
			t.Fatal(err)
		}
		wantD, _ := db.FindDevice(ctx, d.ID)
		wantU, _ := db.FindUserByID(ctx, u.ID)
		gotD, gotU, err := db.FindDeviceWithUser(ctx, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		// Every field, so that a column added to one read but not to the other fails here.
		if !reflect.DeepEqual(gotD, wantD) || string(gotD.PublicKey) != "k1" {
			t.Errorf("device = %+v, want %+v", gotD, wantD)
		}
		if !reflect.DeepEqual(gotU, wantU) || gotU.Username != "alice" {
			t.Errorf("user = %+v, want %+v", gotU, wantU)
		}
		if _, _, err := db.FindDeviceWithUser(ctx, d.ID+100); errCode(err) != latchkey.ENotFound {
			t.Errorf("unknown device: err = %v, want not_found", err)
		}
	})
}

func TestDevicePushChallenges(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		u := mkUser(t, db, "alice")
		d, _ := mkDevice(t, db, u, "k1", latchkey.DeviceActive, "s1")
		other, _ := mkDevice(t, db, u, "k2", latchkey.DeviceActive, "s2")
		pending, _ := mkDevice(t, db, u, "k3", latchkey.DevicePending, "")
		exp := t0.Add(2 * time.Minute)
		at := t0.Add(10 * time.Second)

		// No challenge yet: none, and no error (the device may receive).
		if chs, err := db.DevicePushChallenges(ctx, d.ID, d.PublicKey, at); err != nil || len(chs) != 0 {
			t.Fatalf("no challenge: %v, %v", chs, err)
		}
		mkPush(t, db, "c1", u, d.ID, latchkey.PushLogin, 0, t0, exp)
		mkPush(t, db, "c0", u, d.ID, latchkey.PushAddDevice, 9, t0.Add(-time.Second), exp)
		mkPush(t, db, "old", u, d.ID, latchkey.PushLogin, 0, t0, t0.Add(time.Second))
		mkPush(t, db, "theirs", u, other.ID, latchkey.PushLogin, 0, t0, exp)
		mkPush(t, db, "answered", u, d.ID, latchkey.PushLogin, 0, t0, exp)
		if err := db.AnswerPushChallenge(ctx, &latchkey.PushAnswer{ID: "answered", State: latchkey.PushDenied, Reason: latchkey.DenyUser, At: t0}); err != nil {
			t.Fatal(err)
		}
		want, err := db.PendingPushChallenges(ctx, d.ID, at)
		if err != nil || len(want) != 2 {
			t.Fatalf("PendingPushChallenges = %v, %v", want, err)
		}
		got, err := db.DevicePushChallenges(ctx, d.ID, d.PublicKey, at)
		if err != nil || !reflect.DeepEqual(got, want) || got[0].ID != "c0" || got[1].ID != "c1" {
			t.Errorf("DevicePushChallenges = %v, %v; want %v", got, err, want)
		}

		// Another key, a device that is not active, an unknown one: not found, with or
		// without challenges waiting.
		if _, err := db.DevicePushChallenges(ctx, d.ID, []byte("k2"), at); errCode(err) != latchkey.ENotFound {
			t.Errorf("another key: err = %v, want not_found", err)
		}
		if _, err := db.DevicePushChallenges(ctx, pending.ID, pending.PublicKey, at); errCode(err) != latchkey.ENotFound {
			t.Errorf("pending device: err = %v, want not_found", err)
		}
		mkPush(t, db, "to-pending", u, pending.ID, latchkey.PushLogin, 0, t0, exp)
		if _, err := db.DevicePushChallenges(ctx, pending.ID, pending.PublicKey, at); errCode(err) != latchkey.ENotFound {
			t.Errorf("pending device with a challenge: err = %v, want not_found", err)
		}
		if _, err := db.DevicePushChallenges(ctx, d.ID+100, d.PublicKey, at); errCode(err) != latchkey.ENotFound {
			t.Errorf("unknown device: err = %v, want not_found", err)
		}
		// Moved to a new key: the old key's stream gets nothing more.
		if err := db.ReplaceDeviceKey(ctx, d.ID, []byte("k9"), "new phone", "ios", []byte("s9"), t0); err != nil {
			t.Fatal(err)
		}
		if chs, err := db.DevicePushChallenges(ctx, d.ID, []byte("k1"), at); errCode(err) != latchkey.ENotFound {
			t.Errorf("after the key changed, the old key: %v, %v; want not_found", chs, err)
		}
		if chs, err := db.DevicePushChallenges(ctx, d.ID, []byte("k9"), at); err != nil || len(chs) != 2 {
			t.Errorf("after the key changed, the new key: %v, %v", chs, err)
		}
	})
}

func TestFindPushChallengeWithSession(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		mkUser(t, db, "bob")
		u := mkUser(t, db, "alice")
		s := &latchkey.Session{ID: "s1", SID: "sid-1", UserID: u.ID, State: latchkey.StateSecondFactor, AMR: []string{"pwd"}, PasswordAt: t0,
			CreatedAt: t0, LastSeenAt: t0, ExpiresAt: t0.Add(time.Hour), IP: "192.0.2.1", UserAgent: "UA", Verifier: "v"}
		if err := db.CreateSession(ctx, s); err != nil {
			t.Fatal(err)
		}
		mkPush(t, db, "c1", u, 5, latchkey.PushLogin, 0, t0, t0.Add(time.Minute))
		wantC, _ := db.FindPushChallenge(ctx, "c1")
		wantS, wantU, _ := db.FindSessionWithUser(ctx, "s1")
		c, gotS, gotU, err := db.FindPushChallengeWithSession(ctx, "c1", "s1")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(c, wantC) || c.Number != "42" {
			t.Errorf("challenge = %+v, want %+v", c, wantC)
		}
		if !reflect.DeepEqual(gotS, wantS) || gotS.Verifier != "v" {
			t.Errorf("session = %+v, want %+v", gotS, wantS)
		}
		if !reflect.DeepEqual(gotU, wantU) || gotU.Username != "alice" {
			t.Errorf("user = %+v, want %+v", gotU, wantU)
		}
		for _, ids := range [][2]string{{"nope", "s1"}, {"c1", "nope"}, {"nope", "nope"}} {
			if _, _, _, err := db.FindPushChallengeWithSession(ctx, ids[0], ids[1]); errCode(err) != latchkey.ENotFound {
				t.Errorf("FindPushChallengeWithSession(%q, %q): err = %v, want not_found", ids[0], ids[1], err)
			}
		}
	})
}
