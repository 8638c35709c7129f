package login

import (
	"context"
	"crypto/subtle"
	"strings"

	"github.com/latchkey/latchkey"
)

// A session cookie's token is "selector.verifier", two random 256-bit values (base64url).
// The store keeps the keyed hash of each: the selector's is the session's ID, which finds the
// row, and the verifier's is compared in constant time, which proves the token. Rotating a
// session after its second factor keeps the selector and draws a new verifier: the cookie
// changes and the old one stops working (a planted or stolen flow cookie is useless after
// the sign-in), while the row keeps its ID and the rotation writes the row alone, not the
// ID's index (SQLite moved its entry twice, each at a random page, in every sign-in).
//
// A token without a verifier is one issued before migration 0013: its ID is the keyed hash
// of the whole token and its stored verifier is "". It stays valid until it rotates; its
// next rotation keeps it as the selector.

// tokenRef is what the store knows of a session token.
type tokenRef struct {
	selector string // the token's first part (the whole of a token without a verifier)
	id       string // the session's ID: keyed hash of the selector
	verifier string // keyed hash of the verifier; "" for a token without one
	ok       bool   // false for a malformed token, which names no session
}

// ref splits token and hashes its parts.
func (s *Service) ref(token string) tokenRef {
	sel, ver, split := strings.Cut(token, ".")
	if sel == "" || (split && (ver == "" || strings.Contains(ver, "."))) {
		return tokenRef{}
	}
	r := tokenRef{selector: sel, id: s.keyedHex("session", sel), ok: true}
	if split {
		r.verifier = s.keyedHex("session-verifier", ver)
	}
	return r
}

// newSessionToken returns a token with old's selector (and ID) and a new verifier, or with
// a new selector as well when old is not a token (the zero tokenRef).
func (s *Service) newSessionToken(old tokenRef) (string, tokenRef, error) {
	r := old
	if !r.ok {
		sel, err := s.newToken()
		if err != nil {
			return "", tokenRef{}, err
		}
		r = tokenRef{selector: sel, id: s.keyedHex("session", sel), ok: true}
	}
	ver, err := s.newToken()
	if err != nil {
		return "", tokenRef{}, err
	}
	r.verifier = s.keyedHex("session-verifier", ver)
	return r.selector + "." + ver, r, nil
}

// owns reports whether sess is the session of r: the verifiers match, in constant time.
func (r tokenRef) owns(sess *latchkey.Session) bool {
	return r.ok && subtle.ConstantTimeCompare([]byte(sess.Verifier), []byte(r.verifier)) == 1
}

var errNoSession error = latchkey.Errorf(latchkey.ENotFound, "The session does not exist.")

// findSession reads the session of token with its user, in one prepared query; ENotFound
// when there is none or the token's verifier is not the session's.
func (s *Service) findSession(ctx context.Context, token string) (*latchkey.Session, *latchkey.User, error) {
	return s.findSessionWith(ctx, token, s.opt.Store.FindSessionWithUser)
}

// findSessionWith is findSession reading with find.
func (s *Service) findSessionWith(ctx context.Context, token string, find func(context.Context, string) (*latchkey.Session, *latchkey.User, error)) (*latchkey.Session, *latchkey.User, error) {
	r := s.ref(token)
	if !r.ok {
		return nil, nil, errNoSession
	}
	sess, u, err := find(ctx, r.id)
	if err != nil {
		return nil, nil, err
	}
	if !r.owns(sess) {
		return nil, nil, errNoSession
	}
	return sess, u, nil
}

// findSessionOnly is findSession without the user.
func (s *Service) findSessionOnly(ctx context.Context, token string) (*latchkey.Session, error) {
	r := s.ref(token)
	if !r.ok {
		return nil, errNoSession
	}
	sess, err := s.opt.Store.FindSessionByID(ctx, r.id)
	if err != nil {
		return nil, err
	}
	if !r.owns(sess) {
		return nil, errNoSession
	}
	return sess, nil
}

// SessionOf returns the session of token in whatever state it is (a sign-in under way, an
// idle session whose second factor is remembered, one past its end), without the checks of
// Authenticate and without changing it; ENotFound when the token names none. For the pages
// that decide about a session that does not sign anyone in (the OIDC logout's hint).
func (s *Service) SessionOf(ctx context.Context, token string) (*latchkey.Session, error) {
	return s.findSessionOnly(ctx, token)
}
