-- Account activations mailed to invited users (admin console). Only a keyed hash of the
-- link's token is stored; using the link deletes the row.
CREATE TABLE invitations (
	hash       TEXT    PRIMARY KEY, -- hex keyed hash of the token
	user_id    INTEGER NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
);
CREATE INDEX invitations_expires ON invitations (expires_at);
