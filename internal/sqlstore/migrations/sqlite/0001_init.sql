-- Times are Unix microseconds (UTC) in both dialects, so every query scans the same way.
CREATE TABLE users (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	username      TEXT    NOT NULL UNIQUE,
	email         TEXT    NOT NULL,
	role          TEXT    NOT NULL,
	password_hash TEXT    NOT NULL,
	disabled      BOOLEAN NOT NULL DEFAULT 0,
	created_at    INTEGER NOT NULL,
	updated_at    INTEGER NOT NULL
);

CREATE TABLE totp_credentials (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	name         TEXT    NOT NULL,
	secret       BLOB    NOT NULL, -- AES-256-GCM: nonce || ciphertext
	last_step    INTEGER NOT NULL DEFAULT 0,
	created_at   INTEGER NOT NULL,
	confirmed_at INTEGER,
	last_used_at INTEGER
);
CREATE INDEX totp_credentials_user ON totp_credentials (user_id);

CREATE TABLE recovery_codes (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	hash       BLOB    NOT NULL,
	created_at INTEGER NOT NULL,
	used_at    INTEGER,
	UNIQUE (user_id, hash)
);

CREATE TABLE sessions (
	id           TEXT    PRIMARY KEY, -- keyed hash of the cookie token
	user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	state        TEXT    NOT NULL,
	amr          TEXT    NOT NULL,
	password_at  INTEGER NOT NULL,
	mfa_at       INTEGER,
	created_at   INTEGER NOT NULL,
	last_seen_at INTEGER NOT NULL,
	expires_at   INTEGER NOT NULL,
	ip           TEXT    NOT NULL,
	user_agent   TEXT    NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE throttles (
	key             TEXT    PRIMARY KEY,
	failures        INTEGER NOT NULL,
	last_failure_at INTEGER NOT NULL
);

CREATE TABLE settings (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);

CREATE TABLE audit_events (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	time       INTEGER NOT NULL,
	user_id    INTEGER NOT NULL,
	username   TEXT    NOT NULL,
	action     TEXT    NOT NULL,
	outcome    TEXT    NOT NULL,
	ip         TEXT    NOT NULL,
	user_agent TEXT    NOT NULL,
	detail     TEXT    NOT NULL,
	ticket_id  INTEGER NOT NULL,
	prev_hash  BLOB    NOT NULL,
	hash       BLOB    NOT NULL
);
CREATE INDEX audit_events_user ON audit_events (user_id);

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
	SELECT RAISE(ABORT, 'audit events are append-only');
END;

CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
	SELECT RAISE(ABORT, 'audit events are append-only');
END;
