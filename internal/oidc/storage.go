package oidc

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"

	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/latchkey/latchkey"
)

// storage implements op.Storage on latchkey.OIDCStore.
type storage struct {
	p  *Provider
	db Store
}

var (
	_ op.Storage                   = (*storage)(nil)
	_ op.CanSetUserinfoFromRequest = (*storage)(nil)
)

func subject(id latchkey.UserID) string { return strconv.FormatInt(int64(id), 10) }

func parseSubject(s string) (latchkey.UserID, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, errors.New("invalid subject")
	}
	return latchkey.UserID(n), nil
}

// authRequest adapts latchkey.OIDCAuthRequest to op.AuthRequest.
type authRequest struct{ *latchkey.OIDCAuthRequest }

func (a authRequest) GetID() string    { return a.ID }
func (a authRequest) GetACR() string   { return a.ACR }
func (a authRequest) GetAMR() []string { return a.AMR }
func (a authRequest) GetAudience() []string {
	return []string{a.ClientID}
}
func (a authRequest) GetAuthTime() time.Time { return a.AuthTime }
func (a authRequest) GetClientID() string    { return a.ClientID }
func (a authRequest) GetCodeChallenge() *zoidc.CodeChallenge {
	if a.CodeChallenge == "" {
		return nil
	}
	return &zoidc.CodeChallenge{Challenge: a.CodeChallenge, Method: zoidc.CodeChallengeMethod(a.CodeChallengeMethod)}
}
func (a authRequest) GetNonce() string                    { return a.Nonce }
func (a authRequest) GetRedirectURI() string              { return a.RedirectURI }
func (a authRequest) GetResponseType() zoidc.ResponseType { return zoidc.ResponseType(a.ResponseType) }
func (a authRequest) GetResponseMode() zoidc.ResponseMode { return zoidc.ResponseMode(a.ResponseMode) }
func (a authRequest) GetScopes() []string                 { return a.Scopes }
func (a authRequest) GetState() string                    { return a.State }
func (a authRequest) GetSubject() string {
	if a.UserID == 0 {
		return ""
	}
	return subject(a.UserID)
}
func (a authRequest) Done() bool { return a.OIDCAuthRequest.Done() }

// refreshRequest adapts a refresh token to op.RefreshTokenRequest.
type refreshRequest struct {
	*latchkey.OIDCRefreshToken
	scopes []string
}

func (r *refreshRequest) GetAMR() []string       { return r.AMR }
func (r *refreshRequest) GetAudience() []string  { return r.Audience }
func (r *refreshRequest) GetAuthTime() time.Time { return r.AuthTime }
func (r *refreshRequest) GetClientID() string    { return r.ClientID }
func (r *refreshRequest) GetScopes() []string    { return r.scopes }
func (r *refreshRequest) GetSubject() string     { return subject(r.UserID) }

// SetCurrentScopes narrows the scopes of the refresh's access and ID tokens to those the
// client asked for. offline_access stays: a refresh token exists only for a grant that has
// it, and the library rotates the refresh token only when it is among the current scopes,
// so a refresh that asked for less (scope=openid) would get an access token and leave its
// refresh token valid, reusable without the reuse ever being seen (RFC 9700 §4.14.2). The
// new refresh token keeps the grant's scopes, as RFC 6749 §6 requires.
func (r *refreshRequest) SetCurrentScopes(s []string) {
	if slices.Contains(r.Scopes, zoidc.ScopeOfflineAccess) && !slices.Contains(s, zoidc.ScopeOfflineAccess) {
		s = append(slices.Clip(s), zoidc.ScopeOfflineAccess)
	}
	r.scopes = s
}

// A refresh request is also an op.AuthRequest: the library takes the acr claim of an ID token
// only from one, and a refreshed ID token must say how the user signed in, like the first.
// It has no ID (DeleteAuthRequest ignores ""), nonce or state; its response type is code, so
// that the library rotates the refresh token when offline_access is still granted.
var _ op.AuthRequest = (*refreshRequest)(nil)

