-- How a client app's endpoint is doing: its last accepted delivery, and since when every
-- attempt has failed (NULL while the latest one succeeded). A client app failing for
-- DISABLE_AFTER_MS is disabled; enabling it clears `failing_since`.
ALTER TABLE client_apps ADD COLUMN last_success_at timestamptz;
ALTER TABLE client_apps ADD COLUMN failing_since timestamptz;
