package login_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/totp"
)

// softKey is a software FIDO2 authenticator: an ES256 key that answers registration and
// assertion ceremonies as a USB key would, with attestation "none". It lets the unit tests
// build the answers the browser tests cannot (a counter going backwards, a key of another
// user, a wrong origin).
type softKey struct {
	priv       *ecdsa.PrivateKey
	id         []byte
	rpID       string
	origin     string
	counter    uint32
	userHandle []byte // stored at registration, returned in assertions (discoverable)
	noUV       bool
}

func newSoftKey(t *testing.T) *softKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 32)
	rand.Read(id)
	return &softKey{priv: priv, id: id, rpID: "latchkey.test", origin: "http://latchkey.test"}
}

var b64u = base64.RawURLEncoding.EncodeToString

func (k *softKey) authData(attested bool) []byte {
	h := sha256.Sum256([]byte(k.rpID))
	flags := byte(protocol.FlagUserPresent)
	if !k.noUV {
		flags |= byte(protocol.FlagUserVerified)
	}
	if attested {
		flags |= byte(protocol.FlagAttestedCredentialData)
	}
	b := append(h[:0:0], h[:]...)
	b = append(b, flags)
	b = binary.BigEndian.AppendUint32(b, k.counter)
	if attested {
		b = append(b, make([]byte, 16)...) // AAGUID
		b = binary.BigEndian.AppendUint16(b, uint16(len(k.id)))
		b = append(b, k.id...)
		pub, _ := k.priv.PublicKey.ECDH()
		raw := pub.Bytes() // 0x04 || X || Y
		cose, err := webauthncbor.Marshal(webauthncose.EC2PublicKeyData{
			PublicKeyData: webauthncose.PublicKeyData{KeyType: int64(webauthncose.EllipticKey), Algorithm: int64(webauthncose.AlgES256)},
			Curve:         1, XCoord: raw[1:33], YCoord: raw[33:65],
		})
		if err != nil {
			panic(err)
		}
		b = append(b, cose...)
	}
	return b
}

func (k *softKey) clientData(typ string, challenge []byte) []byte {
	cd, _ := json.Marshal(map[string]any{"type": typ, "challenge": b64u(challenge), "origin": k.origin, "crossOrigin": false})
	return cd
}

// create answers a registration ceremony.
func (k *softKey) create(t testing.TB, o *login.KeyOptions) []byte {
	t.Helper()
	cc := o.Options.(*protocol.CredentialCreation)
	k.userHandle = cc.Response.User.ID.(protocol.URLEncodedBase64)
	k.counter++
	att, err := webauthncbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": k.authData(true)})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(map[string]any{
		"id": b64u(k.id), "rawId": b64u(k.id), "type": "public-key",
		"response": map[string]any{"clientDataJSON": b64u(k.clientData("webauthn.create", cc.Response.Challenge)), "attestationObject": b64u(att)},
	})
	return out
}

// get answers an assertion ceremony.
func (k *softKey) get(t testing.TB, o *login.KeyOptions) []byte {
	t.Helper()
	ca := o.Options.(*protocol.CredentialAssertion)
	k.counter++
	ad := k.authData(false)
	cd := k.clientData("webauthn.get", ca.Response.Challenge)
	h := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte{}, ad...), h[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, k.priv, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	resp := map[string]any{"clientDataJSON": b64u(cd), "authenticatorData": b64u(ad), "signature": b64u(sig)}
	if k.userHandle != nil {
		resp["userHandle"] = b64u(k.userHandle)
	}
	out, _ := json.Marshal(map[string]any{"id": b64u(k.id), "rawId": b64u(k.id), "type": "public-key", "response": resp})
	return out
}

// addKey registers k for the signed-in res and returns the recovery codes shown.
func (e *env) addKey(t *testing.T, res *login.Result, k *softKey, name string) ([]string, error) {
	t.Helper()
	ctx := context.Background()
	o, err := e.svc.BeginWebAuthnRegistration(ctx, res.Session, res.User)
	if err != nil {
		t.Fatalf("BeginWebAuthnRegistration: %v", err)
	}
	return e.svc.FinishWebAuthnRegistration(ctx, alice, res.Session, res.User, o.CeremonyID, name, k.create(t, o))
}

