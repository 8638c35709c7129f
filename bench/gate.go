package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"time"

	"github.com/latchkey/latchkey"
)

// The forward-auth and OIDC scenarios: both need a browser that is already signed in with
// MFA (the common case of the workday), so the harness stores such sessions the way
// internal/login does (see seedFlows) and sends their tokens as cookies.

// seedSignedIn stores one signed-in session (password and TOTP, state authenticated, 12
// hours) for each of the given users and returns the cookie tokens.
func (s *seeder) seedSignedIn(ctx context.Context, users []int) ([]string, error) {
	out := make([]string, len(users))
	now := time.Now().UTC().Truncate(time.Microsecond)
	err := parallel(ctx, len(users), 4, func(i int) error {
		mfa := now
		sess := &latchkey.Session{
			UserID: s.users[users[i]].id, State: latchkey.StateAuthenticated,
			AMR:        []string{latchkey.AMRPassword, latchkey.AMROTP, latchkey.AMRMFA},
			PasswordAt: now, MFAAt: &mfa, CreatedAt: now, LastSeenAt: now,
			ExpiresAt: now.Add(12 * time.Hour), IP: "127.0.0.1", UserAgent: userAgent,
		}
		tok, err := s.newSession(sess)
		if err != nil {
			return err
		}
		if err := s.db.CreateSession(ctx, sess); err != nil {
			return fmt.Errorf("seed signed-in session: %w", err)
		}
		out[i] = tok
		return nil
	})
	return out, err
}

// forwardAuthStep is one check of the forward-auth gate, the nginx way, for a signed-in
// session with MFA (the default rule asks for MFA): 200 with Remote-User is the expected
// answer. Each worker uses its own session.
func forwardAuthStep(c *http.Client, base urls, tokens []string) step {
	return func(ctx context.Context, w int) (outcome, time.Duration, string) {
		req, _ := newRequest(ctx, "GET", base.at(w)+"/auth/nginx", nil)
		req.Header.Set("X-Original-URL", "https://app.bench.example/page")
		req.AddCookie(&http.Cookie{Name: "latchkey_session", Value: tokens[w%len(tokens)]})
		t := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			return failed, 0, err.Error()
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		l := time.Since(t)
		if resp.StatusCode != 200 || resp.Header.Get("Remote-User") == "" {
			return failed, 0, fmt.Sprintf("HTTP %d", resp.StatusCode)
		}
		return okay, l, ""
	}
}

// benchRedirect is the bench client's redirect URI; nothing listens there, the harness
// reads the code from the Location header.
const benchRedirect = "http://127.0.0.1:1/bench/callback"

// createOIDCClient registers a confidential first-party client with `latchkey client create`,
// as an administrator would, and returns its secret.
func createOIDCClient(ctx context.Context, bin, data, database, id string, env []string) (string, error) {
	args := []string{"client", "create", "--data", data, "--id", id, "--name", "Bench", "--redirect-uri", benchRedirect, "--first-party"}
	if database != "" {
		args = append(args, "--database", database)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("latchkey client create: %v\n%s", err, stderr.Bytes())
	}
	// Standard output is {"client_id","client_secret",...} (SPEC.md).
	var created struct {
		Secret string `json:"client_secret"`
	}
	if err := json.Unmarshal(out, &created); err != nil || created.Secret == "" {
		return "", fmt.Errorf("latchkey client create printed no secret:\n%s", out)
	}
	return created.Secret, nil
}

// oidcFlowStep is one authorization-code flow of a relying party for a signed-in browser:
// GET /oidc/authorize (PKCE S256), the redirects through Latchkey's session check back to
// the client with a code, and the token exchange with the client secret, whose answer holds
// a signed ID token. The latency is the whole flow (four requests), all of them on worker
// w's node: each node's issuer is its own address here, where a deployment's nodes share
// one public URL behind their load balancer.
func oidcFlowStep(c *http.Client, base urls, clientID, secret string, tokens []string) step {
	verifier := strings.Repeat("b", 43)
	sum := sha256.Sum256([]byte(verifier))
	authorize := "/oidc/authorize?" + url.Values{"client_id": {clientID}, "redirect_uri": {benchRedirect}, "response_type": {"code"},
		"scope": {"openid email"}, "state": {"bench"}, "nonce": {"n"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}.Encode()
	return func(ctx context.Context, w int) (outcome, time.Duration, string) {
		cookie := &http.Cookie{Name: "latchkey_session", Value: tokens[w%len(tokens)]}
		t := time.Now()
		target, code := base.at(w)+authorize, ""
		for hop := 0; code == ""; hop++ {
			if hop == 6 {
				return failed, 0, "no code after 6 redirects"
			}
			req, _ := newRequest(ctx, "GET", target, nil)
			req.AddCookie(cookie)
			resp, err := c.Do(req)
			if err != nil {
				return failed, 0, err.Error()
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
			if resp.StatusCode/100 != 3 || err != nil {
				return failed, 0, fmt.Sprintf("authorize: HTTP %d", resp.StatusCode)
			}
			if strings.HasPrefix(loc.String(), benchRedirect) {
				if code = loc.Query().Get("code"); code == "" {
					return failed, 0, "back at the client without a code: " + loc.Query().Get("error")
				}
				break
			}
			target = loc.String()
		}
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {benchRedirect}, "code_verifier": {verifier}}
		req, _ := newRequest(ctx, "POST", base.at(w)+"/oidc/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(clientID, secret)
		resp, err := c.Do(req)
		if err != nil {
			return failed, 0, err.Error()
		}
		var tok struct {
			IDToken string `json:"id_token"`
		}
		err = json.NewDecoder(resp.Body).Decode(&tok)
		resp.Body.Close()
		l := time.Since(t)
		if resp.StatusCode != 200 || err != nil || tok.IDToken == "" {
			return failed, 0, fmt.Sprintf("token: HTTP %d", resp.StatusCode)
		}
		return okay, l, ""
	}
}
