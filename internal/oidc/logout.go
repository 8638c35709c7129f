package oidc

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"

	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/latchkey/latchkey"
)

// backchannelEvent is the event of an OIDC Back-Channel Logout 1.0 logout token.
const backchannelEvent = "http://schemas.openid.net/event/backchannel-logout"

// logoutTimeout bounds one back-channel logout request: a slow client never holds anything up.
const logoutTimeout = 5 * time.Second

// logoutSender delivers back-channel logout tokens in the background.
type logoutSender struct {
	hc *http.Client
	wg sync.WaitGroup
}

// EndSessions ends, for every application, the Latchkey sessions that were just ended
// (logout, revocation, sign out everywhere): it revokes the access and refresh tokens given in
// them and sends a back-channel logout token to each client that signed in through them and
// registered a backchannel_logout_uri. Delivery is asynchronous, with a short timeout;
// failures are logged, never returned: a logout is never held up by a client.
func (p *Provider) EndSessions(ctx context.Context, ended ...*latchkey.Session) {
	for _, sess := range ended {
		if sess == nil || sess.SID == "" {
			continue
		}
		clients, err := p.opt.Store.FindOIDCSessionClients(ctx, sess.SID)
		if err != nil {
			p.log.ErrorContext(ctx, "oidc: find the clients of an ended session", "err", err)
		}
		if _, err := p.opt.Store.DeleteOIDCSessionTokens(ctx, sess.SID); err != nil {
			p.log.ErrorContext(ctx, "oidc: revoke the tokens of an ended session", "err", err)
		}
		for _, c := range clients {
			if c.BackchannelLogoutURI == "" {
				continue
			}
			tok, err := p.logoutToken(ctx, c.ID, sess.UserID, sess.SID)
			if err != nil {
				p.log.ErrorContext(ctx, "oidc: sign a logout token", "client_id", c.ID, "err", err)
				continue
			}
			p.sendLogout(c.ID, c.BackchannelLogoutURI, tok)
		}
	}
}

// EndAllSessions ends, for every application, the account of userID after an account-wide
// event (sign out everywhere, a password change, an MFA reset, a user disabled or signed out
// by an admin or an agent): it does what EndSessions does for the sessions that just ended,
// then revokes every other access and refresh token of the user, also the offline_access
// ones given in sessions that had ended earlier (which no session list names any more),
// except those given in the session the event kept, keptSID (the public SID of the session
// of a user who changed their password or reset their MFA; "" when the event kept none): that
// session stays signed in, and so do its applications. A client whose tokens of an earlier
// session are revoked this way is sent a back-channel logout for that session too (sub and
// its sid; sub alone for a token older than sids), once per client and session; the clients
// of the sessions that just ended were told by EndSessions, and the kept session's keep
// their tokens and are told nothing.
func (p *Provider) EndAllSessions(ctx context.Context, userID latchkey.UserID, keptSID string, ended ...*latchkey.Session) {
	p.EndSessions(ctx, ended...)
	if userID == 0 {
		return
	}
	revoked, err := p.opt.Store.DeleteOIDCUserTokens(ctx, userID, "", keptSID)
	if err != nil {
		p.log.ErrorContext(ctx, "oidc: revoke the tokens of an account", "user_id", userID, "err", err)
		return
	}
	// EndSessions has told the clients of the ended sessions and deleted their tokens; one
	// of their tokens found here was issued meanwhile, and its client was told already.
	told := make(map[string]bool, len(ended))
	for _, sess := range ended {
		if sess != nil && sess.SID != "" {
			told[sess.SID] = true
		}
	}
	p.logoutRevoked(ctx, userID, revoked, told)
}

// logoutRevoked sends a back-channel logout to each client and session of revoked (whose
// tokens of userID were just revoked) whose client registered a backchannel_logout_uri,
// except the sessions in told: a logout token with sub and the sid, or sub alone for tokens
// older than sids (migration 0009), which ends every session of the user at that client.
// revoked names each client and session once (DeleteOIDCUserTokens, DeleteOIDCConsent).
func (p *Provider) logoutRevoked(ctx context.Context, userID latchkey.UserID, revoked []latchkey.OIDCTokenSession, told map[string]bool) {
	for _, ts := range revoked {
		if ts.BackchannelLogoutURI == "" || told[ts.SID] {
			continue
		}
		tok, err := p.logoutToken(ctx, ts.ClientID, userID, ts.SID)
		if err != nil {
			p.log.ErrorContext(ctx, "oidc: sign a logout token", "client_id", ts.ClientID, "err", err)
			continue
		}
		p.sendLogout(ts.ClientID, ts.BackchannelLogoutURI, tok)
	}
}

// WaitLogouts waits until the back-channel logouts sent so far are delivered or have failed
// (for a graceful shutdown, and tests).
func (p *Provider) WaitLogouts() { p.logouts.wg.Wait() }

