-- The record of every transaction, its history, and the notifications owed to the client.

CREATE TABLE transactions (
    id              uuid PRIMARY KEY,
    status          text NOT NULL CHECK (status IN ('pending', 'completed', 'declined', 'failed')),
    amount          bigint CHECK (amount > 0),
    currency        char(3),
    -- When the third party accepted it; NULL until then.
    submitted_at    timestamptz,
    -- Outbox of the submission: when the next attempt is due (NULL = none owed).
    next_attempt_at timestamptz,
    -- Outbox of polling: the current poll's number and when it is due (NULL = none owed).
    poll_number     integer NOT NULL DEFAULT 0,
    next_poll_at    timestamptz,
    poll_expired_at timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((amount IS NULL) = (currency IS NULL))
);

-- The sweeper's queries: only rows that owe work are indexed.
CREATE INDEX transactions_next_attempt_at ON transactions (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX transactions_next_poll_at ON transactions (next_poll_at) WHERE next_poll_at IS NOT NULL;

CREATE TABLE transaction_events (
    id             bigserial PRIMARY KEY,
    transaction_id uuid NOT NULL REFERENCES transactions (id),
    from_status    text,
    to_status      text NOT NULL,
    source         text NOT NULL CHECK (source IN ('api', 'process', 'webhook', 'poll')),
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX transaction_events_transaction_id ON transaction_events (transaction_id, id);

-- One notification per transaction: only its terminal status is notified.
CREATE TABLE notifications (
    delivery_id     uuid PRIMARY KEY,
    transaction_id  uuid NOT NULL UNIQUE REFERENCES transactions (id),
    status          text NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    next_attempt_at timestamptz,
    delivered_at    timestamptz,
    failed_at       timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notifications_owed ON notifications (next_attempt_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
