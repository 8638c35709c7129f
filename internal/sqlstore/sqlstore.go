// Package sqlstore implements latchkey.Store on database/sql for SQLite (modernc.org/sqlite,
// pure Go) and PostgreSQL (pgx). One set of queries with $N placeholders serves both; only
// the migrations and the few statements that really differ are written per dialect.
//
// Each exported method is one transaction (or one statement); unexported helpers take the
// *sql.Tx. The store persists and maps constraint errors to domain errors; it holds no
// business rule. TOTP seeds are encrypted with AES-256-GCM before they reach the database.
package sqlstore

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // the "sqlite" driver

	"github.com/latchkey/latchkey"
)

// Dialects.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// Options configure Open.
type Options struct {
	// SecretsKey is the 32-byte AES-256 key that encrypts secrets at rest.
	SecretsKey []byte
	// Now is the clock for timestamps the store sets itself; nil means time.Now.
	Now func() time.Time
	// Committed, when not nil, is called with every audit entry this store appended, once
	// its transaction has committed (never for one rolled back), in the caller's goroutine:
	// the node's audit metrics count them. It must be quick and must not use the store.
	Committed func(*latchkey.AuditEvent)
}

// DB is the SQL store. It is safe for concurrent use.
type DB struct {
	db      *sql.DB
	dialect string
	aead    cipher.AEAD
	now     func() time.Time
	// committed is Options.Committed.
	committed func(*latchkey.AuditEvent)
	// hot holds the prepared statements of the hot path (hot.go).
	hot hotStatements
	// writer, on SQLite only, admits one writing transaction or statement of this process at
	// a time (write.go).
	writer chan struct{}
	// batches, on SQLite only, commits the transactions of concurrent callers together
	// (group commit, batch.go).
	batches *batcher
	// wal, on SQLite only, starts the write-ahead log's writeback after writes, ahead of the
	// checkpoints' syncs (writeback.go).
	wal *writeback
	// ckpt, on SQLite only, checkpoints the write-ahead log off the batch writer
	// (checkpoint.go), and turns counts the turns to write taken (lockWrites) for it.
	ckpt  *checkpointer
	turns atomic.Int64
	// sessions, on SQLite only, keeps sessions with their users while the database has not
	// changed (sessioncache.go).
	sessions *sessionCache
	// chain, on PostgreSQL only, chains the audit trail's entries after their transactions
	// commit (auditchain.go).
	chain *chainer
	// lost, on PostgreSQL only, is when the server was last seen going away (Unix
	// nanoseconds, zero for never): connections not checked since are pinged before they are
	// reused (stale.go).
	lost atomic.Int64
}

var _ latchkey.Store = (*DB)(nil)

//go:embed migrations
var migrations embed.FS

// Open connects to the database named by dsn and applies pending migrations. A dsn starting
// with postgres:// or postgresql:// opens PostgreSQL; anything else is a SQLite file path.
func Open(ctx context.Context, dsn string, opt Options) (*DB, error) {
	if len(opt.SecretsKey) != 32 {
		return nil, errors.New("sqlstore: the secrets key must be 32 bytes")
	}
	block, err := aes.NewCipher(opt.SecretsKey)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: %w", err)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	s := &DB{aead: aead, now: opt.Now, committed: opt.Committed}
	var sqliteName string // the SQLite pool's data source name
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		s.dialect = Postgres
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			return nil, fmt.Errorf("open postgres: %w", err)
		}
		// Without a bound, a connection attempt to an unreachable server waits for the
		// operating system's TCP timeout (minutes); connect_timeout in the URL still wins.
		if cfg.ConnectTimeout == 0 {
			cfg.ConnectTimeout = connectTimeout
		}
		// A FATAL error marks the server lost, and connections are checked before reuse after
		// that (stale.go).
		cfg.OnPgError = s.onPgError
		s.db = stdlib.OpenDB(*cfg, stdlib.OptionShouldPing(s.shouldPing))
		// A pool per node: with N nodes the server sees at most N×20 connections (plus two
		// per node for push notifications). Connections are recycled so that a fail-over or
		// a pooler's rebalancing reaches every node, and idle ones are let go after five
		// minutes. Under load all 20 are kept (maxPostgresConns idle): with fewer, every
		// connection handed back beyond them was closed and another one opened moments
		// later, a new PostgreSQL backend process and every statement prepared again.
		s.db.SetMaxOpenConns(maxPostgresConns)
		s.db.SetMaxIdleConns(maxPostgresConns)
		s.db.SetConnMaxLifetime(30 * time.Minute)
		s.db.SetConnMaxIdleTime(5 * time.Minute)
	} else {
		s.dialect = SQLite
		if dsn == "" || dsn == ":memory:" {
			return nil, errors.New("sqlstore: a SQLite database needs a file path")
		}
		if err := os.MkdirAll(filepath.Dir(dsn), 0o700); err != nil {
			return nil, fmt.Errorf("create database folder: %w", err)
		}
		if err := ownerOnly(dsn); err != nil {
			return nil, err
		}
		// WAL lets readers run beside the writer; immediate transactions take the write lock at
		// BEGIN, so two writers queue (busy_timeout) instead of deadlocking on a lock upgrade.
		// temp_store(MEMORY) keeps the savepoints' journal of a batch (batch.go) in memory: past
		// 64 KiB SQLite would spill it to a temporary file, with system calls for every page.
		// wal_autocheckpoint is the safety net under the store's own checkpoints (checkpoint.go).
		q := "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_pragma=temp_store(MEMORY)&_pragma=wal_autocheckpoint(" + strconv.Itoa(walAutoCheckpoint) + ")&_txlock=immediate"
		if s.db, err = sql.Open("sqlite", "file:"+dsn+q); err != nil {
			return nil, fmt.Errorf("open sqlite: %w", err)
		}
		// Every connection is kept: database/sql keeps only two idle ones by default, and a
		// new connection costs its pragmas and the preparing of every statement again.
		s.db.SetMaxOpenConns(8)
		s.db.SetMaxIdleConns(8)
		s.writer = make(chan struct{}, 1)
		sqliteName = "file:" + dsn + q
	}
	if err := s.db.PingContext(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("connect to %s: %w", s.dialect, err)
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	if s.dialect == SQLite {
		s.batches = newBatcher(s)
		s.wal = newWriteback(dsn + "-wal")
		s.startCheckpointer()
		s.prepareBeforeBegin(ctx, qSavepoint, qRollbackTo, qRelease)
		if s.sessions, err = newSessionCache(s.db.Driver(), sqliteName); err != nil {
			s.Close()
			return nil, fmt.Errorf("open sqlite: %w", err)
		}
	}
	if err := s.checkSecretsKey(ctx, opt.SecretsKey); err != nil {
		s.Close()
		return nil, err
	}
	if s.dialect == Postgres {
		s.startChainer()
	}
	return s, nil
}

