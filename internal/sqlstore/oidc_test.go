package sqlstore_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/sqlstore"
)

func mkClient(t *testing.T, db *sqlstore.DB, id string) *latchkey.OIDCClient {
	t.Helper()
	c := &latchkey.OIDCClient{ID: id, Name: "App " + id, SecretHash: "sha256:ab", RedirectURIs: []string{"https://app.example/cb", "http://127.0.0.1:9/cb"},
		PostLogoutRedirectURIs: []string{"https://app.example/"}, FirstParty: true, RequireMFA: true}
	if err := db.CreateOIDCClient(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestOIDCClients(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		c := mkClient(t, db, "app")
		if err := db.CreateOIDCClient(ctx, &latchkey.OIDCClient{ID: "app", Name: "x", RedirectURIs: []string{"https://x/"}}); errCode(err) != latchkey.EConflict {
			t.Errorf("duplicate client: %v, want conflict", err)
		}
		got, err := db.FindOIDCClientByID(ctx, "app")
		if err != nil || got.Name != c.Name || got.SecretHash != c.SecretHash || got.Public || !got.FirstParty || !got.RequireMFA ||
			len(got.RedirectURIs) != 2 || got.RedirectURIs[1] != "http://127.0.0.1:9/cb" || len(got.PostLogoutRedirectURIs) != 1 || !got.CreatedAt.Equal(c.CreatedAt) {
			t.Errorf("FindOIDCClientByID = %+v, %v", got, err)
		}
		mkClient(t, db, "b")
		if list, err := db.FindOIDCClients(ctx); err != nil || len(list) != 2 || list[0].ID != "app" {
			t.Errorf("FindOIDCClients = %v, %v", list, err)
		}
		if err := db.DeleteOIDCClient(ctx, "b"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.FindOIDCClientByID(ctx, "b"); errCode(err) != latchkey.ENotFound {
			t.Errorf("deleted client: %v", err)
		}
		if err := db.DeleteOIDCClient(ctx, "b"); errCode(err) != latchkey.ENotFound {
			t.Errorf("delete missing client: %v", err)
		}
	})
}

func TestOIDCAuthRequestsAndCodes(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		mkClient(t, db, "app")
		u := mkUser(t, db, "alice")
		maxAge := 5 * time.Minute
		r := &latchkey.OIDCAuthRequest{ID: "req1", ClientID: "app", RedirectURI: "https://app.example/cb", Scopes: []string{"openid", "email"},
			State: "st", Nonce: "n", ResponseType: "code", CodeChallenge: "ch", CodeChallengeMethod: "S256", Prompt: []string{"login"},
			MaxAge: &maxAge, LoginHint: "alice", ACRValues: []string{"mfa"}, CreatedAt: t0, ExpiresAt: t0.Add(10 * time.Minute)}
		if err := db.CreateOIDCAuthRequest(ctx, r); err != nil {
			t.Fatal(err)
		}
		got, err := db.FindOIDCAuthRequestByID(ctx, "req1")
		if err != nil || got.Done() || got.MaxAge == nil || *got.MaxAge != maxAge || got.Scopes[1] != "email" || got.Prompt[0] != "login" ||
			got.ACRValues[0] != "mfa" || got.CodeChallenge != "ch" || got.LoginHint != "alice" || !got.AuthTime.IsZero() || got.CodeHash != "" {
			t.Fatalf("FindOIDCAuthRequestByID = %+v, %v", got, err)
		}
		// A code of a request nobody completed is not usable.
		if err := db.SetOIDCAuthCode(ctx, "req1", "h1", t0.Add(time.Minute), t0.Add(10*time.Minute)); err != nil {
			t.Fatal(err)
		}
		g := latchkey.OIDCGrant{GrantID: "req1", ClientID: "app", UserID: u.ID}
		token := func(id string) *latchkey.OIDCAccessToken {
			return &latchkey.OIDCAccessToken{ID: id, OIDCGrant: g, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
		}
		if err := db.CreateOIDCTokens(ctx, token("x0"), nil, latchkey.OIDCTokenUse{CodeHash: "h1"}, t0); errCode(err) != latchkey.EConflict {
			t.Errorf("tokens for the code of an incomplete request: %v, want conflict", err)
		}
		if err := db.CompleteOIDCAuthRequest(ctx, "req1", u.ID, "sid-1", []string{"pwd", "otp", "mfa"}, "mfa", t0); err != nil {
			t.Fatal(err)
		}
		if err := db.CompleteOIDCAuthRequest(ctx, "req1", u.ID, "sid-1", []string{"pwd"}, "pwd", t0); errCode(err) != latchkey.EConflict {
			t.Errorf("second completion: %v, want conflict", err)
		}
		if err := db.CompleteOIDCAuthRequest(ctx, "nope", u.ID, "", nil, "", t0); errCode(err) != latchkey.ENotFound {
			t.Errorf("completing a missing request: %v, want not found", err)
		}
		if err := db.SetOIDCAuthCode(ctx, "req1", "h2", t0.Add(time.Minute), t0.Add(10*time.Minute)); errCode(err) != latchkey.EConflict {
			t.Errorf("second code: %v, want conflict", err)
		}
		if err := db.CreateOIDCTokens(ctx, token("x1"), nil, latchkey.OIDCTokenUse{CodeHash: "h1"}, t0.Add(time.Minute)); errCode(err) != latchkey.EConflict {
			t.Errorf("tokens for an expired code: %v, want conflict", err)
		}
		got, err = db.FindOIDCAuthRequestByCode(ctx, "h1")
		if err != nil || got.ID != "req1" || got.UserID != u.ID || got.ACR != "mfa" || len(got.AMR) != 3 || !got.AuthTime.Equal(t0.Truncate(time.Microsecond)) ||
			got.CodeUsedAt != nil || !got.CodeExpiresAt.Equal(t0.Add(time.Minute).Truncate(time.Microsecond)) {
			t.Errorf("FindOIDCAuthRequestByCode = %+v, %v", got, err)
		}
		// Twelve exchanges of one code at once: exactly one gets its tokens, and the code is
		// used; the others insert nothing.
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins, conflicts := 0, 0
		for i := range 12 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := db.CreateOIDCTokens(ctx, token(fmt.Sprintf("t%d", i)), nil, latchkey.OIDCTokenUse{CodeHash: "h1"}, t0.Add(time.Second))
				mu.Lock()
				defer mu.Unlock()
				switch errCode(err) {
				case "":
					wins++
				case latchkey.EConflict:
					conflicts++
				default:
					t.Errorf("CreateOIDCTokens: %v", err)
				}
			}()
		}
		wg.Wait()
		if wins != 1 || conflicts != 11 {
			t.Errorf("wins %d, conflicts %d; want 1, 11", wins, conflicts)
		}
		issued := 0
		for i := range 12 {
			if _, err := db.FindOIDCAccessToken(ctx, fmt.Sprintf("t%d", i)); err == nil {
				issued++
			}
		}
		if got, err := db.FindOIDCAuthRequestByCode(ctx, "h1"); err != nil || got.CodeUsedAt == nil || issued != 1 {
			t.Errorf("after the exchanges: %d access tokens, request %+v, %v", issued, got, err)
		}
		if _, err := db.FindOIDCAuthRequestByCode(ctx, "unknown"); errCode(err) != latchkey.ENotFound {
			t.Errorf("unknown code: %v", err)
		}
		if n, err := db.DeleteExpiredOIDCData(ctx, t0.Add(11*time.Minute)); err != nil || n != 1 {
			t.Errorf("DeleteExpiredOIDCData = %d, %v; want 1", n, err)
		}
		if _, err := db.FindOIDCAuthRequestByID(ctx, "req1"); errCode(err) != latchkey.ENotFound {
			t.Errorf("expired request still there: %v", err)
		}
	})
}

