package sqlstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/sqlstore"
)

// us0 is t0 as the store gives it back.
var us0 = t0.Truncate(time.Microsecond)

// mkDevice creates a device of u with public key pub; an active one gets a TOTP credential
// with the seed secret.
func mkDevice(t *testing.T, db *sqlstore.DB, u *latchkey.User, pub string, state latchkey.DeviceState, secret string) (*latchkey.Device, *latchkey.TOTPCredential) {
	t.Helper()
	d := &latchkey.Device{UserID: u.ID, Name: "phone " + pub, Platform: "android", PublicKey: []byte(pub), State: state, KeyChangedAt: t0}
	var cred *latchkey.TOTPCredential
	if state == latchkey.DeviceActive {
		cred = &latchkey.TOTPCredential{Name: "Latch", Secret: []byte(secret)}
	}
	if err := db.CreateDevice(context.Background(), d, cred); err != nil {
		t.Fatalf("CreateDevice(%s): %v", pub, err)
	}
	return d, cred
}

// deviceIDs returns the IDs of the user's devices in FindDevices order, and the primary's.
func deviceIDs(t *testing.T, db *sqlstore.DB, u *latchkey.User) (ids []int64, primary []int64) {
	t.Helper()
	ds, err := db.FindDevices(context.Background(), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		ids = append(ids, d.ID)
		if d.Primary {
			primary = append(primary, d.ID)
		}
	}
	return ids, primary
}

func mkPush(t *testing.T, db *sqlstore.DB, id string, u *latchkey.User, deviceID int64, kind string, subject int64, created, expires time.Time) *latchkey.PushChallenge {
	t.Helper()
	c := &latchkey.PushChallenge{ID: id, UserID: u.ID, DeviceID: deviceID, Kind: kind, SessionID: "flow-" + id, SubjectDeviceID: subject,
		Number: "42", Application: "Wiki", Browser: "Firefox on Linux", IP: "192.0.2.7", CreatedAt: created, ExpiresAt: expires, State: latchkey.PushPending}
	if err := db.CreatePushChallenge(context.Background(), c); err != nil {
		t.Fatalf("CreatePushChallenge(%s): %v", id, err)
	}
	return c
}

func TestDeviceActivations(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		u := mkUser(t, db, "alice")
		a := &latchkey.DeviceActivation{ID: "abc123", UserID: u.ID, Kind: latchkey.ActivationTransfer, DeviceID: 77, NeedsApproval: true, CreatedAt: t0, ExpiresAt: t0.Add(10 * time.Minute)}
		if err := db.CreateDeviceActivation(ctx, a); err != nil {
			t.Fatal(err)
		}
		if err := db.CreateDeviceActivation(ctx, a); errCode(err) != latchkey.EConflict {
			t.Errorf("duplicate activation = %v, want conflict", err)
		}
		use := t0.Add(time.Minute)
		got, err := db.UseDeviceActivation(ctx, "abc123", use)
		if err != nil || got.UserID != u.ID || got.Kind != latchkey.ActivationTransfer || got.DeviceID != 77 || !got.NeedsApproval ||
			!got.CreatedAt.Equal(us0) || !got.ExpiresAt.Equal(a.ExpiresAt.Truncate(time.Microsecond)) || got.UsedAt == nil || !got.UsedAt.Equal(use.Truncate(time.Microsecond)) {
			t.Fatalf("UseDeviceActivation = %+v, %v", got, err)
		}
		if _, err := db.UseDeviceActivation(ctx, "abc123", use); errCode(err) != latchkey.ENotFound {
			t.Errorf("second use = %v, want not_found", err)
		}
		if _, err := db.UseDeviceActivation(ctx, "nope", use); errCode(err) != latchkey.ENotFound {
			t.Errorf("unknown code = %v, want not_found", err)
		}
		b := &latchkey.DeviceActivation{ID: "def456", UserID: u.ID, Kind: latchkey.ActivationNew, FlowSID: "flow-1", CreatedAt: t0, ExpiresAt: t0.Add(time.Minute)}
		if err := db.CreateDeviceActivation(ctx, b); err != nil {
			t.Fatal(err)
		}
		if ok, err := db.DeviceActivatedInFlow(ctx, u.ID, "flow-1"); err != nil || ok {
			t.Errorf("DeviceActivatedInFlow before the code is used = %v, %v", ok, err)
		}
		if _, err := db.UseDeviceActivation(ctx, "def456", b.ExpiresAt); errCode(err) != latchkey.ENotFound {
			t.Errorf("use at expiry = %v, want not_found", err)
		}
		got, err = db.UseDeviceActivation(ctx, "def456", b.ExpiresAt.Add(-time.Microsecond))
		if err != nil || got.Kind != latchkey.ActivationNew || got.DeviceID != 0 || got.NeedsApproval {
			t.Errorf("use just before expiry = %+v, %v", got, err)
		}
		if ok, err := db.DeviceActivatedInFlow(ctx, u.ID, "flow-1"); err != nil || ok {
			t.Errorf("DeviceActivatedInFlow of a used code that admitted no device = %v, %v", ok, err)
		}
		// The device the code admits, pending first: only an active one counts.
		d := &latchkey.Device{UserID: u.ID, Name: "phone", Platform: "ios", PublicKey: []byte("key-flow"), State: latchkey.DevicePending, Code: got}
		if err := db.CreateDevice(ctx, d, nil); err != nil {
			t.Fatal(err)
		}
		if ok, err := db.DeviceActivatedInFlow(ctx, u.ID, "flow-1"); err != nil || ok {
			t.Errorf("DeviceActivatedInFlow with its device pending = %v, %v", ok, err)
		}
		if err := db.ActivateDevice(ctx, d.ID, &latchkey.TOTPCredential{UserID: u.ID, Name: "phone", Secret: []byte("seed-of-flow-device1")}, t0); err != nil {
			t.Fatal(err)
		}
		for sid, want := range map[string]bool{"flow-1": true, "flow-2": false, "": false} {
			if ok, err := db.DeviceActivatedInFlow(ctx, u.ID, sid); err != nil || ok != want {
				t.Errorf("DeviceActivatedInFlow(%q) = %v, %v; want %v", sid, ok, err, want)
			}
		}
		if ok, _ := db.DeviceActivatedInFlow(ctx, u.ID+1, "flow-1"); ok {
			t.Error("DeviceActivatedInFlow of another user")
		}
	})
}

