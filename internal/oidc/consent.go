package oidc

import (
	"context"
	"fmt"
	"slices"
	"strings"

	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/latchkey/latchkey"
)

// scopeWords say in plain words what a scope lets an application do, for the consent page
// and the Security page.
var scopeWords = map[string]string{
	zoidc.ScopeOpenID:        "know who you are",
	zoidc.ScopeProfile:       "see your username",
	zoidc.ScopeEmail:         "see your email address",
	zoidc.ScopeOfflineAccess: "stay signed in (offline access)",
}

// DescribeScopes returns what the scopes let an application do, in plain words, in the order
// of the known scopes (openid first); unknown scopes are named as they are.
func DescribeScopes(scopes []string) []string {
	var out []string
	for _, s := range []string{zoidc.ScopeOpenID, zoidc.ScopeProfile, zoidc.ScopeEmail, zoidc.ScopeOfflineAccess} {
		if slices.Contains(scopes, s) {
			out = append(out, scopeWords[s])
		}
	}
	for _, s := range scopes {
		if _, known := scopeWords[s]; !known && s != "" {
			out = append(out, fmt.Sprintf("use the %q permission", s))
		}
	}
	return out
}

// consented reports whether the user allowed the client every one of scopes before.
func (p *Provider) consented(ctx context.Context, userID latchkey.UserID, clientID string, scopes []string) (bool, error) {
	c, err := p.opt.Store.FindOIDCConsent(ctx, userID, clientID)
	if latchkey.ErrorCode(err) == latchkey.ENotFound {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("find consent: %w", err)
	}
	for _, s := range scopes {
		if !slices.Contains(c.Scopes, s) {
			return false, nil
		}
	}
	return true, nil
}

// saveConsent adds scopes to what the user allowed the client.
func (p *Provider) saveConsent(ctx context.Context, u *latchkey.User, c *latchkey.OIDCClient, scopes []string) error {
	all := slices.Clone(scopes)
	if old, err := p.opt.Store.FindOIDCConsent(ctx, u.ID, c.ID); err == nil {
		all = append(all, old.Scopes...)
	} else if latchkey.ErrorCode(err) != latchkey.ENotFound {
		return fmt.Errorf("find consent: %w", err)
	}
	slices.Sort(all)
	all = slices.Compact(all)
	if err := p.opt.Store.SaveOIDCConsent(ctx, &latchkey.OIDCConsent{UserID: u.ID, ClientID: c.ID, Scopes: all}); err != nil {
		return fmt.Errorf("save consent: %w", err)
	}
	p.record(ctx, u, latchkey.ActionOIDCConsentGranted, latchkey.OutcomeSuccess, "client: "+c.ID+"; scopes: "+strings.Join(all, " "))
	return nil
}

// Consents returns the third-party applications the user has allowed, by name.
func (p *Provider) Consents(ctx context.Context, u *latchkey.User) ([]*latchkey.OIDCConsent, error) {
	return p.opt.Store.FindOIDCConsents(ctx, u.ID)
}

// RevokeConsent takes back what the user allowed the client: the consent goes, and so do the
// client's access and refresh tokens for the user. The next sign-in to the client asks again.
// The client, if it registered a backchannel_logout_uri, is sent a back-channel logout for
// each session whose tokens were revoked, once per session (sub and its sid; sub alone for
// tokens older than sids), as after an account-wide sign-out: its sessions of the user end
// with their tokens. The user's Latchkey sessions stay signed in, and so do the other
// clients. ENotFound when the user had not allowed the client.
func (p *Provider) RevokeConsent(ctx context.Context, u *latchkey.User, clientID string) error {
	revoked, err := p.opt.Store.DeleteOIDCConsent(ctx, u.ID, clientID)
	if latchkey.ErrorCode(err) == latchkey.ENotFound {
		return latchkey.Errorf(latchkey.ENotFound, "This application has no access to your account.")
	} else if err != nil {
		return err
	}
	p.record(ctx, u, latchkey.ActionOIDCConsentRevoked, latchkey.OutcomeSuccess, "client: "+clientID)
	p.logoutRevoked(ctx, u.ID, revoked, nil)
	return nil
}