// keySignIn runs the password step and the security-key step with k.
func (e *env) keySignIn(t *testing.T, name string, k *softKey) (*login.Result, error) {
	t.Helper()
	ctx := context.Background()
	res := e.signIn(t, name)
	if res.State != latchkey.StateSecondFactor || !slices.Contains(res.Methods, latchkey.MethodWebAuthn) {
		t.Fatalf("after the password: %s %v, want second_factor with webauthn", res.State, res.Methods)
	}
	o, err := e.svc.BeginWebAuthnLogin(ctx, res.Token)
	if err != nil {
		t.Fatalf("BeginWebAuthnLogin: %v", err)
	}
	return e.svc.FinishWebAuthnLogin(ctx, alice, res.Token, o.CeremonyID, k.get(t, o))
}

func TestSecurityKeyOnlyFactor(t *testing.T) {
	e := newEnv(t)
	e.user(t, "alice")
	k := newSoftKey(t)
	codes, err := e.addKey(t, e.signIn(t, "alice"), k, "Blue key")
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	if len(codes) != 10 {
		t.Fatalf("a first factor comes with 10 recovery codes, got %d", len(codes))
	}
	if s := e.mail.subjects(); !slices.Contains(s, "A security key was added") {
		t.Errorf("mails %v", s)
	}
	res, err := e.keySignIn(t, "alice", k)
	if err != nil {
		t.Fatalf("sign in with the key: %v", err)
	}
	if res.State != latchkey.StateAuthenticated || !slices.Contains(res.Session.AMR, latchkey.AMRHardware) || !slices.Contains(res.Session.AMR, latchkey.AMRMFA) {
		t.Fatalf("state %s amr %v", res.State, res.Session.AMR)
	}
	keys, _ := e.svc.SecurityKeys(context.Background(), res.User)
	if len(keys) != 1 || keys[0].Name != "Blue key" || keys[0].LastUsedAt == nil {
		t.Fatalf("keys %+v", keys)
	}
}

