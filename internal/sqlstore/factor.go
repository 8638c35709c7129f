package sqlstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/latchkey/latchkey"
)

// aad binds a TOTP ciphertext to its row: moved to another row or user, it does not decrypt.
func aad(id int64, userID latchkey.UserID) []byte {
	return fmt.Appendf(nil, "latchkey/totp_credentials/%d/%d", id, userID)
}

func (s *DB) seal(plain []byte, id int64, userID latchkey.UserID) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return s.aead.Seal(nonce, nonce, plain, aad(id, userID)), nil
}

func (s *DB) open(sealed []byte, id int64, userID latchkey.UserID) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("ciphertext too short")
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], aad(id, userID))
	if err != nil {
		return nil, fmt.Errorf("decrypt totp secret of credential %d: %w", id, err)
	}
	return plain, nil
}

// FindTOTPCredentials returns a user's TOTP credentials, pending ones included, oldest first.
func (s *DB) FindTOTPCredentials(ctx context.Context, userID latchkey.UserID) ([]*latchkey.TOTPCredential, error) {
	ctx = s.shortRead(ctx)
	st, err := s.hot.stmt(ctx, s.db, `SELECT id, user_id, name, secret, last_step, COALESCE(device_id, 0), created_at, confirmed_at, last_used_at
		 FROM totp_credentials WHERE user_id = $1 ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("find totp credentials: %w", err)
	}
	// The TOTP step reads the credentials and then writes the one it used (its last step),
	// so they are read on SQLite's batch writer (readWarm); their secrets are opened after,
	// off the writer's turn.
	var out []*latchkey.TOTPCredential
	var sealed [][]byte
	err = s.readWarm(ctx, st, func(ctx context.Context, st *sql.Stmt) error {
		rows, err := st.QueryContext(ctx, userID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c latchkey.TOTPCredential
			var secret []byte
			var created int64
			var confirmed, used sql.NullInt64
			if err := rows.Scan(&c.ID, &c.UserID, &c.Name, &secret, &c.LastStep, &c.DeviceID, &created, &confirmed, &used); err != nil {
				return err
			}
			c.CreatedAt, c.ConfirmedAt, c.LastUsedAt = at(created), atPtr(confirmed), atPtr(used)
			out, sealed = append(out, &c), append(sealed, secret)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("find totp credentials: %w", err)
	}
	for i, c := range out {
		if c.Secret, err = s.open(sealed[i], c.ID, c.UserID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// CreateTOTPCredential inserts a pending credential, replacing the user's earlier pending one.
func (s *DB) CreateTOTPCredential(ctx context.Context, c *latchkey.TOTPCredential) error {
	now := s.now().UTC().Truncate(time.Microsecond)
	return s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM totp_credentials WHERE user_id = $1 AND confirmed_at IS NULL`, c.UserID); err != nil {
			return fmt.Errorf("delete pending totp: %w", err)
		}
		c.CreatedAt, c.ConfirmedAt, c.LastStep = now, nil, 0
		return s.insertTOTP(ctx, tx, c)
	})
}

// insertTOTP inserts c as it stands (CreatedAt, ConfirmedAt, LastStep, DeviceID) and sets
// c.ID. The row is inserted first so that its ID can bind the ciphertext (see aad).
func (s *DB) insertTOTP(ctx context.Context, tx *sql.Tx, c *latchkey.TOTPCredential) error {
	var id int64
	if err := tx.QueryRowContext(ctx,
		`INSERT INTO totp_credentials (user_id, name, secret, last_step, device_id, created_at, confirmed_at)
		 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
		c.UserID, c.Name, []byte{}, c.LastStep, nullID(c.DeviceID), us(c.CreatedAt), usPtr(c.ConfirmedAt)).Scan(&id); err != nil {
		return fmt.Errorf("insert totp credential: %w", err)
	}
	if err := s.storeTOTPSecret(ctx, tx, id, c.UserID, c.Secret); err != nil {
		return err
	}
	c.ID = id
	return nil
}

// storeTOTPSecret encrypts secret for credential id of userID and stores it.
func (s *DB) storeTOTPSecret(ctx context.Context, tx *sql.Tx, id int64, userID latchkey.UserID, secret []byte) error {
	sealed, err := s.seal(secret, id, userID)
	if err != nil {
		return fmt.Errorf("encrypt totp secret: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE totp_credentials SET secret = $1 WHERE id = $2`, sealed, id); err != nil {
		return fmt.Errorf("store totp secret: %w", err)
	}
	return nil
}

