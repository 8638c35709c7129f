-- When the activation mail of an invitation could not be sent (handed over for sending), in
-- microseconds; NULL when it was, or nothing is known. The admin console and the support desk
-- then say that the user has no link, not when it expires. A new link is a new row: NULL.
ALTER TABLE invitations ADD COLUMN mail_failed_at BIGINT;
