package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/latchkey/latchkey"
)

const webauthnColumns = `id, user_id, name, credential_id, data, sign_count, discoverable, clone_warning, created_at, last_used_at`

func scanWebAuthn(row interface{ Scan(...any) error }) (*latchkey.WebAuthnCredential, error) {
	var c latchkey.WebAuthnCredential
	var count, created int64
	var used sql.NullInt64
	if err := row.Scan(&c.ID, &c.UserID, &c.Name, &c.CredentialID, &c.Data, &count, &c.Discoverable, &c.CloneWarning, &created, &used); err != nil {
		return nil, err
	}
	c.SignCount, c.CreatedAt, c.LastUsedAt = uint32(count), at(created), atPtr(used)
	return &c, nil
}

// FindWebAuthnCredentials returns a user's security keys, oldest first.
func (s *DB) FindWebAuthnCredentials(ctx context.Context, userID latchkey.UserID) ([]*latchkey.WebAuthnCredential, error) {
	rows, err := s.query(ctx, `SELECT `+webauthnColumns+` FROM webauthn_credentials WHERE user_id = $1 ORDER BY id`, userID)
	if err != nil {
		return nil, fmt.Errorf("find security keys: %w", err)
	}
	return collect(rows, scanWebAuthn, "scan security key")
}

