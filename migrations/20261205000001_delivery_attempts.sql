-- Every attempt to deliver a notification, append-only: what started it, when, how long it
-- took, and what came back (an HTTP status, or the error of a call that got none). Written in
-- the same statement as the notification's own change.
CREATE TABLE delivery_attempts (
    delivery_id uuid NOT NULL REFERENCES notifications (delivery_id),
    attempt     integer NOT NULL,
    trigger     text NOT NULL CHECK (trigger IN ('scheduled', 'manual', 'recover')),
    started_at  timestamptz NOT NULL,
    duration_ms integer NOT NULL CHECK (duration_ms >= 0),
    http_status smallint,
    error       text CHECK (octet_length(error) <= 512),
    PRIMARY KEY (delivery_id, attempt)
);
