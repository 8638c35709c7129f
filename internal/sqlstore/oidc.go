package sqlstore

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/latchkey/latchkey"
)

var _ latchkey.OIDCStore = (*DB)(nil)

func init() {
	expiringKeys["oidc_auth_requests"] = "id"
	expiringKeys["oidc_access_tokens"] = "id"
	expiringKeys["oidc_refresh_tokens"] = "id"
}

func join(list []string) string { return strings.Join(list, " ") }

// keyAAD binds a sealed signing key to its kid.
func keyAAD(kid string) []byte { return []byte("latchkey/oidc_signing_keys/" + kid) }

func (s *DB) sealKey(plain []byte, kid string) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return s.aead.Seal(nonce, nonce, plain, keyAAD(kid)), nil
}

func (s *DB) openKey(sealed []byte, kid string) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("ciphertext too short")
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], keyAAD(kid))
	if err != nil {
		return nil, fmt.Errorf("decrypt signing key %s: %w", kid, err)
	}
	return plain, nil
}

// CreateOIDCClient inserts c; EConflict when the ID is taken.
func (s *DB) CreateOIDCClient(ctx context.Context, c *latchkey.OIDCClient) error {
	c.CreatedAt = s.now().UTC().Truncate(time.Microsecond)
	_, err := s.exec(ctx,
		`INSERT INTO oidc_clients (id, name, secret_hash, public, redirect_uris, post_logout_redirect_uris, first_party, require_mfa, created_at, backchannel_logout_uri)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		c.ID, c.Name, c.SecretHash, c.Public, join(c.RedirectURIs), join(c.PostLogoutRedirectURIs), c.FirstParty, c.RequireMFA, us(c.CreatedAt), c.BackchannelLogoutURI)
	if isUnique(err) {
		return latchkey.Errorf(latchkey.EConflict, "A client with the ID %q exists already.", c.ID)
	} else if err != nil {
		return fmt.Errorf("insert oidc client: %w", err)
	}
	return nil
}

const clientColumns = `id, name, secret_hash, public, redirect_uris, post_logout_redirect_uris, first_party, require_mfa, created_at, backchannel_logout_uri`

func scanClient(row interface{ Scan(...any) error }) (*latchkey.OIDCClient, error) {
	var c latchkey.OIDCClient
	var redirects, logouts string
	var created int64
	if err := row.Scan(&c.ID, &c.Name, &c.SecretHash, &c.Public, &redirects, &logouts, &c.FirstParty, &c.RequireMFA, &created, &c.BackchannelLogoutURI); err != nil {
		return nil, err
	}
	c.RedirectURIs, c.PostLogoutRedirectURIs, c.CreatedAt = strings.Fields(redirects), strings.Fields(logouts), at(created)
	return &c, nil
}

// FindOIDCClientByID returns ENotFound when there is no such client.
func (s *DB) FindOIDCClientByID(ctx context.Context, id string) (*latchkey.OIDCClient, error) {
	c, err := scanClient(s.queryRow(ctx, `SELECT `+clientColumns+` FROM oidc_clients WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("client")
	} else if err != nil {
		return nil, fmt.Errorf("find oidc client: %w", err)
	}
	return c, nil
}

// FindOIDCClients returns every client, ordered by ID.
func (s *DB) FindOIDCClients(ctx context.Context) ([]*latchkey.OIDCClient, error) {
	rows, err := s.query(ctx, `SELECT `+clientColumns+` FROM oidc_clients ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("find oidc clients: %w", err)
	}
	return collect(rows, scanClient, "find oidc clients")
}

// DeleteOIDCClient removes a client with its requests and tokens; ENotFound when missing.
func (s *DB) DeleteOIDCClient(ctx context.Context, id string) error {
	res, err := s.exec(ctx, `DELETE FROM oidc_clients WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("delete oidc client: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound("client")
	}
	return nil
}

func durPtr(d *time.Duration) sql.NullInt64 {
	if d == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: d.Microseconds(), Valid: true}
}