func TestSecurityKeyCeremonyChecks(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.user(t, "alice")
	e.user(t, "bob")
	ka, kb := newSoftKey(t), newSoftKey(t)
	resA := e.signIn(t, "alice")
	if _, err := e.addKey(t, resA, ka, "Alice's key"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.addKey(t, e.signIn(t, "bob"), kb, "Bob's key"); err != nil {
		t.Fatal(err)
	}

	t.Run("registered twice", func(t *testing.T) {
		// The same credential ID again, by its owner and by another user: refused, nothing added.
		resA, err := e.keySignIn(t, "alice", ka)
		if err != nil {
			t.Fatal(err)
		}
		again := *ka // the same key (credential ID and key pair) presented once more
		if _, err := e.addKey(t, resA, &again, "Again"); code(t, err) != latchkey.EConflict {
			t.Fatalf("same user: %v", err)
		}
		resB, err := e.keySignIn(t, "bob", kb)
		if err != nil {
			t.Fatal(err)
		}
		stolen := *ka
		if _, err := e.addKey(t, resB, &stolen, "Stolen"); code(t, err) != latchkey.EConflict {
			t.Fatalf("another user: %v", err)
		}
		if keys, _ := e.svc.SecurityKeys(ctx, resA.User); len(keys) != 1 {
			t.Fatalf("alice has %d keys", len(keys))
		}
	})

	t.Run("credential of another user", func(t *testing.T) {
		res := e.signIn(t, "alice")
		o, _ := e.svc.BeginWebAuthnLogin(ctx, res.Token)
		_, err := e.svc.FinishWebAuthnLogin(ctx, alice, res.Token, o.CeremonyID, kb.get(t, o))
		if code(t, err) != latchkey.EInvalidCode || !strings.Contains(latchkey.ErrorMessage(err), "not registered to your account") {
			t.Fatalf("bob's key for alice: %v", err)
		}
		if _, _, err := e.svc.Authenticate(ctx, res.Token); err == nil {
			t.Fatal("the flow was signed in")
		}
	})

	t.Run("ceremony used once", func(t *testing.T) {
		res := e.signIn(t, "alice")
		o, _ := e.svc.BeginWebAuthnLogin(ctx, res.Token)
		answer := ka.get(t, o)
		if _, err := e.svc.FinishWebAuthnLogin(ctx, alice, res.Token, o.CeremonyID, []byte(`{"id":"x"}`)); code(t, err) != latchkey.EInvalidCode {
			t.Fatalf("garbage: %v", err)
		}
		// The garbage consumed the ceremony: the good answer to it is now refused.
		if _, err := e.svc.FinishWebAuthnLogin(ctx, alice, res.Token, o.CeremonyID, answer); code(t, err) != latchkey.EFlowExpired {
			t.Fatalf("answer to a used ceremony: %v", err)
		}
	})

	t.Run("ceremony of another session", func(t *testing.T) {
		r1, r2 := e.signIn(t, "alice"), e.signIn(t, "alice")
		o, _ := e.svc.BeginWebAuthnLogin(ctx, r1.Token)
		if _, err := e.svc.FinishWebAuthnLogin(ctx, alice, r2.Token, o.CeremonyID, ka.get(t, o)); code(t, err) != latchkey.EFlowExpired {
			t.Fatalf("cross-session answer: %v", err)
		}
	})

	t.Run("wrong origin", func(t *testing.T) {
		evil := *ka
		evil.origin = "https://latchkey.test.evil.example"
		res := e.signIn(t, "alice")
		o, _ := e.svc.BeginWebAuthnLogin(ctx, res.Token)
		if _, err := e.svc.FinishWebAuthnLogin(ctx, alice, res.Token, o.CeremonyID, evil.get(t, o)); code(t, err) != latchkey.EInvalidCode {
			t.Fatalf("phished origin: %v", err)
		}
		ka.counter = evil.counter
	})

	t.Run("expired ceremony", func(t *testing.T) {
		res := e.signIn(t, "alice")
		o, _ := e.svc.BeginWebAuthnLogin(ctx, res.Token)
		e.clock.Add(6 * time.Minute)
		defer e.clock.Add(-6 * time.Minute)
		if _, err := e.svc.FinishWebAuthnLogin(ctx, alice, res.Token, o.CeremonyID, ka.get(t, o)); err == nil {
			t.Fatal("an expired ceremony was accepted")
		}
	})

	t.Run("counter regression", func(t *testing.T) {
		if _, err := e.keySignIn(t, "alice", ka); err != nil {
			t.Fatalf("good sign-in: %v", err)
		}
		clone := *ka
		clone.counter = 1 // a copy of the key, behind the original
		_, err := e.keySignIn(t, "alice", &clone)
		if code(t, err) != latchkey.EInvalidCode || !strings.Contains(latchkey.ErrorMessage(err), "went backwards") {
			t.Fatalf("regressed counter: %v", err)
		}
		keys, _ := e.svc.SecurityKeys(ctx, resA.User)
		if !keys[0].CloneWarning {
			t.Fatal("the key was not flagged")
		}
		all, err := e.db.FindAuditEvents(ctx, latchkey.AuditFilter{})
		var events []*latchkey.AuditEvent
		for _, ev := range all {
			if ev.Action == latchkey.ActionWebAuthnCounter {
				events = append(events, ev)
			}
		}
		if err != nil || len(events) != 1 || events[0].Outcome != latchkey.OutcomeDenied {
			t.Fatalf("audit: %v %+v", err, events)
		}
	})
}

func TestPasskeySignIn(t *testing.T) {
	e := newEnv(t, func(o *login.Options) { o.WebAuthn.Passkeys = true })
	ctx := context.Background()
	e.user(t, "alice")
	e.user(t, "bob")
	k := newSoftKey(t)
	if _, err := e.addKey(t, e.signIn(t, "alice"), k, "Passkey"); err != nil {
		t.Fatal(err)
	}
	passkey := func(k *softKey) (*login.Result, error) {
		o, err := e.svc.BeginPasskeyLogin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return e.svc.FinishPasskeyLogin(ctx, alice, "", o.CeremonyID, k.get(t, o))
	}
	res, err := passkey(k)
	if err != nil || res.State != latchkey.StateAuthenticated || res.User.Username != "alice" {
		t.Fatalf("passkey sign-in: %v %+v", err, res)
	}
	// A key that claims another user's handle is refused.
	liar := *k
	liar.userHandle = []byte{0, 0, 0, 0, 0, 0, 0, 2}
	if _, err := passkey(&liar); code(t, err) != latchkey.EInvalidCode {
		t.Fatalf("wrong user handle: %v", err)
	}
	// Without user verification a passkey is one factor only: refused.
	k.noUV = true
	if _, err := passkey(k); code(t, err) != latchkey.EInvalidCode {
		t.Fatalf("no user verification: %v", err)
	}
	// Off by configuration.
	off := newEnv(t)
	if _, err := off.svc.BeginPasskeyLogin(ctx); code(t, err) != latchkey.ENotFound {
		t.Fatalf("passkeys disabled: %v", err)
	}
}

// TestWebAuthnCeremoniesBounded: starting WebAuthn ceremonies costs the server a bounded
// number of rows. Anyone may start a passkey sign-in, and that start writes nothing (its
// ceremony travels sealed in its ID); its answer is accepted once, and a forged, changed or
// expired ID is refused. A session holds one unfinished ceremony of a kind: starting again
// replaces the earlier one. (Before, every start wrote a row for five minutes: 3,000
// unauthenticated starts, 3,000 rows.)
func TestWebAuthnCeremoniesBounded(t *testing.T) {
	e := newEnv(t, func(o *login.Options) { o.WebAuthn.Passkeys = true })
	ctx := context.Background()
	e.user(t, "alice")
	k := newSoftKey(t)
	if _, err := e.addKey(t, e.signIn(t, "alice"), k, "Passkey"); err != nil {
		t.Fatal(err)
	}
	rows := func() int {
		var n int
		if err := e.db.SQL().QueryRow(`SELECT COUNT(*) FROM webauthn_ceremonies`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := rows()
	var last *login.KeyOptions
	for range 200 {
		o, err := e.svc.BeginPasskeyLogin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		last = o
	}
	if n := rows() - before; n != 0 {
		t.Fatalf("200 passkey starts wrote %d rows, want none", n)
	}
	answer := k.get(t, last)
	res, err := e.svc.FinishPasskeyLogin(ctx, alice, "", last.CeremonyID, answer)
	if err != nil || res.User.Username != "alice" {
		t.Fatalf("passkey sign-in with a sealed ceremony: %v", err)
	}
	if _, err := e.svc.FinishPasskeyLogin(ctx, alice, "", last.CeremonyID, k.get(t, last)); code(t, err) != latchkey.EFlowExpired {
		t.Fatalf("the same ceremony answered twice: %v, want flow_expired", err)
	}
	// A changed ID, an ID of another kind, and an expired one.
	o, _ := e.svc.BeginPasskeyLogin(ctx)
	id := []byte(o.CeremonyID)
	id[len(id)-5] ^= 1
	if _, err := e.svc.FinishPasskeyLogin(ctx, alice, "", string(id), k.get(t, o)); code(t, err) != latchkey.EFlowExpired {
		t.Fatalf("a changed ceremony ID: %v, want flow_expired", err)
	}
	second := e.signIn(t, "alice") // waits for the second factor
	if _, err := e.svc.FinishWebAuthnLogin(ctx, alice, second.Token, o.CeremonyID, k.get(t, o)); code(t, err) != latchkey.EFlowExpired {
		t.Fatalf("a passkey ceremony used for a second step: %v, want flow_expired", err)
	}
	e.clock.Add(5*time.Minute + time.Second)
	if _, err := e.svc.FinishPasskeyLogin(ctx, alice, "", o.CeremonyID, k.get(t, o)); code(t, err) != latchkey.EFlowExpired {
		t.Fatalf("an expired passkey ceremony: %v, want flow_expired", err)
	}

	// A session's ceremonies: one row, the newest.
	second = e.signIn(t, "alice")
	before = rows()
	var first *login.KeyOptions
	for i := range 50 {
		o, err := e.svc.BeginWebAuthnLogin(ctx, second.Token)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = o
		}
		last = o
	}
	if n := rows() - before; n != 1 {
		t.Fatalf("50 starts of one session's second step wrote %d rows, want 1", n)
	}
	// The replaced ceremony's answer is refused, and like any answer it uses the session's
	// ceremony up: the user starts again.
	if _, err := e.svc.FinishWebAuthnLogin(ctx, alice, second.Token, first.CeremonyID, k.get(t, first)); code(t, err) != latchkey.EInvalidCode && code(t, err) != latchkey.EFlowExpired {
		t.Fatalf("the replaced ceremony's answer: %v, want refused", err)
	}
	last, err = e.svc.BeginWebAuthnLogin(ctx, second.Token)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := e.svc.FinishWebAuthnLogin(ctx, alice, second.Token, last.CeremonyID, k.get(t, last)); err != nil || res.State != latchkey.StateAuthenticated {
		t.Fatalf("the newest ceremony's answer: %v", err)
	}
}

func TestRemoveSecurityKeyNeedsRecentPassword(t *testing.T) {
	e := newEnv(t, func(o *login.Options) { o.MFA = login.MFARequired })
	ctx := context.Background()
	e.user(t, "alice")
	res := e.signIn(t, "alice") // enroll state under required: enrol a key, then finish
	k1, k2 := newSoftKey(t), newSoftKey(t)
	if _, err := e.addKey(t, res, k1, "One"); err != nil {
		t.Fatal(err)
	}
	res, err := e.svc.CompleteEnrollment(ctx, alice, res.Token, latchkey.AMRHardware)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.addKey(t, res, k2, "Two"); err != nil {
		t.Fatal(err)
	}
	keys, _ := e.svc.SecurityKeys(ctx, res.User)
	e.clock.Add(11 * time.Minute)
	sess, u, _ := e.svc.Authenticate(ctx, res.Token)
	if err := e.svc.RemoveSecurityKey(ctx, alice, sess, u, keys[0].ID); code(t, err) != latchkey.EReauthenticate {
		t.Fatalf("stale session: %v", err)
	}
	// The password alone is not enough: the re-authentication goes on to a second factor.
	re, err := e.svc.Reauthenticate(ctx, alice, res.Token, goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	if re.State != latchkey.StateSecondFactor || !slices.Contains(re.Methods, latchkey.MethodWebAuthn) {
		t.Fatalf("Reauthenticate: %s %v, want second_factor with webauthn", re.State, re.Methods)
	}
	o, _ := e.svc.BeginWebAuthnLogin(ctx, re.Token)
	if re, err = e.svc.FinishWebAuthnLogin(ctx, alice, re.Token, o.CeremonyID, k2.get(t, o)); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.RemoveSecurityKey(ctx, alice, re.Session, u, keys[0].ID); err != nil {
		t.Fatalf("fresh session: %v", err)
	}
	if err := e.svc.RemoveSecurityKey(ctx, alice, re.Session, u, keys[1].ID); code(t, err) != latchkey.EForbidden {
		t.Fatalf("last factor under required: %v", err)
	}
	// The removed key no longer signs in.
	r := e.signIn(t, "alice")
	o, _ = e.svc.BeginWebAuthnLogin(ctx, r.Token)
	if _, err := e.svc.FinishWebAuthnLogin(ctx, alice, r.Token, o.CeremonyID, k1.get(t, o)); code(t, err) != latchkey.EInvalidCode {
		t.Fatalf("removed key: %v", err)
	}
	if s := e.mail.subjects(); !slices.Contains(s, "A security key was removed") {
		t.Errorf("mails %v", s)
	}
}

func TestResetAllMFA(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	res, secret, codes := e.aliceWithApp(t)
	k := newSoftKey(t)
	e.clock.Add(30 * time.Second) // a second factor is added in a session that gave the first
	if _, err := e.addKey(t, e.mfaSignIn(t, "", secret), k, "Key"); err != nil {
		t.Fatal(err)
	}
	other := e.signIn(t, "alice") // a second session, signed out by the reset
	e.clock.Add(time.Minute)
	p := login.ResetProof{Password: goodPassword}
	if err := e.svc.ResetAllMFA(ctx, alice, res.Session, res.User, p); code(t, err) != latchkey.EInvalid {
		t.Fatalf("without a second factor: %v", err)
	}
	p.Code = "000000"
	if err := e.svc.ResetAllMFA(ctx, alice, res.Session, res.User, p); code(t, err) != latchkey.EInvalidCode {
		t.Fatalf("wrong code: %v", err)
	}
	p.Code, p.Password = totp.Code(secret, totp.Step(e.clock.Now())), "wrong password"
	if err := e.svc.ResetAllMFA(ctx, alice, res.Session, res.User, p); code(t, err) != latchkey.EInvalidCredentials {
		t.Fatalf("wrong password: %v", err)
	}
	if st, _ := e.svc.Status(ctx, res.User); st.Factors != 2 {
		t.Fatalf("a refused reset changed factors: %d", st.Factors)
	}
	p.Password = goodPassword
	if err := e.svc.ResetAllMFA(ctx, alice, res.Session, res.User, p); err != nil {
		t.Fatalf("reset with password and code: %v", err)
	}
	st, _ := e.svc.Status(ctx, res.User)
	if st.Factors != 0 || st.RecoveryCodesLeft != 0 || st.TOTPEnabled {
		t.Fatalf("after reset: %+v", st)
	}
	if _, _, err := e.svc.Authenticate(ctx, other.Token); err == nil {
		t.Error("the other session survived the reset")
	}
	if _, _, err := e.svc.Authenticate(ctx, res.Token); err != nil {
		t.Errorf("the resetting session was signed out: %v", err)
	}
	if s := e.mail.subjects(); !slices.Contains(s, "All your sign-in methods were reset") {
		t.Errorf("mails %v", s)
	}
	if len(codes) == 0 {
		t.Fatal("no recovery codes")
	}

	// With a recovery code, and with a security key, on fresh factors.
	e.clock.Add(time.Minute)
	_, codes = e.enableTOTP(t, res)
	if err := e.svc.ResetAllMFA(ctx, alice, res.Session, res.User, login.ResetProof{Password: goodPassword, Code: codes[0]}); err != nil {
		t.Fatalf("reset with a recovery code: %v", err)
	}
	k2 := newSoftKey(t)
	if _, err := e.addKey(t, res, k2, "Key 2"); err != nil {
		t.Fatal(err)
	}
	o, err := e.svc.BeginConfirmKey(ctx, res.Session, res.User)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.ResetAllMFA(ctx, alice, res.Session, res.User, login.ResetProof{Password: goodPassword, CeremonyID: o.CeremonyID, KeyResponse: k2.get(t, o)}); err != nil {
		t.Fatalf("reset with a security key: %v", err)
	}
	if err := e.svc.ResetAllMFA(ctx, alice, res.Session, res.User, login.ResetProof{Password: goodPassword, Code: "123456"}); code(t, err) != latchkey.ENotFound {
		t.Fatalf("nothing to reset: %v", err)
	}
}

// TestResetAllMFAUsedRecoveryCode: Reset all MFA with a recovery code used already says so
// (SECURITY.md: "a used code says 'already used'"), as sign-in does, and the trail tells it
// from an unknown code; nothing is reset.
func TestResetAllMFAUsedRecoveryCode(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	res, _, codes := e.aliceWithApp(t)
	flow := e.signIn(t, "alice")
	if _, err := e.svc.LoginRecovery(ctx, alice, flow.Token, codes[0]); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, code, msg, detail string
	}{
		{"used", codes[0], "This recovery code has already been used. Use another one.", "recovery code already used"},
		{"unknown", "abcd-efgh-jkmn-pqrs", "That code didn't work. Check the code and try again.", "wrong recovery code"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.clock.Add(time.Minute) // past any throttling wait of the step before
			err := e.svc.ResetAllMFA(ctx, alice, res.Session, res.User, login.ResetProof{Password: goodPassword, Code: tt.code})
			if code(t, err) != latchkey.EInvalidCode || latchkey.ErrorMessage(err) != tt.msg {
				t.Errorf("ResetAllMFA(%s code) = %v, want %q", tt.name, err, tt.msg)
			}
			evs, _ := e.db.FindAuditEvents(ctx, latchkey.AuditFilter{UserID: &res.User.ID})
			if last := evs[len(evs)-1]; last.Action != latchkey.ActionMFAReset || last.Outcome != latchkey.OutcomeFailure || last.Detail != tt.detail {
				t.Errorf("audited %s %s %q, want %s failure %q", last.Action, last.Outcome, last.Detail, latchkey.ActionMFAReset, tt.detail)
			}
		})
	}
	if st, _ := e.svc.Status(ctx, res.User); !st.TOTPEnabled || st.RecoveryCodesLeft != 9 {
		t.Errorf("after refused resets: %+v", st)
	}
}

// TestResetAllMFARecoveryCodeSpentWithTheReset: a recovery code that proves Reset all MFA is
// spent in the reset's own transaction: when the reset fails (here its audit entry, without
// which it does not happen), the code stays unused, the factors stay, and the code still
// works for the reset once the database takes it.
func TestResetAllMFARecoveryCodeSpentWithTheReset(t *testing.T) {
	e := newEnv(t)
	res, _, codes := e.aliceWithApp(t)
	checkSpentWithTheReset(t, e, res, login.ResetProof{Password: goodPassword, Code: codes[0]}, len(codes))
}

// TestResetAllMFATakesBackItsAttempt: the attempt Reset all MFA counts against the account
// for its factor is taken back when the factor was right, whichever it is: an app code, a
// security key, or a recovery code, which is checked by the reset's own transaction (also
// when that reset fails for another reason: the code was not refused). A wrong code stays
// counted.
func TestResetAllMFATakesBackItsAttempt(t *testing.T) {
	for _, proof := range []string{"app code", "security key", "recovery code"} {
		t.Run(proof, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			res, secret, codes := e.aliceWithApp(t)
			k := newSoftKey(t)
			if proof == "security key" {
				e.clock.Add(30 * time.Second) // a second factor is added in a session that gave the first
				if _, err := e.addKey(t, e.mfaSignIn(t, "", secret), k, "Key"); err != nil {
					t.Fatal(err)
				}
			}
			failures := func() int {
				t.Helper()
				th, err := e.db.FindThrottle(ctx, latchkey.ThrottleKeyUser("alice"))
				if err != nil {
					t.Fatal(err)
				}
				return th.Failures
			}
			e.clock.Add(time.Minute)
			if err := e.svc.ResetAllMFA(ctx, alice, res.Session, res.User, login.ResetProof{Password: goodPassword, Code: "abcd-efgh-jkmn-pqrs"}); code(t, err) != latchkey.EInvalidCode {
				t.Fatalf("a wrong recovery code: %v", err)
			}
			if n := failures(); n != 1 {
				t.Fatalf("counter = %d after a wrong code, want 1", n)
			}
			e.clock.Add(time.Minute) // past the wait
			var p login.ResetProof
			switch proof {
			case "app code":
				p = login.ResetProof{Password: goodPassword, Code: totp.Code(secret, totp.Step(e.clock.Now()))}
			case "security key":
				o, err := e.svc.BeginConfirmKey(ctx, res.Session, res.User)
				if err != nil {
					t.Fatal(err)
				}
				p = login.ResetProof{Password: goodPassword, CeremonyID: o.CeremonyID, KeyResponse: k.get(t, o)}
			case "recovery code":
				p = login.ResetProof{Password: goodPassword, Code: codes[0]}
				allow := failResetAudit(t, e)
				if err := e.svc.ResetAllMFA(ctx, alice, res.Session, res.User, p); err == nil {
					t.Fatal("ResetAllMFA succeeded without its audit entry")
				}
				if n := failures(); n != 1 {
					t.Errorf("counter = %d after a right code whose reset failed, want 1 (the wrong code's)", n)
				}
				allow()
			}
			if err := e.svc.ResetAllMFA(ctx, alice, res.Session, res.User, p); err != nil {
				t.Fatalf("ResetAllMFA with the %s: %v", proof, err)
			}
			if n := failures(); n != 1 {
				t.Errorf("counter = %d after the reset with the %s, want 1 (the wrong code's)", n, proof)
			}
		})
	}
}