func (r *refreshRequest) GetID() string                          { return "" }
func (r *refreshRequest) GetACR() string                         { return r.ACR }
func (r *refreshRequest) GetCodeChallenge() *zoidc.CodeChallenge { return nil }
func (r *refreshRequest) GetNonce() string                       { return "" }
func (r *refreshRequest) GetRedirectURI() string                 { return "" }
func (r *refreshRequest) GetResponseType() zoidc.ResponseType    { return zoidc.ResponseTypeCode }
func (r *refreshRequest) GetResponseMode() zoidc.ResponseMode    { return "" }
func (r *refreshRequest) GetState() string                       { return "" }
func (r *refreshRequest) Done() bool                             { return true }

// request returns a live authorization request.
func (s *storage) request(ctx context.Context, id string) (*latchkey.OIDCAuthRequest, error) {
	r, err := s.db.FindOIDCAuthRequestByID(ctx, id)
	if err != nil {
		return nil, err
	}
	if !s.p.now().Before(r.ExpiresAt) || r.CodeHash != "" {
		return nil, latchkey.Errorf(latchkey.ENotFound, "The sign-in request expired. Go back to the application and start again.")
	}
	return r, nil
}

// CreateAuthRequest stores a validated authorization request after Latchkey's own checks:
//   - the redirect URI is one registered for the client, by simple string comparison (OIDC
//     Core §3.1.2.1): the library compares it after percent-decoding it once more, so that
//     /oauth%2Fcb passed for /oauth/cb; a mismatch is never redirected to;
//   - the response mode is query or fragment: form_post's self-submitting page cannot run
//     under the pages' CSP, so it would leave the user on a blank page (the refusal goes back
//     in the query);
//   - request_uri is request_uri_not_supported (the library ignored it);
//   - the user an id_token_hint names is kept, for Authorize;
//   - PKCE is S256 with a challenge of 43 base64url characters (RFC 7636 §4.2), required for
//     public clients; never "plain".
func (s *storage) CreateAuthRequest(ctx context.Context, req *zoidc.AuthRequest, hintSubject string) (op.AuthRequest, error) {
	c, err := s.db.FindOIDCClientByID(ctx, req.ClientID)
	if err != nil {
		return nil, zoidc.ErrInvalidClient().WithParent(err)
	}
	if !slices.Contains(c.RedirectURIs, req.RedirectURI) {
		return nil, zoidc.ErrInvalidRequestRedirectURI().WithDescription("The redirect_uri is not registered for this client.")
	}
	switch req.ResponseMode {
	case "", zoidc.ResponseModeQuery, zoidc.ResponseModeFragment:
	default:
		// The library answers in the request's response mode: the refusal goes in the query.
		req.ResponseMode = ""
		return nil, zoidc.ErrInvalidRequest().WithDescription("response_mode must be query or fragment.")
	}
	if requestURI(ctx) {
		e := zoidc.ErrInvalidRequest().WithDescription("Latchkey does not take request_uri: send the parameters in the request.")
		e.ErrorType = "request_uri_not_supported"
		return nil, e
	}
	method := req.CodeChallengeMethod
	if req.CodeChallenge != "" && method == "" {
		method = zoidc.CodeChallengeMethodPlain // RFC 7636 §4.3
	}
	switch {
	case req.CodeChallenge != "" && !validChallenge(req.CodeChallenge):
		return nil, zoidc.ErrInvalidRequest().WithDescription("code_challenge must be the 43 base64url characters of the verifier's SHA-256.")
	case req.ResponseType != zoidc.ResponseTypeCode:
		return nil, zoidc.ErrInvalidRequest().WithDescription("Only response_type=code is supported.")
	case req.CodeChallenge != "" && method != zoidc.CodeChallengeMethodS256:
		return nil, zoidc.ErrInvalidRequest().WithDescription("code_challenge_method must be S256.")
	case c.Public && req.CodeChallenge == "":
		return nil, zoidc.ErrInvalidRequest().WithDescription("PKCE (code_challenge with S256) is required for this client.")
	}
	now := s.p.now()
	r := &latchkey.OIDCAuthRequest{
		ID: randomToken(), ClientID: c.ID, RedirectURI: req.RedirectURI, Scopes: req.Scopes, State: req.State, Nonce: req.Nonce,
		ResponseType: string(req.ResponseType), ResponseMode: string(req.ResponseMode), CodeChallenge: req.CodeChallenge,
		CodeChallengeMethod: string(method), Prompt: req.Prompt, LoginHint: req.LoginHint, ACRValues: req.ACRValues,
		CreatedAt: now, ExpiresAt: now.Add(s.p.opt.RequestTTL),
	}
	if hintSubject != "" {
		// The library verified the id_token_hint (signed by this provider) and passes its sub.
		id, err := parseSubject(hintSubject)
		if err != nil {
			return nil, zoidc.ErrLoginRequired().WithDescription("The id_token_hint does not name a user of this provider.")
		}
		r.HintUserID = id
	}
	if req.MaxAge != nil {
		d := time.Duration(*req.MaxAge) * time.Second
		r.MaxAge = &d
	}
	if err := s.db.CreateOIDCAuthRequest(ctx, r); err != nil {
		return nil, err
	}
	return authRequest{r}, nil
}

