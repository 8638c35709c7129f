package login_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/protocol"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/audit"
	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/password"
	"github.com/latchkey/latchkey/internal/sqlstore"
)

// The fuzz targets in this file feed arbitrary WebAuthn answers to the JSON parsing of
// go-webauthn and to the sign-in service's finish methods, through real ceremonies on a real
// SQLite store: nothing panics, every answer the fuzzer makes is refused with a client error
// (it cannot know the ceremony's challenge), and nothing is registered or signed in.

// fuzzWA is a sign-in service with security keys and passkeys on, for fuzz targets (newEnv
// takes a *testing.T).
type fuzzWA struct {
	svc   *login.Service
	db    *sqlstore.DB
	key   *softKey // registered to "alice"
	res   *login.Result
	stale []byte // a well-formed answer, signed by key, to a ceremony that is over
}

var nobody = login.Client{UserAgent: "fuzz"} // no IP: the per-IP limiter stays out of the way

func newFuzzWA(f *testing.F) *fuzzWA {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)}
	db, err := sqlstore.Open(ctx, filepath.Join(f.TempDir(), "fuzz.db"), sqlstore.Options{SecretsKey: make([]byte, 32), Now: c.Now})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	svc := login.New(login.Options{
		Store: db, Hasher: password.New(password.Options{Params: fastParams}), Mailer: &outbox{}, Audit: audit.New(db, nil, c.Now),
		Now: c.Now, SessionKey: []byte("0123456789abcdef0123456789abcdef"), PublicURL: "http://latchkey.test",
		WebAuthn: login.WebAuthnOptions{Passkeys: true},
	})
	if _, err := svc.CreateUser(ctx, nobody, login.NewUser{Username: "alice", Email: "alice@example.com", Password: goodPassword}); err != nil {
		f.Fatal(err)
	}
	res, err := svc.Login(ctx, nobody, "", "alice", goodPassword)
	if err != nil {
		f.Fatal(err)
	}
	k := &softKey{priv: mustKey(f), id: []byte("fuzz-credential-id-0123456789abc"), rpID: "latchkey.test", origin: "http://latchkey.test"}
	o, err := svc.BeginWebAuthnRegistration(ctx, res.Session, res.User)
	if err != nil {
		f.Fatal(err)
	}
	if _, err := svc.FinishWebAuthnRegistration(ctx, nobody, res.Session, res.User, o.CeremonyID, "Fuzz key", k.create(f, o)); err != nil {
		f.Fatal(err)
	}
	// An answer to a ceremony that is over, and a sign-in waiting for its second factor.
	if res, err = svc.Login(ctx, nobody, "", "alice", goodPassword); err != nil || res.State != latchkey.StateSecondFactor {
		f.Fatalf("Login: %v, %v", res, err)
	}
	o, err = svc.BeginWebAuthnLogin(ctx, res.Token)
	if err != nil {
		f.Fatal(err)
	}
	return &fuzzWA{svc: svc, db: db, key: k, res: res, stale: k.get(f, o)}
}

func mustKey(tb testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// addSeeds adds shapes of WebAuthn answers: the stale real one, truncated and altered
// copies, and hand-made JSON.
func (w *fuzzWA) addSeeds(f *testing.F) {
	f.Add(w.stale)
	f.Add(w.stale[:len(w.stale)/2])
	f.Add([]byte(strings.Replace(string(w.stale), `"public-key"`, `"private-key"`, 1)))
	for _, s := range []string{
		``, `{}`, `null`, `[]`, `{"id":"","rawId":"","type":"public-key","response":{}}`,
		`{"id":"AA","rawId":"AA","type":"public-key","response":{"clientDataJSON":"e30","attestationObject":"oA"}}`,
		`{"id":"AA","rawId":"AA","type":"public-key","response":{"clientDataJSON":"e30","authenticatorData":"AA","signature":"AA","userHandle":"AA"}}`,
		`{"id":"AA","rawId":"AA","type":"public-key","response":{"clientDataJSON":"eyJ0eXBlIjoid2ViYXV0aG4uZ2V0In0","authenticatorData":"` + strings.Repeat("A", 50) + `","signature":"MEQ"}}`,
		`{"id":"AA","rawId":"AA","type":"public-key","response":{"clientDataJSON":"e30","attestationObject":"o2NmbXRkbm9uZWdhdHRTdG10oGhhdXRoRGF0YUA"}}`,
		`{"id":"AA","rawId":"AA","type":"public-key","clientExtensionResults":{"credProps":{"rk":true}},"authenticatorAttachment":"platform","response":{"transports":["usb"]}}`,
	} {
		f.Add([]byte(s))
	}
}

// refused checks that a finish method refused a fuzzed answer with a client error.
func refused(t *testing.T, what string, data []byte, err error, allowed ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s accepted %q", what, data)
	}
	code := latchkey.ErrorCode(err)
	for _, a := range allowed {
		if code == a {
			return
		}
	}
	t.Fatalf("%s(%q) = %v (code %s), want one of %v", what, data, err, code, allowed)
}