// FindWebAuthnCredential returns the key with that credential ID.
func (s *DB) FindWebAuthnCredential(ctx context.Context, credentialID []byte) (*latchkey.WebAuthnCredential, error) {
	c, err := scanWebAuthn(s.queryRow(ctx, `SELECT `+webauthnColumns+` FROM webauthn_credentials WHERE credential_id = $1`, credentialID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("security key")
	} else if err != nil {
		return nil, fmt.Errorf("find security key: %w", err)
	}
	return c, nil
}

// CreateWebAuthnCredential inserts c (and replaces the recovery codes when given).
func (s *DB) CreateWebAuthnCredential(ctx context.Context, c *latchkey.WebAuthnCredential, recoveryHashes [][]byte, first bool) error {
	now := s.now().UTC().Truncate(time.Microsecond)
	return s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if first {
			if err := s.firstFactor(ctx, tx, c.UserID); err != nil {
				return err
			}
		}
		err := tx.QueryRowContext(ctx,
			`INSERT INTO webauthn_credentials (user_id, name, credential_id, data, sign_count, discoverable, clone_warning, created_at)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
			c.UserID, c.Name, c.CredentialID, c.Data, int64(c.SignCount), c.Discoverable, c.CloneWarning, us(now)).Scan(&c.ID)
		if isUnique(err) {
			return latchkey.Errorf(latchkey.EConflict, "This security key is registered already.")
		} else if err != nil {
			return fmt.Errorf("insert security key: %w", err)
		}
		c.CreatedAt = now
		if recoveryHashes != nil {
			return replaceRecoveryCodes(ctx, tx, c.UserID, recoveryHashes, now)
		}
		return nil
	})
}

// UseWebAuthnCredential records an assertion: the counter only rises, the warning only sets.
// An assertion without the warning must raise a counter that is not 0 (the check of the
// counter the caller read, made again in the UPDATE): of two assertions with the same counter
// at once, the second gets EConflict.
func (s *DB) UseWebAuthnCredential(ctx context.Context, id int64, signCount uint32, cloneWarning bool, when time.Time) error {
	res, err := s.exec(ctx,
		`UPDATE webauthn_credentials SET
		   sign_count = CASE WHEN sign_count < $1 THEN $1 ELSE sign_count END,
		   clone_warning = (clone_warning OR $2),
		   last_used_at = $3
		 WHERE id = $4 AND ($2 OR sign_count < $1 OR (sign_count = 0 AND $1 = 0))`, int64(signCount), cloneWarning, us(when), id)
	if err != nil {
		return fmt.Errorf("use security key: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	var n int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM webauthn_credentials WHERE id = $1`, id).Scan(&n); err != nil {
		return fmt.Errorf("find security key: %w", err)
	}
	if n == 0 {
		return notFound("security key")
	}
	return latchkey.Errorf(latchkey.EConflict, "This security key's counter did not rise.")
}

// RenameWebAuthnCredential renames a key of that user.
func (s *DB) RenameWebAuthnCredential(ctx context.Context, userID latchkey.UserID, id int64, name string) error {
	res, err := s.exec(ctx, `UPDATE webauthn_credentials SET name = $1 WHERE id = $2 AND user_id = $3`, name, id, userID)
	if err != nil {
		return fmt.Errorf("rename security key: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound("security key")
	}
	return nil
}

// DeleteWebAuthnCredential removes a key of that user, and the recovery codes when asked.
func (s *DB) DeleteWebAuthnCredential(ctx context.Context, userID latchkey.UserID, id int64, keepOne bool) error {
	return s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if err := s.lockUser(ctx, tx, userID); latchkey.ErrorCode(err) == latchkey.ENotFound {
			return notFound("security key")
		} else if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM webauthn_credentials WHERE id = $1 AND user_id = $2`, id, userID)
		if err != nil {
			return fmt.Errorf("delete security key: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notFound("security key")
		}
		return s.afterFactorRemoved(ctx, tx, userID, true, keepOne)
	})
}

// CreateWebAuthnCeremony stores a ceremony.
func (s *DB) CreateWebAuthnCeremony(ctx context.Context, c *latchkey.WebAuthnCeremony) error {
	_, err := s.exec(ctx, `INSERT INTO webauthn_ceremonies (id, kind, user_id, session_id, data, expires_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		c.ID, c.Kind, c.UserID, c.SessionID, c.Data, us(c.ExpiresAt))
	if isUnique(err) {
		return latchkey.Errorf(latchkey.EConflict, "ceremony exists")
	} else if err != nil {
		return fmt.Errorf("insert webauthn ceremony: %w", err)
	}
	return nil
}

// PutWebAuthnCeremony stores a ceremony, replacing the one with its ID.
func (s *DB) PutWebAuthnCeremony(ctx context.Context, c *latchkey.WebAuthnCeremony) error {
	_, err := s.exec(ctx, `INSERT INTO webauthn_ceremonies (id, kind, user_id, session_id, data, expires_at) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, user_id = excluded.user_id, session_id = excluded.session_id, data = excluded.data, expires_at = excluded.expires_at`,
		c.ID, c.Kind, c.UserID, c.SessionID, c.Data, us(c.ExpiresAt))
	if err != nil {
		return fmt.Errorf("put webauthn ceremony: %w", err)
	}
	return nil
}

// TakeWebAuthnCeremony deletes and returns a ceremony: of two concurrent takers one wins.
func (s *DB) TakeWebAuthnCeremony(ctx context.Context, id string) (*latchkey.WebAuthnCeremony, error) {
	var c latchkey.WebAuthnCeremony
	var exp int64
	err := s.write(ctx, func() error {
		return s.queryRow(ctx, `DELETE FROM webauthn_ceremonies WHERE id = $1 RETURNING id, kind, user_id, session_id, data, expires_at`, id).
			Scan(&c.ID, &c.Kind, &c.UserID, &c.SessionID, &c.Data, &exp)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("webauthn ceremony")
	} else if err != nil {
		return nil, fmt.Errorf("take webauthn ceremony: %w", err)
	}
	c.ExpiresAt = at(exp)
	return &c, nil
}

// DeleteExpiredWebAuthnCeremonies removes ceremonies that expired before t.
func (s *DB) DeleteExpiredWebAuthnCeremonies(ctx context.Context, t time.Time) (int, error) {
	return s.deleteExpired(ctx, "webauthn_ceremonies", t)
}

// ResetMFA removes every factor of a user in one transaction and returns the IDs of the devices
// it removed. With a proof, its factor is written first in that transaction, as a sign-in
// writes it (qUseTOTPStep, qUseRecovery): of two resets with one code, the second waits for
// the first (the user's row lock on PostgreSQL, the write lock on SQLite) and then finds no
// factor left: latchkey.ErrNoFactor.
func (s *DB) ResetMFA(ctx context.Context, userID latchkey.UserID, proof *latchkey.MFAResetProof, audit *latchkey.AuditEvent) (removed []int64, err error) {
	err = s.auditedTx(ctx, audit, func(ctx context.Context, tx *sql.Tx) error {
		removed = nil // a batch may run the function again
		if err := s.lockUser(ctx, tx, userID); err != nil {
			return err
		}
		if proof != nil {
			if err := s.useResetProof(ctx, tx, userID, proof); err != nil {
				return err
			}
		}
		for _, q := range []struct{ what, sql string }{
			{"device nonces", `DELETE FROM device_nonces WHERE device_id IN (SELECT id FROM devices WHERE user_id = $1)`},
			{"push challenges", `DELETE FROM push_challenges WHERE user_id = $1`},
			{"device codes", `DELETE FROM device_activations WHERE user_id = $1`},
			// The devices' IDs come from the statement that deletes them: exactly those, also
			// one activated while the reset waited for its turn.
			{"devices", `DELETE FROM devices WHERE user_id = $1 RETURNING id`},
			{"authenticator apps", `DELETE FROM totp_credentials WHERE user_id = $1`},
			{"security keys", `DELETE FROM webauthn_credentials WHERE user_id = $1`},
			{"webauthn ceremonies", `DELETE FROM webauthn_ceremonies WHERE user_id = $1`},
			{"recovery codes", `DELETE FROM recovery_codes WHERE user_id = $1`},
		} {
			if q.what == "devices" {
				ids, err := deleteReturningIDs(ctx, tx, q.sql, userID)
				if err != nil {
					return fmt.Errorf("reset mfa: delete %s: %w", q.what, err)
				}
				removed = ids
				continue
			}
			if _, err := tx.ExecContext(ctx, q.sql, userID); err != nil {
				return fmt.Errorf("reset mfa: delete %s: %w", q.what, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return removed, nil
}

// useResetProof writes the factor that proved a user's own reset (latchkey.MFAResetProof)
// in the reset's transaction tx, which locked the user: latchkey.ErrNoFactor first when the
// user has no factor left.
func (s *DB) useResetProof(ctx context.Context, tx *sql.Tx, userID latchkey.UserID, proof *latchkey.MFAResetProof) error {
	if n, err := countFactors(ctx, tx, userID); err != nil {
		return err
	} else if n == 0 {
		return latchkey.ErrNoFactor
	}
	if proof.TOTPCredentialID != 0 {
		res, err := tx.ExecContext(ctx, qUseTOTPStepOf, proof.TOTPStep, us(s.now()), proof.TOTPCredentialID, userID)
		if err != nil {
			return fmt.Errorf("use totp step: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return latchkey.Errorf(latchkey.EConflict, "This code was used already.")
		}
	}
	if proof.RecoveryCodeHash != nil {
		return useRecoveryCode(ctx, tx, userID, proof.RecoveryCodeHash, s.now())
	}
	return nil
}

// qUseTOTPStepOf is qUseTOTPStep for a credential of the user $4 only.
const qUseTOTPStepOf = qUseTOTPStep + ` AND user_id = $4`

// deleteReturningIDs runs a DELETE … RETURNING id and returns the IDs, sorted.
func deleteReturningIDs(ctx context.Context, tx *sql.Tx, query string, args ...any) ([]int64, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, rows.Err()
}