func TestDevices(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		u := mkUser(t, db, "alice")
		other := mkUser(t, db, "bob")
		standalone := &latchkey.TOTPCredential{UserID: u.ID, Name: "app", Secret: []byte("standalone-seed-0001")}
		if err := db.CreateTOTPCredential(ctx, standalone); err != nil {
			t.Fatal(err)
		}

		a, credA := mkDevice(t, db, u, "key-a", latchkey.DeviceActive, "seed-of-device-a-001")
		if a.ID == 0 || !a.CreatedAt.Equal(us0) || !a.Primary || a.TOTPCredentialID == 0 || a.TOTPCredentialID != credA.ID {
			t.Fatalf("CreateDevice set %+v", a)
		}
		if credA.DeviceID != a.ID || credA.UserID != u.ID || credA.ConfirmedAt == nil || !credA.ConfirmedAt.Equal(a.CreatedAt) {
			t.Errorf("device credential = %+v", credA)
		}
		got, err := db.FindDevice(ctx, a.ID)
		if err != nil || got.UserID != u.ID || got.Name != "phone key-a" || got.Platform != "android" || string(got.PublicKey) != "key-a" ||
			got.State != latchkey.DeviceActive || !got.Primary || got.TOTPCredentialID != credA.ID || !got.CreatedAt.Equal(us0) ||
			got.LastUsedAt != nil || !got.KeyChangedAt.Equal(us0) {
			t.Fatalf("FindDevice = %+v, %v", got, err)
		}
		creds, err := db.FindTOTPCredentials(ctx, u.ID)
		if err != nil || len(creds) != 2 || creds[0].DeviceID != 0 || creds[1].ID != credA.ID || creds[1].DeviceID != a.ID ||
			!bytes.Equal(creds[1].Secret, []byte("seed-of-device-a-001")) || !creds[1].Confirmed() {
			t.Fatalf("FindTOTPCredentials = %+v, %v", creds, err)
		}
		if err := useTOTPStep(t, db, u, "flow-device-a", credA.ID, 10); err != nil {
			t.Errorf("a sign-in with a device credential's step: %v", err)
		}

		b, _ := mkDevice(t, db, u, "key-b", latchkey.DeviceActive, "seed-of-device-b-001")
		if b.Primary {
			t.Error("a second active device became primary")
		}
		dup := &latchkey.Device{UserID: other.ID, Name: "x", Platform: "ios", PublicKey: []byte("key-a"), State: latchkey.DeviceActive}
		if err := db.CreateDevice(ctx, dup, &latchkey.TOTPCredential{Name: "Latch", Secret: []byte("x")}); errCode(err) != latchkey.EConflict {
			t.Errorf("duplicate public key = %v, want conflict", err)
		}
		if ds, _ := db.FindDevices(ctx, other.ID); len(ds) != 0 {
			t.Errorf("a refused device was stored: %v", ds)
		}
		if cs, _ := db.FindTOTPCredentials(ctx, other.ID); len(cs) != 0 {
			t.Errorf("a refused device left a credential: %v", cs)
		}
		if err := db.CreateDevice(ctx, &latchkey.Device{UserID: 9999, PublicKey: []byte("key-z"), State: latchkey.DevicePending}, nil); errCode(err) != latchkey.ENotFound {
			t.Errorf("device of a missing user = %v, want not_found", err)
		}

		c, _ := mkDevice(t, db, u, "key-c", latchkey.DevicePending, "")
		if c.Primary || c.TOTPCredentialID != 0 {
			t.Errorf("pending device = %+v", c)
		}
		if ids, primary := deviceIDs(t, db, u); fmt.Sprint(ids) != fmt.Sprint([]int64{a.ID, b.ID, c.ID}) || fmt.Sprint(primary) != fmt.Sprint([]int64{a.ID}) {
			t.Errorf("FindDevices order %v, primary %v", ids, primary)
		}

		// Primary moves on request, and only to an active device of that user.
		if err := db.UpdateDevice(ctx, u.ID, b.ID, latchkey.DeviceUpdate{Primary: true}); err != nil {
			t.Fatal(err)
		}
		if ids, primary := deviceIDs(t, db, u); fmt.Sprint(ids) != fmt.Sprint([]int64{b.ID, a.ID, c.ID}) || fmt.Sprint(primary) != fmt.Sprint([]int64{b.ID}) {
			t.Errorf("after making b primary: order %v, primary %v", ids, primary)
		}
		if err := db.UpdateDevice(ctx, u.ID, c.ID, latchkey.DeviceUpdate{Primary: true}); errCode(err) != latchkey.EConflict {
			t.Errorf("making a pending device primary = %v, want conflict", err)
		}
		if err := db.UpdateDevice(ctx, other.ID, a.ID, latchkey.DeviceUpdate{Primary: true}); errCode(err) != latchkey.ENotFound {
			t.Errorf("updating another user's device = %v, want not_found", err)
		}
		if _, primary := deviceIDs(t, db, u); fmt.Sprint(primary) != fmt.Sprint([]int64{b.ID}) {
			t.Errorf("failed updates moved the primary: %v", primary)
		}
		name, used := "work phone", t0.Add(time.Hour)
		if err := db.UpdateDevice(ctx, u.ID, a.ID, latchkey.DeviceUpdate{Name: &name}); err != nil {
			t.Fatal(err)
		}
		if err := db.UpdateDevice(ctx, u.ID, a.ID, latchkey.DeviceUpdate{LastUsedAt: &used}); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.FindDevice(ctx, a.ID); got.Name != name || got.LastUsedAt == nil || !got.LastUsedAt.Equal(used.Truncate(time.Microsecond)) || got.Primary {
			t.Errorf("after updates: %+v", got)
		}
		if err := db.UpdateDevice(ctx, u.ID, 9999, latchkey.DeviceUpdate{Name: &name}); errCode(err) != latchkey.ENotFound {
			t.Errorf("updating a missing device = %v, want not_found", err)
		}

		// Activation of the pending device.
		credC := &latchkey.TOTPCredential{Name: "Latch", Secret: []byte("seed-of-device-c-001")}
		act := t0.Add(2 * time.Minute)
		if err := db.ActivateDevice(ctx, c.ID, credC, act); err != nil {
			t.Fatal(err)
		}
		got, _ = db.FindDevice(ctx, c.ID)
		if got.State != latchkey.DeviceActive || got.Primary || got.TOTPCredentialID != credC.ID || credC.DeviceID != c.ID || credC.UserID != u.ID ||
			credC.ConfirmedAt == nil || !credC.ConfirmedAt.Equal(act.Truncate(time.Microsecond)) {
			t.Errorf("activated device %+v, credential %+v", got, credC)
		}
		if err := db.ActivateDevice(ctx, c.ID, &latchkey.TOTPCredential{Name: "Latch", Secret: []byte("again")}, act); errCode(err) != latchkey.ENotFound {
			t.Errorf("activating an active device = %v, want not_found", err)
		}
		if err := db.ActivateDevice(ctx, 9999, &latchkey.TOTPCredential{Name: "Latch", Secret: []byte("x")}, act); errCode(err) != latchkey.ENotFound {
			t.Errorf("activating a missing device = %v, want not_found", err)
		}
		if creds, _ := db.FindTOTPCredentials(ctx, u.ID); len(creds) != 4 {
			t.Errorf("%d credentials, want the standalone one and three devices'", len(creds))
		}
		if _, err := db.FindDevice(ctx, 9999); errCode(err) != latchkey.ENotFound {
			t.Errorf("FindDevice(missing) = %v", err)
		}

		// The first device to become active is primary, whether created or activated.
		p, _ := mkDevice(t, db, other, "key-p", latchkey.DevicePending, "")
		if err := db.ActivateDevice(ctx, p.ID, &latchkey.TOTPCredential{Name: "Latch", Secret: []byte("seed-of-device-p-001")}, act); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.FindDevice(ctx, p.ID); !got.Primary {
			t.Error("the user's only active device, activated, is not primary")
		}
		// An explicit Primary on creation takes over.
		q := &latchkey.Device{UserID: other.ID, Name: "q", Platform: "ios", PublicKey: []byte("key-q"), State: latchkey.DeviceActive, Primary: true}
		if err := db.CreateDevice(ctx, q, &latchkey.TOTPCredential{Name: "Latch", Secret: []byte("seed-of-device-q-001")}); err != nil {
			t.Fatal(err)
		}
		if _, primary := deviceIDs(t, db, other); !q.Primary || fmt.Sprint(primary) != fmt.Sprint([]int64{q.ID}) {
			t.Errorf("primary after creating one with Primary: %v", primary)
		}
	})
}

