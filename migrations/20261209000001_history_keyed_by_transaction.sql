-- History rows are read only by their transaction, in order (`WHERE transaction_id = $1 ORDER
-- BY id`), so (transaction_id, id) is their key. The primary key on `id` alone served no query
-- and cost each of a transaction's history rows a second index entry.
CREATE UNIQUE INDEX transaction_events_key ON transaction_events (transaction_id, id);
ALTER TABLE transaction_events
    DROP CONSTRAINT transaction_events_pkey,
    ADD CONSTRAINT transaction_events_pkey PRIMARY KEY USING INDEX transaction_events_key;
DROP INDEX transaction_events_transaction_id;
