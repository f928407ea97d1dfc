//! The `client_apps` and `api_keys` tables: who may use the API.

use chrono::{DateTime, Utc};
use domain::{ClientAppId, ClientStatus, client_app::NewKey};
use serde::Serialize;
use sqlx::{Row, postgres::PgRow};

use crate::{
    Store, StoreError,
    rows::{self, id, named},
};

/// A client app as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ClientApp {
    /// Its id.
    #[schema(value_type = uuid::Uuid)]
    pub id: ClientAppId,
    /// Its unique name.
    pub name: String,
    /// Where its notifications go (`None`: the `legacy` client app).
    pub notify_url: Option<String>,
    /// Whether its keys work.
    #[schema(value_type = String, example = "active", pattern = "^(active|disabled)$")]
    pub status: ClientStatus,
    /// Its sustained POST rate, if limited.
    pub rate_limit_per_s: Option<i32>,
    /// Its burst, if limited.
    pub burst: Option<i32>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When its endpoint last accepted a notification.
    pub last_success_at: Option<DateTime<Utc>>,
    /// Since when every delivery attempt to it has failed (none while the latest succeeded).
    pub failing_since: Option<DateTime<Utc>>,
}

/// What a new client app is made of.
#[derive(Debug, Clone)]
pub struct NewClientApp<'a> {
    /// Its unique name.
    pub name: &'a str,
    /// Where its notifications go.
    pub notify_url: &'a str,
    /// Its sustained POST rate, if limited.
    pub rate_limit_per_s: Option<i32>,
    /// Its burst, if limited.
    pub burst: Option<i32>,
}

/// An API key as stored, without its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct KeyInfo {
    /// Its public id.
    pub key_id: String,
    /// Its owner.
    #[schema(value_type = uuid::Uuid)]
    pub client_app_id: ClientAppId,
    /// Its name, if given.
    pub name: Option<String>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it was last used (to the minute).
    pub last_used_at: Option<DateTime<Utc>>,
}

/// Where a client app's notifications go and what signs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The client app.
    pub client_app_id: ClientAppId,
    /// Its endpoint (`None`: `legacy`, whose notifications go to `CLIENT_URL`).
    pub notify_url: Option<String>,
    /// Whether it is active (a disabled client app's notifications wait).
    pub status: ClientStatus,
    /// Its signing secrets still valid, newest first; each signs every notification.
    pub secrets: Vec<String>,
}

/// What authentication needs of a key: its hash, its validity, its owner's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyGrant {
    /// The owner.
    pub client_app_id: ClientAppId,
    /// The keyed hash of the key's secret.
    pub hash: Vec<u8>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The owner's status.
    pub status: ClientStatus,
    /// The owner's POST rate limit, if any.
    pub rate_limit: Option<domain::client_app::RateLimit>,
}

impl TryFrom<&PgRow> for ClientApp {
    type Error = StoreError;
    fn try_from(r: &PgRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: id(r, "id")?,
            name: r.try_get("name")?,
            notify_url: r.try_get("notify_url")?,
            status: named(r, "status")?,
            rate_limit_per_s: r.try_get("rate_limit_per_s")?,
            burst: r.try_get("burst")?,
            created_at: r.try_get("created_at")?,
            last_success_at: r.try_get("last_success_at")?,
            failing_since: r.try_get("failing_since")?,
        })
    }
}

impl TryFrom<&PgRow> for KeyInfo {
    type Error = StoreError;
    fn try_from(r: &PgRow) -> Result<Self, StoreError> {
        Ok(Self {
            key_id: r.try_get("key_id")?,
            client_app_id: id(r, "client_app_id")?,
            name: r.try_get("name")?,
            expires_at: r.try_get("expires_at")?,
            revoked_at: r.try_get("revoked_at")?,
            last_used_at: r.try_get("last_used_at")?,
        })
    }
}

/// What else a change of status to `$n` sets, in every statement that changes one: enabled
/// again, its failures so far no longer count towards disabling it.
macro_rules! status_change_sql {
    ($n:literal) => {
        concat!(
            "failing_since = CASE WHEN ",
            $n,
            " = 'active' THEN NULL ELSE failing_since END"
        )
    };
}

