-- The audit trail's chain moves out of the transactions that append to it (auditchain.go).
-- Until now every audited transaction of every node took one advisory lock, read the last
-- entry's hash and held the lock to its commit: three to four round trips to the database,
-- one transaction at a time for the whole deployment. Now a transaction inserts its entry
-- unchained with a row in audit_pending, and the chainer of whichever node gets the lock
-- first chains every pending entry in one transaction: audit_chain holds each entry's place
-- (seq, one after the other), the previous place's hash and its own.
--
-- The entries chained so far keep their place: seq is their ID (they were chained in ID
-- order), and their hashes are copied. New entries keep prev_hash and hash NULL in
-- audit_events; audit_chain holds them.
CREATE TABLE audit_chain (
	seq       BIGINT PRIMARY KEY,
	event_id  BIGINT NOT NULL UNIQUE REFERENCES audit_events (id),
	prev_hash BYTEA  NOT NULL,
	hash      BYTEA  NOT NULL
);
INSERT INTO audit_chain (seq, event_id, prev_hash, hash) SELECT id, id, prev_hash, hash FROM audit_events;
ALTER TABLE audit_events ALTER COLUMN prev_hash DROP NOT NULL, ALTER COLUMN hash DROP NOT NULL;

CREATE TRIGGER audit_chain_no_update BEFORE UPDATE ON audit_chain
	FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_chain_no_delete BEFORE DELETE ON audit_chain
	FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

-- The entries waiting for the chainer: inserted with the entry, deleted once it is chained.
CREATE TABLE audit_pending (
	event_id BIGINT PRIMARY KEY REFERENCES audit_events (id)
);
