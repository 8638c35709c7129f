package login_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/login"
)

func refs(fs []login.Factor) []string {
	var out []string
	for _, f := range fs {
		s := f.Ref
		if f.Primary {
			s += "*"
		}
		out = append(out, s)
	}
	return out
}

// TestFactorsPrimaryAndRename covers the Security page's one list: every kind in it, the
// primary first, "make primary" across kinds deciding what sign-in offers first, the fallback
// when the primary goes, and renaming the authenticator app.
func TestFactorsPrimaryAndRename(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.user(t, "alice")
	bob := e.user(t, "bob")
	res := e.signIn(t, "alice")
	blue, green := newSoftKey(t), newSoftKey(t)
	if _, err := e.addKey(t, res, blue, "Blue key"); err != nil {
		t.Fatal(err)
	}
	// With a factor, the next ones need a session that gave one (full re-authentication).
	res, err := e.keySignIn(t, "alice", blue)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.addKey(t, res, green, "Green key"); err != nil {
		t.Fatal(err)
	}
	e.enableTOTP(t, res)

	fs, err := e.svc.Factors(ctx, res.User)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 3 {
		t.Fatalf("factors %v, want the app and two keys", refs(fs))
	}
	app, key1, key2 := fs[0], fs[1], fs[2]
	if app.Kind != login.KindTOTP || !app.Primary || app.Name != "Authenticator app" || app.Type != "Authenticator app" || key1.Name != "Blue key" || key2.Name != "Green key" || key1.Primary || key2.Type != "Security key" {
		t.Fatalf("default order: %+v", fs)
	}
	if m := e.signIn(t, "alice").Methods; !slices.Equal(m, []string{latchkey.MethodTOTP, latchkey.MethodWebAuthn, latchkey.MethodRecovery}) {
		t.Fatalf("methods %v", m)
	}

	// The green key becomes primary: it is listed first and sign-in offers keys first.
	if err := e.svc.SetPrimaryFactor(ctx, alice, res.User, key2.Ref); err != nil {
		t.Fatal(err)
	}
	fs, _ = e.svc.Factors(ctx, res.User)
	if got := refs(fs); !slices.Equal(got, []string{key2.Ref + "*", app.Ref, key1.Ref}) {
		t.Fatalf("after make primary: %v", got)
	}
	if m := e.signIn(t, "alice").Methods; m[0] != latchkey.MethodWebAuthn {
		t.Fatalf("methods %v, want webauthn first", m)
	}
	u, _ := e.db.FindUserByID(ctx, res.User.ID)
	if u.PrimaryFactor != fmt.Sprintf("webauthn:%d", key2.ID) {
		t.Fatalf("stored primary %q", u.PrimaryFactor)
	}

	// Refusals change nothing.
	bobRes := e.signIn(t, "bob")
	bobKey := newSoftKey(t)
	if _, err := e.addKey(t, bobRes, bobKey, "Bob's key"); err != nil {
		t.Fatal(err)
	}
	bobFactors, _ := e.svc.Factors(ctx, bob)
	for _, tc := range []struct{ ref, code string }{
		{bobFactors[0].Ref, latchkey.ENotFound},
		{"webauthn:999", latchkey.ENotFound},
		{"device:1", latchkey.ENotFound},
		{"totp", latchkey.EInvalid},
		{"password:1", latchkey.EInvalid},
		{"webauthn:-1", latchkey.EInvalid},
	} {
		if err := e.svc.SetPrimaryFactor(ctx, alice, res.User, tc.ref); code(t, err) != tc.code {
			t.Errorf("SetPrimaryFactor(%q) = %v, want %s", tc.ref, err, tc.code)
		}
	}
	if u, _ := e.db.FindUserByID(ctx, res.User.ID); u.PrimaryFactor != fmt.Sprintf("webauthn:%d", key2.ID) {
		t.Fatalf("a refused change changed the primary to %q", u.PrimaryFactor)
	}

	// Rename the app; bad names and another user's app are refused.
	if err := e.svc.RenameTOTP(ctx, alice, res.User, app.ID, "  Work phone "); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		user *latchkey.User
		name string
		code string
	}{{res.User, "", latchkey.EInvalid}, {res.User, "bad\x07name", latchkey.EInvalid}, {bob, "Mine now", latchkey.ENotFound}} {
		if err := e.svc.RenameTOTP(ctx, alice, tc.user, app.ID, tc.name); code(t, err) != tc.code {
			t.Errorf("RenameTOTP(%q) = %v, want %s", tc.name, err, tc.code)
		}
	}
	fs, _ = e.svc.Factors(ctx, res.User)
	if i := slices.IndexFunc(fs, func(f login.Factor) bool { return f.Kind == login.KindTOTP }); i < 0 || fs[i].Name != "Work phone" {
		t.Fatalf("after rename: %+v", fs)
	}

	// The primary key removed: the default order applies again.
	if err := e.svc.RemoveSecurityKey(ctx, alice, res.Session, res.User, key2.ID); err != nil {
		t.Fatal(err)
	}
	fs, _ = e.svc.Factors(ctx, res.User)
	if got := refs(fs); !slices.Equal(got, []string{app.Ref + "*", key1.Ref}) {
		t.Fatalf("after removing the primary: %v", got)
	}
	if m := e.signIn(t, "alice").Methods; m[0] != latchkey.MethodTOTP {
		t.Fatalf("methods %v", m)
	}
}