func TestOIDCTokens(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		mkClient(t, db, "app")
		mkClient(t, db, "other")
		u := mkUser(t, db, "alice")
		g := latchkey.OIDCGrant{GrantID: "g1", ClientID: "app", UserID: u.ID, Scopes: []string{"openid", "offline_access"}, Audience: []string{"app"}, AMR: []string{"pwd", "otp", "mfa"}, ACR: "mfa", AuthTime: t0}
		a1 := &latchkey.OIDCAccessToken{ID: "a1", OIDCGrant: g, RefreshTokenID: "r1", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
		r1 := &latchkey.OIDCRefreshToken{ID: "r1", OIDCGrant: g, CreatedAt: t0, ExpiresAt: t0.Add(24 * time.Hour)}
		if err := db.CreateOIDCTokens(ctx, a1, r1, latchkey.OIDCTokenUse{}, t0); err != nil {
			t.Fatal(err)
		}
		got, err := db.FindOIDCAccessToken(ctx, "a1")
		if err != nil || got.GrantID != "g1" || got.UserID != u.ID || got.RefreshTokenID != "r1" || got.AMR[2] != "mfa" || !got.ExpiresAt.Equal(a1.ExpiresAt.Truncate(time.Microsecond)) {
			t.Errorf("FindOIDCAccessToken = %+v, %v", got, err)
		}
		// Rotation: r1 → r2, once.
		a2 := &latchkey.OIDCAccessToken{ID: "a2", OIDCGrant: g, RefreshTokenID: "r2", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
		r2 := &latchkey.OIDCRefreshToken{ID: "r2", OIDCGrant: g, CreatedAt: t0, ExpiresAt: t0.Add(24 * time.Hour)}
		if err := db.CreateOIDCTokens(ctx, a2, r2, latchkey.OIDCTokenUse{RefreshID: "r1"}, t0); err != nil {
			t.Fatal(err)
		}
		a3 := &latchkey.OIDCAccessToken{ID: "a3", OIDCGrant: g, RefreshTokenID: "r3", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
		r3 := &latchkey.OIDCRefreshToken{ID: "r3", OIDCGrant: g, CreatedAt: t0, ExpiresAt: t0.Add(24 * time.Hour)}
		if err := db.CreateOIDCTokens(ctx, a3, r3, latchkey.OIDCTokenUse{RefreshID: "r1"}, t0); errCode(err) != latchkey.ENotFound {
			t.Errorf("second rotation of r1: %v, want not found", err)
		}
		if _, err := db.FindOIDCAccessToken(ctx, "a3"); errCode(err) != latchkey.ENotFound {
			t.Errorf("a failed rotation left its access token: %v", err)
		}
		if rt, err := db.FindOIDCRefreshToken(ctx, "r1"); err != nil || rt.UsedAt == nil {
			t.Errorf("used refresh token = %+v, %v", rt, err)
		}
		if rt, err := db.FindOIDCRefreshToken(ctx, "r2"); err != nil || rt.UsedAt != nil || rt.ACR != "mfa" {
			t.Errorf("new refresh token = %+v, %v", rt, err)
		}
		// A token of another grant survives the revocation of g1.
		other := latchkey.OIDCGrant{GrantID: "g2", ClientID: "other", UserID: u.ID}
		if err := db.CreateOIDCTokens(ctx, &latchkey.OIDCAccessToken{ID: "b1", OIDCGrant: other, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}, nil, latchkey.OIDCTokenUse{}, t0); err != nil {
			t.Fatal(err)
		}
		if n, err := db.DeleteOIDCGrant(ctx, "g1"); err != nil || n != 4 {
			t.Errorf("DeleteOIDCGrant = %d, %v; want 4", n, err)
		}
		for _, id := range []string{"a1", "a2"} {
			if _, err := db.FindOIDCAccessToken(ctx, id); errCode(err) != latchkey.ENotFound {
				t.Errorf("access token %s after revocation: %v", id, err)
			}
		}
		if _, err := db.FindOIDCAccessToken(ctx, "b1"); err != nil {
			t.Errorf("token of another grant: %v", err)
		}
		if _, err := db.DeleteOIDCUserTokens(ctx, u.ID, "app", ""); err != nil {
			t.Fatal(err)
		}
		if _, err := db.FindOIDCAccessToken(ctx, "b1"); err != nil {
			t.Errorf("token of another client after DeleteOIDCUserTokens(app): %v", err)
		}
		if _, err := db.DeleteOIDCUserTokens(ctx, u.ID, "", ""); err != nil {
			t.Fatal(err)
		}
		if _, err := db.FindOIDCAccessToken(ctx, "b1"); errCode(err) != latchkey.ENotFound {
			t.Errorf("token after DeleteOIDCUserTokens: %v", err)
		}
		// Revoking a refresh token takes its access tokens along.
		g.GrantID = "g3"
		if err := db.CreateOIDCTokens(ctx, &latchkey.OIDCAccessToken{ID: "c1", OIDCGrant: g, RefreshTokenID: "q1", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)},
			&latchkey.OIDCRefreshToken{ID: "q1", OIDCGrant: g, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}, latchkey.OIDCTokenUse{}, t0); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteOIDCRefreshToken(ctx, "q1"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.FindOIDCAccessToken(ctx, "c1"); errCode(err) != latchkey.ENotFound {
			t.Errorf("access token of a revoked refresh token: %v", err)
		}
	})
}

func TestOIDCSigningKeys(t *testing.T) {
	eachDSN(t, func(t *testing.T, db *sqlstore.DB, dsn string) {
		ctx := context.Background()
		priv := []byte("private key bytes")
		k1 := &latchkey.OIDCSigningKey{ID: "k1", Algorithm: "RS256", PrivateKey: priv, PublicKey: []byte("pub1"), CreatedAt: t0}
		k2 := &latchkey.OIDCSigningKey{ID: "k2", Algorithm: "ES256", PrivateKey: []byte("p2"), PublicKey: []byte("pub2"), CreatedAt: t0.Add(time.Hour)}
		if ok, err := db.RotateOIDCSigningKey(ctx, k1, t0.Add(time.Hour), time.Time{}); err != nil || !ok {
			t.Fatalf("first key: %v, %v", ok, err)
		}
		// At rest, the private key is sealed.
		var sealed []byte
		if err := db.SQL().QueryRowContext(ctx, `SELECT private_key FROM oidc_signing_keys WHERE id = 'k1'`).Scan(&sealed); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(sealed, priv) {
			t.Errorf("private key stored in the clear")
		}
		// The rotation on first use of a stale key creates nothing while the active key was
		// created at or after staleBefore.
		kx := &latchkey.OIDCSigningKey{ID: "kx", Algorithm: "ES256", PrivateKey: []byte("px"), PublicKey: []byte("pubx"), CreatedAt: t0.Add(time.Hour)}
		if ok, err := db.RotateOIDCSigningKey(ctx, kx, t0.Add(3*time.Hour), t0); err != nil || ok {
			t.Fatalf("rotation with a fresh key active: %v, %v", ok, err)
		}
		if keys, err := db.FindOIDCSigningKeys(ctx, t0); err != nil || len(keys) != 1 || keys[0].ID != "k1" || keys[0].RetiredAt != nil || string(keys[0].PrivateKey) != string(priv) {
			t.Fatalf("after the refused rotation: %+v, %v", keys, err)
		}
		// Once it is stale, it is replaced and retired, published until retiredUntil.
		if ok, err := db.RotateOIDCSigningKey(ctx, k2, t0.Add(3*time.Hour), t0.Add(time.Minute)); err != nil || !ok {
			t.Fatalf("rotation of a stale key: %v, %v", ok, err)
		}
		keys, err := db.FindOIDCSigningKeys(ctx, t0.Add(2*time.Hour))
		if err != nil || len(keys) != 2 || keys[0].ID != "k2" || keys[0].RetiredAt != nil || keys[1].RetiredAt == nil ||
			!keys[1].RetiredAt.Equal(t0.Add(time.Hour)) ||
			string(keys[1].PublicKey) != "pub1" || keys[0].Algorithm != "ES256" {
			t.Fatalf("FindOIDCSigningKeys = %+v, %v", keys, err)
		}
		// Only the active key's private key is opened: a retired one only verifies (its
		// public key stays in the JWKS), and stays sealed.
		if string(keys[0].PrivateKey) != "p2" || keys[1].PrivateKey != nil {
			t.Errorf("private keys: active %q, retired %q; want %q and none", keys[0].PrivateKey, keys[1].PrivateKey, "p2")
		}
		if keys, err := db.FindOIDCSigningKeys(ctx, t0.Add(3*time.Hour)); err != nil || len(keys) != 1 || keys[0].ID != "k2" {
			t.Errorf("after the retired key expired: %+v, %v", keys, err)
		}
		// A key ID used already is a conflict, and changes nothing.
		if _, err := db.RotateOIDCSigningKey(ctx, k1, t0.Add(5*time.Hour), time.Time{}); errCode(err) != latchkey.EConflict {
			t.Errorf("a key ID again: %v", err)
		}
		if keys, err := db.FindOIDCSigningKeys(ctx, t0.Add(2*time.Hour)); err != nil || len(keys) != 2 || keys[0].RetiredAt != nil {
			t.Errorf("after the conflict: %+v, %v", keys, err)
		}
		// Another secrets key cannot open them: the store refuses to open with it, also
		// without the key's check value (the TOTP credentials are not there to tell).
		refusesWrongKey(t, db, dsn)
		// A sealed key moved to another kid does not open.
		if _, err := db.SQL().ExecContext(ctx, `UPDATE oidc_signing_keys SET private_key = $1 WHERE id = 'k2'`, sealed); err != nil {
			t.Fatal(err)
		}
		if _, err := db.FindOIDCSigningKeys(ctx, t0); err == nil {
			t.Errorf("a key sealed for k1 opened as k2")
		}
	})
}

// Rotations on first use started together, on two nodes of one database, create one key.
func TestOIDCSigningKeyRotationsTakeTurns(t *testing.T) {
	eachDSN(t, func(t *testing.T, db *sqlstore.DB, dsn string) {
		ctx := context.Background()
		nodes := []*sqlstore.DB{db, open(t, dsn, key)}
		old := &latchkey.OIDCSigningKey{ID: "old", Algorithm: "ES256", PrivateKey: []byte("p"), PublicKey: []byte("pub"), CreatedAt: t0}
		if _, err := db.RotateOIDCSigningKey(ctx, old, t0, time.Time{}); err != nil {
			t.Fatal(err)
		}
		const n = 16
		var wg sync.WaitGroup
		created := make([]bool, n)
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				k := &latchkey.OIDCSigningKey{ID: fmt.Sprintf("new%d", i), Algorithm: "ES256", PrivateKey: []byte("p"), PublicKey: []byte("pub"), CreatedAt: t0.Add(time.Hour)}
				created[i], errs[i] = nodes[i%2].RotateOIDCSigningKey(ctx, k, t0.Add(2*time.Hour), t0.Add(time.Minute))
			})
		}
		wg.Wait()
		winners := 0
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("rotation %d: %v", i, errs[i])
			}
			if created[i] {
				winners++
			}
		}
		keys, err := db.FindOIDCSigningKeys(ctx, t0.Add(time.Hour))
		if err != nil || winners != 1 || len(keys) != 2 || keys[0].RetiredAt != nil || keys[1].ID != "old" || keys[1].RetiredAt == nil {
			t.Fatalf("%d rotations created a key; keys %+v, %v", winners, keys, err)
		}
	})
}

