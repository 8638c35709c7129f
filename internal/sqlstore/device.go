package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/latchkey/latchkey"
)

// qDeleteDevicePushes removes a device's pending challenges, those sent to it and those
// asking to approve it; the last term lets the partial index push_challenges_subject
// (WHERE subject_device_id <> 0) serve the second half (see qFindSessionBySID).
const qDeleteDevicePushes = `DELETE FROM push_challenges WHERE state = $1
	 AND (device_id = $2 OR (kind = $3 AND subject_device_id = $2 AND subject_device_id <> 0))`

// Latch devices, their activation codes, request nonces and push challenges.
//
// "Exactly one active primary device per user" spans several rows, so every method that can
// change it first locks the user's row (lockUser): on PostgreSQL concurrent changes to one
// user's devices then take turns; on SQLite transactions are serialized already. The partial
// unique index devices_one_primary backs the rule up in the schema.

// CreateDeviceActivation inserts a; EConflict when the code exists already.
func (s *DB) CreateDeviceActivation(ctx context.Context, a *latchkey.DeviceActivation) error {
	_, err := s.exec(ctx,
		`INSERT INTO device_activations (id, user_id, kind, device_id, needs_approval, created_at, expires_at, used_at, flow_sid)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		a.ID, a.UserID, a.Kind, a.DeviceID, a.NeedsApproval, us(a.CreatedAt), us(a.ExpiresAt), usPtr(a.UsedAt), a.FlowSID)
	if isUnique(err) {
		return latchkey.Errorf(latchkey.EConflict, "The activation code exists already.")
	} else if err != nil {
		return fmt.Errorf("insert device activation: %w", err)
	}
	return nil
}

// DeviceActivatedInFlow reports whether a new-device code of user made by the session sid
// admitted a device that is active (CreateDevice links a code to the device it admitted: a
// code used up by a refused activation admitted none).
func (s *DB) DeviceActivatedInFlow(ctx context.Context, user latchkey.UserID, sid string) (bool, error) {
	if sid == "" {
		return false, nil
	}
	var n int
	err := s.queryRow(ctx, `SELECT COUNT(*) FROM device_activations a JOIN devices d ON d.id = a.device_id
		WHERE a.user_id = $1 AND a.flow_sid = $2 AND a.kind = $3 AND a.used_at IS NOT NULL AND d.state = $4`,
		user, sid, latchkey.ActivationNew, string(latchkey.DeviceActive)).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("find activations of the flow: %w", err)
	}
	return n > 0, nil
}

// UseDeviceActivation marks an unused, unexpired activation used in one statement, so of two
// concurrent redemptions exactly one gets a row back. Unknown, used and expired codes all give
// ENotFound.
func (s *DB) UseDeviceActivation(ctx context.Context, id string, when time.Time) (*latchkey.DeviceActivation, error) {
	var a latchkey.DeviceActivation
	var created, expires int64
	var used sql.NullInt64
	err := s.write(ctx, func() error {
		return s.queryRow(ctx,
			`UPDATE device_activations SET used_at = $1
			 WHERE id = $2 AND used_at IS NULL AND expires_at > $1
			 RETURNING id, user_id, kind, device_id, needs_approval, created_at, expires_at, used_at, flow_sid`, us(when), id).
			Scan(&a.ID, &a.UserID, &a.Kind, &a.DeviceID, &a.NeedsApproval, &created, &expires, &used, &a.FlowSID)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("activation code")
	} else if err != nil {
		return nil, fmt.Errorf("use device activation: %w", err)
	}
	a.CreatedAt, a.ExpiresAt, a.UsedAt = at(created), at(expires), atPtr(used)
	return &a, nil
}

const deviceColumns = `id, user_id, name, platform, public_key, state, is_primary, COALESCE(totp_credential_id, 0), created_at, last_used_at, key_changed_at`

// deviceRow is a row of deviceColumns: its scan targets, then its value.
type deviceRow struct {
	d                   latchkey.Device
	created, keyChanged int64
	used                sql.NullInt64
}

func (r *deviceRow) targets() []any {
	d := &r.d
	return []any{&d.ID, &d.UserID, &d.Name, &d.Platform, &d.PublicKey, &d.State, &d.Primary, &d.TOTPCredentialID, &r.created, &r.used, &r.keyChanged}
}

func (r *deviceRow) value() *latchkey.Device {
	r.d.CreatedAt, r.d.LastUsedAt, r.d.KeyChangedAt = at(r.created), atPtr(r.used), at(r.keyChanged)
	return &r.d
}

func scanDevice(row scanner) (*latchkey.Device, error) {
	var r deviceRow
	if err := row.Scan(r.targets()...); err != nil {
		return nil, err
	}
	return r.value(), nil
}

// lockUser locks the user's row until the end of tx (PostgreSQL; SQLite transactions hold the
// database write lock from BEGIN), so changes to one user's set of devices take turns. It
// returns ENotFound when there is no such user. FOR NO KEY UPDATE does not block inserts that
// merely reference the user.
func (s *DB) lockUser(ctx context.Context, tx *sql.Tx, userID latchkey.UserID) error {
	q := `SELECT id FROM users WHERE id = $1`
	if s.dialect == Postgres {
		q += ` FOR NO KEY UPDATE`
	}
	var id int64
	if err := tx.QueryRowContext(ctx, q, userID).Scan(&id); errors.Is(err, sql.ErrNoRows) {
		return notFound("user")
	} else if err != nil {
		return fmt.Errorf("lock user: %w", err)
	}
	return nil
}

// hasActiveDevice reports whether the user has an active device other than exceptID.
func hasActiveDevice(ctx context.Context, tx *sql.Tx, userID latchkey.UserID, exceptID int64) (bool, error) {
	var n int
	if err := tx.QueryRowContext(ctx,
		`SELECT COUNT(*) FROM devices WHERE user_id = $1 AND state = $2 AND id <> $3`,
		userID, string(latchkey.DeviceActive), exceptID).Scan(&n); err != nil {
		return false, fmt.Errorf("count active devices: %w", err)
	}
	return n > 0, nil
}

// makePrimary makes device id the user's only primary device. The old primary is cleared
// first so the unique index never sees two.
func makePrimary(ctx context.Context, tx *sql.Tx, userID latchkey.UserID, id int64) error {
	if _, err := tx.ExecContext(ctx, `UPDATE devices SET is_primary = FALSE WHERE user_id = $1 AND id <> $2 AND is_primary`, userID, id); err != nil {
		return fmt.Errorf("clear primary device: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE devices SET is_primary = TRUE WHERE id = $1`, id); err != nil {
		return fmt.Errorf("set primary device: %w", err)
	}
	return nil
}

