package latchkey

import "time"

// Audit actions of the OpenID Connect provider.
const (
	// ActionOIDCAuthorize: an authorization request was granted (success) or refused
	// (denied: the user pressed Deny, or prompt=none could not be satisfied). Detail names
	// the client.
	ActionOIDCAuthorize = "oidc.authorize"
	// ActionOIDCCodeExchanged: a client traded an authorization code for tokens.
	ActionOIDCCodeExchanged = "oidc.code_exchanged"
	// ActionOIDCCodeReused: a used authorization code was presented again; the tokens issued
	// from it were revoked.
	ActionOIDCCodeReused = "oidc.code_reused"
	// ActionOIDCRefreshReused: a rotated-away refresh token was presented again; its grant
	// was revoked.
	ActionOIDCRefreshReused = "oidc.refresh_reused"
	// ActionOIDCConsentGranted and ActionOIDCConsentRevoked: a user allowed a third-party
	// application, or took that back on the Security page.
	ActionOIDCConsentGranted = "oidc.consent_granted"
	ActionOIDCConsentRevoked = "oidc.consent_revoked"
	// ActionOIDCClientCreated: a client was registered.
	ActionOIDCClientCreated = "oidc.client_created"
)

// OIDCConsent records that a user allowed a third-party client the listed scopes. A later
// request for the same or fewer scopes needs no consent page.
type OIDCConsent struct {
	UserID   UserID
	ClientID string
	// ClientName is the client's name, filled in by FindOIDCConsents for display.
	ClientName string
	Scopes     []string
	// CreatedAt is when the user first allowed the client; UpdatedAt when the scopes last
	// changed.
	CreatedAt time.Time
	UpdatedAt time.Time
}

// OIDCConsentStore persists consents to third-party clients.
type OIDCConsentStore interface {
	// FindOIDCConsent returns ENotFound when the user has not allowed the client.
	FindOIDCConsent(ctx Context, userID UserID, clientID string) (*OIDCConsent, error)
	// FindOIDCConsents returns a user's consents with their clients' names, ordered by name.
	FindOIDCConsents(ctx Context, userID UserID) ([]*OIDCConsent, error)
	// SaveOIDCConsent inserts c, or replaces the scopes of an existing consent (keeping its
	// CreatedAt).
	SaveOIDCConsent(ctx Context, c *OIDCConsent) error
	// DeleteOIDCConsent removes a consent and, in the same transaction, every access and
	// refresh token of the user for that client, and returns, for the back-channel logouts,
	// each session whose tokens it revoked, once, ordered by SID, as DeleteOIDCUserTokens
	// does. ENotFound when there is no such consent.
	DeleteOIDCConsent(ctx Context, userID UserID, clientID string) ([]OIDCTokenSession, error)
}
