-- The public ID (sid) of the session that made an activation code: a rollout sign-in, which
-- the user finishes after activating Latch elsewhere, is signed in only when a code it made
-- itself was redeemed ('' for codes made before this migration: none counts).
ALTER TABLE device_activations ADD COLUMN flow_sid TEXT NOT NULL DEFAULT '';
