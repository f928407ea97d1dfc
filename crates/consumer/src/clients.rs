//! Administration of client apps and their API keys: `consumer clients …` on the command line,
//! with `DATABASE_URL` alone, and the development bootstrap of `consumer migrate` and `stack`.
//! Each action is one function of the store; its answer is JSON, printed by the command.

use std::time::Duration;

use crate::destinations::FRESH_FOR;
use chrono::{DateTime, Utc};
use domain::{
    ClientAppId, ClientStatus, WebhookSecrets, client_app::Pepper, delivery::Trigger,
    jobs::NotifyJob,
};
use serde::Serialize;
use serde_json::Value;
use service::{
    config::{DEFAULT_DATABASE_URL, HttpUrl, PostgresUrl},
    secret::parser,
};
use store::{ClientApp, ClientsError, KeyInfo, NewClientApp, Store};
use utoipa::ToSchema;
use uuid::Uuid;

/// `consumer clients …`: administer client apps and their keys, then exit.
#[derive(Debug, clap::Args)]
pub struct ClientsCommand {
    /// The database holding the client apps.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true, value_parser = parser::<PostgresUrl>())]
    pub database_url: PostgresUrl,
    /// Refuse `http://` notify URLs: every client app's endpoint must be `https://`.
    #[arg(long, env = "REQUIRE_HTTPS_NOTIFY", default_value_t = false, action = clap::ArgAction::Set)]
    pub require_https_notify: bool,
    /// What to do.
    #[command(subcommand)]
    pub action: ClientsAction,
}

/// Whether `url` may be a client app's notify URL: `https://` only when `require_https`.
pub fn notify_url_allowed(url: &HttpUrl, require_https: bool) -> Result<(), AdminError> {
    if require_https && !url.as_str().starts_with("https://") {
        return Err(AdminError::Invalid(
            "notify_url: must be https:// (REQUIRE_HTTPS_NOTIFY)".to_string(),
        ));
    }
    Ok(())
}

/// The server secret new keys are hashed under: the producer's `API_KEY_PEPPER`.
#[derive(Debug, Clone, clap::Args)]
pub struct PepperArg {
    /// The producer's API_KEY_PEPPER (keys made under another pepper never verify).
    #[arg(long, env = "API_KEY_PEPPER", hide_env_values = true, value_parser = parser::<Pepper>())]
    pub api_key_pepper: Pepper,
}