func TestDeleteDevice(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		u := mkUser(t, db, "alice")
		other := mkUser(t, db, "bob")
		standalone := &latchkey.TOTPCredential{UserID: u.ID, Name: "app", Secret: []byte("standalone-seed-0001")}
		db.CreateTOTPCredential(ctx, standalone)
		if err := db.ConfirmTOTPCredential(ctx, standalone.ID, 1, t0, nil, false); err != nil {
			t.Fatal(err)
		}
		a, credA := mkDevice(t, db, u, "key-a", latchkey.DeviceActive, "seed-of-device-a-001")
		b, _ := mkDevice(t, db, u, "key-b", latchkey.DeviceActive, "seed-of-device-b-001")
		c, _ := mkDevice(t, db, u, "key-c", latchkey.DeviceActive, "seed-of-device-c-001")
		p, _ := mkDevice(t, db, u, "key-p", latchkey.DevicePending, "")
		exp := t0.Add(5 * time.Minute)
		mkPush(t, db, "login-a", u, a.ID, latchkey.PushLogin, 0, t0, exp)
		mkPush(t, db, "answered-a", u, a.ID, latchkey.PushLogin, 0, t0, exp)
		if err := db.AnswerPushChallenge(ctx, &latchkey.PushAnswer{ID: "answered-a", State: latchkey.PushApproved, At: t0}); err != nil {
			t.Fatal(err)
		}
		mkPush(t, db, "login-b", u, b.ID, latchkey.PushLogin, 0, t0, exp)
		mkPush(t, db, "add-p", u, b.ID, latchkey.PushAddDevice, p.ID, t0, exp)
		if err := db.UseDeviceNonce(ctx, a.ID, "n1", exp, t0); err != nil {
			t.Fatal(err)
		}
		db.CreateDeviceActivation(ctx, &latchkey.DeviceActivation{ID: "transfer-a", UserID: u.ID, Kind: latchkey.ActivationTransfer, DeviceID: a.ID, CreatedAt: t0, ExpiresAt: exp})

		if err := db.DeleteDevice(ctx, other.ID, a.ID, false); errCode(err) != latchkey.ENotFound {
			t.Errorf("deleting another user's device = %v, want not_found", err)
		}
		if err := db.DeleteDevice(ctx, u.ID, 9999, false); errCode(err) != latchkey.ENotFound {
			t.Errorf("deleting a missing device = %v, want not_found", err)
		}
		if err := db.DeleteDevice(ctx, u.ID, a.ID, false); err != nil {
			t.Fatal(err)
		}
		if _, err := db.FindDevice(ctx, a.ID); errCode(err) != latchkey.ENotFound {
			t.Errorf("FindDevice after delete = %v", err)
		}
		if ids, primary := deviceIDs(t, db, u); fmt.Sprint(ids) != fmt.Sprint([]int64{b.ID, c.ID, p.ID}) || fmt.Sprint(primary) != fmt.Sprint([]int64{b.ID}) {
			t.Errorf("after deleting the primary: order %v, primary %v (want the oldest active one)", ids, primary)
		}
		creds, _ := db.FindTOTPCredentials(ctx, u.ID)
		for _, cr := range creds {
			if cr.ID == credA.ID || cr.DeviceID == a.ID {
				t.Errorf("the deleted device's credential survived: %+v", cr)
			}
		}
		if len(creds) != 3 || creds[0].ID != standalone.ID {
			t.Errorf("credentials after delete: %+v", creds)
		}
		if _, err := db.FindPushChallenge(ctx, "login-a"); errCode(err) != latchkey.ENotFound {
			t.Errorf("the deleted device's pending challenge survived: %v", err)
		}
		if got, err := db.FindPushChallenge(ctx, "answered-a"); err != nil || got.State != latchkey.PushApproved {
			t.Errorf("an answered challenge was deleted: %v", err)
		}
		if _, err := db.FindPushChallenge(ctx, "login-b"); err != nil {
			t.Errorf("another device's challenge was deleted: %v", err)
		}
		if _, err := db.UseDeviceActivation(ctx, "transfer-a", t0); errCode(err) != latchkey.ENotFound {
			t.Errorf("the deleted device's transfer code still works: %v", err)
		}

		// Deleting the pending device removes the add_device challenge about it.
		if err := db.DeleteDevice(ctx, u.ID, p.ID, false); err != nil {
			t.Fatal(err)
		}
		if _, err := db.FindPushChallenge(ctx, "add-p"); errCode(err) != latchkey.ENotFound {
			t.Errorf("the add_device challenge about a deleted device survived: %v", err)
		}
		// Deleting a non-primary device leaves the primary alone; deleting the last one leaves none.
		if err := db.DeleteDevice(ctx, u.ID, c.ID, false); err != nil {
			t.Fatal(err)
		}
		if _, primary := deviceIDs(t, db, u); fmt.Sprint(primary) != fmt.Sprint([]int64{b.ID}) {
			t.Errorf("primary after deleting a secondary: %v", primary)
		}
		if err := db.DeleteDevice(ctx, u.ID, b.ID, false); err != nil {
			t.Fatal(err)
		}
		if ids, _ := deviceIDs(t, db, u); len(ids) != 0 {
			t.Errorf("devices left: %v", ids)
		}
		if creds, _ := db.FindTOTPCredentials(ctx, u.ID); len(creds) != 1 || creds[0].ID != standalone.ID || creds[0].DeviceID != 0 {
			t.Errorf("credentials after deleting every device: %+v", creds)
		}
		// A new device after that is primary again.
		if d, _ := mkDevice(t, db, u, "key-d", latchkey.DeviceActive, "seed-of-device-d-001"); !d.Primary {
			t.Error("the only device is not primary")
		}
	})
}

