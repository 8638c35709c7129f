-- Each signed device request sweeps that device's expired nonces. Without an index on
-- (device_id, expires_at) the sweep reads every live nonce of the device (the primary key's
-- prefix): a device making many requests paid for all of them at each one.
CREATE INDEX device_nonces_device_expires ON device_nonces (device_id, expires_at);
