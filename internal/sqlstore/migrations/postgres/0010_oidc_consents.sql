-- Consents to third-party OpenID Connect clients: the scopes a user allowed a client.
CREATE TABLE oidc_consents (
	user_id    BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	client_id  TEXT    NOT NULL REFERENCES oidc_clients (id) ON DELETE CASCADE,
	scopes     TEXT    NOT NULL, -- space-separated
	created_at BIGINT  NOT NULL,
	updated_at BIGINT  NOT NULL,
	PRIMARY KEY (user_id, client_id)
);