func TestDevicesGoWithTheirUser(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		u := mkUser(t, db, "alice")
		a, _ := mkDevice(t, db, u, "key-a", latchkey.DeviceActive, "seed-of-device-a-001")
		mkPush(t, db, "login-a", u, a.ID, latchkey.PushLogin, 0, t0, t0.Add(time.Minute))
		db.CreateDeviceActivation(ctx, &latchkey.DeviceActivation{ID: "code", UserID: u.ID, Kind: latchkey.ActivationNew, CreatedAt: t0, ExpiresAt: t0.Add(time.Minute)})
		if _, err := db.SQL().ExecContext(ctx, `DELETE FROM users WHERE id = $1`, u.ID); err != nil {
			t.Fatal(err)
		}
		for _, table := range []string{"devices", "device_activations", "push_challenges", "totp_credentials"} {
			var n int
			if err := db.SQL().QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil || n != 0 {
				t.Errorf("%s after deleting the user: %d rows, %v", table, n, err)
			}
		}
	})
}

func TestReplaceDeviceKey(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		u := mkUser(t, db, "alice")
		a, credA := mkDevice(t, db, u, "key-a", latchkey.DeviceActive, "seed-of-device-a-001")
		_, credB := mkDevice(t, db, u, "key-b", latchkey.DeviceActive, "seed-of-device-b-001")
		p, _ := mkDevice(t, db, u, "key-p", latchkey.DevicePending, "")
		if err := useTOTPStep(t, db, u, "flow-500", credA.ID, 500); err != nil {
			t.Fatal(err)
		}
		if err := useTOTPStep(t, db, u, "flow-400-old-seed", credA.ID, 400); errCode(err) != latchkey.EConflict {
			t.Fatalf("a sign-in with step 400 after step 500 = %v, want conflict", err)
		}
		when := t0.Add(time.Hour)
		newSeed := []byte("new-seed-of-device-a")
		if err := db.ReplaceDeviceKey(ctx, a.ID, []byte("key-b"), "new", "ios", newSeed, when); errCode(err) != latchkey.EConflict {
			t.Errorf("replacing with another device's key = %v, want conflict", err)
		}
		if err := db.ReplaceDeviceKey(ctx, p.ID, []byte("key-n"), "new", "ios", newSeed, when); errCode(err) != latchkey.ENotFound {
			t.Errorf("replacing a pending device's key = %v, want not_found", err)
		}
		if err := db.ReplaceDeviceKey(ctx, 9999, []byte("key-n"), "new", "ios", newSeed, when); errCode(err) != latchkey.ENotFound {
			t.Errorf("replacing a missing device's key = %v, want not_found", err)
		}
		if got, _ := db.FindDevice(ctx, a.ID); string(got.PublicKey) != "key-a" || !got.KeyChangedAt.Equal(us0) {
			t.Fatalf("a refused replacement changed the device: %+v", got)
		}
		if err := db.ReplaceDeviceKey(ctx, a.ID, []byte("key-n"), "new phone", "ios", newSeed, when); err != nil {
			t.Fatal(err)
		}
		got, _ := db.FindDevice(ctx, a.ID)
		if string(got.PublicKey) != "key-n" || got.Name != "new phone" || got.Platform != "ios" || !got.KeyChangedAt.Equal(when.Truncate(time.Microsecond)) ||
			got.TOTPCredentialID != credA.ID || !got.Primary || got.State != latchkey.DeviceActive || !got.CreatedAt.Equal(us0) {
			t.Errorf("after ReplaceDeviceKey: %+v", got)
		}
		creds, _ := db.FindTOTPCredentials(ctx, u.ID)
		for _, c := range creds {
			switch c.ID {
			case credA.ID:
				if !bytes.Equal(c.Secret, newSeed) || c.LastStep != 0 || c.DeviceID != a.ID || !c.Confirmed() {
					t.Errorf("re-keyed credential = %+v", c)
				}
			case credB.ID:
				if !bytes.Equal(c.Secret, []byte("seed-of-device-b-001")) {
					t.Errorf("another device's seed changed")
				}
			}
		}
		// Step 400 was refused before (≤ 500); with the new seed and LastStep 0 it is accepted.
		if err := useTOTPStep(t, db, u, "flow-400", credA.ID, 400); err != nil {
			t.Errorf("a sign-in with step 400 after re-keying: %v", err)
		}
		// The old key is free again.
		mkDevice(t, db, u, "key-a", latchkey.DevicePending, "")
	})
}

