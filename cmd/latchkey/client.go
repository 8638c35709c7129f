package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"github.com/latchkey/latchkey/internal/audit"
	"github.com/latchkey/latchkey/internal/oidc"
)

// newOIDC builds the OpenID Connect provider of a, whose issuer is the public URL (discovery
// at /.well-known/openid-configuration, endpoints under /oidc/). Its crypto key (codes,
// access tokens) is derived from the secrets key, so every node of a cluster derives the same
// one. zitadel/oidc logs request errors only through slog's default logger: the default
// becomes a handler that sends them to the provider's logger (and anything else to ours).
func newOIDC(a *app) (*oidc.Provider, error) {
	slog.SetDefault(slog.New(oidc.LogHandler(a.log.Handler())))
	return newProvider(a)
}

func newProvider(a *app) (*oidc.Provider, error) {
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
		Issuer:    strings.TrimSuffix(a.public.String(), "/"),
		CryptoKey: key,
		Logger:    a.log,
		Audit:     audit.New(a.db, a.log, nil),
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
	// --public-url (LATCHKEY_PUBLIC_URL) is the issuer the command reports, as serve's.
	cfg, _, err := parse("client create", args, getenv, stderr, append(slices.Clip(commonFlags), serveFlag("public-url")), func(fs *flag.FlagSet) {
		fs.StringVar(&nc.ID, "id", "", "client_id (default: a random one)")
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
	if nc.Name == "" && nc.ID == "" || len(redirects) == 0 {
		return &exitError{code: 2, err: fmt.Errorf("client create needs --name and --redirect-uri")}
	}
	if nc.ID == "" {
		nc.ID = newClientID()
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
	// The contract of SPEC.md: {"client_id","client_secret"} as JSON on standard output. The
	// secret is printed once (only its hash is stored); a public client's is "".
	out, _ := json.Marshal(struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
		Issuer       string `json:"issuer"`
	}{c.ID, secret, strings.TrimSuffix(a.public.String(), "/")})
	fmt.Fprintf(stdout, "%s\n", out)
	if secret == "" {
		fmt.Fprintf(stderr, "created public client %q: no secret; use PKCE with S256\n", c.Name)
	} else {
		fmt.Fprintf(stderr, "created client %q; the secret is shown this once\n", c.Name)
	}
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

// newClientID returns a client ID for a client registered without --id: 96 random bits in
// lower-case base32 (no secret: client IDs are public).
func newClientID() string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail
	}
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}