// SQL returns the underlying database, for tests and maintenance commands.
func (s *DB) SQL() *sql.DB { return s.db }

// Dialect returns SQLite or Postgres.
func (s *DB) Dialect() string { return s.dialect }

// Ping reports whether the database is reachable, within pingTimeout.
func (s *DB) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	err := s.db.PingContext(ctx)
	if err != nil && s.dialect == Postgres {
		s.ServerLost()
	}
	return err
}

// Timeouts of the PostgreSQL connections and of Ping (readiness checks).
const (
	connectTimeout = 5 * time.Second
	pingTimeout    = 2 * time.Second
)

// maxPostgresConns is the size of a node's PostgreSQL pool, open and idle alike.
const maxPostgresConns = 20

// Close closes the database.
func (s *DB) Close() error {
	s.ckpt.close()
	if s.batches != nil {
		s.batches.stop()
	}
	if s.chain != nil {
		s.chain.close()
	}
	s.hot.close()
	if s.sessions != nil {
		s.sessions.close()
	}
	err := s.db.Close()
	s.wal.close() // after SQLite's own descriptors of the log (writeback.go)
	return err
}

// migrate applies the embedded migrations of the dialect that are not yet recorded, each in
// its own transaction. On PostgreSQL an advisory lock makes nodes starting together take turns.
func (s *DB) migrate(ctx context.Context) error {
	dir := "migrations/" + s.dialect
	names, err := fs.Glob(migrations, dir+"/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY)`); err != nil && s.dialect == SQLite {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	for _, name := range names {
		version := strings.TrimSuffix(filepath.Base(name), ".sql")
		body, err := migrations.ReadFile(name)
		if err != nil {
			return err
		}
		if err := s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
			if s.dialect == Postgres {
				if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7305001)`); err != nil {
					return err
				}
				if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY)`); err != nil {
					return err
				}
			}
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = $1`, version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, version)
			return err
		}); err != nil {
			return fmt.Errorf("migration %s: %w", name, err)
		}
	}
	return nil
}

// tx runs f in a transaction, committing when it returns nil: either all of f's writes are
// committed or none. f runs its statements with the context it is given. On SQLite, f runs in
// the batch writer's transaction, in a savepoint of its own (batch.go), and that context has
// ctx's values but does not end with it: once f has started its answer is the batch's. f must
// not start another write of the store (it would wait for itself): such a write, started with
// f's context, fails with errNestedWrite at once.
func (s *DB) tx(ctx context.Context, f func(context.Context, *sql.Tx) error) error {
	if inWrite(ctx) {
		return errNestedWrite
	}
	if s.batches != nil {
		return s.batches.run(ctx, f)
	}
	done, err := s.lockWrites(ctx)
	if err != nil {
		return err
	}
	defer done()
	// On PostgreSQL, a transaction whose connection was lost before its COMMIT runs again
	// once (stale.go); f may run twice, as it may on SQLite when its batch is given up.
	return s.retryLost(ctx, func() error {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if err := f(writing(ctx), tx); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return errCommitSent{err}
		}
		return nil
	})
}

// isUnique reports whether err is a unique-constraint violation in either dialect.
func isUnique(err error) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code == "23505"
	}
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// us stores a time as Unix microseconds; at reads it back.
func us(t time.Time) int64 { return t.UTC().UnixMicro() }

func at(v int64) time.Time { return time.UnixMicro(v).UTC() }

func usPtr(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: us(*t), Valid: true}
}

func atPtr(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := at(v.Int64)
	return &t
}

func notFound(what string) error {
	return latchkey.Errorf(latchkey.ENotFound, "The %s does not exist.", what)
}

// scanner is a row or rows being read.
type scanner = interface{ Scan(...any) error }

// collect reads every row of rows with scan and closes rows. what names the rows in an error
// ("scan ticket: ...").
func collect[T any](rows *sql.Rows, scan func(scanner) (T, error), what string) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// ownerOnly makes the SQLite file readable by its owner alone (0600), created so when it does
// not exist and narrowed when it is wider: it holds password hashes and encrypted seeds, and
// SQLite creates a file with the process's umask (0644 in a folder that was already there,
// such as a data folder made with mkdir). SQLite gives the write-ahead log and its index the
// database file's permissions.
func ownerOnly(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open database file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("open database file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := f.Chmod(fi.Mode().Perm() &^ 0o077); err != nil {
			return fmt.Errorf("make the database file private: %w", err)
		}
	}
	return nil
}