// logoutToken returns a logout token for client about the session sid of userID, signed
// with the provider's current key: iss, aud, iat, exp, jti, events, sub and sid (left out when
// sid is "", which OIDC Back-Channel Logout 1.0 §2.4 allows: the client ends every session of
// the user), and never a nonce.
func (p *Provider) logoutToken(ctx context.Context, clientID string, userID latchkey.UserID, sid string) (string, error) {
	key, err := p.st.SigningKey(ctx)
	if err != nil {
		return "", err
	}
	now := p.now()
	claims := map[string]any{
		"iss":    strings.TrimSuffix(p.opt.Issuer, "/"),
		"aud":    clientID,
		"iat":    now.Unix(),
		"exp":    now.Add(2 * time.Minute).Unix(),
		"jti":    randomToken(),
		"events": map[string]any{backchannelEvent: map[string]any{}},
		"sub":    subject(userID),
	}
	if sid != "" {
		claims["sid"] = sid
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: key.SignatureAlgorithm(), Key: key.Key()},
		(&jose.SignerOptions{}).WithType("logout+jwt").WithHeader("kid", key.ID()))
	if err != nil {
		return "", fmt.Errorf("new signer: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	return jws.CompactSerialize()
}

// sendLogout POSTs the logout token to the client in the background.
func (p *Provider) sendLogout(clientID, uri, token string) {
	p.logouts.wg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), logoutTimeout)
		defer cancel()
		body := url.Values{"logout_token": {token}}.Encode()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, strings.NewReader(body))
		if err != nil {
			p.log.Error("oidc: back-channel logout", "client_id", clientID, "err", err)
			return
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := p.logouts.hc.Do(req)
		if err != nil {
			p.log.Warn("oidc: back-channel logout failed", "client_id", clientID, "err", err)
			return
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
			p.log.Warn("oidc: back-channel logout refused", "client_id", clientID, "status", resp.StatusCode)
		}
	})
}

// EndSessionRequest is a validated RP-initiated logout request (the end_session endpoint).
type EndSessionRequest struct {
	// ClientID is the client that asked, when known (client_id or the hint's azp).
	ClientID string
	// UserID is the subject of a valid id_token_hint; 0 without one. Only with a valid hint
	// for the browser's user may the logout happen without asking the user.
	UserID latchkey.UserID
	// SID is the hint's sid claim, when present.
	SID string
	// RedirectURI is where the browser goes afterwards: the client's registered
	// post_logout_redirect_uri (exact match) with state, or Latchkey's signed-out page.
	RedirectURI string
	// Params are the request's parameters to carry through a confirmation page.
	Params url.Values
}

// ParseEndSession validates an RP-initiated logout request: the id_token_hint must be an ID
// token this provider signed (an expired one is accepted, as the specification allows), the
// post_logout_redirect_uri must be registered by the client exactly. An invalid request gives
// EInvalid with the reason; a parameter given more than once is refused, as at every
// protocol endpoint (checkParams), before the library reads one of the values.
func (p *Provider) ParseEndSession(r *http.Request) (*EndSessionRequest, error) {
	if err := checkParams(r); err != nil {
		return nil, err
	}
	ctx := op.ContextWithIssuer(r.Context(), strings.TrimSuffix(p.opt.Issuer, "/"))
	req, err := op.ParseEndSessionRequest(r, p.op.Decoder())
	if err != nil {
		return nil, latchkey.Errorf(latchkey.EInvalid, "The sign-out request is not valid.")
	}
	if req.PostLogoutRedirectURI != "" && req.ClientID == "" && req.IdTokenHint == "" {
		return nil, latchkey.Errorf(latchkey.EInvalid, "The sign-out request names a return address but not the application (client_id or id_token_hint).")
	}
	v, err := op.ValidateEndSessionRequest(ctx, req, p.op)
	if err != nil {
		msg := "The sign-out request is not valid."
		if e, ok := err.(*zoidc.Error); ok && e.Description != "" {
			msg = "The sign-out request is not valid: " + e.Description + "."
		}
		return nil, latchkey.Errorf(latchkey.EInvalid, "%s", msg)
	}
	out := &EndSessionRequest{ClientID: v.ClientID, RedirectURI: v.RedirectURI, Params: url.Values{}}
	if v.IDTokenHintClaims != nil {
		id, err := parseSubject(v.IDTokenHintClaims.GetSubject())
		if err != nil {
			return nil, latchkey.Errorf(latchkey.EInvalid, "The sign-out request is not valid: id_token_hint names no user.")
		}
		out.UserID = id
		out.SID = v.IDTokenHintClaims.SessionID
	}
	for _, k := range []string{"id_token_hint", "client_id", "post_logout_redirect_uri", "state"} {
		if val, _ := param(r.Form, k); val != "" {
			out.Params.Set(k, val)
		}
	}
	return out, nil
}