/// What `consumer clients` can do.
#[derive(Debug, clap::Subcommand)]
pub enum ClientsAction {
    /// Make a client app with its first API key (shown once, in the answer).
    Create {
        /// A unique name.
        #[arg(long)]
        name: String,
        /// Where its notifications are to go (http or https).
        #[arg(long, value_parser = parser::<HttpUrl>())]
        notify_url: HttpUrl,
        /// Its sustained rate of POSTs per second, if limited.
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
        rate_limit_per_s: Option<i32>,
        /// Its burst (default: one second's rate).
        #[arg(long, requires = "rate_limit_per_s", value_parser = clap::value_parser!(i32).range(1..))]
        burst: Option<i32>,
        /// The pepper.
        #[command(flatten)]
        pepper: PepperArg,
    },
    /// Every client app with its keys (never a secret).
    List,
    /// Make or revoke API keys.
    Keys {
        /// What to do.
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Manage the secrets that sign the client app's notifications.
    Secrets {
        /// What to do.
        #[command(subcommand)]
        action: SecretsAction,
    },
    /// Refuse the client app's keys (403) until it is enabled again.
    Disable {
        /// The client app's id.
        id: Uuid,
    },
    /// Let a disabled client app's keys work again.
    Enable {
        /// The client app's id.
        id: Uuid,
    },
}

/// What `consumer clients keys` can do.
#[derive(Debug, clap::Subcommand)]
pub enum KeysAction {
    /// Add an API key to a client app (shown once, in the answer).
    Create {
        /// The client app's id.
        id: Uuid,
        /// A name for the key.
        #[arg(long)]
        name: Option<String>,
        /// When it stops working (RFC 3339).
        #[arg(long)]
        expires_at: Option<DateTime<Utc>>,
        /// The pepper.
        #[command(flatten)]
        pepper: PepperArg,
    },
    /// Revoke a key: it stops working within the producers' AUTH_CACHE_MS.
    Revoke {
        /// The key's id (the part after `txk_`).
        key_id: String,
    },
}

/// What `consumer clients secrets` can do.
#[derive(Debug, clap::Subcommand)]
pub enum SecretsAction {
    /// Add a new signing secret; the previous ones keep signing for the overlap, so a client
    /// app may switch to the new one at any moment inside it.
    Rotate {
        /// The client app's id.
        id: Uuid,
        /// How long the previous secrets keep signing (ms).
        #[arg(long = "overlap-ms", env = "SECRET_ROTATION_OVERLAP_MS", default_value = "86400000", value_parser = service::config::millis)]
        overlap: Duration,
    },
}

/// Why an administrative action failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The store refused or failed.
    #[error(transparent)]
    Clients(#[from] ClientsError),
    /// No key has this id.
    #[error("no API key {0}")]
    UnknownKey(String),
    /// A value the rules refuse.
    #[error("{0}")]
    Invalid(String),
    /// Redis failed (a recovery's pushes).
    #[error(transparent)]
    Queue(#[from] queue::QueueError),
    /// The answer could not be written as JSON.
    #[error("the answer could not be written: {0}")]
    Answer(#[from] serde_json::Error),
}

impl From<store::StoreError> for AdminError {
    fn from(e: store::StoreError) -> Self {
        AdminError::Clients(e.into())
    }
}

/// Does `command`'s action on `store`; the answer as JSON.
pub async fn run(store: &Store, command: ClientsCommand) -> Result<Value, AdminError> {
    fn json(answer: impl Serialize) -> Result<Value, AdminError> {
        Ok(serde_json::to_value(answer)?)
    }
    match command.action {
        ClientsAction::Create {
            name,
            notify_url,
            rate_limit_per_s,
            burst,
            pepper,
        } => {
            notify_url_allowed(&notify_url, command.require_https_notify)?;
            let new = NewClientApp {
                name: &name,
                notify_url: notify_url.as_str(),
                rate_limit_per_s,
                burst,
            };
            json(create(store, &pepper.api_key_pepper, &new).await?)
        }
        ClientsAction::List => json(list(store).await?),
        ClientsAction::Keys {
            action:
                KeysAction::Create {
                    id,
                    name,
                    expires_at,
                    pepper,
                },
        } => {
            let id = ClientAppId::from(id);
            json(
                add_key(
                    store,
                    &pepper.api_key_pepper,
                    id,
                    name.as_deref(),
                    expires_at,
                )
                .await?,
            )
        }
        ClientsAction::Keys {
            action: KeysAction::Revoke { key_id },
        } => json(revoke(store, &key_id).await?),
        ClientsAction::Secrets {
            action: SecretsAction::Rotate { id, overlap },
        } => json(rotate(store, ClientAppId::from(id), overlap).await?),
        ClientsAction::Disable { id } => json(set_status(store, id, ClientStatus::Disabled).await?),
        ClientsAction::Enable { id } => json(set_status(store, id, ClientStatus::Active).await?),
    }
}

async fn set_status(
    store: &Store,
    id: Uuid,
    status: ClientStatus,
) -> Result<StatusSet, AdminError> {
    let id = ClientAppId::from(id);
    match store.set_client_status(id, status).await? {
        true => Ok(StatusSet { id, status }),
        false => Err(ClientsError::UnknownClientApp(id).into()),
    }
}

/// A client app just made, with its first key and signing secret, both shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    /// The client app.
    #[serde(flatten)]
    pub client_app: ClientApp,
    /// Its first key's id.
    pub key_id: String,
    /// Its first key, `txk_<key id>_<secret>`: shown this once.
    pub api_key: String,
    /// The secret its notifications are signed with (`whsec_…`): shown this once.
    pub signing_secret: String,
}

/// A client app with its keys (never a secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct WithKeys {
    /// The client app.
    pub client_app: ClientApp,
    /// Its keys, oldest first.
    pub keys: Vec<KeyInfo>,
}

/// A key just made, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyMade {
    /// Its client app.
    #[schema(value_type = Uuid)]
    pub client_app_id: ClientAppId,
    /// Its public id.
    pub key_id: String,
    /// The key, `txk_<key id>_<secret>`: shown this once.
    pub api_key: String,
}

