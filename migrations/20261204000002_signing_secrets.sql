-- Each client app's notification signing secrets. A rotation adds a secret and gives the ones
-- before it an end (`expires_at`, after the overlap); every secret not yet ended signs each
-- notification. Kept in plaintext: signing needs them.
CREATE TABLE signing_secrets (
    id            bigserial PRIMARY KEY,
    client_app_id uuid NOT NULL REFERENCES client_apps (id),
    secret        text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz
);
CREATE INDEX signing_secrets_client_app_id ON signing_secrets (client_app_id);