func TestRolloutEnrolment(t *testing.T) {
	e := newEnv(t, func(o *login.Options) {
		o.MFA = login.MFARequired
		o.Methods = []string{latchkey.MethodTOTP, latchkey.MethodWebAuthn}
	})
	ctx := context.Background()
	e.user(t, "alice")
	res := e.signIn(t, "alice")
	if res.State != latchkey.StateEnroll || !slices.Equal(res.Methods, []string{latchkey.MethodTOTP, latchkey.MethodWebAuthn}) {
		t.Fatalf("after the password: %s %v", res.State, res.Methods)
	}
	if _, err := e.svc.CompleteEnrollment(ctx, alice, res.Token, latchkey.AMROTP); code(t, err) != latchkey.EForbidden {
		t.Fatalf("completing without a factor: %v", err)
	}
	sess, u, err := e.svc.EnrollFlow(ctx, res.Token)
	if err != nil {
		t.Fatal(err)
	}
	en, err := e.svc.BeginTOTP(ctx, alice, sess, u)
	if err != nil {
		t.Fatal(err)
	}
	secret, _ := totp.Decode(en.Secret)
	if _, err := e.svc.ConfirmTOTP(ctx, alice, sess, u, totp.Code(secret, totp.Step(e.clock.Now()))); err != nil {
		t.Fatal(err)
	}
	// Completed without naming the factor (the JSON API's enroll/complete), or as a Latch
	// device: no device was activated with a code of this flow, so neither proves anything.
	for _, amr := range []string{"", latchkey.AMRSoftwareKey} {
		if _, err := e.svc.CompleteEnrollment(ctx, alice, res.Token, amr); code(t, err) != latchkey.EForbidden {
			t.Fatalf("complete with amr %q and no device of this flow: %v", amr, err)
		}
	}
	// The caller that confirmed the app with this flow's token completes it.
	done, err := e.svc.CompleteEnrollment(ctx, alice, res.Token, latchkey.AMROTP)
	if err != nil || done.State != latchkey.StateAuthenticated || !slices.Contains(done.Session.AMR, latchkey.AMRMFA) {
		t.Fatalf("complete: %v %+v", err, done)
	}
	if !slices.Contains(done.Session.AMR, latchkey.AMROTP) || slices.Contains(done.Session.AMR, latchkey.AMRSoftwareKey) {
		t.Errorf("AMR after a rollout with an authenticator app = %v, want otp (not swk)", done.Session.AMR)
	}
	if _, _, err := e.svc.Authenticate(ctx, done.Token); err != nil {
		t.Fatalf("signed in: %v", err)
	}
	if _, _, err := e.svc.EnrollFlow(ctx, res.Token); code(t, err) != latchkey.EFlowExpired {
		t.Fatalf("the enrol token still works: %v", err)
	}
	// A method policy does not allow is refused.
	if e.svc.MethodAllowed(latchkey.MethodPush) {
		t.Error("push allowed although not in Methods")
	}
}

