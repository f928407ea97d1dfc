-- A foreign key costs every inserted row a trigger that looks up and locks its parent. These
-- three are written on every transaction's path, each from its parent's own row in the same
-- statement (a history entry from the transaction it records, a notification from the status
-- change that owes it, a delivery attempt from the notification it updates), and no row of
-- `transactions` or `notifications` is ever deleted: the keys could never fire. The chaos run
-- checks that no such row is without its parent. `transactions.client_app_id` keeps its key:
-- its value comes from a job.
ALTER TABLE transaction_events DROP CONSTRAINT transaction_events_transaction_id_fkey;
ALTER TABLE notifications DROP CONSTRAINT notifications_transaction_id_fkey;
ALTER TABLE delivery_attempts DROP CONSTRAINT delivery_attempts_delivery_id_fkey;
