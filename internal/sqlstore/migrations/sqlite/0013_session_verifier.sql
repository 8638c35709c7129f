-- A session cookie is now "selector.verifier" (two random parts): sessions.id stays the
-- keyed hash of the selector, and verifier holds the keyed hash of the verifier, compared by
-- internal/login in constant time. Rotating a session after its second factor gives it a
-- new verifier and leaves its ID, so that the rotation writes the row alone, not the ID's
-- index (on SQLite, at a random page, twice). '' is a session whose cookie has no verifier:
-- one issued before this migration, still valid until it rotates.
ALTER TABLE sessions ADD COLUMN verifier TEXT NOT NULL DEFAULT '';