// CreateOIDCAuthRequest inserts r.
func (s *DB) CreateOIDCAuthRequest(ctx context.Context, r *latchkey.OIDCAuthRequest) error {
	_, err := s.exec(ctx,
		`INSERT INTO oidc_auth_requests (id, client_id, redirect_uri, scopes, state, nonce, response_type, response_mode,
		   code_challenge, code_challenge_method, prompt, max_age, login_hint, acr_values, created_at, expires_at, hint_user_id)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`,
		r.ID, r.ClientID, r.RedirectURI, join(r.Scopes), r.State, r.Nonce, r.ResponseType, r.ResponseMode,
		r.CodeChallenge, r.CodeChallengeMethod, join(r.Prompt), durPtr(r.MaxAge), r.LoginHint, join(r.ACRValues), us(r.CreatedAt), us(r.ExpiresAt),
		int64(r.HintUserID))
	if isUnique(err) {
		return latchkey.Errorf(latchkey.EConflict, "The authorization request exists already.")
	} else if err != nil {
		return fmt.Errorf("insert oidc auth request: %w", err)
	}
	return nil
}

const authRequestColumns = `id, client_id, redirect_uri, scopes, state, nonce, response_type, response_mode,
	code_challenge, code_challenge_method, prompt, max_age, login_hint, acr_values, COALESCE(user_id, 0), amr, acr, auth_time,
	COALESCE(code_hash, ''), code_expires_at, code_used_at, created_at, expires_at, sid, hint_user_id`

// The authorization request's queries of the code flow, run through prepared statements.
const (
	qAuthRequestByID     = `SELECT ` + authRequestColumns + ` FROM oidc_auth_requests WHERE id = $1`
	qAuthRequestByCode   = `SELECT ` + authRequestColumns + ` FROM oidc_auth_requests WHERE code_hash = $1`
	qCompleteAuthRequest = `UPDATE oidc_auth_requests SET user_id = $1, amr = $2, acr = $3, auth_time = $4, sid = $6
	 WHERE id = $5 AND user_id IS NULL`
	qUseAuthCode = `UPDATE oidc_auth_requests SET code_used_at = $1
	 WHERE code_hash = $2 AND code_used_at IS NULL AND code_expires_at > $1 AND user_id IS NOT NULL`
	qUseRefreshToken    = `UPDATE oidc_refresh_tokens SET used_at = $1 WHERE id = $2 AND used_at IS NULL`
	qInsertRefreshToken = `INSERT INTO oidc_refresh_tokens (id, grant_id, client_id, user_id, scopes, audience, amr, acr, auth_time, created_at, expires_at, sid)
	 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`
	qInsertAccessToken = `INSERT INTO oidc_access_tokens (id, grant_id, client_id, user_id, scopes, audience, amr, acr, auth_time, refresh_token_id, created_at, expires_at, sid)
	 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`
)

// scanAuthRequest reads the row of qAuthRequestByID or qAuthRequestByCode with scan (a
// row's Scan: sql.ErrNoRows when there is none).
func scanAuthRequest(scan func(...any) error) (*latchkey.OIDCAuthRequest, error) {
	var r latchkey.OIDCAuthRequest
	var scopes, prompt, acrValues, amr string
	var maxAge, used sql.NullInt64
	var authTime, codeExp, created, expires int64
	err := scan(
		&r.ID, &r.ClientID, &r.RedirectURI, &scopes, &r.State, &r.Nonce, &r.ResponseType, &r.ResponseMode,
		&r.CodeChallenge, &r.CodeChallengeMethod, &prompt, &maxAge, &r.LoginHint, &acrValues, &r.UserID, &amr, &r.ACR, &authTime,
		&r.CodeHash, &codeExp, &used, &created, &expires, &r.SID, &r.HintUserID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("authorization request")
	} else if err != nil {
		return nil, fmt.Errorf("find oidc auth request: %w", err)
	}
	r.Scopes, r.Prompt, r.ACRValues, r.AMR = strings.Fields(scopes), strings.Fields(prompt), strings.Fields(acrValues), strings.Fields(amr)
	if maxAge.Valid {
		d := time.Duration(maxAge.Int64) * time.Microsecond
		r.MaxAge = &d
	}
	if authTime != 0 {
		r.AuthTime = at(authTime)
	}
	if codeExp != 0 {
		r.CodeExpiresAt = at(codeExp)
	}
	r.CodeUsedAt, r.CreatedAt, r.ExpiresAt = atPtr(used), at(created), at(expires)
	return &r, nil
}