// linkDeviceTOTP inserts cred confirmed at when as the offline-code credential of device d and
// links the two.
func (s *DB) linkDeviceTOTP(ctx context.Context, tx *sql.Tx, userID latchkey.UserID, deviceID int64, cred *latchkey.TOTPCredential, when time.Time) error {
	if cred == nil {
		return errors.New("sqlstore: an active device needs a TOTP credential")
	}
	confirmed := when
	cred.UserID, cred.DeviceID, cred.CreatedAt, cred.ConfirmedAt = userID, deviceID, when, &confirmed
	if err := s.insertTOTP(ctx, tx, cred); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE devices SET totp_credential_id = $1 WHERE id = $2`, cred.ID, deviceID); err != nil {
		return fmt.Errorf("link device totp credential: %w", err)
	}
	return nil
}

// CreateDevice inserts d (and, when active, its confirmed TOTP credential cred) in one
// transaction. An active device becomes primary when the user has no other active device, or
// when d.Primary asks for it. A public key registered already gives EConflict.
func (s *DB) CreateDevice(ctx context.Context, d *latchkey.Device, cred *latchkey.TOTPCredential) error {
	now := s.now().UTC().Truncate(time.Microsecond)
	active := d.State == latchkey.DeviceActive
	if active && cred == nil {
		return errors.New("sqlstore: an active device needs a TOTP credential")
	}
	keyChanged := d.KeyChangedAt
	if keyChanged.IsZero() {
		keyChanged = now
	}
	return s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if err := s.lockUser(ctx, tx, d.UserID); err != nil {
			return err
		}
		if c := d.Code; c != nil && active {
			if c.FlowSID != "" {
				if err := s.firstFactor(ctx, tx, d.UserID); err != nil {
					return err
				}
			}
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM devices WHERE user_id = $1 AND state = $2 AND created_at > $3`,
				d.UserID, string(latchkey.DeviceActive), us(c.CreatedAt)).Scan(&n); err != nil {
				return fmt.Errorf("count newer devices: %w", err)
			}
			if n > 0 {
				return latchkey.ErrDeviceNeedsApproval
			}
		}
		primary := false
		if active {
			others, err := hasActiveDevice(ctx, tx, d.UserID, 0)
			if err != nil {
				return err
			}
			primary = !others || d.Primary
		}
		var id int64
		err := tx.QueryRowContext(ctx,
			`INSERT INTO devices (user_id, name, platform, public_key, state, is_primary, created_at, last_used_at, key_changed_at)
			 VALUES ($1, $2, $3, $4, $5, FALSE, $6, $7, $8) RETURNING id`,
			d.UserID, d.Name, d.Platform, d.PublicKey, string(d.State), us(now), usPtr(d.LastUsedAt), us(keyChanged)).Scan(&id)
		if isUnique(err) {
			return latchkey.Errorf(latchkey.EConflict, "This device is registered already.")
		} else if err != nil {
			return fmt.Errorf("insert device: %w", err)
		}
		if primary {
			if err := makePrimary(ctx, tx, d.UserID, id); err != nil {
				return err
			}
		}
		d.TOTPCredentialID = 0
		if active {
			if err := s.linkDeviceTOTP(ctx, tx, d.UserID, id, cred, now); err != nil {
				return err
			}
			d.TOTPCredentialID = cred.ID
		}
		if d.Code != nil {
			if _, err := tx.ExecContext(ctx, `UPDATE device_activations SET device_id = $1 WHERE id = $2 AND kind = $3`, id, d.Code.ID, latchkey.ActivationNew); err != nil {
				return fmt.Errorf("link activation code: %w", err)
			}
		}
		d.ID, d.CreatedAt, d.KeyChangedAt, d.Primary = id, now, keyChanged, primary
		return nil
	})
}

