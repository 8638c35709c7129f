package sqlstore

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/latchkey/latchkey"
)

// A database remembers which keys it is used with, so that a node or a command started with
// another key (a typo, a new node without the shared key, a restored data folder) refuses to
// start with a message that says so, instead of answering with errors later: every TOTP
// code refused, every OIDC token a 500, every session signed out on some nodes only. What is
// stored is a check value, HMAC-SHA256(key, "latchkey key check: NAME"): it tells whether a
// key is the same without giving away anything of it.

// KeyCheck returns the check value of key under name.
func KeyCheck(key []byte, name string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("latchkey key check: " + name))
	return hex.EncodeToString(m.Sum(nil))
}

// keyCheckSetting is the settings row that holds the check value of the key name.
func keyCheckSetting(name string) string { return "key_check." + name }

// CheckKey compares check (KeyCheck of the key in use) with the value the database holds for
// name, and stores it when there is none yet (the first start, or a database from before the
// checks). It returns EConflict, with a message for the operator, when they differ. Nodes
// starting together agree: the first value stored wins and the others compare with it.
func (s *DB) CheckKey(ctx context.Context, name, check, hint string) error {
	if _, err := s.exec(ctx, `INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`, keyCheckSetting(name), check); err != nil {
		return fmt.Errorf("store the %s key's check value: %w", name, err)
	}
	stored, err := s.FindSetting(ctx, keyCheckSetting(name))
	if err != nil {
		return fmt.Errorf("read the %s key's check value: %w", name, err)
	}
	if !hmac.Equal([]byte(stored), []byte(check)) {
		return latchkey.Errorf(latchkey.EConflict, "The %s key is not the one this database is used with: every node and command must use the same key (%s).", name, hint)
	}
	return nil
}

// checkSecretsKey runs CheckKey for the secrets key. A database from before the checks has no
// value yet: before storing one, it opens a secret sealed there, if there is one, so that a
// wrong key at the first start after the upgrade is refused rather than remembered.
func (s *DB) checkSecretsKey(ctx context.Context, key []byte) error {
	const hint = "LATCHKEY_SECRETS_KEY, or secrets.key in the data folder"
	if _, err := s.FindSetting(ctx, keyCheckSetting("secrets")); latchkey.ErrorCode(err) == latchkey.ENotFound {
		if err := s.openSample(ctx); errors.Is(err, errWrongKey) {
			return latchkey.Errorf(latchkey.EConflict, "The secrets key does not open the secrets stored in this database: every node and command must use the same key (%s).", hint)
		} else if err != nil {
			return err
		}
	} else if err != nil {
		return fmt.Errorf("read the secrets key's check value: %w", err)
	}
	return s.CheckKey(ctx, "secrets", KeyCheck(key, "secrets"), hint)
}

var errWrongKey = errors.New("sqlstore: the secrets key does not open a stored secret")

// openSample opens one stored TOTP secret and one OIDC signing key, when there are any, and
// returns errWrongKey when either cannot be opened with the key in use.
func (s *DB) openSample(ctx context.Context) error {
	var (
		id     int64
		userID latchkey.UserID
		sealed []byte
	)
	err := s.queryRow(ctx, `SELECT id, user_id, secret FROM totp_credentials ORDER BY id LIMIT 1`).Scan(&id, &userID, &sealed)
	if err == nil {
		if _, err := s.open(sealed, id, userID); err != nil {
			return errWrongKey
		}
	} else if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read a stored secret: %w", err)
	}
	var kid string
	err = s.queryRow(ctx, `SELECT id, private_key FROM oidc_signing_keys ORDER BY created_at LIMIT 1`).Scan(&kid, &sealed)
	if err == nil {
		if _, err := s.openKey(sealed, kid); err != nil {
			return errWrongKey
		}
	} else if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read a stored signing key: %w", err)
	}
	return nil
}
