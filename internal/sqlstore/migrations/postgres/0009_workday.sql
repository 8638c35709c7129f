-- The workday session (issue 5): a public session ID, the user's time zone, back-channel
-- logout and the session an OIDC sign-in belongs to.
ALTER TABLE sessions ADD COLUMN sid TEXT NOT NULL DEFAULT '';
UPDATE sessions SET sid = replace(gen_random_uuid()::text, '-', '');
CREATE UNIQUE INDEX sessions_sid ON sessions (sid) WHERE sid <> '';

ALTER TABLE users ADD COLUMN time_zone TEXT NOT NULL DEFAULT '';

ALTER TABLE oidc_clients ADD COLUMN backchannel_logout_uri TEXT NOT NULL DEFAULT '';

-- sid is the Latchkey session a request was completed in and its tokens descend from ('' for
-- data older than this migration): logging out revokes them and notifies the clients.
ALTER TABLE oidc_auth_requests ADD COLUMN sid TEXT NOT NULL DEFAULT '';
ALTER TABLE oidc_refresh_tokens ADD COLUMN sid TEXT NOT NULL DEFAULT '';
ALTER TABLE oidc_access_tokens ADD COLUMN sid TEXT NOT NULL DEFAULT '';
CREATE INDEX oidc_auth_requests_sid ON oidc_auth_requests (sid);
CREATE INDEX oidc_refresh_tokens_sid ON oidc_refresh_tokens (sid);
CREATE INDEX oidc_access_tokens_sid ON oidc_access_tokens (sid);
