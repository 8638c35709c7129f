package sqlstore_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/sqlstore"
)

func TestOIDCConsents(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		mkClient(t, db, "app")
		mkClient(t, db, "zed")
		alice, bob := mkUser(t, db, "alice"), mkUser(t, db, "bob")
		if _, err := db.FindOIDCConsent(ctx, alice.ID, "app"); errCode(err) != latchkey.ENotFound {
			t.Fatalf("FindOIDCConsent before any: %v, want not found", err)
		}
		c := &latchkey.OIDCConsent{UserID: alice.ID, ClientID: "app", Scopes: []string{"openid", "email"}}
		if err := db.SaveOIDCConsent(ctx, c); err != nil {
			t.Fatal(err)
		}
		got, err := db.FindOIDCConsent(ctx, alice.ID, "app")
		if err != nil || !slices.Equal(got.Scopes, c.Scopes) || got.ClientName != "App app" || !got.CreatedAt.Equal(c.CreatedAt) {
			t.Fatalf("FindOIDCConsent = %+v, %v", got, err)
		}
		// Saving again replaces the scopes and keeps the first date.
		first := c.CreatedAt
		c2 := &latchkey.OIDCConsent{UserID: alice.ID, ClientID: "app", Scopes: []string{"openid", "email", "offline_access"}}
		if err := db.SaveOIDCConsent(ctx, c2); err != nil || !c2.CreatedAt.Equal(first) {
			t.Fatalf("SaveOIDCConsent again: created %v (first %v), %v", c2.CreatedAt, first, err)
		}
		if got, _ := db.FindOIDCConsent(ctx, alice.ID, "app"); len(got.Scopes) != 3 {
			t.Errorf("scopes after update = %v", got.Scopes)
		}
		if err := db.SaveOIDCConsent(ctx, &latchkey.OIDCConsent{UserID: alice.ID, ClientID: "zed", Scopes: []string{"openid"}}); err != nil {
			t.Fatal(err)
		}
		if err := db.SaveOIDCConsent(ctx, &latchkey.OIDCConsent{UserID: bob.ID, ClientID: "app", Scopes: []string{"openid"}}); err != nil {
			t.Fatal(err)
		}
		if err := db.SaveOIDCConsent(ctx, &latchkey.OIDCConsent{UserID: bob.ID, ClientID: "nope", Scopes: []string{"openid"}}); errCode(err) != latchkey.ENotFound {
			t.Errorf("consent to an unknown client: %v, want not found", err)
		}
		list, err := db.FindOIDCConsents(ctx, alice.ID)
		if err != nil || len(list) != 2 || list[0].ClientID != "app" || list[1].ClientID != "zed" || list[1].ClientName != "App zed" {
			t.Fatalf("FindOIDCConsents = %+v, %v", list, err)
		}

		// Deleting a consent revokes alice's tokens for that client only.
		tok := func(id string, u latchkey.UserID, client string) {
			g := latchkey.OIDCGrant{GrantID: "g-" + id, ClientID: client, UserID: u}
			at := &latchkey.OIDCAccessToken{ID: "a-" + id, OIDCGrant: g, RefreshTokenID: "r-" + id, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
			rt := &latchkey.OIDCRefreshToken{ID: "r-" + id, OIDCGrant: g, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
			if err := db.CreateOIDCTokens(ctx, at, rt, latchkey.OIDCTokenUse{}, t0); err != nil {
				t.Fatal(err)
			}
		}
		tok("1", alice.ID, "app")
		tok("2", alice.ID, "zed")
		tok("3", bob.ID, "app")
		if _, err := db.DeleteOIDCConsent(ctx, alice.ID, "app"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.FindOIDCRefreshToken(ctx, "r-1"); errCode(err) != latchkey.ENotFound {
			t.Errorf("refresh token after revoking the consent: %v", err)
		}
		if _, err := db.FindOIDCAccessToken(ctx, "a-1"); errCode(err) != latchkey.ENotFound {
			t.Errorf("access token after revoking the consent: %v", err)
		}
		for _, id := range []string{"r-2", "r-3"} {
			if _, err := db.FindOIDCRefreshToken(ctx, id); err != nil {
				t.Errorf("refresh token %s of another consent: %v", id, err)
			}
		}
		if _, err := db.FindOIDCConsent(ctx, bob.ID, "app"); err != nil {
			t.Errorf("bob's consent: %v", err)
		}
		if _, err := db.DeleteOIDCConsent(ctx, alice.ID, "app"); errCode(err) != latchkey.ENotFound {
			t.Errorf("deleting a missing consent: %v, want not found", err)
		}
		// Deleting the client removes its consents.
		if err := db.DeleteOIDCClient(ctx, "zed"); err != nil {
			t.Fatal(err)
		}
		if list, err := db.FindOIDCConsents(ctx, alice.ID); err != nil || len(list) != 0 {
			t.Errorf("consents after the client was deleted: %+v, %v", list, err)
		}
	})
}

// TestOIDCConsentRevocationNamesSessions: revoking a consent names, for the back-channel
// logouts, each session whose tokens of that client it revoked, once (two grants of one
// session, an access token alone, tokens older than SIDs), with the client's back-channel
// logout URI; the user's tokens of another client and another user's tokens of the client
// stay.
func TestOIDCConsentRevocationNamesSessions(t *testing.T) {
	each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		const bcl = "https://third.example/backchannel-logout"
		if err := db.CreateOIDCClient(ctx, &latchkey.OIDCClient{ID: "third", Name: "Third", RedirectURIs: []string{"https://third.example/cb"}, BackchannelLogoutURI: bcl}); err != nil {
			t.Fatal(err)
		}
		mkClient(t, db, "app")
		alice, bob := mkUser(t, db, "alice"), mkUser(t, db, "bob")
		for _, c := range []*latchkey.OIDCConsent{{UserID: alice.ID, ClientID: "third", Scopes: []string{"openid"}}, {UserID: bob.ID, ClientID: "third", Scopes: []string{"openid"}}} {
			if err := db.SaveOIDCConsent(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		mk := func(id, client string, u *latchkey.User, sid string, refresh bool) {
			t.Helper()
			g := latchkey.OIDCGrant{GrantID: "g-" + id, ClientID: client, UserID: u.ID, Scopes: []string{"openid"}, Audience: []string{client}, AMR: []string{"pwd"}, ACR: "pwd", AuthTime: t0, SID: sid}
			at := &latchkey.OIDCAccessToken{ID: "a" + id, OIDCGrant: g, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
			var rt *latchkey.OIDCRefreshToken
			if refresh {
				at.RefreshTokenID = "r" + id
				rt = &latchkey.OIDCRefreshToken{ID: "r" + id, OIDCGrant: g, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
			}
			if err := db.CreateOIDCTokens(ctx, at, rt, latchkey.OIDCTokenUse{}, t0); err != nil {
				t.Fatal(err)
			}
		}
		mk("laptop", "third", alice, "laptop", true)
		mk("laptop2", "third", alice, "laptop", true) // a second grant of the same session
		mk("phone", "third", alice, "phone", false)   // an access token alone
		mk("old", "third", alice, "", true)           // older than SIDs
		mk("app", "app", alice, "laptop", true)
		mk("bob", "third", bob, "bobs", true)
		got, err := db.DeleteOIDCConsent(ctx, alice.ID, "third")
		if err != nil {
			t.Fatal(err)
		}
		want := []latchkey.OIDCTokenSession{{ClientID: "third", BackchannelLogoutURI: bcl}, {ClientID: "third", SID: "laptop", BackchannelLogoutURI: bcl}, {ClientID: "third", SID: "phone", BackchannelLogoutURI: bcl}}
		if !slices.Equal(got, want) {
			t.Errorf("DeleteOIDCConsent(alice, third) = %+v, want %+v", got, want)
		}
		for id, alive := range map[string]bool{"laptop": false, "laptop2": false, "phone": false, "old": false, "app": true, "bob": true} {
			if _, err := db.FindOIDCAccessToken(ctx, "a"+id); (err == nil) != alive {
				t.Errorf("access token %s after revoking alice's consent to third: %v, want alive %v", id, err, alive)
			}
		}
		if got, err := db.DeleteOIDCConsent(ctx, alice.ID, "third"); errCode(err) != latchkey.ENotFound || got != nil {
			t.Errorf("revoking again = %+v, %v; want nothing, not found", got, err)
		}
		// Bob's consent and tokens were left alone; revoking it names his session.
		if got, err := db.DeleteOIDCConsent(ctx, bob.ID, "third"); err != nil || len(got) != 1 || got[0].SID != "bobs" {
			t.Errorf("DeleteOIDCConsent(bob, third) = %+v, %v", got, err)
		}
	})
}
