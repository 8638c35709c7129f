-- Security keys and passkeys (WebAuthn), and the unfinished ceremonies that add or use them.
CREATE TABLE webauthn_credentials (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	name          TEXT    NOT NULL,
	credential_id BLOB    NOT NULL UNIQUE, -- a credential ID registered twice is refused
	data          BLOB    NOT NULL,        -- the library's credential record, JSON
	sign_count    INTEGER NOT NULL DEFAULT 0,
	discoverable  BOOLEAN NOT NULL DEFAULT 0,
	clone_warning BOOLEAN NOT NULL DEFAULT 0,
	created_at    INTEGER NOT NULL,
	last_used_at  INTEGER
);
CREATE INDEX webauthn_credentials_user ON webauthn_credentials (user_id);

-- Single use: taking a ceremony deletes it.
CREATE TABLE webauthn_ceremonies (
	id         TEXT    PRIMARY KEY, -- 128 random bits, hex
	kind       TEXT    NOT NULL,    -- register | login | passkey | confirm
	user_id    INTEGER NOT NULL DEFAULT 0,
	session_id TEXT    NOT NULL DEFAULT '',
	data       BLOB    NOT NULL,
	expires_at INTEGER NOT NULL
);
CREATE INDEX webauthn_ceremonies_expiry ON webauthn_ceremonies (expires_at);
