-- Support tickets (issue 6). IDs are the ticket numbers people quote; they start at 1001 so
-- that a number never looks like a count.
CREATE TABLE tickets (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	email         TEXT    NOT NULL,
	username      TEXT    NOT NULL DEFAULT '',
	type          TEXT    NOT NULL,
	subject       TEXT    NOT NULL,
	status        TEXT    NOT NULL DEFAULT 'new',
	tracking_hash BLOB    NOT NULL UNIQUE, -- keyed hash of the tracking token; the token is never stored
	checks        TEXT    NOT NULL DEFAULT '', -- identity checks done, IDs separated by newlines
	checked_by    INTEGER NOT NULL DEFAULT 0,
	checked_at    INTEGER,
	created_at    INTEGER NOT NULL,
	updated_at    INTEGER NOT NULL
);
INSERT INTO sqlite_sequence (name, seq) VALUES ('tickets', 1000);
CREATE INDEX tickets_status ON tickets (status, created_at);
CREATE INDEX tickets_email ON tickets (lower(email), created_at);

CREATE TABLE ticket_messages (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	ticket_id  INTEGER NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
	author     TEXT    NOT NULL, -- requester | agent
	agent_id   INTEGER NOT NULL DEFAULT 0,
	agent_name TEXT    NOT NULL DEFAULT '',
	body       TEXT    NOT NULL,
	created_at INTEGER NOT NULL
);
CREATE INDEX ticket_messages_ticket ON ticket_messages (ticket_id, id);

-- The agent console matches a ticket to an account by its email address.
CREATE INDEX users_email_lower ON users (lower(email));
