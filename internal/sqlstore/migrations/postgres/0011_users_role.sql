-- The setup check at start (is there an administrator?) and the admin console filter users by
-- role; without an index each is a full scan (474 ms at start with a million users).
CREATE INDEX users_role ON users (role);