// validChallenge: an S256 code challenge is the unpadded base64url of 32 bytes.
func validChallenge(c string) bool {
	if len(c) != 43 {
		return false
	}
	for i := 0; i < len(c); i++ {
		b := c[i]
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '-' || b == '_') {
			return false
		}
	}
	return true
}

func (s *storage) AuthRequestByID(ctx context.Context, id string) (op.AuthRequest, error) {
	r, err := s.request(ctx, id)
	if err != nil {
		return nil, err
	}
	return authRequest{r}, nil
}

// AuthRequestByCode finds the request of a code that can be exchanged. It does not use the
// code up: the library checks the client, PKCE and the redirect URI after this, and only the
// exchange that passes them uses it, in the transaction that issues its tokens
// (CreateAccessToken, CreateAccessAndRefreshTokens). A code used already revokes every token
// of its grant: the client or a thief holds a code that was exchanged (RFC 6749 §4.1.2).
func (s *storage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	r, err := s.db.FindOIDCAuthRequestByCode(ctx, hashSecret(code))
	if err != nil {
		return nil, err
	}
	if r.CodeUsedAt != nil {
		return nil, s.codeReused(ctx, r)
	}
	if !r.Done() || !s.p.now().Before(r.CodeExpiresAt) {
		return nil, errors.New("code expired")
	}
	if err := s.codeHolds(ctx, r); err != nil {
		return nil, err
	}
	return authRequest{r}, nil
}

// codeHolds refuses the exchange of a code whose user is disabled or gone, or whose Latchkey
// session has ended since (logout, revocation, sign out everywhere, an account rule): the
// code would otherwise outlive the sign-in it stands for, and with offline_access keep
// refreshing. This is how EndSessions revokes the requests of a session.
func (s *storage) codeHolds(ctx context.Context, r *latchkey.OIDCAuthRequest) error {
	if err := s.activeUser(ctx, r.UserID); err != nil {
		return zoidc.ErrInvalidGrant().WithDescription("The account cannot sign in.").WithParent(err)
	}
	if r.SID == "" {
		return nil
	}
	sess, err := s.db.FindSessionBySID(ctx, r.SID)
	if latchkey.ErrorCode(err) == latchkey.ENotFound || err == nil && (sess.UserID != r.UserID || !s.p.now().Before(sess.ExpiresAt)) {
		return zoidc.ErrInvalidGrant().WithDescription("The sign-in session has ended.")
	} else if err != nil {
		return err
	}
	return nil
}

// codeReused revokes the grant of a code exchanged a second time, and audits it.
func (s *storage) codeReused(ctx context.Context, r *latchkey.OIDCAuthRequest) error {
	return s.grantReused(ctx, "code", latchkey.ActionOIDCCodeReused, r.ID, r.ClientID, r.UserID)
}