func TestDeviceNonces(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		exp := t0.Add(5 * time.Minute)
		if err := db.UseDeviceNonce(ctx, 1, "n1", exp, t0); err != nil {
			t.Fatal(err)
		}
		if err := db.UseDeviceNonce(ctx, 1, "n1", exp, t0.Add(time.Minute)); errCode(err) != latchkey.EConflict {
			t.Errorf("replayed nonce = %v, want conflict", err)
		}
		if err := db.UseDeviceNonce(ctx, 2, "n1", exp, t0); err != nil {
			t.Errorf("the same nonce from another device: %v", err)
		}
		if err := db.UseDeviceNonce(ctx, 1, "n2", exp, t0); err != nil {
			t.Errorf("a fresh nonce: %v", err)
		}
		// Later requests sweep the device's expired nonces.
		if err := db.UseDeviceNonce(ctx, 1, "n3", exp.Add(10*time.Minute), exp.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.SQL().QueryRowContext(ctx, `SELECT COUNT(*) FROM device_nonces WHERE device_id = 1`).Scan(&n); err != nil || n != 1 {
			t.Errorf("device 1 keeps %d nonces, want 1 (%v)", n, err)
		}
	})
}

// TestAnswerWithNonce: an answer carrying its request's nonce records it in the same
// transaction; a nonce used before refuses the answer with ErrNonceUsed and writes nothing
// (the challenge stays pending, no audit entry, no failure counted), and an answer refused
// for another reason leaves its nonce unused.
func TestAnswerWithNonce(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		u := mkUser(t, db, "alice")
		exp := t0.Add(2 * time.Minute)
		mkPush(t, db, "c1", u, 5, latchkey.PushLogin, 0, t0, exp)
		nonce := func(n string) *latchkey.RequestNonce {
			return &latchkey.RequestNonce{DeviceID: 5, Nonce: n, ExpiresAt: t0.Add(10 * time.Minute), Now: t0}
		}
		audits := func() int {
			var n int
			if err := db.SQL().QueryRowContext(ctx, `SELECT COUNT(*) FROM audit_events`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		answer := func(id string, n *latchkey.RequestNonce) error {
			return db.AnswerPushChallenge(ctx, &latchkey.PushAnswer{ID: id, State: latchkey.PushDenied, Reason: latchkey.DenyWrongNumber, At: t0.Add(time.Second),
				CountKey: latchkey.ThrottleKeyUser("alice"), Nonce: n,
				Audit: &latchkey.AuditEvent{Time: t0, UserID: u.ID, Username: "alice", Action: latchkey.ActionPushDenied, Outcome: latchkey.OutcomeFailure}})
		}

		if err := db.UseDeviceNonce(ctx, 5, "used", exp, t0); err != nil {
			t.Fatal(err)
		}
		before := audits()
		if err := answer("c1", nonce("used")); !errors.Is(err, latchkey.ErrNonceUsed) {
			t.Fatalf("an answer with a nonce used before = %v, want ErrNonceUsed", err)
		}
		if got, _ := db.FindPushChallenge(ctx, "c1"); got.State != latchkey.PushPending {
			t.Errorf("after the refused answer the challenge is %s, want pending", got.State)
		}
		if n := audits(); n != before {
			t.Errorf("the refused answer left %d audit entries", n-before)
		}
		if th, err := db.FindThrottle(ctx, latchkey.ThrottleKeyUser("alice")); err != nil || th.Failures != 0 {
			t.Errorf("the refused answer counted %d failures (%v)", th.Failures, err)
		}

		// A fresh nonce: the answer and the nonce are written together.
		if err := answer("c1", nonce("fresh")); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.FindPushChallenge(ctx, "c1"); got.State != latchkey.PushDenied {
			t.Errorf("after the answer the challenge is %s, want denied", got.State)
		}
		if th, err := db.FindThrottle(ctx, latchkey.ThrottleKeyUser("alice")); err != nil || th.Failures != 1 || audits() != before+1 {
			t.Errorf("after the answer: %d failures (%v), %d audit entries more; want 1 and 1", th.Failures, err, audits()-before)
		}
		if err := db.UseDeviceNonce(ctx, 5, "fresh", exp, t0); !errors.Is(err, latchkey.ErrNonceUsed) {
			t.Errorf("the answer's nonce used again = %v, want ErrNonceUsed", err)
		}

		// Refused for another reason (answered already; unknown): the nonce stays unused.
		if err := answer("c1", nonce("late")); errCode(err) != latchkey.EConflict || errors.Is(err, latchkey.ErrNonceUsed) {
			t.Errorf("a second answer = %v, want conflict (answered already)", err)
		}
		if err := answer("nope", nonce("lost")); errCode(err) != latchkey.ENotFound {
			t.Errorf("an answer to an unknown challenge = %v, want not_found", err)
		}
		for _, n := range []string{"late", "lost"} {
			if err := db.UseDeviceNonce(ctx, 5, n, exp, t0); err != nil {
				t.Errorf("nonce %q of a refused answer: %v, want unused", n, err)
			}
		}
	})
}