// TestPasskeyCeremonyOneSpelling: a sealed ceremony ID has one spelling. The lenient base64
// decoder skipped line breaks and ignored the unused low bits of the last character, and the
// used record was named after the ID's text, so a captured answer of a passkey with a zero
// counter (which the counter check never catches) signed in again under each new spelling.
func TestPasskeyCeremonyOneSpelling(t *testing.T) {
	e := newEnv(t, func(o *login.Options) { o.WebAuthn.Passkeys = true })
	ctx := context.Background()
	e.user(t, "alice")
	k := newSoftKey(t)
	k.counter = math.MaxUint32 // create counts up to 0: a synced passkey without a counter
	if _, err := e.addKey(t, e.signIn(t, "alice"), k, "Passkey"); err != nil {
		t.Fatal(err)
	}
	o, err := e.svc.BeginPasskeyLogin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	k.counter = math.MaxUint32
	answer := k.get(t, o)
	if res, err := e.svc.FinishPasskeyLogin(ctx, alice, "", o.CeremonyID, answer); err != nil || res.State != latchkey.StateAuthenticated {
		t.Fatalf("passkey sign-in: %v", err)
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	id := o.CeremonyID
	spellings := map[string]string{
		"line feed":       id[:10] + "\n" + id[10:],
		"carriage return": id[:10] + "\r" + id[10:],
		"both at the end": id + "\r\n",
	}
	last := strings.IndexByte(alphabet, id[len(id)-1])
	if enc := id[len("pk1."):]; len(enc)%4 != 0 {
		// The last character carries 2 or 4 unused low bits: flipping the lowest one spells the
		// same bytes to a lenient decoder.
		spellings["unused bit of the last character"] = id[:len(id)-1] + string(alphabet[last^1])
	} else {
		t.Logf("the ID's last character has no unused bits (%d characters)", len(enc))
	}
	for name, other := range spellings {
		if res, err := e.svc.FinishPasskeyLogin(ctx, alice, "", other, answer); code(t, err) != latchkey.EFlowExpired {
			t.Errorf("%s: the answer replayed under another spelling: %v %+v, want flow_expired", name, err, res)
		}
	}
	// A fresh ceremony spelled another way is refused too, not only a used one.
	o, _ = e.svc.BeginPasskeyLogin(ctx)
	if _, err := e.svc.FinishPasskeyLogin(ctx, alice, "", o.CeremonyID[:10]+"\n"+o.CeremonyID[10:], k.get(t, o)); code(t, err) != latchkey.EFlowExpired {
		t.Errorf("a fresh ceremony with a line break: %v, want flow_expired", err)
	}
	if res, err := e.svc.FinishPasskeyLogin(ctx, alice, "", o.CeremonyID, k.get(t, o)); err != nil || res.State != latchkey.StateAuthenticated {
		t.Errorf("the same ceremony spelled rightly: %v", err)
	}
}