// ActivateDevice turns a pending device active at when and inserts its confirmed TOTP
// credential cred, in one transaction; it becomes primary when the user has no other active
// device. ENotFound when the device is not pending.
func (s *DB) ActivateDevice(ctx context.Context, id int64, cred *latchkey.TOTPCredential, when time.Time) error {
	if cred == nil {
		return errors.New("sqlstore: an active device needs a TOTP credential")
	}
	return s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		// Find the owner first so that the user lock is taken before any device row lock,
		// in the same order as the other methods.
		var userID latchkey.UserID
		err := tx.QueryRowContext(ctx, `SELECT user_id FROM devices WHERE id = $1`, id).Scan(&userID)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("pending device")
		} else if err != nil {
			return fmt.Errorf("find device: %w", err)
		}
		if err := s.lockUser(ctx, tx, userID); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE devices SET state = $1 WHERE id = $2 AND state = $3`,
			string(latchkey.DeviceActive), id, string(latchkey.DevicePending))
		if err != nil {
			return fmt.Errorf("activate device: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notFound("pending device")
		}
		others, err := hasActiveDevice(ctx, tx, userID, id)
		if err != nil {
			return err
		}
		if !others {
			if err := makePrimary(ctx, tx, userID, id); err != nil {
				return err
			}
		}
		return s.linkDeviceTOTP(ctx, tx, userID, id, cred, when.UTC().Truncate(time.Microsecond))
	})
}

// ReplaceDeviceKey binds an active device to a new public key and gives its TOTP credential a
// new secret with LastStep 0, in one transaction, which also voids the device's other unused
// transfer codes: a code the old key made before the switch must not take the device back
// from the new one. ENotFound when the device is gone or not active; EConflict when the key
// is registered already.
func (s *DB) ReplaceDeviceKey(ctx context.Context, id int64, publicKey []byte, name, platform string, secret []byte, when time.Time) error {
	when = when.UTC().Truncate(time.Microsecond)
	return s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var userID latchkey.UserID
		var credID sql.NullInt64
		err := tx.QueryRowContext(ctx,
			`UPDATE devices SET public_key = $1, name = $2, platform = $3, key_changed_at = $4
			 WHERE id = $5 AND state = $6 RETURNING user_id, totp_credential_id`,
			publicKey, name, platform, us(when), id, string(latchkey.DeviceActive)).Scan(&userID, &credID)
		if isUnique(err) {
			return latchkey.Errorf(latchkey.EConflict, "This device is registered already.")
		} else if errors.Is(err, sql.ErrNoRows) {
			return notFound("device")
		} else if err != nil {
			return fmt.Errorf("replace device key: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM device_activations WHERE kind = $1 AND device_id = $2 AND used_at IS NULL`,
			latchkey.ActivationTransfer, id); err != nil {
			return fmt.Errorf("void transfer codes: %w", err)
		}
		if credID.Valid {
			res, err := tx.ExecContext(ctx, `UPDATE totp_credentials SET last_step = 0 WHERE id = $1 AND user_id = $2`, credID.Int64, userID)
			if err != nil {
				return fmt.Errorf("reset device totp credential: %w", err)
			}
			if n, _ := res.RowsAffected(); n == 1 {
				return s.storeTOTPSecret(ctx, tx, credID.Int64, userID, secret)
			}
		}
		// The device lost its credential somehow: give it a new one rather than fail.
		return s.linkDeviceTOTP(ctx, tx, userID, id, &latchkey.TOTPCredential{Name: name, Secret: secret}, when)
	})
}