// nullID stores an optional reference: 0 becomes NULL.
func nullID(id int64) sql.NullInt64 { return sql.NullInt64{Int64: id, Valid: id != 0} }

// ConfirmTOTPCredential confirms a pending credential, records step, and replaces the
// user's recovery codes when recoveryHashes is not nil, all in one transaction.
func (s *DB) ConfirmTOTPCredential(ctx context.Context, id int64, step int64, when time.Time, recoveryHashes [][]byte, first bool) error {
	return s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var userID latchkey.UserID
		var confirmed sql.NullInt64
		var last int64
		err := tx.QueryRowContext(ctx, `SELECT user_id, confirmed_at, last_step FROM totp_credentials WHERE id = $1`, id).Scan(&userID, &confirmed, &last)
		if errors.Is(err, sql.ErrNoRows) || confirmed.Valid {
			return notFound("pending authenticator app")
		} else if err != nil {
			return fmt.Errorf("find totp credential: %w", err)
		}
		if first {
			if err := s.firstFactor(ctx, tx, userID); err != nil {
				return err
			}
		}
		if step <= last {
			return latchkey.Errorf(latchkey.EConflict, "This code was used already.")
		}
		res, err := tx.ExecContext(ctx,
			`UPDATE totp_credentials SET confirmed_at = $1, last_step = $2, last_used_at = $1
			 WHERE id = $3 AND confirmed_at IS NULL AND last_step < $2`, us(when), step, id)
		if err != nil {
			return fmt.Errorf("confirm totp credential: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return latchkey.Errorf(latchkey.EConflict, "This authenticator app was confirmed already.")
		}
		if recoveryHashes != nil {
			return replaceRecoveryCodes(ctx, tx, userID, recoveryHashes, when)
		}
		return nil
	})
}

// DeleteTOTPCredential removes the user's credential, and the user's recovery codes when
// dropRecovery is true, in one transaction.
func (s *DB) DeleteTOTPCredential(ctx context.Context, userID latchkey.UserID, id int64, keepOne bool) error {
	return s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if err := s.lockUser(ctx, tx, userID); latchkey.ErrorCode(err) == latchkey.ENotFound {
			return notFound("authenticator app")
		} else if err != nil {
			return err
		}
		var confirmed sql.NullInt64
		err := tx.QueryRowContext(ctx, `DELETE FROM totp_credentials WHERE id = $1 AND user_id = $2 RETURNING confirmed_at`, id, userID).Scan(&confirmed)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("authenticator app")
		} else if err != nil {
			return fmt.Errorf("delete totp credential: %w", err)
		}
		return s.afterFactorRemoved(ctx, tx, userID, confirmed.Valid, keepOne)
	})
}

// afterFactorRemoved ends the transaction that removed a factor of userID (wasFactor: the
// row removed was one, not a pending enrolment): when the user has none left, it refuses with
// latchkey.ErrLastFactor under keepOne, and otherwise removes the recovery codes, which
// belong to the factors. The caller locked the user.
func (s *DB) afterFactorRemoved(ctx context.Context, tx *sql.Tx, userID latchkey.UserID, wasFactor, keepOne bool) error {
	if !wasFactor {
		return nil
	}
	n, err := countFactors(ctx, tx, userID)
	if err != nil || n > 0 {
		return err
	}
	if keepOne {
		return latchkey.ErrLastFactor
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM recovery_codes WHERE user_id = $1`, userID); err != nil {
		return fmt.Errorf("delete recovery codes: %w", err)
	}
	return nil
}

// countFactors counts userID's factors: confirmed authenticator apps (an active Latch device
// has one) and security keys.
func countFactors(ctx context.Context, tx *sql.Tx, userID latchkey.UserID) (int, error) {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM totp_credentials WHERE user_id = $1 AND confirmed_at IS NOT NULL)
		+ (SELECT COUNT(*) FROM webauthn_credentials WHERE user_id = $1)`, userID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count factors: %w", err)
	}
	return n, nil
}