const CLIENT_APP_COLUMNS: &str = "id, name, notify_url, status, rate_limit_per_s, burst, created_at, last_success_at, failing_since";

/// A name already taken, or a client app that does not exist.
#[derive(Debug, thiserror::Error)]
pub enum ClientsError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another client app has this name.
    #[error("a client app named {0:?} exists")]
    NameTaken(String),
    /// No client app has this id.
    #[error("no client app {0}")]
    UnknownClientApp(ClientAppId),
    /// A key given in full is not of the key shape.
    #[error(transparent)]
    MalformedKey(#[from] domain::client_app::MalformedKey),
}

impl From<sqlx::Error> for ClientsError {
    fn from(e: sqlx::Error) -> Self {
        ClientsError::Store(e.into())
    }
}

impl Store {
    /// Makes a client app with its first key and its first signing secret.
    pub async fn create_client_app(
        &self,
        new: &NewClientApp<'_>,
        key: &NewKey,
        signing_secret: &str,
    ) -> Result<ClientApp, ClientsError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "INSERT INTO client_apps (id, name, notify_url, rate_limit_per_s, burst)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING
             RETURNING {CLIENT_APP_COLUMNS}"
        ))
        .bind(ClientAppId::generate().as_uuid())
        .bind(new.name)
        .bind(new.notify_url)
        .bind(new.rate_limit_per_s)
        .bind(new.burst)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ClientsError::NameTaken(new.name.to_string()))?;
        let app = ClientApp::try_from(&row)?;
        insert_key(&mut tx, app.id, key, Some("first"), None).await?;
        insert_secret(&mut tx, app.id, signing_secret).await?;
        tx.commit().await?;
        Ok(app)
    }

    /// Makes sure a client app `name` exists with `key` among its keys and `signing_secret`
    /// among its secrets (a development bootstrap: run at every start, it changes nothing the
    /// second time).
    pub async fn ensure_client_app(
        &self,
        new: &NewClientApp<'_>,
        key: &NewKey,
        signing_secret: &str,
    ) -> Result<ClientApp, ClientsError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO client_apps (id, name, notify_url) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(ClientAppId::generate().as_uuid())
        .bind(new.name)
        .bind(new.notify_url)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(&format!(
            "SELECT {CLIENT_APP_COLUMNS} FROM client_apps WHERE name = $1"
        ))
        .bind(new.name)
        .fetch_one(&mut *tx)
        .await?;
        let app = ClientApp::try_from(&row)?;
        sqlx::query(
            "INSERT INTO api_keys (key_id, client_app_id, name, hash) VALUES ($1, $2, 'bootstrap', $3)
             ON CONFLICT (key_id) DO UPDATE SET hash = EXCLUDED.hash, revoked_at = NULL
             WHERE api_keys.client_app_id = EXCLUDED.client_app_id",
        )
        .bind(&key.key_id)
        .bind(app.id.as_uuid())
        .bind(&key.hash)
        .execute(&mut *tx)
        .await?;
        let known: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM signing_secrets WHERE client_app_id = $1 AND secret = $2
                            AND (expires_at IS NULL OR expires_at > now()))",
        )
        .bind(app.id.as_uuid())
        .bind(signing_secret)
        .fetch_one(&mut *tx)
        .await?;
        if !known {
            insert_secret(&mut tx, app.id, signing_secret).await?;
        }
        tx.commit().await?;
        Ok(app)
    }

    /// Adds `secret` to client app `id`'s signing secrets; the ones before it keep signing for
    /// `overlap`, then end.
    pub async fn rotate_secret(
        &self,
        id: ClientAppId,
        secret: &str,
        overlap: std::time::Duration,
    ) -> Result<(), ClientsError> {
        let mut tx = self.pool.begin().await?;
        ensure_exists(&mut tx, id).await?;
        let overlap_ms = i64::try_from(overlap.as_millis()).unwrap_or(i64::MAX);
        sqlx::query(
            "UPDATE signing_secrets
             SET expires_at = now() + make_interval(secs => $2::double precision / 1000)
             WHERE client_app_id = $1 AND (expires_at IS NULL OR expires_at > now() + make_interval(secs => $2::double precision / 1000))",
        )
        .bind(id.as_uuid())
        .bind(overlap_ms)
        .execute(&mut *tx)
        .await?;
        insert_secret(&mut tx, id, secret).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Where and how the notifications of each of `ids` go: one answer per id found.
    pub async fn destinations(&self, ids: &[ClientAppId]) -> Result<Vec<Destination>, StoreError> {
        let uuids: Vec<uuid::Uuid> = ids.iter().map(ClientAppId::as_uuid).collect();
        let rows = sqlx::query(
            "SELECT c.id, c.notify_url, c.status,
                    coalesce(array_agg(s.secret ORDER BY s.id DESC)
                             FILTER (WHERE s.id IS NOT NULL), '{}') AS secrets
             FROM client_apps c
             LEFT JOIN signing_secrets s ON s.client_app_id = c.id
                  AND (s.expires_at IS NULL OR s.expires_at > now())
             WHERE c.id = ANY($1)
             GROUP BY c.id",
        )
        .bind(&uuids)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Destination {
                    client_app_id: id(r, "id")?,
                    notify_url: r.try_get("notify_url")?,
                    status: named(r, "status")?,
                    secrets: r.try_get("secrets")?,
                })
            })
            .collect()
    }

    /// Every client app, oldest first.
    pub async fn client_apps(&self) -> Result<Vec<ClientApp>, StoreError> {
        self.select_client_apps(None).await
    }

    /// Client app `id`, if it exists.
    pub async fn client_app(&self, id: ClientAppId) -> Result<Option<ClientApp>, StoreError> {
        Ok(self.select_client_apps(Some(id)).await?.pop())
    }

    /// Client app `only`, or every one, oldest first.
    async fn select_client_apps(
        &self,
        only: Option<ClientAppId>,
    ) -> Result<Vec<ClientApp>, StoreError> {
        let sql = format!(
            "SELECT {CLIENT_APP_COLUMNS} FROM client_apps WHERE $1::uuid IS NULL OR id = $1
             ORDER BY created_at, id"
        );
        rows::all_by(&self.pool, &sql, only.map(|id| id.as_uuid())).await
    }

    /// Changes what is given of client app `id`; the client app after, if it exists.
    pub async fn update_client_app(
        &self,
        id: ClientAppId,
        notify_url: Option<&str>,
        rate_limit_per_s: Option<i32>,
        burst: Option<i32>,
        status: Option<ClientStatus>,
    ) -> Result<Option<ClientApp>, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE client_apps SET notify_url = coalesce($2, notify_url),
                    rate_limit_per_s = coalesce($3, rate_limit_per_s), burst = coalesce($4, burst),
                    status = coalesce($5, status), updated_at = now(), {}
             WHERE id = $1 RETURNING {CLIENT_APP_COLUMNS}",
            status_change_sql!("$5")
        ))
        .bind(id.as_uuid())
        .bind(notify_url)
        .bind(rate_limit_per_s)
        .bind(burst)
        .bind(status.map(<&str>::from))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(ClientApp::try_from).transpose()
    }

    /// Disables client app `id` if it is still active and still in the failing period that
    /// began at `since` (an enable or a success since then ends that period, so a decision
    /// reached before it changes nothing); whether it did.
    pub async fn disable_failing(
        &self,
        id: ClientAppId,
        since: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE client_apps SET status = 'disabled', updated_at = now()
             WHERE id = $1 AND status = 'active' AND failing_since = $2",
        )
        .bind(id.as_uuid())
        .bind(since)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// How many client apps are disabled.
    pub async fn disabled_client_apps(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT count(*) FROM client_apps WHERE status = 'disabled'")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Per client app, its notifications still owed and those given up (exhausted or refused).
    pub async fn delivery_counts(
        &self,
    ) -> Result<std::collections::HashMap<ClientAppId, (i64, i64)>, StoreError> {
        let rows: Vec<(uuid::Uuid, i64, i64)> = sqlx::query_as(
            "SELECT t.client_app_id,
                    count(*) FILTER (WHERE n.failed_at IS NULL),
                    count(*) FILTER (WHERE n.failed_at IS NOT NULL)
             FROM notifications n JOIN transactions t ON t.id = n.transaction_id
             WHERE n.delivered_at IS NULL
             GROUP BY t.client_app_id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, owed, given_up)| (ClientAppId::from(id), (owed, given_up)))
            .collect())
    }

    /// The keys of the client apps `ids`, in one query, oldest first.
    pub async fn keys_of(&self, ids: &[ClientAppId]) -> Result<Vec<KeyInfo>, StoreError> {
        let ids: Vec<uuid::Uuid> = ids.iter().map(ClientAppId::as_uuid).collect();
        rows::all_by(
            &self.pool,
            "SELECT key_id, client_app_id, name, expires_at, revoked_at, last_used_at
             FROM api_keys WHERE client_app_id = ANY($1) ORDER BY created_at, key_id",
            ids,
        )
        .await
    }

    /// Adds `key` to client app `id`.
    pub async fn add_key(
        &self,
        id: ClientAppId,
        key: &NewKey,
        name: Option<&str>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<(), ClientsError> {
        let mut tx = self.pool.begin().await?;
        ensure_exists(&mut tx, id).await?;
        insert_key(&mut tx, id, key, name, expires_at).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Revokes key `key_id`; whether it existed (revoking twice keeps the first time).
    pub async fn revoke_key(&self, key_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE key_id = $1",
        )
        .bind(key_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Sets client app `id`'s status; whether it exists.
    pub async fn set_client_status(
        &self,
        id: ClientAppId,
        status: ClientStatus,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(concat!(
            "UPDATE client_apps SET status = $2, updated_at = now(), ",
            status_change_sql!("$2"),
            " WHERE id = $1"
        ))
        .bind(id.as_uuid())
        .bind(<&str>::from(status))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// What authenticating with key `key_id` needs, if the key exists.
    pub async fn key_grant(&self, key_id: &str) -> Result<Option<KeyGrant>, StoreError> {
        let row = sqlx::query(
            "SELECT k.client_app_id, k.hash, k.expires_at, k.revoked_at, c.status,
                    c.rate_limit_per_s, c.burst
             FROM api_keys k JOIN client_apps c ON c.id = k.client_app_id
             WHERE k.key_id = $1",
        )
        .bind(key_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(KeyGrant {
                client_app_id: id(&r, "client_app_id")?,
                hash: r.try_get("hash")?,
                expires_at: r.try_get("expires_at")?,
                revoked_at: r.try_get("revoked_at")?,
                status: named(&r, "status")?,
                rate_limit: domain::client_app::RateLimit::of(
                    r.try_get("rate_limit_per_s")?,
                    r.try_get("burst")?,
                ),
            })
        })
        .transpose()
    }

    /// Records that key `key_id` was used, at most once a minute.
    pub async fn touch_key(&self, key_id: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE api_keys SET last_used_at = now() WHERE key_id = $1
             AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
        )
        .bind(key_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// Fails with `UnknownClientApp` unless client app `id` exists (its row locked for the
/// transaction, so it cannot change under the caller).
async fn ensure_exists(tx: &mut sqlx::PgConnection, id: ClientAppId) -> Result<(), ClientsError> {
    let found = sqlx::query("SELECT 1 FROM client_apps WHERE id = $1 FOR SHARE")
        .bind(id.as_uuid())
        .fetch_optional(tx)
        .await?;
    found.map(|_| ()).ok_or(ClientsError::UnknownClientApp(id))
}

async fn insert_secret(
    tx: &mut sqlx::PgConnection,
    id: ClientAppId,
    secret: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO signing_secrets (client_app_id, secret) VALUES ($1, $2)")
        .bind(id.as_uuid())
        .bind(secret)
        .execute(tx)
        .await?;
    Ok(())
}

async fn insert_key(
    tx: &mut sqlx::PgConnection,
    id: ClientAppId,
    key: &NewKey,
    name: Option<&str>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO api_keys (key_id, client_app_id, name, hash, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&key.key_id)
    .bind(id.as_uuid())
    .bind(name)
    .bind(&key.hash)
    .bind(expires_at)
    .execute(tx)
    .await?;
    Ok(())
}