// FindOIDCAuthRequestByID returns ENotFound when there is no such request.
func (s *DB) FindOIDCAuthRequestByID(ctx context.Context, id string) (*latchkey.OIDCAuthRequest, error) {
	return scanAuthRequest(s.queryRow(ctx, qAuthRequestByID, id).Scan)
}

// CompleteOIDCAuthRequest records the sign-in; EConflict when the request was completed.
// Its transaction is a plan (pipelined on PostgreSQL): the request is read back only to tell
// a missing one from one completed already.
func (s *DB) CompleteOIDCAuthRequest(ctx context.Context, id string, userID latchkey.UserID, sid string, amr []string, acr string, authTime time.Time) error {
	var p txPlan
	var done bool
	p.exec(func(n int64, err error) error {
		if err != nil {
			return fmt.Errorf("complete oidc auth request: %w", err)
		}
		done = n == 1
		return nil
	}, qCompleteAuthRequest, userID, join(amr), acr, us(authTime), id, sid)
	p.query("find oidc auth request", func(func(...any) error) error { return nil }, func(n int) error {
		if n == 0 {
			return notFound("authorization request")
		}
		return latchkey.Errorf(latchkey.EConflict, "The authorization request was completed already.")
	}, qAuthRequestByID, id).onlyIf(func() bool { return !done })
	return s.runPlan(ctx, nil, &p)
}