/// A key revoked.
#[derive(Debug, Serialize, ToSchema)]
pub struct Revoked {
    /// Its public id.
    pub key_id: String,
    /// Always true.
    pub revoked: bool,
}

/// A new signing secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct Rotated {
    /// Its client app.
    #[schema(value_type = Uuid)]
    pub client_app_id: ClientAppId,
    /// The new secret (`whsec_…`): shown this once.
    pub signing_secret: String,
    /// How long the previous secrets keep signing.
    pub previous_valid_for_ms: u64,
}

/// What a recovery queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct Recovered {
    /// Notifications queued now (one already queued, by an earlier call still in flight or
    /// as an owed notification's retry, is not queued or counted again).
    pub queued: usize,
}

/// Most notifications one recovery queues.
pub const MAX_RECOVER: i64 = 10_000;

/// Every notification of client app `id` created in `[since, until)` that it has not accepted
/// goes out again: a given-up one (exhausted or refused) from now, on a fresh schedule, its
/// attempts logged as `recover`; an owed one whose retry is queued keeps it (one lost from
/// Redis is queued again now). At most [`MAX_RECOVER`] a call, oldest first. A recovery's jobs
/// are the notifications' own (`notify:<delivery id>`), so a second call while they are held,
/// or the sweeper, queues none of them twice.
pub async fn recover(
    store: &Store,
    queues: &jobs::Queues,
    id: ClientAppId,
    since: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
) -> Result<Recovered, AdminError> {
    store
        .client_app(id)
        .await?
        .ok_or(ClientsError::UnknownClientApp(id))?;
    let owed = store
        .recover_notifications(id, since, until, MAX_RECOVER)
        .await?;
    let jobs = owed.iter().map(|due| NotifyJob {
        delivery_id: due.delivery_id,
        id: due.id,
        status: due.status,
        trigger: Trigger::Recover,
        client_app: Some(due.client_app),
        trace: due.trace.clone(),
    });
    let queued = queues.push_all(jobs).await?;
    tracing::info!(client_app = %id, owed = owed.len(), queued, "notifications recovered");
    Ok(Recovered { queued })
}

/// A client app's new status.
#[derive(Debug, Serialize)]
pub struct StatusSet {
    /// The client app.
    pub id: ClientAppId,
    /// Its status now.
    pub status: ClientStatus,
}

/// Makes a client app with its first key and signing secret (both in the answer).
pub async fn create(
    store: &Store,
    pepper: &Pepper,
    new: &NewClientApp<'_>,
) -> Result<Created, AdminError> {
    let key = pepper.new_key();
    let signing_secret = WebhookSecrets::generate().expose();
    let client_app = store.create_client_app(new, &key, &signing_secret).await?;
    Ok(Created {
        client_app,
        key_id: key.key_id,
        api_key: key.plaintext,
        signing_secret,
    })
}

/// Every client app with its keys (never a secret).
pub async fn list(store: &Store) -> Result<Vec<WithKeys>, AdminError> {
    Ok(with_keys(store, store.client_apps().await?).await?)
}

/// One client app with its keys.
pub async fn show(store: &Store, id: ClientAppId) -> Result<WithKeys, AdminError> {
    let client_app = store
        .client_app(id)
        .await?
        .ok_or(ClientsError::UnknownClientApp(id))?;
    let found = with_keys(store, vec![client_app]).await?;
    Ok(found
        .into_iter()
        .next()
        .ok_or(ClientsError::UnknownClientApp(id))?)
}

