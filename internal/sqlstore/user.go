package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/latchkey/latchkey"
)

// qUsernameByKey finds the user whose username looks like a key. The second term lets the
// partial index users_lookalike (of non-empty keys) serve it (see qFindSessionBySID).
const qUsernameByKey = `SELECT username FROM users WHERE username_key = $1 AND username_key <> ''`

const userColumns = `id, username, email, role, password_hash, disabled, primary_factor, time_zone, created_at, updated_at`

// userRow is a row of userColumns: its scan targets, then its value.
type userRow struct {
	u                latchkey.User
	created, updated int64
}

func (r *userRow) targets() []any {
	u := &r.u
	return []any{&u.ID, &u.Username, &u.Email, &u.Role, &u.PasswordHash, &u.Disabled, &u.PrimaryFactor, &u.TimeZone, &r.created, &r.updated}
}

func (r *userRow) value() *latchkey.User {
	r.u.CreatedAt, r.u.UpdatedAt = at(r.created), at(r.updated)
	return &r.u
}

func scanUser(row scanner) (*latchkey.User, error) {
	var r userRow
	if err := row.Scan(r.targets()...); err != nil {
		return nil, err
	}
	return r.value(), nil
}

// FindUserByID returns ENotFound when there is no such user.
func (s *DB) FindUserByID(ctx context.Context, id latchkey.UserID) (*latchkey.User, error) {
	u, err := scanUser(s.queryRow(s.shortRead(ctx), `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("user")
	} else if err != nil {
		return nil, fmt.Errorf("find user: %w", err)
	}
	return u, nil
}

// FindUserByUsername returns ENotFound when there is no such user.
func (s *DB) FindUserByUsername(ctx context.Context, username string) (*latchkey.User, error) {
	u, err := scanUser(s.queryRow(s.shortRead(ctx), `SELECT `+userColumns+` FROM users WHERE username = $1`, username))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("user")
	} else if err != nil {
		return nil, fmt.Errorf("find user: %w", err)
	}
	return u, nil
}

// FindUsers returns the matching users ordered by ID, and their total count.
func (s *DB) FindUsers(ctx context.Context, f latchkey.UserFilter) ([]*latchkey.User, int, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.ID != nil {
		add("id = $%d", *f.ID)
	}
	if f.Username != nil {
		add("username = $%d", *f.Username)
	}
	if f.Role != nil {
		add("role = $%d", string(*f.Role))
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	var total int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM users`+cond, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count users: %w", err)
	}
	q := `SELECT ` + userColumns + ` FROM users` + cond + ` ORDER BY id`
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	if f.Offset > 0 {
		if f.Limit <= 0 {
			q += " LIMIT -1"
			if s.dialect == Postgres {
				q = strings.TrimSuffix(q, " LIMIT -1") + " LIMIT ALL"
			}
		}
		q += fmt.Sprintf(" OFFSET %d", f.Offset)
	}
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("find users: %w", err)
	}
	users, err := collect(rows, scanUser, "scan user")
	if err != nil {
		return nil, 0, err
	}
	return users, total, nil
}

// CreateUser inserts u and sets its ID and timestamps; EConflict when the username is taken,
// or another user's name looks like it (the same UsernameKey).
func (s *DB) CreateUser(ctx context.Context, u *latchkey.User) error {
	now := s.now().UTC().Truncate(time.Microsecond)
	err := s.write(ctx, func() error {
		return s.queryRow(ctx,
			`INSERT INTO users (username, email, role, password_hash, disabled, created_at, updated_at, username_key)
			 VALUES ($1, $2, $3, $4, $5, $6, $6, $7) RETURNING id`,
			u.Username, u.Email, string(u.Role), u.PasswordHash, u.Disabled, us(now), u.UsernameKey).Scan(&u.ID)
	})
	if isUnique(err) {
		if u.UsernameKey != "" {
			var other string
			if s.queryRow(ctx, qUsernameByKey, u.UsernameKey).Scan(&other) == nil && other != u.Username {
				return latchkey.Errorf(latchkey.EConflict, "The username %q looks too much like an existing one. Choose another.", u.Username)
			}
		}
		return latchkey.Errorf(latchkey.EConflict, "The username %q is taken.", u.Username)
	} else if err != nil {
		return fmt.Errorf("insert user: %w", err)
	}
	u.CreatedAt, u.UpdatedAt = now, now
	return nil
}