func TestPushChallenges(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		u := mkUser(t, db, "alice")
		exp := t0.Add(2 * time.Minute)
		c := mkPush(t, db, "c1", u, 5, latchkey.PushLogin, 0, t0, exp)
		if err := db.CreatePushChallenge(ctx, c); errCode(err) != latchkey.EConflict {
			t.Errorf("duplicate challenge = %v, want conflict", err)
		}
		got, err := db.FindPushChallenge(ctx, "c1")
		if err != nil || got.UserID != u.ID || got.DeviceID != 5 || got.Kind != latchkey.PushLogin || got.SessionID != "flow-c1" || got.SubjectDeviceID != 0 ||
			got.Number != "42" || got.Application != "Wiki" || got.Browser != "Firefox on Linux" || got.IP != "192.0.2.7" ||
			!got.CreatedAt.Equal(us0) || !got.ExpiresAt.Equal(exp.Truncate(time.Microsecond)) || got.State != latchkey.PushPending ||
			got.Reason != "" || got.AnsweredAt != nil || got.CompletedAt != nil {
			t.Fatalf("FindPushChallenge = %+v, %v", got, err)
		}
		if _, err := db.FindPushChallenge(ctx, "nope"); errCode(err) != latchkey.ENotFound {
			t.Errorf("FindPushChallenge(missing) = %v", err)
		}
		mkPush(t, db, "c0", u, 5, latchkey.PushAddDevice, 9, t0.Add(-time.Second), exp)
		mkPush(t, db, "c2", u, 5, latchkey.PushLogin, 0, t0.Add(time.Second), t0.Add(time.Minute))
		mkPush(t, db, "other", u, 6, latchkey.PushLogin, 0, t0, exp)
		mkPush(t, db, "answered", u, 5, latchkey.PushLogin, 0, t0, exp)
		if err := db.AnswerPushChallenge(ctx, &latchkey.PushAnswer{ID: "answered", State: latchkey.PushDenied, Reason: latchkey.DenyFraud, At: t0}); err != nil {
			t.Fatal(err)
		}
		pending, err := db.PendingPushChallenges(ctx, 5, t0.Add(10*time.Second))
		if err != nil || len(pending) != 3 || pending[0].ID != "c0" || pending[0].SubjectDeviceID != 9 || pending[1].ID != "c1" || pending[2].ID != "c2" {
			t.Errorf("PendingPushChallenges = %v, %v", pending, err)
		}
		if pending, _ := db.PendingPushChallenges(ctx, 5, t0.Add(time.Minute)); len(pending) != 2 {
			t.Errorf("PendingPushChallenges past c2's expiry = %d, want 2", len(pending))
		}
		if got, _ := db.FindPushChallenge(ctx, "answered"); got.State != latchkey.PushDenied || got.Reason != latchkey.DenyFraud || got.AnsweredAt == nil {
			t.Errorf("denied challenge = %+v", got)
		}

		ans := t0.Add(30 * time.Second)
		if err := db.AnswerPushChallenge(ctx, &latchkey.PushAnswer{ID: "c1", State: latchkey.PushApproved, At: ans}); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.FindPushChallenge(ctx, "c1"); got.State != latchkey.PushApproved || got.AnsweredAt == nil || !got.AnsweredAt.Equal(ans.Truncate(time.Microsecond)) {
			t.Errorf("approved challenge = %+v", got)
		}
		if err := db.AnswerPushChallenge(ctx, &latchkey.PushAnswer{ID: "c1", State: latchkey.PushDenied, Reason: latchkey.DenyUser, At: ans}); errCode(err) != latchkey.EConflict {
			t.Errorf("second answer = %v, want conflict", err)
		}
		if err := db.AnswerPushChallenge(ctx, &latchkey.PushAnswer{ID: "c2", State: latchkey.PushApproved, At: t0.Add(time.Minute)}); errCode(err) != latchkey.EFlowExpired {
			t.Errorf("answer at expiry = %v, want flow_expired", err)
		}
		if got, _ := db.FindPushChallenge(ctx, "c2"); got.State != latchkey.PushPending || got.StateAt(t0.Add(time.Minute)) != latchkey.PushExpired {
			t.Errorf("expired challenge = %+v", got)
		}
		if err := db.AnswerPushChallenge(ctx, &latchkey.PushAnswer{ID: "nope", State: latchkey.PushApproved, At: ans}); errCode(err) != latchkey.ENotFound {
			t.Errorf("answer to an unknown challenge = %v, want not_found", err)
		}
		if err := db.AnswerPushChallenge(ctx, &latchkey.PushAnswer{ID: "c0", State: latchkey.PushPending, At: ans}); err == nil {
			t.Error("answered with state pending")
		}

		if err := db.CompletePushChallenge(ctx, "c0", ans); errCode(err) != latchkey.EConflict {
			t.Errorf("completing a pending challenge = %v, want conflict", err)
		}
		if err := db.CompletePushChallenge(ctx, "answered", ans); errCode(err) != latchkey.EConflict {
			t.Errorf("completing a denied challenge = %v, want conflict", err)
		}
		if err := db.CompletePushChallenge(ctx, "c1", ans); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.FindPushChallenge(ctx, "c1"); got.CompletedAt == nil || !got.CompletedAt.Equal(ans.Truncate(time.Microsecond)) {
			t.Errorf("completed challenge = %+v", got)
		}
		if err := db.CompletePushChallenge(ctx, "c1", ans); errCode(err) != latchkey.EConflict {
			t.Errorf("second completion = %v, want conflict", err)
		}
		if err := db.CompletePushChallenge(ctx, "nope", ans); errCode(err) != latchkey.ENotFound {
			t.Errorf("completing an unknown challenge = %v, want not_found", err)
		}
	})
}

func TestDeleteExpiredPushData(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		u := mkUser(t, db, "alice")
		old, live := t0.Add(-time.Minute), t0.Add(time.Minute)
		mkPush(t, db, "old", u, 1, latchkey.PushLogin, 0, old.Add(-time.Minute), old)
		mkPush(t, db, "live", u, 1, latchkey.PushLogin, 0, t0, live)
		for id, exp := range map[string]time.Time{"old": old, "live": live} {
			if err := db.CreateDeviceActivation(ctx, &latchkey.DeviceActivation{ID: id, UserID: u.ID, Kind: latchkey.ActivationNew, CreatedAt: old, ExpiresAt: exp}); err != nil {
				t.Fatal(err)
			}
		}
		db.UseDeviceNonce(ctx, 1, "old", old, old)
		db.UseDeviceNonce(ctx, 1, "live", live, old)
		if n, err := db.DeleteExpiredPushData(ctx, t0); err != nil || n != 3 {
			t.Errorf("DeleteExpiredPushData = %d, %v, want 3", n, err)
		}
		if _, err := db.FindPushChallenge(ctx, "live"); err != nil {
			t.Errorf("a live challenge went: %v", err)
		}
		if _, err := db.UseDeviceActivation(ctx, "live", t0); err != nil {
			t.Errorf("a live activation went: %v", err)
		}
		if err := db.UseDeviceNonce(ctx, 1, "live", live, t0); errCode(err) != latchkey.EConflict {
			t.Errorf("a live nonce went: %v", err)
		}
		if n, _ := db.DeleteExpiredPushData(ctx, t0); n != 0 {
			t.Errorf("second sweep removed %d", n)
		}
	})
}