// grantReused revokes grant, whose credential (what: a code, a refresh token) was used a
// second time, logs and audits it, and returns the error that refuses the request.
func (s *storage) grantReused(ctx context.Context, what, action, grant, clientID string, userID latchkey.UserID) error {
	n, err := s.db.DeleteOIDCGrant(ctx, grant)
	if err != nil {
		return fmt.Errorf("revoke grant of reused %s: %w", what, err)
	}
	s.p.log.WarnContext(ctx, "oidc: "+what+" reused; grant revoked", "client_id", clientID, "user_id", userID, "tokens", n)
	s.p.recordID(ctx, nil, userID, action, latchkey.OutcomeDenied, fmt.Sprintf("client: %s; tokens revoked: %d", clientID, n))
	return errors.New(what + " used already")
}

// issued handles the error of CreateOIDCTokens for req: a code that another exchange used
// meanwhile (or that expired since AuthRequestByCode) is refused as invalid_grant, and, used,
// revokes its grant.
func (s *storage) issued(ctx context.Context, req op.TokenRequest, err error) error {
	r, ok := req.(authRequest)
	if !ok || latchkey.ErrorCode(err) != latchkey.EConflict {
		return err
	}
	if again, ferr := s.db.FindOIDCAuthRequestByCode(ctx, r.CodeHash); ferr == nil && again.CodeUsedAt != nil {
		err = s.codeReused(ctx, again)
	}
	return zoidc.ErrInvalidGrant().WithDescription("The code was used already, or has expired.").WithParent(err)
}

// used is what tokens for req use up: the code of an authorization request.
func used(req op.TokenRequest) latchkey.OIDCTokenUse {
	if r, ok := req.(authRequest); ok {
		return latchkey.OIDCTokenUse{CodeHash: r.CodeHash}
	}
	return latchkey.OIDCTokenUse{}
}

func (s *storage) SaveAuthCode(ctx context.Context, id, code string) error {
	now := s.p.now()
	return s.db.SetOIDCAuthCode(ctx, id, hashSecret(code), now.Add(s.p.opt.CodeTTL), now.Add(codeReuseWindow))
}

// DeleteAuthRequest keeps requests whose code was issued (their row recognises a reuse until
// it expires) and deletes the others.
func (s *storage) DeleteAuthRequest(ctx context.Context, id string) error {
	if id == "" {
		return nil // a refresh request
	}
	r, err := s.db.FindOIDCAuthRequestByID(ctx, id)
	if latchkey.ErrorCode(err) == latchkey.ENotFound {
		return nil
	} else if err != nil {
		return err
	}
	if r.CodeHash != "" {
		return nil
	}
	return s.db.DeleteOIDCAuthRequest(ctx, id)
}

// grantOf returns the grant a token request stands for.
func grantOf(req op.TokenRequest) (latchkey.OIDCGrant, error) {
	switch r := req.(type) {
	case authRequest:
		return latchkey.OIDCGrant{GrantID: r.ID, ClientID: r.ClientID, UserID: r.UserID, Scopes: r.Scopes, Audience: r.GetAudience(), AMR: r.AMR, ACR: r.ACR, AuthTime: r.AuthTime, SID: r.SID}, nil
	case *refreshRequest:
		g := r.OIDCGrant
		g.Scopes = r.scopes
		return g, nil
	}
	return latchkey.OIDCGrant{}, zoidc.ErrUnsupportedGrantType()
}

func (s *storage) CreateAccessToken(ctx context.Context, req op.TokenRequest) (string, time.Time, error) {
	g, err := grantOf(req)
	if err != nil {
		return "", time.Time{}, err
	}
	now := s.p.now()
	at := &latchkey.OIDCAccessToken{ID: randomToken(), OIDCGrant: g, CreatedAt: now, ExpiresAt: now.Add(s.p.opt.AccessTokenTTL)}
	if err := s.db.CreateOIDCTokens(ctx, at, nil, used(req), now); err != nil {
		return "", time.Time{}, s.issued(ctx, req, err)
	}
	s.exchanged(ctx, req, g)
	return at.ID, at.ExpiresAt, nil
}