/// `apps`, each with its keys, read in one query whatever their number.
pub async fn with_keys(
    store: &Store,
    apps: Vec<ClientApp>,
) -> Result<Vec<WithKeys>, store::StoreError> {
    let ids: Vec<ClientAppId> = apps.iter().map(|app| app.id).collect();
    let mut keys: std::collections::HashMap<ClientAppId, Vec<KeyInfo>> = Default::default();
    for key in store.keys_of(&ids).await? {
        keys.entry(key.client_app_id).or_default().push(key);
    }
    Ok(apps
        .into_iter()
        .map(|client_app| WithKeys {
            keys: keys.remove(&client_app.id).unwrap_or_default(),
            client_app,
        })
        .collect())
}

/// What a change of a client app gives (the rest stays).
#[derive(Debug, Default)]
pub struct ClientUpdate<'a> {
    /// A new endpoint.
    pub notify_url: Option<&'a str>,
    /// A new rate.
    pub rate_limit_per_s: Option<i32>,
    /// A new burst.
    pub burst: Option<i32>,
    /// Enabled or disabled.
    pub status: Option<ClientStatus>,
}

/// Changes a client app; the client app after.
pub async fn update(
    store: &Store,
    id: ClientAppId,
    change: &ClientUpdate<'_>,
) -> Result<ClientApp, AdminError> {
    let app = store
        .update_client_app(
            id,
            change.notify_url,
            change.rate_limit_per_s,
            change.burst,
            change.status,
        )
        .await?
        .ok_or(ClientsError::UnknownClientApp(id))?;
    Ok(app)
}

/// Adds a key to client app `id` (shown once, in the answer).
pub async fn add_key(
    store: &Store,
    pepper: &Pepper,
    id: ClientAppId,
    name: Option<&str>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<KeyMade, AdminError> {
    let key = pepper.new_key();
    store.add_key(id, &key, name, expires_at).await?;
    Ok(KeyMade {
        client_app_id: id,
        key_id: key.key_id,
        api_key: key.plaintext,
    })
}

/// Revokes key `key_id`.
pub async fn revoke(store: &Store, key_id: &str) -> Result<Revoked, AdminError> {
    match store.revoke_key(key_id).await? {
        true => Ok(Revoked {
            key_id: key_id.to_string(),
            revoked: true,
        }),
        false => Err(AdminError::UnknownKey(key_id.to_string())),
    }
}

/// A new signing secret for client app `id`; the previous keep signing for `overlap`. The
/// answer comes once every consumer signs with the new secret too (their endpoints are read
/// again within [`FRESH_FOR`]), so the client app may switch to it at once.
pub async fn rotate(
    store: &Store,
    id: ClientAppId,
    overlap: Duration,
) -> Result<Rotated, AdminError> {
    let signing_secret = WebhookSecrets::generate().expose();
    store.rotate_secret(id, &signing_secret, overlap).await?;
    tokio::time::sleep(FRESH_FOR + Duration::from_millis(100)).await;
    let previous_valid_for_ms = u64::try_from(overlap.as_millis()).unwrap_or(u64::MAX);
    Ok(Rotated {
        client_app_id: id,
        signing_secret,
        previous_valid_for_ms,
    })
}

/// The name of the development client app.
pub const DEV_CLIENT_APP: &str = "dev";

/// Makes sure the development client app `dev` exists, notified at `notify_url`, with
/// `api_key` (made under `pepper`) among its keys and `secrets` (the client simulator's)
/// among its signing secrets. For development set-ups only: production bootstraps nothing.
pub async fn ensure_dev(
    store: &Store,
    pepper: &Pepper,
    api_key: &str,
    notify_url: &str,
    secrets: &WebhookSecrets,
) -> Result<ClientApp, ClientsError> {
    let key = pepper.key_from(api_key)?;
    let new = NewClientApp {
        name: DEV_CLIENT_APP,
        notify_url,
        rate_limit_per_s: None,
        burst: None,
    };
    let mut app = None;
    for secret in secrets.each() {
        app = Some(store.ensure_client_app(&new, &key, secret).await?);
    }
    Ok(app.expect("WebhookSecrets holds at least one secret"))
}