// TestDeviceConcurrentSingleUse: of many simultaneous redemptions of one activation code,
// answers to one challenge, completions of one sign-in and uses of one nonce, exactly one wins.
func TestDeviceConcurrentSingleUse(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		u := mkUser(t, db, "alice")
		exp := t0.Add(time.Minute)
		if err := db.CreateDeviceActivation(ctx, &latchkey.DeviceActivation{ID: "code", UserID: u.ID, Kind: latchkey.ActivationNew, CreatedAt: t0, ExpiresAt: exp}); err != nil {
			t.Fatal(err)
		}
		mkPush(t, db, "answer", u, 1, latchkey.PushLogin, 0, t0, exp)
		mkPush(t, db, "complete", u, 1, latchkey.PushLogin, 0, t0, exp)
		if err := db.AnswerPushChallenge(ctx, &latchkey.PushAnswer{ID: "complete", State: latchkey.PushApproved, At: t0}); err != nil {
			t.Fatal(err)
		}
		const n = 12
		for _, tt := range []struct {
			name string
			lose string
			f    func(i int) error
		}{
			{"activation", latchkey.ENotFound, func(int) error { _, err := db.UseDeviceActivation(ctx, "code", t0); return err }},
			{"answer", latchkey.EConflict, func(i int) error {
				if i%2 == 0 {
					return db.AnswerPushChallenge(ctx, &latchkey.PushAnswer{ID: "answer", State: latchkey.PushApproved, At: t0})
				}
				return db.AnswerPushChallenge(ctx, &latchkey.PushAnswer{ID: "answer", State: latchkey.PushDenied, Reason: latchkey.DenyUser, At: t0})
			}},
			{"complete", latchkey.EConflict, func(int) error { return db.CompletePushChallenge(ctx, "complete", t0) }},
			{"nonce", latchkey.EConflict, func(int) error { return db.UseDeviceNonce(ctx, 1, "n", exp, t0) }},
		} {
			var wg sync.WaitGroup
			var mu sync.Mutex
			wins, losses := 0, 0
			for i := range n {
				wg.Go(func() {
					err := tt.f(i)
					mu.Lock()
					defer mu.Unlock()
					switch errCode(err) {
					case "":
						wins++
					case tt.lose:
						losses++
					default:
						t.Errorf("%s: unexpected error %v", tt.name, err)
					}
				})
			}
			wg.Wait()
			if wins != 1 || losses != n-1 {
				t.Errorf("%s: %d wins, %d losses, want 1 and %d", tt.name, wins, losses, n-1)
			}
		}
	})
}

// TestConcurrentDevicesOnePrimary: devices created, promoted and deleted at the same time
// still leave exactly one primary among the user's active devices.
func TestConcurrentDevicesOnePrimary(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		u := mkUser(t, db, "alice")
		const n = 8
		devs := make([]*latchkey.Device, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				d := &latchkey.Device{UserID: u.ID, Name: "d", Platform: "linux", PublicKey: fmt.Appendf(nil, "key-%d", i), State: latchkey.DeviceActive}
				if err := db.CreateDevice(ctx, d, &latchkey.TOTPCredential{Name: "Latch", Secret: fmt.Appendf(nil, "seed-%d", i)}); err != nil {
					t.Error(err)
				}
				devs[i] = d
			})
		}
		wg.Wait()
		if _, primary := deviceIDs(t, db, u); len(primary) != 1 {
			t.Fatalf("%d primary devices after concurrent creation, want 1", len(primary))
		}
		for i := range n {
			wg.Go(func() {
				var err error
				if i%2 == 0 {
					err = db.DeleteDevice(ctx, u.ID, devs[i].ID, false)
				} else {
					err = db.UpdateDevice(ctx, u.ID, devs[i].ID, latchkey.DeviceUpdate{Primary: true})
				}
				if err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if ids, primary := deviceIDs(t, db, u); len(ids) != n/2 || len(primary) != 1 || primary[0] != ids[0] {
			t.Errorf("after concurrent deletes and promotions: devices %v, primary %v", ids, primary)
		}
	})
}

// TestDeviceSeedsEncryptedAtRest: no table holds a device's TOTP seed in clear, before or
// after a key replacement, and on SQLite not even the database files do.
func TestDeviceSeedsEncryptedAtRest(t *testing.T) {
	eachDSN(t, func(t *testing.T, db *sqlstore.DB, dsn string) {
		ctx := context.Background()
		u := mkUser(t, db, "alice")
		seed1, seed2, seed3 := "DEVICE-SEED-ONE-0001", "DEVICE-SEED-TWO-0002", "DEVICE-SEED-NEW-0003"
		a, _ := mkDevice(t, db, u, "key-a", latchkey.DeviceActive, seed1)
		p, _ := mkDevice(t, db, u, "key-p", latchkey.DevicePending, "")
		if err := db.ActivateDevice(ctx, p.ID, &latchkey.TOTPCredential{Name: "Latch", Secret: []byte(seed2)}, t0); err != nil {
			t.Fatal(err)
		}
		check := func(seeds ...string) {
			t.Helper()
			for _, table := range []string{"devices", "totp_credentials", "device_activations", "device_nonces", "push_challenges"} {
				dump := dumpTable(t, db, table)
				for _, s := range seeds {
					if bytes.Contains(dump, []byte(s)) {
						t.Errorf("table %s holds the seed %s in clear", table, s)
					}
				}
			}
			if db.Dialect() == sqlstore.SQLite {
				for _, f := range []string{dsn, dsn + "-wal"} {
					raw, err := os.ReadFile(f)
					if err != nil && !os.IsNotExist(err) {
						t.Fatal(err)
					}
					for _, s := range seeds {
						if bytes.Contains(raw, []byte(s)) {
							t.Errorf("%s holds the seed %s in clear", filepath.Base(f), s)
						}
					}
				}
			}
		}
		check(seed1, seed2)
		if err := db.ReplaceDeviceKey(ctx, a.ID, []byte("key-n"), "new", "ios", []byte(seed3), t0); err != nil {
			t.Fatal(err)
		}
		check(seed1, seed2, seed3)
		creds, err := db.FindTOTPCredentials(ctx, u.ID)
		if err != nil || len(creds) != 2 || string(creds[0].Secret) != seed3 || string(creds[1].Secret) != seed2 {
			t.Errorf("decrypted device seeds = %v, %v", creds, err)
		}
		// Another key reads nothing: the store refuses to open with it.
		refusesWrongKey(t, db, dsn)
	})
}

