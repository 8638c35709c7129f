package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/latchkey/latchkey/internal/oidc"
)

// newOIDC builds the OpenID Connect provider of a, with its issuer at <public URL>/oidc. Its
// crypto key (codes, access tokens) is derived from the secrets key, so every node of a
// cluster derives the same one.
func newOIDC(a *app) (*oidc.Provider, error) {
	_, secrets, err := a.cfg.keys()
	if err != nil {
		return nil, err
	}
	mac := hmac.New(sha256.New, secrets)
	mac.Write([]byte("latchkey/oidc/crypto-key"))
	var key [32]byte
	copy(key[:], mac.Sum(nil))
	p, err := oidc.New(oidc.Options{
		Store:     a.db,
		Issuer:    strings.TrimSuffix(a.public.String(), "/") + "/oidc",
		CryptoKey: key,
		Logger:    a.log,
	})
	if err != nil {
		return nil, fmt.Errorf("oidc: %w", err)
	}
	return p, nil
}

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func runClientCreate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var nc oidc.NewClient
	var redirects, logouts listFlag
	cfg, _, err := parse("client create", args, getenv, stderr, commonFlags, func(fs *flag.FlagSet) {
		fs.StringVar(&nc.ID, "id", "", "client_id (required)")
		fs.StringVar(&nc.Name, "name", "", "name shown to users (default: the ID)")
		fs.Var(&redirects, "redirect-uri", "redirect URI, matched exactly (required; repeat for several)")
		fs.Var(&logouts, "post-logout-uri", "where RP-initiated logout may return (repeatable)")
		fs.BoolVar(&nc.Public, "public", false, "a public client (single-page or native app): no secret, PKCE S256 required")
		fs.BoolVar(&nc.FirstParty, "first-party", false, "a first-party application: no consent page")
		fs.BoolVar(&nc.RequireMFA, "require-mfa", false, "every sign-in to this client needs a second factor")
		fs.StringVar(&nc.BackchannelLogoutURI, "backchannel-logout-uri", "", "receives OIDC back-channel logout tokens when a user's Latchkey session ends (https://, or http:// on localhost)")
	})
	if err != nil {
		return err
	}
	if nc.ID == "" || len(redirects) == 0 {
		return &exitError{code: 2, err: fmt.Errorf("client create needs --id and --redirect-uri")}
	}
	nc.RedirectURIs, nc.PostLogoutRedirectURIs = redirects, logouts
	a, err := open(ctx, cfg, newLogger(cfg, stderr))
	if err != nil {
		return err
	}
	defer a.Close()
	p, err := newOIDC(a)
	if err != nil {
		return err
	}
	c, secret, err := p.CreateClient(ctx, nc)
	if err != nil {
		return errorText(err)
	}
	fmt.Fprintf(stdout, "created client %q\nclient_id: %s\n", c.Name, c.ID)
	if secret != "" {
		// Printed once: only its hash is stored.
		fmt.Fprintf(stdout, "client_secret: %s\n", secret)
	} else {
		fmt.Fprintln(stdout, "public client: no secret; use PKCE with S256")
	}
	fmt.Fprintf(stdout, "issuer: %s/oidc\n", strings.TrimSuffix(a.public.String(), "/"))
	return nil
}

// runOIDCRotateKey makes a new ID-token signing key current at once (after a suspected key
// compromise, or to test relying parties); the old keys stay published until the tokens
// they signed have expired. Keys also rotate by themselves every 30 days.
func runOIDCRotateKey(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, _, err := parse("oidc rotate-key", args, getenv, stderr, commonFlags, nil)
	if err != nil {
		return err
	}
	a, err := open(ctx, cfg, newLogger(cfg, stderr))
	if err != nil {
		return err
	}
	defer a.Close()
	p, err := newOIDC(a)
	if err != nil {
		return err
	}
	k, err := p.RotateKey(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "new signing key %s (%s)\n", k.ID, k.Algorithm)
	return nil
}