// SetOIDCAuthCode records the code of a request; EConflict when it has one.
func (s *DB) SetOIDCAuthCode(ctx context.Context, id, codeHash string, codeExpiresAt, keepUntil time.Time) error {
	res, err := s.exec(ctx,
		`UPDATE oidc_auth_requests SET code_hash = $1, code_expires_at = $2, expires_at = $3 WHERE id = $4 AND code_hash IS NULL`,
		codeHash, us(codeExpiresAt), us(keepUntil), id)
	if isUnique(err) {
		return latchkey.Errorf(latchkey.EConflict, "The code exists already.")
	} else if err != nil {
		return fmt.Errorf("set oidc auth code: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return latchkey.Errorf(latchkey.EConflict, "The authorization request has a code already, or is gone.")
	}
	return nil
}

// FindOIDCAuthRequestByCode returns the request of a code's hash, ENotFound when there is
// none.
func (s *DB) FindOIDCAuthRequestByCode(ctx context.Context, codeHash string) (*latchkey.OIDCAuthRequest, error) {
	return scanAuthRequest(s.queryRow(ctx, qAuthRequestByCode, codeHash).Scan)
}

// DeleteOIDCAuthRequest removes a request.
func (s *DB) DeleteOIDCAuthRequest(ctx context.Context, id string) error {
	if _, err := s.exec(ctx, `DELETE FROM oidc_auth_requests WHERE id = $1`, id); err != nil {
		return fmt.Errorf("delete oidc auth request: %w", err)
	}
	return nil
}

// CreateOIDCTokens inserts an access token and optionally a refresh token, marking the
// refresh token or the code they are exchanged for used in the same transaction, a plan
// (pipelined on PostgreSQL).
func (s *DB) CreateOIDCTokens(ctx context.Context, a *latchkey.OIDCAccessToken, rt *latchkey.OIDCRefreshToken, used latchkey.OIDCTokenUse, now time.Time) error {
	var p txPlan
	if used.CodeHash != "" {
		p.exec(func(n int64, err error) error {
			if err != nil {
				return fmt.Errorf("use oidc auth code: %w", err)
			} else if n == 0 {
				return latchkey.Errorf(latchkey.EConflict, "The code was used already, or has expired.")
			}
			return nil
		}, qUseAuthCode, us(now), used.CodeHash)
	}
	if used.RefreshID != "" {
		p.exec(func(n int64, err error) error {
			if err != nil {
				return fmt.Errorf("use refresh token: %w", err)
			} else if n == 0 {
				return notFound("refresh token")
			}
			return nil
		}, qUseRefreshToken, us(now), used.RefreshID)
	}
	if rt != nil {
		p.exec(failsAs("insert refresh token"), qInsertRefreshToken,
			rt.ID, rt.GrantID, rt.ClientID, rt.UserID, join(rt.Scopes), join(rt.Audience), join(rt.AMR), rt.ACR, us(rt.AuthTime), us(rt.CreatedAt), us(rt.ExpiresAt), rt.SID)
	}
	p.exec(failsAs("insert access token"), qInsertAccessToken,
		a.ID, a.GrantID, a.ClientID, a.UserID, join(a.Scopes), join(a.Audience), join(a.AMR), a.ACR, us(a.AuthTime), a.RefreshTokenID, us(a.CreatedAt), us(a.ExpiresAt), a.SID)
	return s.runPlan(ctx, nil, &p)
}

// FindOIDCAccessToken returns ENotFound for a token never issued or revoked.
func (s *DB) FindOIDCAccessToken(ctx context.Context, id string) (*latchkey.OIDCAccessToken, error) {
	var t latchkey.OIDCAccessToken
	var scopes, aud, amr string
	var authTime, created, expires int64
	err := s.queryRow(ctx,
		`SELECT id, grant_id, client_id, user_id, scopes, audience, amr, acr, auth_time, refresh_token_id, created_at, expires_at, sid
		 FROM oidc_access_tokens WHERE id = $1`, id).
		Scan(&t.ID, &t.GrantID, &t.ClientID, &t.UserID, &scopes, &aud, &amr, &t.ACR, &authTime, &t.RefreshTokenID, &created, &expires, &t.SID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("access token")
	} else if err != nil {
		return nil, fmt.Errorf("find access token: %w", err)
	}
	t.Scopes, t.Audience, t.AMR = strings.Fields(scopes), strings.Fields(aud), strings.Fields(amr)
	t.AuthTime, t.CreatedAt, t.ExpiresAt = at(authTime), at(created), at(expires)
	return &t, nil
}

// FindOIDCRefreshToken returns ENotFound when there is no such token.
func (s *DB) FindOIDCRefreshToken(ctx context.Context, id string) (*latchkey.OIDCRefreshToken, error) {
	var t latchkey.OIDCRefreshToken
	var scopes, aud, amr string
	var authTime, created, expires int64
	var used sql.NullInt64
	err := s.queryRow(ctx,
		`SELECT id, grant_id, client_id, user_id, scopes, audience, amr, acr, auth_time, created_at, expires_at, used_at, sid
		 FROM oidc_refresh_tokens WHERE id = $1`, id).
		Scan(&t.ID, &t.GrantID, &t.ClientID, &t.UserID, &scopes, &aud, &amr, &t.ACR, &authTime, &created, &expires, &used, &t.SID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("refresh token")
	} else if err != nil {
		return nil, fmt.Errorf("find refresh token: %w", err)
	}
	t.Scopes, t.Audience, t.AMR = strings.Fields(scopes), strings.Fields(aud), strings.Fields(amr)
	t.AuthTime, t.CreatedAt, t.ExpiresAt, t.UsedAt = at(authTime), at(created), at(expires), atPtr(used)
	return &t, nil
}

// DeleteOIDCAccessToken revokes one access token.
func (s *DB) DeleteOIDCAccessToken(ctx context.Context, id string) error {
	if _, err := s.exec(ctx, `DELETE FROM oidc_access_tokens WHERE id = $1`, id); err != nil {
		return fmt.Errorf("delete access token: %w", err)
	}
	return nil
}

// DeleteOIDCRefreshToken revokes a refresh token and the access tokens issued with it.
func (s *DB) DeleteOIDCRefreshToken(ctx context.Context, id string) error {
	return s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM oidc_access_tokens WHERE refresh_token_id = $1`, id); err != nil {
			return fmt.Errorf("delete access tokens of refresh token: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM oidc_refresh_tokens WHERE id = $1`, id); err != nil {
			return fmt.Errorf("delete refresh token: %w", err)
		}
		return nil
	})
}

