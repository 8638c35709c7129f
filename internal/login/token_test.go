package login_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/totp"
)

// legacyID is the stored ID of a token issued before migration 0013 (no verifier): the keyed
// hash of the whole token, with newEnv's session key.
func legacyID(token string) string {
	m := hmac.New(sha256.New, []byte("0123456789abcdef0123456789abcdef"))
	m.Write([]byte("session"))
	m.Write([]byte{0})
	m.Write([]byte(token))
	return hex.EncodeToString(m.Sum(nil))
}

// TestSessionTokenVerifier: a session token is "selector.verifier"; the rotation after the
// second factor keeps the selector and the row's ID and draws a new verifier. The flow's
// token, the selector alone, a forged verifier and malformed tokens name no session, for
// every use of a token: the flow, Authenticate and logout.
func TestSessionTokenVerifier(t *testing.T) {
	e := newEnv(t)
	e.user(t, "alice")
	ctx := context.Background()
	secret, _ := e.enableTOTP(t, e.signIn(t, "alice"))
	e.clock.Add(time.Minute)
	flow := e.signIn(t, "alice")
	sel, ver, ok := strings.Cut(flow.Token, ".")
	if !ok || len(sel) < 43 || len(ver) < 43 || flow.Session.Verifier == "" {
		t.Fatalf("flow token %q (verifier %q): want two parts of 256 bits and a stored verifier", flow.Token, flow.Session.Verifier)
	}
	forged := []string{sel, sel + ".", sel + "." + strings.Repeat("A", 43), "." + ver, sel + "." + ver + "." + ver, sel + "." + ver + "x"}
	for _, tok := range forged {
		if _, err := e.svc.LoginTOTP(ctx, alice, tok, totp.Code(secret, totp.Step(e.clock.Now()))); code(t, err) != latchkey.EFlowExpired {
			t.Errorf("flow with token %q: %v, want flow_expired", tok, err)
		}
	}
	res, err := e.svc.LoginTOTP(ctx, alice, flow.Token, totp.Code(secret, totp.Step(e.clock.Now())))
	if err != nil {
		t.Fatal(err)
	}
	rsel, rver, _ := strings.Cut(res.Token, ".")
	if rsel != sel || rver == ver || res.Session.ID != flow.Session.ID {
		t.Errorf("rotated token %q (ID %s) from %q (ID %s): want the same selector and ID, a new verifier", res.Token, res.Session.ID, flow.Token, flow.Session.ID)
	}
	for _, tok := range append(forged, flow.Token) {
		if _, _, err := e.svc.Authenticate(ctx, tok); code(t, err) != latchkey.EUnauthenticated {
			t.Errorf("Authenticate(%q) after the rotation: %v, want unauthenticated", tok, err)
		}
		// Logging out with a token that is not the session's ends nothing.
		if err := e.svc.Logout(ctx, alice, tok); err != nil {
			t.Errorf("Logout(%q): %v", tok, err)
		}
	}
	if _, _, err := e.svc.Authenticate(ctx, res.Token); err != nil {
		t.Fatalf("the rotated token: %v", err)
	}
	if err := e.svc.Logout(ctx, alice, res.Token); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.Authenticate(ctx, res.Token); code(t, err) != latchkey.EUnauthenticated {
		t.Errorf("the rotated token after logout: %v, want unauthenticated", err)
	}
}

// TestLegacySessionToken: a token issued before migration 0013, without a verifier, still
// names its session; completing its flow gives it a verifier, and the token alone then stops
// working.
func TestLegacySessionToken(t *testing.T) {
	e := newEnv(t)
	u := e.user(t, "alice")
	ctx := context.Background()
	secret, _ := e.enableTOTP(t, e.signIn(t, "alice"))
	e.clock.Add(time.Minute)
	now := e.clock.Now()
	const legacy = "bGVnYWN5LXRva2VuLWZyb20tYmVmb3JlLW1pZ3JhdGlvbi0xMw"
	flow := &latchkey.Session{ID: legacyID(legacy), SID: "0123456789abcdef0123456789abcdef", UserID: u.ID, State: latchkey.StateSecondFactor,
		AMR: []string{latchkey.AMRPassword}, PasswordAt: now, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(10 * time.Minute), IP: alice.IP, UserAgent: alice.UserAgent}
	if err := e.db.CreateSession(ctx, flow); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.Flow(ctx, legacy); err != nil {
		t.Fatalf("the legacy flow: %v", err)
	}
	if _, _, err := e.svc.Flow(ctx, legacy+"."+strings.Repeat("A", 43)); code(t, err) != latchkey.EFlowExpired {
		t.Errorf("the legacy flow with a verifier it does not have: %v, want flow_expired", err)
	}
	res, err := e.svc.LoginTOTP(ctx, alice, legacy, totp.Code(secret, totp.Step(now)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.Token, legacy+".") || res.Session.ID != flow.ID {
		t.Errorf("rotated legacy token %q (ID %s): want the legacy token as its selector and the same ID", res.Token, res.Session.ID)
	}
	if _, _, err := e.svc.Authenticate(ctx, res.Token); err != nil {
		t.Errorf("the rotated token: %v", err)
	}
	if _, _, err := e.svc.Authenticate(ctx, legacy); code(t, err) != latchkey.EUnauthenticated {
		t.Errorf("the legacy token after its rotation: %v, want unauthenticated", err)
	}
}
