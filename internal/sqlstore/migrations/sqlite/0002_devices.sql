-- Latch devices: app installations bound to a user by an ECDSA public key, their one-time
-- activation codes, the nonces of their signed requests and the push challenges sent to them.
-- Device IDs in other tables carry no foreign key: answered challenges outlive their device
-- as history, and the store deletes what belongs to a device itself (DeleteDevice).
CREATE TABLE devices (
	id                 INTEGER PRIMARY KEY AUTOINCREMENT,
	user_id            INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	name               TEXT    NOT NULL,
	platform           TEXT    NOT NULL,
	public_key         BLOB    NOT NULL UNIQUE, -- PKIX DER
	state              TEXT    NOT NULL,        -- active | pending
	is_primary         BOOLEAN NOT NULL DEFAULT 0,
	totp_credential_id INTEGER,                 -- NULL while pending
	created_at         INTEGER NOT NULL,
	last_used_at       INTEGER,
	key_changed_at     INTEGER NOT NULL
);
CREATE INDEX devices_user ON devices (user_id);
-- At most one primary device per user; the store keeps it exactly one among active devices.
CREATE UNIQUE INDEX devices_one_primary ON devices (user_id) WHERE is_primary;

CREATE TABLE device_activations (
	id             TEXT    PRIMARY KEY, -- keyed hash of the code, hex
	user_id        INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	kind           TEXT    NOT NULL,    -- activation | transfer
	device_id      INTEGER NOT NULL DEFAULT 0,
	needs_approval BOOLEAN NOT NULL DEFAULT 0,
	created_at     INTEGER NOT NULL,
	expires_at     INTEGER NOT NULL,
	used_at        INTEGER
);
CREATE INDEX device_activations_user ON device_activations (user_id);
CREATE INDEX device_activations_expires ON device_activations (expires_at);

CREATE TABLE device_nonces (
	device_id  INTEGER NOT NULL,
	nonce      TEXT    NOT NULL,
	expires_at INTEGER NOT NULL,
	PRIMARY KEY (device_id, nonce)
);
CREATE INDEX device_nonces_expires ON device_nonces (expires_at);

CREATE TABLE push_challenges (
	id                TEXT    PRIMARY KEY, -- 128 random bits, hex
	user_id           INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	device_id         INTEGER NOT NULL,
	kind              TEXT    NOT NULL,    -- login | add_device
	session_id        TEXT    NOT NULL DEFAULT '',
	subject_device_id INTEGER NOT NULL DEFAULT 0,
	number            TEXT    NOT NULL,
	application       TEXT    NOT NULL,
	browser           TEXT    NOT NULL,
	ip                TEXT    NOT NULL,
	created_at        INTEGER NOT NULL,
	expires_at        INTEGER NOT NULL,
	state             TEXT    NOT NULL,    -- pending | approved | denied
	reason            TEXT    NOT NULL DEFAULT '',
	answered_at       INTEGER,
	completed_at      INTEGER
);
CREATE INDEX push_challenges_user ON push_challenges (user_id);
CREATE INDEX push_challenges_device ON push_challenges (device_id, state, expires_at);
CREATE INDEX push_challenges_subject ON push_challenges (subject_device_id) WHERE subject_device_id <> 0;
CREATE INDEX push_challenges_expires ON push_challenges (expires_at);

-- The device whose offline codes a TOTP credential gives; NULL for a standalone app.
ALTER TABLE totp_credentials ADD COLUMN device_id INTEGER;
CREATE INDEX totp_credentials_device ON totp_credentials (device_id) WHERE device_id IS NOT NULL;
