-- The OpenID Connect provider. Lists (redirect URIs, scopes, AMR values) are stored
-- space-separated: none of their items may contain a space.
CREATE TABLE oidc_clients (
	id                        TEXT    PRIMARY KEY,
	name                      TEXT    NOT NULL,
	secret_hash               TEXT    NOT NULL DEFAULT '', -- '' for a public client
	public                    BOOLEAN NOT NULL DEFAULT 0,
	redirect_uris             TEXT    NOT NULL,
	post_logout_redirect_uris TEXT    NOT NULL DEFAULT '',
	first_party               BOOLEAN NOT NULL DEFAULT 0,
	require_mfa               BOOLEAN NOT NULL DEFAULT 0,
	created_at                INTEGER NOT NULL
);

CREATE TABLE oidc_auth_requests (
	id                    TEXT    PRIMARY KEY,
	client_id             TEXT    NOT NULL REFERENCES oidc_clients (id) ON DELETE CASCADE,
	redirect_uri          TEXT    NOT NULL,
	scopes                TEXT    NOT NULL,
	state                 TEXT    NOT NULL,
	nonce                 TEXT    NOT NULL,
	response_type         TEXT    NOT NULL,
	response_mode         TEXT    NOT NULL,
	code_challenge        TEXT    NOT NULL,
	code_challenge_method TEXT    NOT NULL,
	prompt                TEXT    NOT NULL,
	max_age               INTEGER, -- microseconds; NULL when absent
	login_hint            TEXT    NOT NULL,
	acr_values            TEXT    NOT NULL,
	user_id               INTEGER REFERENCES users (id) ON DELETE CASCADE,
	amr                   TEXT    NOT NULL DEFAULT '',
	acr                   TEXT    NOT NULL DEFAULT '',
	auth_time             INTEGER NOT NULL DEFAULT 0,
	code_hash             TEXT    UNIQUE,
	code_expires_at       INTEGER NOT NULL DEFAULT 0,
	code_used_at          INTEGER,
	created_at            INTEGER NOT NULL,
	expires_at            INTEGER NOT NULL
);
CREATE INDEX oidc_auth_requests_expires ON oidc_auth_requests (expires_at);

-- grant_id is the authorization request a token descends from (through any number of
-- refresh-token rotations): a reused code or refresh token revokes the whole grant.
CREATE TABLE oidc_refresh_tokens (
	id         TEXT    PRIMARY KEY, -- SHA-256 of the token
	grant_id   TEXT    NOT NULL,
	client_id  TEXT    NOT NULL REFERENCES oidc_clients (id) ON DELETE CASCADE,
	user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	scopes     TEXT    NOT NULL,
	audience   TEXT    NOT NULL,
	amr        TEXT    NOT NULL,
	acr        TEXT    NOT NULL,
	auth_time  INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	used_at    INTEGER
);
CREATE INDEX oidc_refresh_tokens_grant ON oidc_refresh_tokens (grant_id);
CREATE INDEX oidc_refresh_tokens_user ON oidc_refresh_tokens (user_id);
CREATE INDEX oidc_refresh_tokens_expires ON oidc_refresh_tokens (expires_at);

CREATE TABLE oidc_access_tokens (
	id               TEXT    PRIMARY KEY,
	grant_id         TEXT    NOT NULL,
	client_id        TEXT    NOT NULL REFERENCES oidc_clients (id) ON DELETE CASCADE,
	user_id          INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	scopes           TEXT    NOT NULL,
	audience         TEXT    NOT NULL,
	amr              TEXT    NOT NULL,
	acr              TEXT    NOT NULL,
	auth_time        INTEGER NOT NULL,
	refresh_token_id TEXT    NOT NULL DEFAULT '',
	created_at       INTEGER NOT NULL,
	expires_at       INTEGER NOT NULL
);
CREATE INDEX oidc_access_tokens_grant ON oidc_access_tokens (grant_id);
CREATE INDEX oidc_access_tokens_user ON oidc_access_tokens (user_id);
CREATE INDEX oidc_access_tokens_expires ON oidc_access_tokens (expires_at);

-- Signing keys: the private key is AES-256-GCM sealed with the secrets key, bound to its kid.
CREATE TABLE oidc_signing_keys (
	id          TEXT    PRIMARY KEY,
	algorithm   TEXT    NOT NULL,
	private_key BLOB    NOT NULL,
	public_key  BLOB    NOT NULL,
	created_at  INTEGER NOT NULL,
	retired_at  INTEGER,
	expires_at  INTEGER
);
