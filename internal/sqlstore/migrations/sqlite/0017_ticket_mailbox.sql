-- The mailbox a ticket's address reaches, in the canonical form the per-address limit counts
-- (support.MailboxKey: the local part case-folded without a +tag, the domain as its IDNA
-- A-label). lower(email) let the same mailbox through under other spellings: Unicode case
-- (SQLite's lower() folds only ASCII), an IDN's U-label and A-label, a +tag, full-width
-- letters. The tickets before this migration get lower(email), their key for an ASCII address
-- without a +tag.
ALTER TABLE tickets ADD COLUMN email_key TEXT NOT NULL DEFAULT '';
UPDATE tickets SET email_key = lower(email);
DROP INDEX tickets_email;
CREATE INDEX tickets_email_key ON tickets (email_key, created_at);