// CreateAccessAndRefreshTokens issues an access and a refresh token; with currentRefreshToken
// it rotates that token, which then no longer works.
func (s *storage) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, currentRefreshToken string) (string, string, time.Time, error) {
	g, err := grantOf(req)
	if err != nil {
		return "", "", time.Time{}, err
	}
	now := s.p.now()
	refresh := randomToken()
	rg := g
	expires := now.Add(s.p.opt.RefreshTokenTTL)
	if r, ok := req.(*refreshRequest); ok {
		rg.Scopes = r.OIDCGrant.Scopes // RFC 6749 §6: the new refresh token's scope is the old one's
		// A grant older than sids (migration 0009) names no session: its revocation sends
		// a logout token with sub alone, which ends every session of the user at the
		// client. Rotation keeps its expiry instead of renewing it, so that the last of them
		// is gone one refresh token lifetime after this release.
		if rg.SID == "" && r.ExpiresAt.Before(expires) {
			expires = r.ExpiresAt
		}
	}
	rt := &latchkey.OIDCRefreshToken{ID: hashSecret(refresh), OIDCGrant: rg, CreatedAt: now, ExpiresAt: expires}
	at := &latchkey.OIDCAccessToken{ID: randomToken(), OIDCGrant: g, RefreshTokenID: rt.ID, CreatedAt: now, ExpiresAt: now.Add(s.p.opt.AccessTokenTTL)}
	use := used(req)
	if currentRefreshToken != "" {
		use.RefreshID = hashSecret(currentRefreshToken)
	}
	if err := s.db.CreateOIDCTokens(ctx, at, rt, use, now); latchkey.ErrorCode(err) == latchkey.ENotFound && use.RefreshID != "" {
		// Another refresh used the token since TokenRequestByRefreshToken read it: a reuse
		// like any other, which the order of two requests must not excuse.
		if r, ok := req.(*refreshRequest); ok {
			err = s.refreshReused(ctx, r.OIDCRefreshToken)
		}
		return "", "", time.Time{}, zoidc.ErrInvalidGrant().WithDescription("The refresh token was used already.").WithParent(err)
	} else if err != nil {
		return "", "", time.Time{}, s.issued(ctx, req, err)
	}
	s.exchanged(ctx, req, g)
	return at.ID, refresh, at.ExpiresAt, nil
}

// exchanged audits the tokens issued for an authorization code (not those of a refresh).
func (s *storage) exchanged(ctx context.Context, req op.TokenRequest, g latchkey.OIDCGrant) {
	if _, ok := req.(authRequest); ok {
		s.p.recordID(ctx, nil, g.UserID, latchkey.ActionOIDCCodeExchanged, latchkey.OutcomeSuccess, "client: "+g.ClientID+"; scopes: "+strings.Join(g.Scopes, " "))
	}
}

// TokenRequestByRefreshToken finds a live refresh token. A used one revokes its grant: either
// the client or a thief holds a token that was rotated away.
func (s *storage) TokenRequestByRefreshToken(ctx context.Context, token string) (op.RefreshTokenRequest, error) {
	rt, err := s.db.FindOIDCRefreshToken(ctx, hashSecret(token))
	if err != nil {
		return nil, err
	}
	if rt.UsedAt != nil {
		return nil, s.refreshReused(ctx, rt)
	}
	if !s.p.now().Before(rt.ExpiresAt) {
		return nil, errors.New("refresh token expired")
	}
	if err := s.activeUser(ctx, rt.UserID); err != nil {
		return nil, err
	}
	if err := s.sessionRule(ctx, rt); err != nil {
		return nil, err
	}
	return &refreshRequest{OIDCRefreshToken: rt, scopes: rt.Scopes}, nil
}

// refreshReused revokes the grant of a refresh token used a second time, and audits it.
func (s *storage) refreshReused(ctx context.Context, rt *latchkey.OIDCRefreshToken) error {
	return s.grantReused(ctx, "refresh token", latchkey.ActionOIDCRefreshReused, rt.GrantID, rt.ClientID, rt.UserID)
}