func TestOIDCSessionTokens(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		c := &latchkey.OIDCClient{ID: "bcl", Name: "BCL", RedirectURIs: []string{"https://bcl.example/cb"}, BackchannelLogoutURI: "https://bcl.example/logout"}
		if err := db.CreateOIDCClient(ctx, c); err != nil {
			t.Fatal(err)
		}
		if got, err := db.FindOIDCClientByID(ctx, "bcl"); err != nil || got.BackchannelLogoutURI != c.BackchannelLogoutURI {
			t.Fatalf("FindOIDCClientByID = %+v, %v", got, err)
		}
		mkClient(t, db, "app")
		mkClient(t, db, "other")
		u := mkUser(t, db, "alice")
		// "bcl" signed in in session s1 (a completed request, no token yet); "app" has tokens
		// of s1; "other" has tokens of s2.
		r := &latchkey.OIDCAuthRequest{ID: "req", ClientID: "bcl", RedirectURI: "https://bcl.example/cb", Scopes: []string{"openid"}, ResponseType: "code", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
		if err := db.CreateOIDCAuthRequest(ctx, r); err != nil {
			t.Fatal(err)
		}
		if err := db.CompleteOIDCAuthRequest(ctx, "req", u.ID, "s1", []string{"pwd"}, "pwd", t0); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.FindOIDCAuthRequestByID(ctx, "req"); got.SID != "s1" {
			t.Errorf("request SID = %q, want s1", got.SID)
		}
		for _, tc := range []struct{ id, client, sid string }{{"x1", "app", "s1"}, {"x2", "other", "s2"}} {
			g := latchkey.OIDCGrant{GrantID: "g-" + tc.id, ClientID: tc.client, UserID: u.ID, Scopes: []string{"openid"}, Audience: []string{tc.client}, AMR: []string{"pwd"}, ACR: "pwd", AuthTime: t0, SID: tc.sid}
			if err := db.CreateOIDCTokens(ctx, &latchkey.OIDCAccessToken{ID: "a" + tc.id, OIDCGrant: g, RefreshTokenID: "r" + tc.id, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)},
				&latchkey.OIDCRefreshToken{ID: "r" + tc.id, OIDCGrant: g, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}, latchkey.OIDCTokenUse{}, t0); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := db.FindOIDCRefreshToken(ctx, "rx1"); err != nil || got.SID != "s1" {
			t.Errorf("refresh token SID = %+v, %v", got, err)
		}
		if got, err := db.FindOIDCAccessToken(ctx, "ax1"); err != nil || got.SID != "s1" {
			t.Errorf("access token SID = %+v, %v", got, err)
		}
		list, err := db.FindOIDCSessionClients(ctx, "s1")
		if err != nil || len(list) != 2 || list[0].ID != "app" || list[1].ID != "bcl" || list[1].BackchannelLogoutURI == "" {
			t.Fatalf("FindOIDCSessionClients(s1) = %v, %v; want app, bcl", list, err)
		}
		if n, err := db.DeleteOIDCSessionTokens(ctx, "s1"); err != nil || n != 2 {
			t.Errorf("DeleteOIDCSessionTokens = %d, %v; want 2", n, err)
		}
		if _, err := db.FindOIDCRefreshToken(ctx, "rx1"); errCode(err) != latchkey.ENotFound {
			t.Errorf("s1's refresh token after revocation: %v", err)
		}
		if _, err := db.FindOIDCRefreshToken(ctx, "rx2"); err != nil {
			t.Errorf("s2's refresh token was revoked too: %v", err)
		}
		if n, err := db.DeleteOIDCSessionTokens(ctx, ""); err != nil || n != 0 {
			t.Errorf(`DeleteOIDCSessionTokens("") = %d, %v; want nothing deleted`, n, err)
		}
	})
}