// FindRecoveryCodes returns a user's recovery codes, used ones included.
func (s *DB) FindRecoveryCodes(ctx context.Context, userID latchkey.UserID) ([]*latchkey.RecoveryCode, error) {
	rows, err := s.query(ctx, `SELECT id, user_id, hash, created_at, used_at FROM recovery_codes WHERE user_id = $1 ORDER BY id`, userID)
	if err != nil {
		return nil, fmt.Errorf("find recovery codes: %w", err)
	}
	defer rows.Close()
	var out []*latchkey.RecoveryCode
	for rows.Next() {
		var c latchkey.RecoveryCode
		var created int64
		var used sql.NullInt64
		if err := rows.Scan(&c.ID, &c.UserID, &c.Hash, &created, &used); err != nil {
			return nil, fmt.Errorf("scan recovery code: %w", err)
		}
		c.CreatedAt, c.UsedAt = at(created), atPtr(used)
		out = append(out, &c)
	}
	return out, rows.Err()
}

// ReplaceRecoveryCodes deletes the user's codes and inserts the new hashes in one transaction.
func (s *DB) ReplaceRecoveryCodes(ctx context.Context, userID latchkey.UserID, hashes [][]byte, when time.Time) error {
	return s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return replaceRecoveryCodes(ctx, tx, userID, hashes, when)
	})
}

func replaceRecoveryCodes(ctx context.Context, tx *sql.Tx, userID latchkey.UserID, hashes [][]byte, when time.Time) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM recovery_codes WHERE user_id = $1`, userID); err != nil {
		return fmt.Errorf("delete recovery codes: %w", err)
	}
	for _, h := range hashes {
		if _, err := tx.ExecContext(ctx, `INSERT INTO recovery_codes (user_id, hash, created_at) VALUES ($1, $2, $3)`, userID, h, us(when)); err != nil {
			return fmt.Errorf("insert recovery code: %w", err)
		}
	}
	return nil
}

// useRecoveryCode marks the user's unused code with that hash used inside tx (ResetMFA), so
// that it is spent only if the transaction commits: ENotFound when the user has no such code,
// EConflict when it was used already. (A sign-in spends its code with qUseRecovery alone:
// login looked it up first, CompleteSecondFactor.)
func useRecoveryCode(ctx context.Context, tx *sql.Tx, userID latchkey.UserID, hash []byte, when time.Time) error {
	res, err := tx.ExecContext(ctx, qUseRecovery, us(when), userID, hash)
	if err != nil {
		return fmt.Errorf("use recovery code: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	// No row changed: the user's codes with that hash, used or not, tell an unknown code
	// from a used one.
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND hash = $2`, userID, hash).Scan(&n); err != nil {
		return fmt.Errorf("find recovery code: %w", err)
	}
	if n == 0 {
		return notFound("recovery code")
	}
	return latchkey.Errorf(latchkey.EConflict, "This recovery code has already been used.")
}

// RenameTOTPCredential renames an authenticator-app credential of that user.
func (s *DB) RenameTOTPCredential(ctx context.Context, userID latchkey.UserID, id int64, name string) error {
	res, err := s.exec(ctx, `UPDATE totp_credentials SET name = $1 WHERE id = $2 AND user_id = $3 AND device_id IS NULL`, name, id, userID)
	if err != nil {
		return fmt.Errorf("rename authenticator app: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound("authenticator app")
	}
	return nil
}

// firstFactor returns latchkey.ErrNotFirstFactor when userID has a factor (a confirmed
// authenticator app, which an active Latch device has too, or a security key), with the user
// locked, so that of two first factors set up at once only one is.
func (s *DB) firstFactor(ctx context.Context, tx *sql.Tx, userID latchkey.UserID) error {
	if err := s.lockUser(ctx, tx, userID); err != nil {
		return err
	}
	n, err := countFactors(ctx, tx, userID)
	if err != nil {
		return err
	}
	if n > 0 {
		return latchkey.ErrNotFirstFactor
	}
	return nil
}
