-- The factor a user chose to be asked for first at sign-in ("totp", "push" or "webauthn:<id>");
-- empty means the default order.
ALTER TABLE users ADD COLUMN primary_factor TEXT NOT NULL DEFAULT '';
