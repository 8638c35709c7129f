package latchkey

import (
	"log/slog"
	"time"
)

// Authentication context class references (the "acr" claim) Latchkey issues. A relying party
// asks for multi-factor sign-in with acr_values=mfa (or the PAPE multi-factor URI).
const (
	// ACRPassword: the user proved the password only.
	ACRPassword = "pwd"
	// ACRMFA: the user proved the password and a second factor (or a verified passkey).
	ACRMFA = "mfa"
	// ACRPAPEMultiFactor is the OpenID PAPE policy URI for multi-factor authentication,
	// accepted in acr_values as a synonym of ACRMFA.
	ACRPAPEMultiFactor = "http://schemas.openid.net/pape/policies/2007/06/multi-factor"
)

// OIDCClient is a relying party registered with Latchkey's OpenID Connect provider.
type OIDCClient struct {
	ID   string // client_id
	Name string
	// SecretHash is the hash of a confidential client's secret ("" for a public client). The
	// secret itself is shown once, at registration.
	SecretHash string
	// Public clients (single-page and native apps) have no secret and must use PKCE S256.
	Public bool
	// RedirectURIs are compared exactly with the redirect_uri of a request.
	RedirectURIs []string
	// PostLogoutRedirectURIs are where RP-initiated logout may return the browser.
	PostLogoutRedirectURIs []string
	// FirstParty clients get no consent page.
	FirstParty bool
	// RequireMFA makes every sign-in to this client need a second factor.
	RequireMFA bool
	// BackchannelLogoutURI, when set, receives an OIDC Back-Channel Logout token when a
	// Latchkey session the client signed in through ends.
	BackchannelLogoutURI string
	CreatedAt            time.Time
}

// LogValue keeps the secret hash out of logs.
func (c *OIDCClient) LogValue() slog.Value {
	return slog.GroupValue(slog.String("client_id", c.ID), slog.Bool("public", c.Public))
}

// OIDCAuthRequest is an authorization request in progress: created by the authorize endpoint,
// completed once the user is signed in as the request demands, exchanged for tokens through a
// single-use code. It stays in the store after the exchange, until it expires, so that a
// second use of its code is recognised and the tokens issued from it revoked.
type OIDCAuthRequest struct {
	ID                  string
	ClientID            string
	RedirectURI         string
	Scopes              []string
	State               string
	Nonce               string
	ResponseType        string
	ResponseMode        string
	CodeChallenge       string
	CodeChallengeMethod string
	Prompt              []string
	// MaxAge is the max_age parameter; nil when absent. prompt=login sets it to 0.
	MaxAge    *time.Duration
	LoginHint string
	ACRValues []string
	// HintUserID is the user the request's id_token_hint names (its sub); 0 without one.
	HintUserID UserID
	// Set when the request is completed: who signed in, how and when, and in which Latchkey
	// session (its public SID).
	SID      string
	UserID   UserID
	AMR      []string
	ACR      string
	AuthTime time.Time
	// CodeHash is the hash of the authorization code once one is issued; CodeExpiresAt bounds
	// its use and CodeUsedAt is set by its one exchange.
	CodeHash      string
	CodeExpiresAt time.Time
	CodeUsedAt    *time.Time
	CreatedAt     time.Time
	ExpiresAt     time.Time
}

// Done reports whether a user has completed the request.
func (r *OIDCAuthRequest) Done() bool { return r.UserID != 0 }

// LogValue keeps state, nonce and challenge out of logs.
func (r *OIDCAuthRequest) LogValue() slog.Value {
	return slog.GroupValue(slog.String("client_id", r.ClientID), slog.Int64("user_id", int64(r.UserID)))
}

// OIDCGrant is what one access or refresh token stands for. GrantID ties together every token
// issued from one authorization code, across refresh-token rotations, so that they can be
// revoked together.
type OIDCGrant struct {
	GrantID  string
	ClientID string
	UserID   UserID
	Scopes   []string
	Audience []string
	AMR      []string
	ACR      string
	AuthTime time.Time
	// SID is the public ID of the Latchkey session the grant was given in ("" for older
	// grants): ending that session revokes the grant.
	SID string
}

// OIDCTokenUse is what new tokens are exchanged for (CreateOIDCTokens): a refresh token (its
// ID) or an authorization code (its hash), or neither.
type OIDCTokenUse struct {
	RefreshID string
	CodeHash  string
}

// OIDCAccessToken is an issued access token. The token the client holds is an encrypted
// reference to ID; revoking deletes the row.
type OIDCAccessToken struct {
	ID string
	OIDCGrant
	// RefreshTokenID is the hash of the refresh token issued with it, if any.
	RefreshTokenID string
	CreatedAt      time.Time
	ExpiresAt      time.Time
}

// OIDCRefreshToken is an issued refresh token. ID is a hash of the token; the token itself is
// never stored. A refresh token is used once: using it again revokes its whole grant.
type OIDCRefreshToken struct {
	ID string
	OIDCGrant
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    *time.Time
}

// OIDCTokenSession is a client and the Latchkey session that tokens were given to it in: who
// is told, by a back-channel logout, that those tokens were revoked.
type OIDCTokenSession struct {
	ClientID string
	// SID is the public ID of the session ("" for tokens older than SIDs).
	SID string
	// BackchannelLogoutURI is the client's ("" when it registered none).
	BackchannelLogoutURI string
}

// OIDCSigningKey is a key that signs ID tokens. PrivateKey is PKCS #8 DER (encrypted at rest
// by the store), PublicKey PKIX DER. A retired key signs nothing more but stays published in
// the JWKS until ExpiresAt, when every token it signed has expired.
type OIDCSigningKey struct {
	ID         string // kid
	Algorithm  string // RS256 or ES256
	PrivateKey []byte
	PublicKey  []byte
	CreatedAt  time.Time
	RetiredAt  *time.Time
	ExpiresAt  *time.Time
}