// sessionRule applies the workday session to a refresh: while the Latchkey session the grant
// was given in lasts, nothing changes. Once it has ended (its workday or maximum age is over;
// a logout revokes the tokens outright), only an offline_access grant may refresh, and its
// new tokens no longer claim the second factor: an ID token's amr shows mfa only while the
// proof stands. A grant without a sid (given before migration 0009) names no session that
// could be found to last, so it counts as one whose session has ended: it cannot go on
// claiming a proof nothing shows still stands; so does a grant whose sid names another
// user's session (as codeHolds checks of a code).
func (s *storage) sessionRule(ctx context.Context, rt *latchkey.OIDCRefreshToken) error {
	if rt.SID != "" {
		sess, err := s.db.FindSessionBySID(ctx, rt.SID)
		if err != nil && latchkey.ErrorCode(err) != latchkey.ENotFound {
			return err
		}
		if err == nil && sess.UserID == rt.UserID && s.p.now().Before(sess.ExpiresAt) {
			return nil
		}
	}
	if !slices.Contains(rt.Scopes, zoidc.ScopeOfflineAccess) {
		return zoidc.ErrInvalidGrant().WithDescription("The sign-in session has ended.")
	}
	rt.AMR = passwordOnly(rt.AMR)
	rt.ACR = latchkey.ACRPassword
	return nil
}

func (s *storage) activeUser(ctx context.Context, id latchkey.UserID) error {
	u, err := s.db.FindUserByID(ctx, id)
	if err != nil {
		return err
	}
	if u.Disabled {
		return fmt.Errorf("%w: user disabled", errTokenRefused)
	}
	return nil
}

func (s *storage) TerminateSession(ctx context.Context, userID, clientID string) error {
	id, err := parseSubject(userID)
	if err != nil {
		return err
	}
	_, err = s.db.DeleteOIDCUserTokens(ctx, id, clientID, "")
	return err
}

// RevokeToken revokes an access token (by ID, with userID set) or a refresh token (by the
// hash GetRefreshTokenInfo returned).
func (s *storage) RevokeToken(ctx context.Context, tokenOrID, userID, clientID string) *zoidc.Error {
	if userID != "" {
		if at, err := s.db.FindOIDCAccessToken(ctx, tokenOrID); err == nil {
			if at.ClientID != clientID {
				return zoidc.ErrInvalidClient().WithDescription("The token was not issued to this client.")
			}
			if err := s.db.DeleteOIDCAccessToken(ctx, at.ID); err != nil {
				return zoidc.ErrServerError().WithParent(err)
			}
			return nil
		}
	}
	rt, err := s.db.FindOIDCRefreshToken(ctx, tokenOrID)
	if err != nil {
		return nil // unknown tokens are "revoked" already (RFC 7009 §2.2)
	}
	if rt.ClientID != clientID {
		return zoidc.ErrInvalidClient().WithDescription("The token was not issued to this client.")
	}
	if err := s.db.DeleteOIDCRefreshToken(ctx, rt.ID); err != nil {
		return zoidc.ErrServerError().WithParent(err)
	}
	return nil
}

func (s *storage) GetRefreshTokenInfo(ctx context.Context, clientID, token string) (string, string, error) {
	rt, err := s.db.FindOIDCRefreshToken(ctx, hashSecret(token))
	if err != nil || rt.ClientID != clientID {
		return "", "", op.ErrInvalidRefreshToken
	}
	return subject(rt.UserID), rt.ID, nil
}

func (s *storage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.db.FindOIDCClientByID(ctx, id)
	if latchkey.ErrorCode(err) == latchkey.ENotFound {
		// invalid_client, where the library answered an unknown public client's token
		// request with a 500 carrying the store's error.
		return nil, zoidc.ErrInvalidClient().WithDescription("The client is not registered.")
	} else if err != nil {
		return nil, err
	}
	return &client{c: c, p: s.p}, nil
}

