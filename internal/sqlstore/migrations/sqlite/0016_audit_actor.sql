-- Who took an action of the admin console or the support desk, beside whom it concerned
-- (user_id, username): until now the actor was only named in the detail's text, so "what did
-- this administrator do?" needed a text search. 0 and '' for a person's own actions, for
-- those with nobody signed in and for every entry before this migration, whose hashes do not
-- cover the actor (latchkey.AuditEvent.ComputeHash). Adding columns is not an update: the
-- append-only triggers stay as they are. The index holds only the entries that have an actor.
ALTER TABLE audit_events ADD COLUMN actor_id INTEGER NOT NULL DEFAULT 0;
ALTER TABLE audit_events ADD COLUMN actor TEXT NOT NULL DEFAULT '';
CREATE INDEX audit_events_actor ON audit_events (actor) WHERE actor <> '';