// UpdateUser applies upd and returns the updated user, or ENotFound.
func (s *DB) UpdateUser(ctx context.Context, id latchkey.UserID, upd latchkey.UserUpdate) (*latchkey.User, error) {
	var u *latchkey.User
	err := s.auditedTx(ctx, upd.Audit, func(ctx context.Context, tx *sql.Tx) error {
		if upd.KeepAnAdmin && s.dialect == Postgres {
			// Lock the enabled administrators, so that concurrent demotions are serialised
			// (SQLite's transactions are serialised already: they take the write lock first).
			if _, err := tx.ExecContext(ctx, `SELECT id FROM users WHERE role = 'admin' AND NOT disabled ORDER BY id FOR UPDATE`); err != nil {
				return fmt.Errorf("lock administrators: %w", err)
			}
		}
		var sets []string
		var args []any
		set := func(col string, v any) {
			args = append(args, v)
			sets = append(sets, fmt.Sprintf("%s = $%d", col, len(args)))
		}
		if upd.Email != nil {
			set("email", *upd.Email)
		}
		if upd.Role != nil {
			set("role", string(*upd.Role))
		}
		if upd.PasswordHash != nil {
			set("password_hash", *upd.PasswordHash)
		}
		if upd.Disabled != nil {
			set("disabled", *upd.Disabled)
		}
		if upd.PrimaryFactor != nil {
			set("primary_factor", *upd.PrimaryFactor)
		}
		if upd.TimeZone != nil {
			set("time_zone", *upd.TimeZone)
		}
		set("updated_at", us(s.now()))
		args = append(args, id)
		res, err := tx.ExecContext(ctx, fmt.Sprintf(`UPDATE users SET %s WHERE id = $%d`, strings.Join(sets, ", "), len(args)), args...)
		if err != nil {
			return fmt.Errorf("update user: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notFound("user")
		}
		if upd.KeepAnAdmin {
			var admins int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE role = 'admin' AND NOT disabled`).Scan(&admins); err != nil {
				return fmt.Errorf("count administrators: %w", err)
			}
			if admins == 0 {
				return latchkey.Errorf(latchkey.EConflict, "This would leave no enabled administrator to run this server. Make someone else an administrator first.")
			}
		}
		u, err = scanUser(tx.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
		return err
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// FillUsernameKeys gives the users created before look-alike keys existed theirs, key(username)
// (login.UsernameKey), in transactions of fillBatch users, once: the migration that added the
// keys marked them pending, and the mark goes when every user was seen. A key another user
// holds already is left out (the user keeps ”), as a look-alike pair made before the check
// cannot be undone here; their number is returned with the number filled in. Servers start
// it in the background: the keys matter only to the users created after it.
func (s *DB) FillUsernameKeys(ctx context.Context, key func(username string) string) (filled, clashes int, err error) {
	if _, err := s.FindSetting(ctx, settingUsernameKeysPending); latchkey.ErrorCode(err) == latchkey.ENotFound {
		return 0, 0, nil
	} else if err != nil {
		return 0, 0, err
	}
	var after latchkey.UserID
	for {
		type row struct {
			id       latchkey.UserID
			username string
		}
		rows, err := s.query(ctx, `SELECT id, username FROM users WHERE id > $1 AND username_key = '' ORDER BY id LIMIT `+strconv.Itoa(fillBatch), after)
		if err != nil {
			return filled, clashes, fmt.Errorf("find users without a key: %w", err)
		}
		batch, err := collect(rows, func(r scanner) (row, error) {
			var x row
			return x, r.Scan(&x.id, &x.username)
		}, "find users without a key")
		if err != nil {
			return filled, clashes, err
		}
		if len(batch) == 0 {
			break
		}
		var n int
		err = s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
			n = 0 // a batch may run the function again
			for _, x := range batch {
				k := key(x.username)
				res, err := tx.ExecContext(ctx, `UPDATE users SET username_key = $1 WHERE id = $2 AND username_key = ''
					AND NOT EXISTS (SELECT 1 FROM users o WHERE o.username_key = $1 AND o.username_key <> '')`, k, x.id)
				if err != nil {
					return fmt.Errorf("fill username key: %w", err)
				}
				if c, _ := res.RowsAffected(); c == 1 {
					n++
				}
			}
			return nil
		})
		if err != nil {
			return filled, clashes, err
		}
		filled, clashes = filled+n, clashes+len(batch)-n
		after = batch[len(batch)-1].id
	}
	if _, err := s.ConsumeSetting(ctx, settingUsernameKeysPending, "1"); err != nil {
		return filled, clashes, err
	}
	return filled, clashes, nil
}

const (
	settingUsernameKeysPending = "username_keys_pending"
	fillBatch                  = 500
)
