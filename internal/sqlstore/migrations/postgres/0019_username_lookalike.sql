-- The username's look-alike key: its UTS #39 skeleton (login.UsernameKey), which no two
-- users share, so that "rnike" cannot be created beside "mike", nor an all-Cyrillic "сосо"
-- beside "coco" (names mixing alphabets were refused already). '' for the users created
-- before this migration until the server's start fills their keys in (sqlstore
-- FillUsernameKeys), and for a user whose key another took first; '' is never compared.
ALTER TABLE users ADD COLUMN username_key TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX users_lookalike ON users (username_key) WHERE username_key <> '';
-- The users still without a key, for the fill to find at once (none, usually).
CREATE INDEX users_without_key ON users (id) WHERE username_key = '';
-- Marks the keys of the users before this migration as still to fill in.
INSERT INTO settings (key, value) VALUES ('username_keys_pending', '1');
