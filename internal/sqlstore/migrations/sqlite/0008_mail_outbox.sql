-- The persisted mail outbox: every notification is stored here first and delivered by a
-- background worker with retries, so a mail server that is down loses no message.
-- next_at is when the message is due; a worker that claims it moves next_at to the end of
-- its lease and sets claim, so a message held by a worker that died is due again later.
-- Bodies are deleted (set to NULL) once the message is sent or given up on: mails can carry
-- one-time links.
CREATE TABLE mail_outbox (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	recipient  TEXT    NOT NULL,
	subject    TEXT    NOT NULL,
	body_text  TEXT,             -- NULL once sent or failed
	body_html  TEXT,             -- NULL once sent or failed
	headers    TEXT    NOT NULL DEFAULT '', -- extra header fields (threading), a JSON object or ''
	state      TEXT    NOT NULL, -- pending | sent | failed
	attempts   INTEGER NOT NULL DEFAULT 0,
	claim      TEXT,             -- the worker's claim while it holds the message
	next_at    INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	done_at    INTEGER,          -- when it was sent or given up on
	last_error TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX mail_outbox_due ON mail_outbox (state, next_at);