// FindDevice returns one device; ENotFound when there is none.
func (s *DB) FindDevice(ctx context.Context, id int64) (*latchkey.Device, error) {
	d, err := scanDevice(s.queryRow(s.shortRead(ctx), `SELECT `+deviceColumns+` FROM devices WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("device")
	} else if err != nil {
		return nil, fmt.Errorf("find device: %w", err)
	}
	return d, nil
}

// qDeviceWithUser reads a device (deviceColumns) and its user (userColumns).
const qDeviceWithUser = `SELECT d.id, d.user_id, d.name, d.platform, d.public_key, d.state, d.is_primary, COALESCE(d.totp_credential_id, 0), d.created_at, d.last_used_at, d.key_changed_at,
	u.id, u.username, u.email, u.role, u.password_hash, u.disabled, u.primary_factor, u.time_zone, u.created_at, u.updated_at
	FROM devices d JOIN users u ON u.id = d.user_id WHERE d.id = $1`

// FindDeviceWithUser returns a device and its user, read together in one query (every
// signed request of a device needs both); ENotFound when there is no such device.
func (s *DB) FindDeviceWithUser(ctx context.Context, id int64) (*latchkey.Device, *latchkey.User, error) {
	var d deviceRow
	var u userRow
	err := s.scanWarm(s.shortRead(ctx), qDeviceWithUser, append(d.targets(), u.targets()...), id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, notFound("device")
	} else if err != nil {
		return nil, nil, fmt.Errorf("find device with user: %w", err)
	}
	return d.value(), u.value(), nil
}

// FindDevices returns a user's devices, pending ones included, primary first, then by ID
// (oldest first).
func (s *DB) FindDevices(ctx context.Context, userID latchkey.UserID) ([]*latchkey.Device, error) {
	ds, err := collectWarm(ctx, s, `SELECT `+deviceColumns+` FROM devices WHERE user_id = $1 ORDER BY is_primary DESC, id`, scanDevice, "scan device", userID)
	if err != nil {
		return nil, fmt.Errorf("find devices: %w", err)
	}
	return ds, nil
}

// UpdateDevice changes a device of that user; ENotFound when nothing matched. Making a pending
// device primary gives EConflict, since only active devices can be.
func (s *DB) UpdateDevice(ctx context.Context, userID latchkey.UserID, id int64, u latchkey.DeviceUpdate) error {
	return s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if u.Primary {
			if err := s.lockUser(ctx, tx, userID); latchkey.ErrorCode(err) == latchkey.ENotFound {
				return notFound("device")
			} else if err != nil {
				return err
			}
		}
		var name sql.NullString
		if u.Name != nil {
			name = sql.NullString{String: *u.Name, Valid: true}
		}
		var state latchkey.DeviceState
		err := tx.QueryRowContext(ctx,
			`UPDATE devices SET name = COALESCE($1, name), last_used_at = COALESCE($2, last_used_at)
			 WHERE id = $3 AND user_id = $4 RETURNING state`, name, usPtr(u.LastUsedAt), id, userID).Scan(&state)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("device")
		} else if err != nil {
			return fmt.Errorf("update device: %w", err)
		}
		if !u.Primary {
			return nil
		}
		if state != latchkey.DeviceActive {
			return latchkey.Errorf(latchkey.EConflict, "A device waiting for approval cannot be the primary device.")
		}
		return makePrimary(ctx, tx, userID, id)
	})
}

// DeleteDevice removes a device of that user with its TOTP credential, its nonces, its pending
// push challenges (and pending add_device challenges about it) and its unused transfer codes,
// in one transaction. When it was primary, the oldest remaining active device becomes primary.
func (s *DB) DeleteDevice(ctx context.Context, userID latchkey.UserID, id int64, keepOne bool) error {
	return s.deleteDevice(ctx, userID, id, keepOne, false)
}

// deleteDevice is DeleteDevice; with pendingOnly, only while the device waits for approval
// (not found otherwise).
func (s *DB) deleteDevice(ctx context.Context, userID latchkey.UserID, id int64, keepOne, pendingOnly bool) error {
	del := `DELETE FROM devices WHERE id = $1 AND user_id = $2 RETURNING is_primary, totp_credential_id, state`
	if pendingOnly {
		del = `DELETE FROM devices WHERE id = $1 AND user_id = $2 AND state = 'pending' RETURNING is_primary, totp_credential_id, state`
	}
	return s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if err := s.lockUser(ctx, tx, userID); latchkey.ErrorCode(err) == latchkey.ENotFound {
			return notFound("device")
		} else if err != nil {
			return err
		}
		var primary bool
		var credID sql.NullInt64
		var state string
		err := tx.QueryRowContext(ctx, del, id, userID).Scan(&primary, &credID, &state)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("device")
		} else if err != nil {
			return fmt.Errorf("delete device: %w", err)
		}
		for _, q := range []struct {
			what, sql string
			args      []any
		}{
			{"totp credential", `DELETE FROM totp_credentials WHERE user_id = $1 AND (device_id = $2 OR id = $3)`, []any{userID, id, credID}},
			{"nonces", `DELETE FROM device_nonces WHERE device_id = $1`, []any{id}},
			{"push challenges", qDeleteDevicePushes,
				[]any{string(latchkey.PushPending), id, latchkey.PushAddDevice}},
			{"transfer codes", `DELETE FROM device_activations WHERE kind = $1 AND device_id = $2 AND used_at IS NULL`, []any{latchkey.ActivationTransfer, id}},
		} {
			if _, err := tx.ExecContext(ctx, q.sql, q.args...); err != nil {
				return fmt.Errorf("delete device %s: %w", q.what, err)
			}
		}
		if err := s.afterFactorRemoved(ctx, tx, userID, state == string(latchkey.DeviceActive), keepOne); err != nil {
			return err
		}
		if !primary {
			return nil
		}
		var next int64
		err = tx.QueryRowContext(ctx, `SELECT id FROM devices WHERE user_id = $1 AND state = $2 ORDER BY created_at, id LIMIT 1`,
			userID, string(latchkey.DeviceActive)).Scan(&next)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		} else if err != nil {
			return fmt.Errorf("find next primary device: %w", err)
		}
		return makePrimary(ctx, tx, userID, next)
	})
}

// qSweepNonces deletes a device's expired nonces (through device_nonces_device_expires).
const qSweepNonces = `DELETE FROM device_nonces WHERE device_id = $1 AND expires_at < $2`

// UseDeviceNonce records a device's request nonce until expiresAt; ErrNonceUsed when the
// device used it before. Then it drops the device's nonces that expired before when, in the
// same transaction (planNonce).
func (s *DB) UseDeviceNonce(ctx context.Context, deviceID int64, nonce string, expiresAt, when time.Time) error {
	var p txPlan
	planNonce(&p, &latchkey.RequestNonce{DeviceID: deviceID, Nonce: nonce, ExpiresAt: expiresAt, Now: when})
	return s.runPlan(ctx, nil, &p)
}

// planNonce queues the recording of n and the sweep of its device's expired nonces. The
// insert comes first, so a replayed nonce is refused (latchkey.ErrNonceUsed) as long as its
// row exists.
func planNonce(p *txPlan, n *latchkey.RequestNonce) {
	const qInsert = `INSERT INTO device_nonces (device_id, nonce, expires_at) VALUES ($1, $2, $3) ON CONFLICT (device_id, nonce) DO NOTHING`
	p.exec(func(k int64, err error) error {
		if err != nil {
			return fmt.Errorf("insert device nonce: %w", err)
		} else if k == 0 {
			return latchkey.ErrNonceUsed
		}
		return nil
	}, qInsert, n.DeviceID, n.Nonce, us(n.ExpiresAt))
	p.exec(failsAs("delete expired device nonces"), qSweepNonces, n.DeviceID, us(n.Now))
}

const pushColumns = `id, user_id, device_id, kind, session_id, subject_device_id, number, application, browser, ip, created_at, expires_at, state, reason, answered_at, completed_at`

// pushRow is a row of pushColumns: its scan targets, then its value.
type pushRow struct {
	c                   latchkey.PushChallenge
	created, expires    int64
	answered, completed sql.NullInt64
}

func (r *pushRow) targets() []any {
	c := &r.c
	return []any{&c.ID, &c.UserID, &c.DeviceID, &c.Kind, &c.SessionID, &c.SubjectDeviceID, &c.Number, &c.Application, &c.Browser, &c.IP,
		&r.created, &r.expires, &c.State, &c.Reason, &r.answered, &r.completed}
}

func (r *pushRow) value() *latchkey.PushChallenge {
	r.c.CreatedAt, r.c.ExpiresAt, r.c.AnsweredAt, r.c.CompletedAt = at(r.created), at(r.expires), atPtr(r.answered), atPtr(r.completed)
	return &r.c
}

func scanPush(row scanner) (*latchkey.PushChallenge, error) {
	var r pushRow
	if err := row.Scan(r.targets()...); err != nil {
		return nil, err
	}
	return r.value(), nil
}

// qInsertPush inserts a push challenge.
const qInsertPush = `INSERT INTO push_challenges (` + pushColumns + `)
	 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`

// CreatePushChallenge inserts c; EConflict when its ID exists already.
func (s *DB) CreatePushChallenge(ctx context.Context, c *latchkey.PushChallenge) error {
	return s.SendPushChallenge(ctx, c, "", 0, nil)
}

// SendPushChallenge counts a push under countKey (when not empty, as RecordFailure does),
// inserts c and appends e (when not nil) in one transaction; EConflict when c's ID exists.
// With limit > 0, a push that would be counted past limit is refused with EThrottled and
// nothing is written: the count decides in the transaction, so that pushes sent at once
// cannot all pass a cap that each read before any was counted.
func (s *DB) SendPushChallenge(ctx context.Context, c *latchkey.PushChallenge, countKey string, limit int, e *latchkey.AuditEvent) error {
	state := c.State
	if state == "" {
		state = latchkey.PushPending
	}
	var p txPlan
	if countKey != "" {
		p.query("count push", func(scan func(...any) error) error {
			var n int
			if err := scan(&n); err != nil {
				return fmt.Errorf("count push: %w", err)
			}
			if limit > 0 && n > limit {
				return latchkey.Errorf(latchkey.EThrottled, "%d pushes were sent since the last sign-in.", limit)
			}
			return nil
		}, nil, qRecordFailure, countKey, us(c.CreatedAt))
	}
	p.exec(func(_ int64, err error) error {
		if isUnique(err) {
			return latchkey.Errorf(latchkey.EConflict, "The push challenge exists already.")
		} else if err != nil {
			return fmt.Errorf("insert push challenge: %w", err)
		}
		return nil
	}, qInsertPush,
		c.ID, c.UserID, c.DeviceID, c.Kind, c.SessionID, c.SubjectDeviceID, c.Number, c.Application, c.Browser, c.IP,
		us(c.CreatedAt), us(c.ExpiresAt), string(state), c.Reason, usPtr(c.AnsweredAt), usPtr(c.CompletedAt))
	err := s.runPlan(ctx, e, &p)
	if err != nil {
		return err
	}
	c.State = state
	return nil
}

// FindPushChallenge returns ENotFound when there is no such challenge.
func (s *DB) FindPushChallenge(ctx context.Context, id string) (*latchkey.PushChallenge, error) {
	var r pushRow
	err := s.scanWarm(s.shortRead(ctx), `SELECT `+pushColumns+` FROM push_challenges WHERE id = $1`, r.targets(), id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("push challenge")
	} else if err != nil {
		return nil, fmt.Errorf("find push challenge: %w", err)
	}
	return r.value(), nil
}

// PendingPushChallenges returns a device's challenges that are pending and unexpired at when,
// oldest first.
func (s *DB) PendingPushChallenges(ctx context.Context, deviceID int64, when time.Time) ([]*latchkey.PushChallenge, error) {
	rows, err := s.query(ctx,
		`SELECT `+pushColumns+` FROM push_challenges
		 WHERE device_id = $1 AND state = $2 AND expires_at > $3 ORDER BY created_at, id`,
		deviceID, string(latchkey.PushPending), us(when))
	if err != nil {
		return nil, fmt.Errorf("find pending push challenges: %w", err)
	}
	return collect(rows, scanPush, "scan push challenge")
}

// qPushPendingFor reads a device's pending challenges, oldest first, only while the device
// is active and holds the key $5. The condition on the device does not depend on the
// challenge, so both databases evaluate it once.
const qPushPendingFor = `SELECT ` + pushColumns + ` FROM push_challenges
	 WHERE device_id = $1 AND state = $2 AND expires_at > $3
	 AND EXISTS (SELECT 1 FROM devices WHERE id = $1 AND state = $4 AND public_key = $5)
	 ORDER BY created_at, id`

// qDeviceHolds tells whether a device is active and holds a key.
const qDeviceHolds = `SELECT 1 FROM devices WHERE id = $1 AND state = $2 AND public_key = $3`

// DevicePushChallenges returns the challenges of PendingPushChallenges while the device is
// active and holds publicKey, and ENotFound otherwise. A device's open event stream reads it
// at each wake-up: one query when a challenge waits, a second only when none does, to tell
// "nothing yet" from "this key may no longer receive".
func (s *DB) DevicePushChallenges(ctx context.Context, deviceID int64, publicKey []byte, when time.Time) ([]*latchkey.PushChallenge, error) {
	chs, err := collectWarm(ctx, s, qPushPendingFor, scanPush, "scan push challenge",
		deviceID, string(latchkey.PushPending), us(when), string(latchkey.DeviceActive), publicKey)
	if err != nil {
		return nil, fmt.Errorf("find pending push challenges: %w", err)
	}
	if len(chs) > 0 {
		return chs, nil
	}
	var one int
	err = s.scanWarm(s.shortRead(ctx), qDeviceHolds, []any{&one}, deviceID, string(latchkey.DeviceActive), publicKey)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("device")
	} else if err != nil {
		return nil, fmt.Errorf("find device: %w", err)
	}
	return nil, nil
}

// qPushWithSession reads a challenge (pushColumns) and a session with its user
// (sessionWithUserColumns).
const qPushWithSession = `SELECT c.id, c.user_id, c.device_id, c.kind, c.session_id, c.subject_device_id, c.number, c.application, c.browser, c.ip,
	c.created_at, c.expires_at, c.state, c.reason, c.answered_at, c.completed_at, ` + sessionWithUserColumns + `
	FROM push_challenges c, sessions s JOIN users u ON u.id = s.user_id WHERE c.id = $1 AND s.id = $2`

// FindPushChallengeWithSession returns the challenge id, and the session sessionID with its
// user, read together in one query (a browser's status poll needs all three); ENotFound when
// either is missing. It checks nothing else: that the session is the challenge's, or still
// valid, is the caller's rule.
func (s *DB) FindPushChallengeWithSession(ctx context.Context, id, sessionID string) (*latchkey.PushChallenge, *latchkey.Session, *latchkey.User, error) {
	var c pushRow
	var su sessionUserRow
	err := s.scanWarm(s.shortRead(ctx), qPushWithSession, append(c.targets(), su.targets()...), id, sessionID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, nil, notFound("push challenge")
	} else if err != nil {
		return nil, nil, nil, fmt.Errorf("find push challenge with session: %w", err)
	}
	sess, u := su.values()
	return c.value(), sess, u, nil
}

// qAnswerPush moves a pending, unexpired challenge to its answer.
const qAnswerPush = `UPDATE push_challenges SET state = $1, reason = $2, answered_at = $3
	 WHERE id = $4 AND state = $5 AND expires_at > $3`

// qDenyOtherPushes denies a user's other pending challenges (a fraud report), returning their
// IDs; expired ones are left as they are.
const qDenyOtherPushes = `UPDATE push_challenges SET state = $1, reason = $2, answered_at = $3
	 WHERE user_id = $4 AND state = $5 AND id <> $6 AND expires_at > $3 RETURNING id`

// qPushState reads a challenge's state, to tell why an answer changed nothing.
const qPushState = `SELECT state FROM push_challenges WHERE id = $1`

// qTouchDevice sets a device's last use.
const qTouchDevice = `UPDATE devices SET last_used_at = $1 WHERE id = $2`

// AnswerPushChallenge moves a pending, unexpired challenge to its answer in one statement, so
// of two concurrent answers exactly one wins, and in the same transaction records the
// request's nonce (first), touches the device, counts the failure and appends the audit entry
// of a. Otherwise, with nothing written: ErrNonceUsed for a nonce used before, ENotFound for
// an unknown challenge, EConflict for one answered already, EFlowExpired for an expired one.
func (s *DB) AnswerPushChallenge(ctx context.Context, a *latchkey.PushAnswer) error {
	if a.State != latchkey.PushApproved && a.State != latchkey.PushDenied {
		return fmt.Errorf("sqlstore: a push challenge cannot be answered with state %q", a.State)
	}
	var p txPlan
	if a.Nonce != nil {
		planNonce(&p, a.Nonce)
	}
	answered := false
	p.exec(func(n int64, err error) error {
		if err != nil {
			return fmt.Errorf("answer push challenge: %w", err)
		}
		answered = n == 1
		return nil
	}, qAnswerPush, string(a.State), a.Reason, us(a.At), a.ID, string(latchkey.PushPending))
	// Why nothing changed, read after the UPDATE (which waited for a concurrent answer).
	p.query("find push challenge", func(scan func(...any) error) error {
		var cur latchkey.PushState
		if err := scan(&cur); err != nil {
			return fmt.Errorf("find push challenge: %w", err)
		} else if cur != latchkey.PushPending {
			return latchkey.Errorf(latchkey.EConflict, "This request was answered already.")
		}
		return latchkey.Errorf(latchkey.EFlowExpired, "This request has expired.")
	}, func(n int) error {
		if n == 0 {
			return notFound("push challenge")
		}
		return nil
	}, qPushState, a.ID).onlyIf(func() bool { return !answered })
	if a.DenyOthersOf != 0 {
		a.DeniedOthers = nil
		p.query("deny other push challenges", func(scan func(...any) error) error {
			var id string
			if err := scan(&id); err != nil {
				return fmt.Errorf("deny other push challenges: %w", err)
			}
			a.DeniedOthers = append(a.DeniedOthers, id)
			return nil
		}, nil, qDenyOtherPushes, string(latchkey.PushDenied), a.Reason, us(a.At), a.DenyOthersOf, string(latchkey.PushPending), a.ID)
	}
	if a.DeviceID != 0 {
		p.exec(failsAs("touch device"), qTouchDevice, us(a.At), a.DeviceID)
	}
	if a.CountKey != "" {
		p.query("record failure", func(scan func(...any) error) error {
			var n int
			if err := scan(&n); err != nil {
				return fmt.Errorf("record failure: %w", err)
			}
			return nil
		}, nil, qRecordFailure, a.CountKey, us(a.At))
	}
	return s.runPlan(ctx, a.Audit, &p)
}

// CompletePushChallenge sets CompletedAt on an approved challenge once. EConflict when it is
// not approved or completed already; ENotFound when there is no such challenge.
func (s *DB) CompletePushChallenge(ctx context.Context, id string, when time.Time) error {
	res, err := s.exec(ctx,
		`UPDATE push_challenges SET completed_at = $1 WHERE id = $2 AND state = $3 AND completed_at IS NULL`,
		us(when), id, string(latchkey.PushApproved))
	if err != nil {
		return fmt.Errorf("complete push challenge: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	var n int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM push_challenges WHERE id = $1`, id).Scan(&n); err != nil {
		return fmt.Errorf("find push challenge: %w", err)
	}
	if n == 0 {
		return notFound("push challenge")
	}
	return latchkey.Errorf(latchkey.EConflict, "This request was not approved or was used already.")
}

// DeleteExpiredPushData removes push challenges, activation codes and nonces that expired
// before t, in batches of CleanupBatch rows (see deleteExpired), and returns how many rows
// went.
func (s *DB) DeleteExpiredPushData(ctx context.Context, t time.Time) (int, error) {
	total := 0
	for _, table := range []string{"push_challenges", "device_activations", "device_nonces"} {
		n, err := s.deleteExpired(ctx, table, t)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// qAbandonedDevices finds pending devices created before $1. The state is written out, not a
// parameter, so that the partial index devices_pending (WHERE state = 'pending') serves it
// (see qFindSessionBySID); latchkey.DevicePending is "pending".
const qAbandonedDevices = `SELECT id, user_id FROM devices WHERE state = 'pending' AND created_at < $1 ORDER BY created_at LIMIT $2`

// DeleteAbandonedDevices removes new devices still waiting for approval that were created
// before t: their approval request expired long ago, and they can never be approved. Each
// goes with what DeleteDevice removes with a device. It returns how many went, at most
// CleanupBatch per call.
func (s *DB) DeleteAbandonedDevices(ctx context.Context, t time.Time) (int, error) {
	rows, err := s.query(ctx, qAbandonedDevices, us(t), CleanupBatch)
	if err != nil {
		return 0, fmt.Errorf("find abandoned devices: %w", err)
	}
	type dev struct {
		id   int64
		user latchkey.UserID
	}
	var devs []dev
	for rows.Next() {
		var d dev
		if err := rows.Scan(&d.id, &d.user); err != nil {
			rows.Close()
			return 0, fmt.Errorf("find abandoned devices: %w", err)
		}
		devs = append(devs, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("find abandoned devices: %w", err)
	}
	n := 0
	for _, d := range devs {
		// Only while it still waits: one approved meanwhile stays.
		err := s.deleteDevice(ctx, d.user, d.id, false, true)
		if latchkey.ErrorCode(err) == latchkey.ENotFound {
			continue
		} else if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// CleanupBatch bounds the rows that one cleanup statement deletes.
const CleanupBatch = 1000

// expiringKeys names the key columns of each table with an expires_at column.
var expiringKeys = map[string]string{
	"sessions":            "id",
	"push_challenges":     "id",
	"device_activations":  "id",
	"device_nonces":       "device_id, nonce",
	"webauthn_ceremonies": "id",
}

// deleteExpired deletes the rows of table that expired before t, CleanupBatch rows per
// statement (each its own short transaction, through the expires_at index), until a
// statement deletes fewer: a large backlog never becomes one long transaction that holds
// locks and bloats the write-ahead log, and other writers get their turn in between.
func (s *DB) deleteExpired(ctx context.Context, table string, t time.Time) (int, error) {
	key, ok := expiringKeys[table]
	if !ok {
		return 0, fmt.Errorf("delete expired %s: not an expiring table", table)
	}
	q := fmt.Sprintf(`DELETE FROM %[1]s WHERE (%[2]s) IN (SELECT %[2]s FROM %[1]s WHERE expires_at < $1 LIMIT %[3]d)`, table, key, CleanupBatch)
	total := 0
	for {
		res, err := s.exec(ctx, q, us(t))
		if err != nil {
			return total, fmt.Errorf("delete expired %s: %w", table, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("delete expired %s: %w", table, err)
		}
		total += int(n)
		if n < CleanupBatch {
			return total, nil
		}
	}
}
