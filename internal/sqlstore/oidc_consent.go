package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/latchkey/latchkey"
)

var _ latchkey.OIDCConsentStore = (*DB)(nil)

// FindOIDCConsent returns ENotFound when the user has not allowed the client.
func (s *DB) FindOIDCConsent(ctx context.Context, userID latchkey.UserID, clientID string) (*latchkey.OIDCConsent, error) {
	c := latchkey.OIDCConsent{UserID: userID, ClientID: clientID}
	var scopes string
	var created, updated int64
	err := s.queryRow(ctx,
		`SELECT k.scopes, k.created_at, k.updated_at, c.name FROM oidc_consents k JOIN oidc_clients c ON c.id = k.client_id
		 WHERE k.user_id = $1 AND k.client_id = $2`, userID, clientID).Scan(&scopes, &created, &updated, &c.ClientName)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("consent")
	} else if err != nil {
		return nil, fmt.Errorf("find oidc consent: %w", err)
	}
	c.Scopes, c.CreatedAt, c.UpdatedAt = strings.Fields(scopes), at(created), at(updated)
	return &c, nil
}

// FindOIDCConsents returns a user's consents with their clients' names, ordered by name.
func (s *DB) FindOIDCConsents(ctx context.Context, userID latchkey.UserID) ([]*latchkey.OIDCConsent, error) {
	rows, err := s.query(ctx,
		`SELECT k.client_id, c.name, k.scopes, k.created_at, k.updated_at FROM oidc_consents k JOIN oidc_clients c ON c.id = k.client_id
		 WHERE k.user_id = $1 ORDER BY c.name, k.client_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("find oidc consents: %w", err)
	}
	defer rows.Close()
	var list []*latchkey.OIDCConsent
	for rows.Next() {
		c := latchkey.OIDCConsent{UserID: userID}
		var scopes string
		var created, updated int64
		if err := rows.Scan(&c.ClientID, &c.ClientName, &scopes, &created, &updated); err != nil {
			return nil, fmt.Errorf("find oidc consents: %w", err)
		}
		c.Scopes, c.CreatedAt, c.UpdatedAt = strings.Fields(scopes), at(created), at(updated)
		list = append(list, &c)
	}
	return list, rows.Err()
}

// SaveOIDCConsent inserts c, or replaces the scopes of an existing consent (keeping its
// CreatedAt, which is read back into c).
func (s *DB) SaveOIDCConsent(ctx context.Context, c *latchkey.OIDCConsent) error {
	now := s.now().UTC().Truncate(time.Microsecond)
	var created int64
	err := s.write(ctx, func() error {
		return s.queryRow(ctx,
			`INSERT INTO oidc_consents (user_id, client_id, scopes, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)
			 ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = excluded.scopes, updated_at = excluded.updated_at
			 RETURNING created_at`, c.UserID, c.ClientID, join(c.Scopes), us(now)).Scan(&created)
	})
	if isForeignKey(err) {
		return notFound("client")
	} else if err != nil {
		return fmt.Errorf("save oidc consent: %w", err)
	}
	c.CreatedAt, c.UpdatedAt = at(created), now
	return nil
}

// DeleteOIDCConsent removes a consent and every token of the user for that client, in one
// transaction, and returns, for the back-channel logouts, each session whose tokens it
// revoked, once (deleteUserTokens). ENotFound when there is no such consent.
func (s *DB) DeleteOIDCConsent(ctx context.Context, userID latchkey.UserID, clientID string) ([]latchkey.OIDCTokenSession, error) {
	var out []latchkey.OIDCTokenSession
	err := s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM oidc_consents WHERE user_id = $1 AND client_id = $2`, userID, clientID)
		if err != nil {
			return fmt.Errorf("delete oidc consent: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notFound("consent")
		}
		out, err = deleteUserTokens(ctx, tx, userID, clientID, "")
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// isForeignKey reports whether err is a foreign-key violation in either dialect.
func isForeignKey(err error) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code == "23503"
	}
	return err != nil && strings.Contains(err.Error(), "FOREIGN KEY constraint failed")
}
