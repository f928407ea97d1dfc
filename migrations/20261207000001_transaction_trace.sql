-- The W3C traceparent of the span that accepted the transaction: work the sweeper revives
-- from the row (an overdue submission, poll or notification) continues that trace. Written
-- once, at insert; no index, so it never stops an update from being HOT.
ALTER TABLE transactions ADD COLUMN trace text;