// LogValue keeps the private key out of logs.
func (k *OIDCSigningKey) LogValue() slog.Value {
	return slog.GroupValue(slog.String("kid", k.ID), slog.String("alg", k.Algorithm))
}

// OIDCStore persists the OpenID Connect provider's clients, requests, tokens and keys.
type OIDCStore interface {
	// CreateOIDCClient inserts c; EConflict when the ID is taken.
	CreateOIDCClient(ctx Context, c *OIDCClient) error
	// FindOIDCClientByID returns ENotFound when there is no such client.
	FindOIDCClientByID(ctx Context, id string) (*OIDCClient, error)
	// FindOIDCClients returns every client, ordered by ID.
	FindOIDCClients(ctx Context) ([]*OIDCClient, error)
	// DeleteOIDCClient removes a client with its requests and tokens; ENotFound when missing.
	DeleteOIDCClient(ctx Context, id string) error

	// CreateOIDCAuthRequest inserts r.
	CreateOIDCAuthRequest(ctx Context, r *OIDCAuthRequest) error
	// FindOIDCAuthRequestByID returns ENotFound when there is no such request. It does not
	// check expiry.
	FindOIDCAuthRequestByID(ctx Context, id string) (*OIDCAuthRequest, error)
	// CompleteOIDCAuthRequest records who signed in, in which session (its public SID), and
	// how. ENotFound when the request is gone; EConflict when it was completed already.
	CompleteOIDCAuthRequest(ctx Context, id string, userID UserID, sid string, amr []string, acr string, authTime time.Time) error
	// SetOIDCAuthCode records the hash of the request's code and when the code expires, and
	// keeps the request until keepUntil. EConflict when the request has a code already.
	SetOIDCAuthCode(ctx Context, id, codeHash string, codeExpiresAt, keepUntil time.Time) error
	// FindOIDCAuthRequestByCode returns the request of a code (the code's hash), used or not,
	// expired or not; ENotFound when no request has it.
	FindOIDCAuthRequestByCode(ctx Context, codeHash string) (*OIDCAuthRequest, error)
	// DeleteOIDCAuthRequest removes a request; a missing one is not an error.
	DeleteOIDCAuthRequest(ctx Context, id string) error

	// CreateOIDCTokens inserts an access token and, when rt is not nil, a refresh token, in
	// one transaction, and uses up what they are exchanged for in the same transaction:
	// with used.RefreshID, that refresh token is marked used, and ENotFound is returned
	// (nothing inserted) if it was used already or is gone: of two concurrent rotations one
	// wins; with used.CodeHash, that authorization code (of a completed request) is marked
	// used, and EConflict is returned (nothing inserted) if it was used already or has
	// expired at now: of two concurrent exchanges one wins.
	CreateOIDCTokens(ctx Context, at *OIDCAccessToken, rt *OIDCRefreshToken, used OIDCTokenUse, now time.Time) error
	// FindOIDCAccessToken returns ENotFound when the token was never issued or was revoked.
	FindOIDCAccessToken(ctx Context, id string) (*OIDCAccessToken, error)
	// FindOIDCRefreshToken returns ENotFound when there is no such token; a used one is
	// returned with UsedAt set.
	FindOIDCRefreshToken(ctx Context, id string) (*OIDCRefreshToken, error)
	// DeleteOIDCAccessToken revokes one access token.
	DeleteOIDCAccessToken(ctx Context, id string) error
	// DeleteOIDCRefreshToken revokes one refresh token and the access tokens issued with it.
	DeleteOIDCRefreshToken(ctx Context, id string) error
	// DeleteOIDCGrant revokes every token of a grant and returns how many it deleted.
	DeleteOIDCGrant(ctx Context, grantID string) (int, error)
	// DeleteOIDCUserTokens revokes every token of a user for a client ("" for all clients),
	// except those given in the Latchkey session keepSID (its public SID; "" keeps none), and
	// returns, for the back-channel logouts, each client and session whose tokens it revoked,
	// once, ordered by client and SID.
	DeleteOIDCUserTokens(ctx Context, userID UserID, clientID, keepSID string) ([]OIDCTokenSession, error)
	// FindOIDCSessionClients returns the clients that a user signed in to in the Latchkey
	// session sid (a completed request or a live token), ordered by ID.
	FindOIDCSessionClients(ctx Context, sid string) ([]*OIDCClient, error)
	// DeleteOIDCSessionTokens revokes every token given in the Latchkey session sid and
	// returns how many it deleted.
	DeleteOIDCSessionTokens(ctx Context, sid string) (int, error)
	// DeleteExpiredOIDCData removes requests and tokens that expired before t.
	DeleteExpiredOIDCData(ctx Context, t time.Time) (int, error)

	// RotateOIDCSigningKey inserts k and, in the same transaction, retires every other active
	// key at k.CreatedAt and keeps it published until retiredUntil. With staleBefore set (the
	// rotation on first use of a stale or missing key, which the requests of every node may
	// start at once), it changes nothing and returns false when an active key created at or
	// after staleBefore exists, as when another request or node rotated first; rotations take
	// turns, so of those started together one creates a key.
	RotateOIDCSigningKey(ctx Context, k *OIDCSigningKey, retiredUntil, staleBefore time.Time) (bool, error)
	// FindOIDCSigningKeys returns the keys that are not expired at t, newest first. Only the
	// active key (the newest not retired) has its PrivateKey: the others only verify.
	FindOIDCSigningKeys(ctx Context, t time.Time) ([]*OIDCSigningKey, error)
}
