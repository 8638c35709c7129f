package oidc

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
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
	var priv crypto.Signer
	var err error
	if p.opt.Algorithm == AlgRS256 {
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		return nil, err
	}
	now := p.now()
	k := &latchkey.OIDCSigningKey{ID: randomToken()[:16], Algorithm: p.opt.Algorithm, PrivateKey: der, PublicKey: pub, CreatedAt: now}
	if err := p.opt.Store.CreateOIDCSigningKey(ctx, k); err != nil {
		return nil, err
	}
	// The longest-lived token a retired key signed: an ID token, or an access token
	// (opaque, but bounded the same way for JWT access tokens later).
	keep := max(p.opt.IDTokenTTL, p.opt.AccessTokenTTL) + 5*time.Minute
	if err := p.opt.Store.RetireOIDCSigningKeys(ctx, k.ID, now, now.Add(keep)); err != nil {
		return nil, err
	}
	return k, nil
}

// activeKey returns the newest unretired key, creating one when there is none or it is older
// than KeyRotation.
func (p *Provider) activeKey(ctx context.Context) (*latchkey.OIDCSigningKey, error) {
	keys, err := p.opt.Store.FindOIDCSigningKeys(ctx, p.now())
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if k.RetiredAt == nil {
			if p.now().Sub(k.CreatedAt) < p.opt.KeyRotation {
				return k, nil
			}
			break
		}
	}
	return p.RotateKey(ctx)
}

func (s *storage) SigningKey(ctx context.Context) (op.SigningKey, error) {
	k, err := s.p.activeKey(ctx)
	if err != nil {
		return nil, err
	}
	priv, err := x509.ParsePKCS8PrivateKey(k.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("parse signing key %s: %w", k.ID, err)
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("signing key %s is not a signer", k.ID)
	}
	return &signingKey{id: k.ID, alg: jose.SignatureAlgorithm(k.Algorithm), key: signer}, nil
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
