-- Client apps: who may use the API, and who owns each transaction.

CREATE TABLE client_apps (
    id               uuid PRIMARY KEY,
    name             text NOT NULL UNIQUE CHECK (name <> ''),
    -- Where its notifications go; NULL only for `legacy`, whose notifications go to CLIENT_URL.
    notify_url       text,
    status           text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    rate_limit_per_s integer CHECK (rate_limit_per_s > 0),
    burst            integer CHECK (burst > 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- An API key is `txk_<key_id>_<secret>`; of the secret only its HMAC-SHA256 under the server's
-- API_KEY_PEPPER is kept, so this table yields no usable key.
CREATE TABLE api_keys (
    key_id        text PRIMARY KEY,
    client_app_id uuid NOT NULL REFERENCES client_apps (id),
    name          text,
    hash          bytea NOT NULL,
    expires_at    timestamptz,
    -- Written at most once a minute per key.
    last_used_at  timestamptz,
    revoked_at    timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_client_app_id ON api_keys (client_app_id);

-- Every transaction made before client apps existed belongs to `legacy` (the nil id), and so
-- does a `create` job queued before the upgrade, which names no owner.
INSERT INTO client_apps (id, name, notify_url) VALUES ('00000000-0000-0000-0000-000000000000', 'legacy', NULL);
ALTER TABLE transactions
    ADD COLUMN client_app_id uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000'
    REFERENCES client_apps (id);