// DeleteOIDCGrant revokes every token of a grant.
func (s *DB) DeleteOIDCGrant(ctx context.Context, grantID string) (int, error) {
	var total int
	err := s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		total = 0
		for _, table := range []string{"oidc_access_tokens", "oidc_refresh_tokens"} {
			res, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE grant_id = $1`, grantID)
			if err != nil {
				return fmt.Errorf("delete grant from %s: %w", table, err)
			}
			n, _ := res.RowsAffected()
			total += int(n)
		}
		return nil
	})
	return total, err
}

// DeleteOIDCUserTokens revokes every token of a user for a client ("" for all clients),
// except those given in the session keepSID ("" keeps none; a token without a SID, older than
// SIDs, is never kept), and returns each client and session whose tokens it revoked, once.
// The tokens' own DELETE returns them, so that a token issued while it runs is either kept
// or named.
func (s *DB) DeleteOIDCUserTokens(ctx context.Context, userID latchkey.UserID, clientID, keepSID string) ([]latchkey.OIDCTokenSession, error) {
	var out []latchkey.OIDCTokenSession
	err := s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		out, err = deleteUserTokens(ctx, tx, userID, clientID, keepSID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// deleteUserTokens is DeleteOIDCUserTokens (and DeleteOIDCConsent's revocation) in tx: it
// returns each client and session whose tokens it deleted, once, with the client's
// back-channel logout URI, ordered by client and SID.
func deleteUserTokens(ctx context.Context, tx *sql.Tx, userID latchkey.UserID, clientID, keepSID string) ([]latchkey.OIDCTokenSession, error) {
	var out []latchkey.OIDCTokenSession
	seen := map[latchkey.OIDCTokenSession]bool{}
	for _, table := range []string{"oidc_access_tokens", "oidc_refresh_tokens"} {
		rows, err := tx.QueryContext(ctx, `DELETE FROM `+table+` WHERE user_id = $1 AND ($2 = '' OR client_id = $2) AND ($3 = '' OR sid <> $3)
			RETURNING client_id, sid`, userID, clientID, keepSID)
		if err != nil {
			return nil, fmt.Errorf("delete user tokens from %s: %w", table, err)
		}
		for rows.Next() {
			var ts latchkey.OIDCTokenSession
			if err := rows.Scan(&ts.ClientID, &ts.SID); err != nil {
				rows.Close()
				return nil, fmt.Errorf("delete user tokens from %s: %w", table, err)
			}
			if !seen[ts] {
				seen[ts] = true
				out = append(out, ts)
			}
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("delete user tokens from %s: %w", table, err)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("delete user tokens from %s: %w", table, err)
		}
	}
	uris := map[string]string{}
	for i, ts := range out {
		uri, ok := uris[ts.ClientID]
		if !ok {
			err := tx.QueryRowContext(ctx, `SELECT backchannel_logout_uri FROM oidc_clients WHERE id = $1`, ts.ClientID).Scan(&uri)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return nil, fmt.Errorf("find back-channel logout uri: %w", err)
			}
			uris[ts.ClientID] = uri
		}
		out[i].BackchannelLogoutURI = uri
	}
	slices.SortFunc(out, func(a, b latchkey.OIDCTokenSession) int {
		return cmp.Or(strings.Compare(a.ClientID, b.ClientID), strings.Compare(a.SID, b.SID))
	})
	return out, nil
}

// FindOIDCSessionClients returns the clients signed in to in the Latchkey session sid.
func (s *DB) FindOIDCSessionClients(ctx context.Context, sid string) ([]*latchkey.OIDCClient, error) {
	if sid == "" {
		return nil, nil
	}
	rows, err := s.query(ctx, `SELECT `+clientColumns+` FROM oidc_clients WHERE id IN (
		SELECT client_id FROM oidc_auth_requests WHERE sid = $1 AND user_id IS NOT NULL
		UNION SELECT client_id FROM oidc_refresh_tokens WHERE sid = $1
		UNION SELECT client_id FROM oidc_access_tokens WHERE sid = $1) ORDER BY id`, sid)
	if err != nil {
		return nil, fmt.Errorf("find session clients: %w", err)
	}
	return collect(rows, scanClient, "find session clients")
}

// DeleteOIDCSessionTokens revokes every token given in the Latchkey session sid.
func (s *DB) DeleteOIDCSessionTokens(ctx context.Context, sid string) (int, error) {
	if sid == "" {
		return 0, nil
	}
	var total int
	err := s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		total = 0
		for _, table := range []string{"oidc_access_tokens", "oidc_refresh_tokens"} {
			res, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE sid = $1`, sid)
			if err != nil {
				return fmt.Errorf("delete session tokens from %s: %w", table, err)
			}
			n, _ := res.RowsAffected()
			total += int(n)
		}
		return nil
	})
	return total, err
}