// dumpTable returns every value of every row of table, concatenated.
func dumpTable(t *testing.T, db *sqlstore.DB, table string) []byte {
	t.Helper()
	rows, err := db.SQL().Query(`SELECT * FROM ` + table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []byte
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			if b, ok := v.([]byte); ok {
				out = append(out, b...)
			} else {
				out = fmt.Append(out, v)
			}
			out = append(out, 0)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestFraudDeniesTheOtherPushes: an answer with DenyOthersOf denies that user's other pending,
// unexpired challenges in its transaction and returns them; another user's, an expired one
// and one answered before are left as they are.
func TestFraudDeniesTheOtherPushes(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		u, v := mkUser(t, db, "alice"), mkUser(t, db, "bob")
		exp := t0.Add(2 * time.Minute)
		mkPush(t, db, "reported", u, 5, latchkey.PushLogin, 0, t0, exp)
		mkPush(t, db, "earlier", u, 5, latchkey.PushLogin, 0, t0, exp)
		mkPush(t, db, "device", u, 6, latchkey.PushAddDevice, 9, t0, exp)
		mkPush(t, db, "expired", u, 5, latchkey.PushLogin, 0, t0.Add(-time.Minute), t0)
		mkPush(t, db, "approved", u, 5, latchkey.PushLogin, 0, t0, exp)
		mkPush(t, db, "bobs", v, 7, latchkey.PushLogin, 0, t0, exp)
		if err := db.AnswerPushChallenge(ctx, &latchkey.PushAnswer{ID: "approved", State: latchkey.PushApproved, At: t0}); err != nil {
			t.Fatal(err)
		}
		a := &latchkey.PushAnswer{ID: "reported", State: latchkey.PushDenied, Reason: latchkey.DenyFraud, At: t0.Add(time.Second), DenyOthersOf: u.ID}
		if err := db.AnswerPushChallenge(ctx, a); err != nil {
			t.Fatal(err)
		}
		slices.Sort(a.DeniedOthers)
		if !slices.Equal(a.DeniedOthers, []string{"device", "earlier"}) {
			t.Errorf("DeniedOthers = %v, want [device earlier]", a.DeniedOthers)
		}
		for id, want := range map[string]latchkey.PushState{"earlier": latchkey.PushDenied, "device": latchkey.PushDenied, "expired": latchkey.PushPending,
			"approved": latchkey.PushApproved, "bobs": latchkey.PushPending, "reported": latchkey.PushDenied} {
			got, err := db.FindPushChallenge(ctx, id)
			if err != nil || got.State != want || (want == latchkey.PushDenied && got.Reason != latchkey.DenyFraud) {
				t.Errorf("%s: %+v, %v; want %s", id, got, err, want)
			}
		}
	})
}

// TestCreateDeviceDecidesTheApproval: an active device admitted by a code made before an
// active device of its user is refused (ErrDeviceNeedsApproval) in the insert's transaction,
// writing nothing; a code made after every active device, or none given, admits it.
func TestCreateDeviceDecidesTheApproval(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		u := mkUser(t, db, "alice")
		first, _ := mkDevice(t, db, u, "key-a", latchkey.DeviceActive, "seed-of-device-a-001") // created at t0
		late := &latchkey.Device{UserID: u.ID, Name: "late", Platform: "ios", PublicKey: []byte("key-b"), State: latchkey.DeviceActive, Code: &latchkey.DeviceActivation{ID: "code-1", CreatedAt: t0.Add(-time.Second)}}
		err := db.CreateDevice(ctx, late, &latchkey.TOTPCredential{UserID: u.ID, Name: "late", Secret: []byte("seed-of-device-b-001")})
		if !errors.Is(err, latchkey.ErrDeviceNeedsApproval) {
			t.Fatalf("CreateDevice with a code older than %d = %v, want ErrDeviceNeedsApproval", first.ID, err)
		}
		if ids, _ := deviceIDs(t, db, u); len(ids) != 1 {
			t.Errorf("devices after the refusal: %v", ids)
		}
		if creds, _ := db.FindTOTPCredentials(ctx, u.ID); len(creds) != 1 {
			t.Errorf("%d TOTP credentials after the refusal, want 1", len(creds))
		}
		// Pending devices are not refused: they wait for the approval anyway.
		pending := &latchkey.Device{UserID: u.ID, Name: "pending", Platform: "ios", PublicKey: []byte("key-c"), State: latchkey.DevicePending, Code: &latchkey.DeviceActivation{ID: "code-1", CreatedAt: t0.Add(-time.Second)}}
		if err := db.CreateDevice(ctx, pending, nil); err != nil {
			t.Errorf("pending device: %v", err)
		}
		later := &latchkey.Device{UserID: u.ID, Name: "later", Platform: "ios", PublicKey: []byte("key-d"), State: latchkey.DeviceActive, Code: &latchkey.DeviceActivation{ID: "code-2", CreatedAt: t0}}
		if err := db.CreateDevice(ctx, later, &latchkey.TOTPCredential{UserID: u.ID, Name: "later", Secret: []byte("seed-of-device-d-001")}); err != nil {
			t.Errorf("CreateDevice with a code made with the first device = %v", err)
		}
	})
}

// TestDeleteAbandonedDevices: new devices still waiting for approval, created before the
// cut, go with their approval requests; active devices and newer pending ones stay.
func TestDeleteAbandonedDevices(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		alice, bob := mkUser(t, db, "alice"), mkUser(t, db, "bob")
		active, _ := mkDevice(t, db, alice, "pub-active", latchkey.DeviceActive, "seed")
		p1, _ := mkDevice(t, db, alice, "pub-p1", latchkey.DevicePending, "")
		p2, _ := mkDevice(t, db, bob, "pub-p2", latchkey.DevicePending, "")
		mkPush(t, db, "approve-p1", alice, active.ID, latchkey.PushAddDevice, p1.ID, t0, t0.Add(time.Minute))
		if n, err := db.DeleteAbandonedDevices(ctx, t0); err != nil || n != 0 {
			t.Fatalf("devices created at the cut: %d deleted, %v; want 0", n, err)
		}
		if n, err := db.DeleteAbandonedDevices(ctx, t0.Add(time.Second)); err != nil || n != 2 {
			t.Fatalf("DeleteAbandonedDevices = %d, %v; want 2", n, err)
		}
		for _, id := range []int64{p1.ID, p2.ID} {
			if _, err := db.FindDevice(ctx, id); errCode(err) != latchkey.ENotFound {
				t.Errorf("pending device %d after the cleanup: %v", id, err)
			}
		}
		if d, err := db.FindDevice(ctx, active.ID); err != nil || d.State != latchkey.DeviceActive {
			t.Errorf("the active device after the cleanup: %+v, %v", d, err)
		}
		if _, err := db.FindPushChallenge(ctx, "approve-p1"); errCode(err) != latchkey.ENotFound {
			t.Errorf("the removed device's approval request: %v", err)
		}
	})
}