// TestOIDCUserTokensKeepASession: an account-wide revocation that keeps a session (a password
// change keeps the changer's) revokes every token of the user but those given in that
// session: those of other sessions, of sessions ended long ago, and those without a SID
// (older than SIDs) go; another user's stay. It names each client and session whose tokens
// it revoked once, with the client's back-channel logout URI, for the logouts.
func TestOIDCUserTokensKeepASession(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		mkClient(t, db, "app")
		const bcl = "https://other.example/backchannel-logout"
		if err := db.CreateOIDCClient(ctx, &latchkey.OIDCClient{ID: "other", Name: "Other", RedirectURIs: []string{"https://other.example/cb"}, BackchannelLogoutURI: bcl}); err != nil {
			t.Fatal(err)
		}
		alice, bob := mkUser(t, db, "alice"), mkUser(t, db, "bob")
		mk := func(id, client string, u *latchkey.User, sid string) {
			t.Helper()
			g := latchkey.OIDCGrant{GrantID: "g-" + id, ClientID: client, UserID: u.ID, Scopes: []string{"openid", "offline_access"}, Audience: []string{client}, AMR: []string{"pwd"}, ACR: "pwd", AuthTime: t0, SID: sid}
			if err := db.CreateOIDCTokens(ctx, &latchkey.OIDCAccessToken{ID: "a" + id, OIDCGrant: g, RefreshTokenID: "r" + id, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)},
				&latchkey.OIDCRefreshToken{ID: "r" + id, OIDCGrant: g, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}, latchkey.OIDCTokenUse{}, t0); err != nil {
				t.Fatal(err)
			}
		}
		mk("kept1", "app", alice, "here")
		mk("kept2", "other", alice, "here")
		mk("phone", "app", alice, "phone")
		mk("yesterday", "other", alice, "yesterday")
		mk("yesterday2", "other", alice, "yesterday") // a second grant of the same session
		mk("old", "app", alice, "")
		mk("old2", "other", alice, "")
		mk("bob", "app", bob, "bobs")
		// An access token alone (no refresh token) names its session too.
		g := latchkey.OIDCGrant{GrantID: "g-lone", ClientID: "other", UserID: alice.ID, Scopes: []string{"openid"}, Audience: []string{"other"}, AMR: []string{"pwd"}, ACR: "pwd", AuthTime: t0, SID: "lone"}
		if err := db.CreateOIDCTokens(ctx, &latchkey.OIDCAccessToken{ID: "alone", OIDCGrant: g, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}, nil, latchkey.OIDCTokenUse{}, t0); err != nil {
			t.Fatal(err)
		}
		alive := func(id string) bool {
			t.Helper()
			_, errA := db.FindOIDCAccessToken(ctx, "a"+id)
			_, errR := db.FindOIDCRefreshToken(ctx, "r"+id)
			if (errA == nil) != (errR == nil) && id != "lone" {
				t.Fatalf("token pair %s: access %v, refresh %v", id, errA, errR)
			}
			return errA == nil
		}
		type ts = latchkey.OIDCTokenSession
		steps := []struct {
			client, keep string
			revoked      []ts
			alive        map[string]bool
		}{
			// Keeping a session for one client only still revokes nothing of the other client.
			{"app", "here", []ts{{ClientID: "app"}, {ClientID: "app", SID: "phone"}},
				map[string]bool{"kept1": true, "kept2": true, "phone": false, "yesterday": true, "old": false, "old2": true, "bob": true}},
			{"", "here", []ts{{ClientID: "other", BackchannelLogoutURI: bcl}, {ClientID: "other", SID: "lone", BackchannelLogoutURI: bcl}, {ClientID: "other", SID: "yesterday", BackchannelLogoutURI: bcl}},
				map[string]bool{"kept1": true, "kept2": true, "yesterday": false, "yesterday2": false, "old2": false, "lone": false, "bob": true}},
			{"", "", []ts{{ClientID: "app", SID: "here"}, {ClientID: "other", SID: "here", BackchannelLogoutURI: bcl}},
				map[string]bool{"kept1": false, "kept2": false, "bob": true}},
			{"", "", nil, map[string]bool{"bob": true}},
		}
		for _, st := range steps {
			got, err := db.DeleteOIDCUserTokens(ctx, alice.ID, st.client, st.keep)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, st.revoked) {
				t.Errorf("DeleteOIDCUserTokens(alice, %q, %q) = %+v, want %+v", st.client, st.keep, got, st.revoked)
			}
			for id, want := range st.alive {
				if got := alive(id); got != want {
					t.Errorf("after DeleteOIDCUserTokens(alice, %q, %q): %s alive = %v, want %v", st.client, st.keep, id, got, want)
				}
			}
		}
	})
}
