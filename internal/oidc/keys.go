package oidc

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/latchkey/latchkey"
)

// Signing algorithms.
const (
	AlgES256 = "ES256"
	AlgRS256 = "RS256"
)

type signingKey struct {
	id  string
	alg jose.SignatureAlgorithm
	key crypto.Signer
}

func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return k.alg }
func (k *signingKey) Key() any                                    { return k.key }
func (k *signingKey) ID() string                                  { return k.id }

type publicKey struct {
	id  string
	alg jose.SignatureAlgorithm
	key any
}

func (k *publicKey) ID() string                         { return k.id }
func (k *publicKey) Algorithm() jose.SignatureAlgorithm { return k.alg }
func (k *publicKey) Use() string                        { return "sig" }
func (k *publicKey) Key() any                           { return k.key }

// RotateKey creates a new signing key, which signs from now on, and retires the others: they
// stay in the JWKS until every token they signed has expired.
func (p *Provider) RotateKey(ctx context.Context) (*latchkey.OIDCSigningKey, error) {
	k, _, err := p.rotate(ctx, time.Time{})
	return k, err
}

// rotate creates a signing key and retires the others, or, with staleBefore set, does nothing
// and returns false when an active key was created at or after staleBefore.
func (p *Provider) rotate(ctx context.Context, staleBefore time.Time) (*latchkey.OIDCSigningKey, bool, error) {
	var priv crypto.Signer
	var err error
	if p.opt.Algorithm == AlgRS256 {
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		return nil, false, fmt.Errorf("generate signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, false, err
	}
	pub, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		return nil, false, err
	}
	now := p.now()
	k := &latchkey.OIDCSigningKey{ID: randomToken()[:16], Algorithm: p.opt.Algorithm, PrivateKey: der, PublicKey: pub, CreatedAt: now}
	// The longest-lived token a retired key signed: an ID token, or an access token
	// (opaque, but bounded the same way for JWT access tokens later).
	keep := max(p.opt.IDTokenTTL, p.opt.AccessTokenTTL) + 5*time.Minute
	created, err := p.opt.Store.RotateOIDCSigningKey(ctx, k, now.Add(keep), staleBefore)
	if err != nil || !created {
		return nil, false, err
	}
	return k, true, nil
}

// activeKey returns the newest unretired key, creating one when there is none or it is older
// than KeyRotation. Of the requests that find it so at once, on every node, one creates it
// and the others sign with it: this node's take turns here, and the store's rotation refuses
// to create a second key (RotateOIDCSigningKey). While one request replaces a stale key (an
// RSA key takes a while to generate), this node's others sign with the stale one, which is
// still valid, instead of waiting; only requests that find no key at all wait for it.
func (p *Provider) activeKey(ctx context.Context) (*latchkey.OIDCSigningKey, error) {
	k, stale, err := p.newestKey(ctx)
	if err != nil || (k != nil && !stale) {
		return k, err
	}
	if k != nil {
		if !p.rotating.TryLock() {
			return k, nil
		}
	} else {
		p.rotating.Lock()
	}
	defer p.rotating.Unlock()
	if k, err := p.freshKey(ctx); k != nil || err != nil {
		return k, err
	}
	k, created, err := p.rotate(ctx, p.staleBefore())
	if err != nil || created {
		return k, err
	}
	// Another node rotated first.
	if k, err := p.freshKey(ctx); k != nil || err != nil {
		return k, err
	}
	return nil, errors.New("no active signing key after another rotated it")
}

// staleBefore is the creation time before which the active key is replaced, to the
// microsecond the store keeps.
func (p *Provider) staleBefore() time.Time {
	return p.now().Add(-p.opt.KeyRotation).Truncate(time.Microsecond)
}

// freshKey returns the newest unretired key when it was created at or after staleBefore, or
// nil.
func (p *Provider) freshKey(ctx context.Context) (*latchkey.OIDCSigningKey, error) {
	k, stale, err := p.newestKey(ctx)
	if err != nil || stale {
		return nil, err
	}
	return k, nil
}

// newestKey returns the newest unretired key (nil when there is none), and whether it was
// created before staleBefore.
func (p *Provider) newestKey(ctx context.Context) (*latchkey.OIDCSigningKey, bool, error) {
	keys, err := p.opt.Store.FindOIDCSigningKeys(ctx, p.now())
	if err != nil {
		return nil, false, err
	}
	for _, k := range keys {
		if k.RetiredAt == nil {
			return k, k.CreatedAt.Before(p.staleBefore()), nil
		}
	}
	return nil, false, nil
}

// SigningKey returns the active key, parsed once while it stays the active one.
func (s *storage) SigningKey(ctx context.Context) (op.SigningKey, error) {
	k, err := s.p.activeKey(ctx)
	if err != nil {
		return nil, err
	}
	if c := s.p.signer.Load(); c != nil && c.id == k.ID {
		return c, nil
	}
	priv, err := x509.ParsePKCS8PrivateKey(k.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("parse signing key %s: %w", k.ID, err)
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("signing key %s is not a signer", k.ID)
	}
	c := &signingKey{id: k.ID, alg: jose.SignatureAlgorithm(k.Algorithm), key: signer}
	s.p.signer.Store(c)
	return c, nil
}

func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.SignatureAlgorithm(s.p.opt.Algorithm)}, nil
}

// KeySet returns the public keys of every key not yet expired, retired ones included.
func (s *storage) KeySet(ctx context.Context) ([]op.Key, error) {
	keys, err := s.p.opt.Store.FindOIDCSigningKeys(ctx, s.p.now())
	if err != nil {
		return nil, err
	}
	out := make([]op.Key, 0, len(keys))
	for _, k := range keys {
		pub, err := x509.ParsePKIXPublicKey(k.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("parse public key %s: %w", k.ID, err)
		}
		out = append(out, &publicKey{id: k.ID, alg: jose.SignatureAlgorithm(k.Algorithm), key: pub})
	}
	return out, nil
}