// DeleteExpiredOIDCData removes requests and tokens that expired before t.
func (s *DB) DeleteExpiredOIDCData(ctx context.Context, t time.Time) (int, error) {
	total := 0
	for _, table := range []string{"oidc_auth_requests", "oidc_access_tokens", "oidc_refresh_tokens"} {
		n, err := s.deleteExpired(ctx, table, t)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// keyRotationLock is the advisory lock that rotations of the signing key take turns on
// (PostgreSQL), so that the second of two nodes rotating at once sees the first's key.
const keyRotationLock = 7305004

// RotateOIDCSigningKey inserts k, its private key sealed, and retires the other active keys,
// in one transaction; with staleBefore set, only when no active key was created since.
func (s *DB) RotateOIDCSigningKey(ctx context.Context, k *latchkey.OIDCSigningKey, retiredUntil, staleBefore time.Time) (bool, error) {
	sealed, err := s.sealKey(k.PrivateKey, k.ID)
	if err != nil {
		return false, fmt.Errorf("seal signing key: %w", err)
	}
	created := false
	err = s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		created = false // f may run again (sqlstore.tx)
		if s.dialect == Postgres {
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, keyRotationLock); err != nil {
				return err
			}
		}
		if !staleBefore.IsZero() {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM oidc_signing_keys WHERE retired_at IS NULL AND created_at >= $1`,
				us(staleBefore)).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO oidc_signing_keys (id, algorithm, private_key, public_key, created_at, retired_at, expires_at) VALUES ($1, $2, $3, $4, $5, NULL, NULL)`,
			k.ID, k.Algorithm, sealed, k.PublicKey, us(k.CreatedAt)); err != nil {
			if isUnique(err) {
				return latchkey.Errorf(latchkey.EConflict, "The signing key exists already.")
			}
			return err
		}
		if _, err := tx.ExecContext(ctx,
			`UPDATE oidc_signing_keys SET retired_at = $1, expires_at = $2 WHERE retired_at IS NULL AND id <> $3`,
			us(k.CreatedAt), us(retiredUntil), k.ID); err != nil {
			return err
		}
		created = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("rotate signing key: %w", err)
	}
	return created, nil
}

// FindOIDCSigningKeys returns the keys not expired at t, newest first, with the private key
// of the active one (the newest not retired) only: the others only verify, and stay sealed.
func (s *DB) FindOIDCSigningKeys(ctx context.Context, t time.Time) ([]*latchkey.OIDCSigningKey, error) {
	rows, err := s.query(ctx,
		`SELECT id, algorithm, private_key, public_key, created_at, retired_at, expires_at FROM oidc_signing_keys
		 WHERE expires_at IS NULL OR expires_at > $1 ORDER BY created_at DESC, id DESC`, us(t))
	if err != nil {
		return nil, fmt.Errorf("find signing keys: %w", err)
	}
	defer rows.Close()
	var list []*latchkey.OIDCSigningKey
	active := false
	for rows.Next() {
		var k latchkey.OIDCSigningKey
		var sealed []byte
		var created int64
		var retired, expires sql.NullInt64
		if err := rows.Scan(&k.ID, &k.Algorithm, &sealed, &k.PublicKey, &created, &retired, &expires); err != nil {
			return nil, fmt.Errorf("find signing keys: %w", err)
		}
		k.CreatedAt, k.RetiredAt, k.ExpiresAt = at(created), atPtr(retired), atPtr(expires)
		if k.RetiredAt == nil && !active {
			active = true
			if k.PrivateKey, err = s.openKey(sealed, k.ID); err != nil {
				return nil, err
			}
		}
		list = append(list, &k)
	}
	return list, rows.Err()
}
