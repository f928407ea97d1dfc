-- The sweeper's index moves off the rows the pipeline updates, so those updates can be HOT
-- (heap-only: no new index entries) when the page has room.
--
-- `open_work` holds one narrow row per transaction from its insert until its notification is
-- delivered. `check_at` is when the sweeper should next look at it: set at the insert, moved
-- only by the sweeper (to the transaction's next due time) and lowered by a statement that makes
-- work due earlier than it says. The pipeline's own schedule stays in `transactions` and
-- `notifications`, unindexed.
CREATE TABLE open_work (
    -- No foreign key: its check would cost every insert a look-up; rows are never deleted
    -- from `transactions`, and the sweeper drops an `open_work` row without one.
    id       uuid PRIMARY KEY,
    check_at timestamptz NOT NULL
);
CREATE INDEX open_work_check_at ON open_work (check_at);

INSERT INTO open_work (id, check_at)
SELECT t.id, coalesce(least(t.next_attempt_at, t.next_poll_at,
                            CASE WHEN n.failed_at IS NULL THEN n.next_attempt_at END), now())
FROM transactions t
LEFT JOIN notifications n ON n.transaction_id = t.id
WHERE n.delivered_at IS NULL;

DROP INDEX transactions_next_attempt_at;
DROP INDEX transactions_next_poll_at;
DROP INDEX notifications_owed;

-- Room in each page for the new versions of its rows.
ALTER TABLE transactions SET (fillfactor = 80);
ALTER TABLE notifications SET (fillfactor = 80);