func (s *storage) AuthorizeClientIDSecret(ctx context.Context, id, secret string) error {
	c, err := s.db.FindOIDCClientByID(ctx, id)
	if latchkey.ErrorCode(err) == latchkey.ENotFound {
		return zoidc.ErrInvalidClient().WithDescription("The client credentials are invalid.")
	} else if err != nil {
		return err
	}
	if c.Public || c.SecretHash == "" || subtle.ConstantTimeCompare([]byte(hashSecret(secret)), []byte(c.SecretHash)) != 1 {
		return zoidc.ErrInvalidClient().WithDescription("The client credentials are invalid.")
	}
	return nil
}

func (s *storage) SetUserinfoFromScopes(context.Context, *zoidc.UserInfo, string, string, []string) error {
	return nil
}

func (s *storage) SetUserinfoFromRequest(ctx context.Context, info *zoidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	id, err := parseSubject(req.GetSubject())
	if err != nil {
		return err
	}
	if err := s.userinfo(ctx, info, id, scopes); err != nil {
		return err
	}
	// The ID token names the Latchkey session (OIDC Back-Channel Logout §2.1), so that a
	// logout token's sid can be matched by the client.
	var sid string
	switch r := req.(type) {
	case authRequest:
		sid = r.SID
	case *refreshRequest:
		sid = r.SID
	}
	if sid != "" {
		info.AppendClaims("sid", sid)
	}
	return nil
}

func (s *storage) userinfo(ctx context.Context, info *zoidc.UserInfo, id latchkey.UserID, scopes []string) error {
	u, err := s.db.FindUserByID(ctx, id)
	if err != nil {
		return err
	}
	info.Subject = subject(u.ID)
	if slices.Contains(scopes, zoidc.ScopeProfile) {
		info.Name, info.PreferredUsername = u.Username, u.Username
	}
	if slices.Contains(scopes, zoidc.ScopeEmail) {
		info.Email = u.Email
	}
	return nil
}

// errTokenRefused is a token that exists no more or no longer counts (liveToken), as opposed
// to a store that failed.
var errTokenRefused = errors.New("access token refused")

// liveToken returns an access token that exists (not revoked) and has not expired.
func (s *storage) liveToken(ctx context.Context, tokenID, sub string) (*latchkey.OIDCAccessToken, error) {
	at, err := s.db.FindOIDCAccessToken(ctx, tokenID)
	if err != nil {
		return nil, err
	}
	if !s.p.now().Before(at.ExpiresAt) || subject(at.UserID) != sub {
		return nil, fmt.Errorf("%w: expired", errTokenRefused)
	}
	if err := s.activeUser(ctx, at.UserID); err != nil {
		if latchkey.ErrorCode(err) == latchkey.ENotFound {
			return nil, fmt.Errorf("%w: %w", errTokenRefused, err)
		}
		return nil, err
	}
	return at, nil
}

func (s *storage) SetUserinfoFromToken(ctx context.Context, info *zoidc.UserInfo, tokenID, sub, _ string) error {
	at, err := s.liveToken(ctx, tokenID, sub)
	if err != nil {
		if latchkey.ErrorCode(err) == "" && !errors.Is(err, errTokenRefused) {
			storeFailed(ctx)
		}
		return err
	}
	return s.userinfo(ctx, info, at.UserID, at.Scopes)
}

func (s *storage) SetIntrospectionFromToken(ctx context.Context, resp *zoidc.IntrospectionResponse, tokenID, sub, clientID string) error {
	at, err := s.liveToken(ctx, tokenID, sub)
	if err != nil {
		return err
	}
	if !slices.Contains(at.Audience, clientID) {
		return errors.New("token not for this client")
	}
	info := new(zoidc.UserInfo)
	if err := s.userinfo(ctx, info, at.UserID, at.Scopes); err != nil {
		return err
	}
	resp.SetUserInfo(info)
	resp.Active, resp.ClientID, resp.Scope, resp.Audience = true, at.ClientID, at.Scopes, at.Audience
	resp.Expiration = zoidc.FromTime(at.ExpiresAt)
	resp.IssuedAt = zoidc.FromTime(at.CreatedAt)
	return nil
}

func (s *storage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

func (s *storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("JWT profile grants are not supported")
}

func (s *storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errors.New("JWT profile grants are not supported")
}

func (s *storage) Health(context.Context) error { return nil }
