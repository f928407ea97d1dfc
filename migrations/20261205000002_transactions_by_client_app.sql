-- A client app's transactions in (created_at, id) order: the list endpoint's cursor walks it,
-- so a page costs the same wherever it starts. Neither column changes after the insert, so
-- updates of a row stay HOT.
CREATE INDEX transactions_client_app_created ON transactions (client_app_id, created_at, id);