// FuzzWebAuthnParse: go-webauthn's parsers of a registration and an assertion never panic,
// and return a parsed answer only with no error.
func FuzzWebAuthnParse(f *testing.F) {
	w := newFuzzWA(f)
	w.addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if p, err := protocol.ParseCredentialCreationResponseBytes(data); (err == nil) == (p == nil) {
			t.Fatalf("ParseCredentialCreationResponseBytes = %v, %v", p, err)
		}
		if p, err := protocol.ParseCredentialRequestResponseBytes(data); (err == nil) == (p == nil) {
			t.Fatalf("ParseCredentialRequestResponseBytes = %v, %v", p, err)
		}
	})
}

// FuzzFinishWebAuthnRegistration: an arbitrary answer to a fresh registration ceremony is
// refused with invalid_request (or conflict for the key registered already), and no key is
// added.
func FuzzFinishWebAuthnRegistration(f *testing.F) {
	w := newFuzzWA(f)
	w.addSeeds(f)
	ctx := context.Background()
	signedIn, err := w.svc.Login(ctx, nobody, "", "alice", goodPassword)
	if err != nil {
		f.Fatal(err)
	}
	// Signed in (password only is not enough with a key: finish with the key).
	o, err := w.svc.BeginWebAuthnLogin(ctx, signedIn.Token)
	if err != nil {
		f.Fatal(err)
	}
	if signedIn, err = w.svc.FinishWebAuthnLogin(ctx, nobody, signedIn.Token, o.CeremonyID, w.key.get(f, o)); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := w.svc.BeginWebAuthnRegistration(ctx, signedIn.Session, signedIn.User)
		if err != nil {
			t.Fatal(err)
		}
		_, err = w.svc.FinishWebAuthnRegistration(ctx, nobody, signedIn.Session, signedIn.User, o.CeremonyID, "Fuzzed", data)
		refused(t, "FinishWebAuthnRegistration", data, err, latchkey.EInvalid, latchkey.EConflict)
		keys, err := w.svc.SecurityKeys(ctx, signedIn.User)
		if err != nil || len(keys) != 1 {
			t.Fatalf("after a refused registration: %d keys, %v", len(keys), err)
		}
	})
}

// FuzzFinishWebAuthnLogin: an arbitrary answer to a fresh security-key step is refused with
// invalid_code, and the sign-in stays waiting for its second factor.
func FuzzFinishWebAuthnLogin(f *testing.F) {
	w := newFuzzWA(f)
	w.addSeeds(f)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, data []byte) {
		// Failures count against the account; clear them so every input reaches the parser.
		if err := w.db.ResetThrottle(ctx, latchkey.ThrottleKeyUser("alice")); err != nil {
			t.Fatal(err)
		}
		o, err := w.svc.BeginWebAuthnLogin(ctx, w.res.Token)
		if err != nil {
			t.Fatal(err)
		}
		res, err := w.svc.FinishWebAuthnLogin(ctx, nobody, w.res.Token, o.CeremonyID, data)
		refused(t, "FinishWebAuthnLogin", data, err, latchkey.EInvalidCode)
		if res != nil {
			t.Fatalf("a result with the error: %+v", res)
		}
		if _, methods, err := w.svc.Flow(ctx, w.res.Token); err != nil || len(methods) == 0 {
			t.Fatalf("the sign-in is no longer waiting for a second factor: %v %v", methods, err)
		}
	})
}

// FuzzFinishPasskeyLogin: an arbitrary answer to a passkey ceremony is refused with
// invalid_code and signs no one in.
func FuzzFinishPasskeyLogin(f *testing.F) {
	w := newFuzzWA(f)
	w.addSeeds(f)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := w.db.ResetThrottle(ctx, latchkey.ThrottleKeyUser("alice")); err != nil {
			t.Fatal(err)
		}
		o, err := w.svc.BeginPasskeyLogin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		res, err := w.svc.FinishPasskeyLogin(ctx, nobody, "", o.CeremonyID, data)
		refused(t, "FinishPasskeyLogin", data, err, latchkey.EInvalidCode)
		if res != nil {
			t.Fatalf("a result with the error: %+v", res)
		}
	})
}
