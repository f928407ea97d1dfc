-- The submission's spent failure budget: attempts whose outcome was an error or unknown.
-- Throttling (429, 408, 401/403, 503 with Retry-After) does not count, so PROCESS_RETRIES is
-- not spent by a third party that only asked us to wait. Kept on the row, so a revived job
-- starts where the lost one stopped.
ALTER TABLE transactions ADD COLUMN submit_failures integer NOT NULL DEFAULT 0;
