-- The user an authorization request's id_token_hint names (its sub), 0 without a hint: with
-- prompt=none, a browser signed in as someone else gets login_required (OIDC Core §3.1.2.1).
-- No foreign key: the hint is only compared, and its user may be gone.
ALTER TABLE oidc_auth_requests ADD COLUMN hint_user_id BIGINT NOT NULL DEFAULT 0;
