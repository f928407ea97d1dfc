//! Who is calling: the client app behind `Authorization: Bearer <api key>`.
//!
//! A key's stored grant is looked up in Postgres at most once per `AUTH_CACHE_MS` per key id
//! (refusals too), in a bounded in-memory cache, so a revocation takes effect within that time
//! and a flood of bad keys costs Postgres one query per key id per interval. When Postgres
//! cannot answer, the last grant read for the key is used (logged): acceptance does not stop
//! for keys already known while the database is away.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{extract::FromRequestParts, http::request::Parts};
use chrono::{DateTime, Utc};
use domain::{
    ClientAppId, ClientStatus,
    client_app::{Pepper, PresentedKey, RateLimit},
};
use store::{KeyGrant, Store};

use crate::{app::Shared, problem::ApiError};

/// Most key ids remembered at once.
const CACHE_CAPACITY: u64 = 100_000;

/// How long a grant read before may stand in while Postgres does not answer.
const STALE_FOR: Duration = Duration::from_secs(600);

/// Why a presented key does not grant access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Malformed, unknown, wrong secret, expired or revoked: 401.
    Unauthenticated,
    /// The client app is disabled: 403.
    Disabled,
}

/// The one rule: whether `key`, whose stored grant is `grant`, may act at `now`, and for whom.
pub fn decide(
    pepper: &Pepper,
    key: &PresentedKey<'_>,
    grant: Option<&KeyGrant>,
    now: DateTime<Utc>,
) -> Result<ClientAppId, Refusal> {
    let grant = grant.ok_or(Refusal::Unauthenticated)?;
    // The secret is checked before anything about the key is told apart.
    if !pepper.verifies(key, &grant.hash)
        || grant.revoked_at.is_some()
        || grant.expires_at.is_some_and(|at| at <= now)
    {
        return Err(Refusal::Unauthenticated);
    }
    match grant.status {
        ClientStatus::Active => Ok(grant.client_app_id),
        ClientStatus::Disabled => Err(Refusal::Disabled),
    }
}

/// A grant as read (or found absent) at a moment.
#[derive(Debug)]
struct Looked {
    at: Instant,
    grant: Option<KeyGrant>,
}

/// Authenticates API keys against the store, through the cache.
pub struct Authenticator {
    store: Store,
    pepper: Pepper,
    fresh_for: Duration,
    cache: moka::sync::Cache<String, Arc<Looked>>,
}

impl Authenticator {
    /// Keys checked under `pepper`, each grant read again after `fresh_for`.
    pub fn new(store: Store, pepper: Pepper, fresh_for: Duration) -> Self {
        let cache = moka::sync::Cache::builder()
            .max_capacity(CACHE_CAPACITY)
            .time_to_live(STALE_FOR.max(fresh_for))
            .build();
        Self {
            store,
            pepper,
            fresh_for,
            cache,
        }
    }

    /// The client app the bearer `token` speaks for, with its rate limit.
    pub async fn client_app(&self, token: Option<&str>) -> Result<Caller, ApiError> {
        let token = token.ok_or(ApiError::Unauthenticated)?;
        let key = PresentedKey::parse(token).map_err(|_| ApiError::Unauthenticated)?;
        let looked = self.grant(key.key_id).await?;
        let client_app =
            decide(&self.pepper, &key, looked.grant.as_ref(), Utc::now()).map_err(|r| match r {
                Refusal::Unauthenticated => ApiError::Unauthenticated,
                Refusal::Disabled => ApiError::Forbidden,
            })?;
        let limit = looked.grant.as_ref().and_then(|g| g.rate_limit);
        Ok(Caller { client_app, limit })
    }

    /// The grant of `key_id`: from the cache while fresh, else from Postgres; the last one
    /// read while Postgres fails.
    async fn grant(&self, key_id: &str) -> Result<Arc<Looked>, ApiError> {
        let cached = self.cache.get(key_id);
        if let Some(looked) = cached.as_ref().filter(|l| l.at.elapsed() < self.fresh_for) {
            return Ok(looked.clone());
        }
        match self.store.key_grant(key_id).await {
            Ok(grant) => {
                if grant.is_some() {
                    self.touch(key_id);
                }
                let looked = Arc::new(Looked {
                    at: Instant::now(),
                    grant,
                });
                self.cache.insert(key_id.to_string(), looked.clone());
                Ok(looked)
            }
            Err(e) => match cached {
                Some(stale) => {
                    tracing::warn!(key_id, error = %e, "Postgres did not answer for an API key; its last known grant stands");
                    Ok(stale)
                }
                None => Err(e.into()),
            },
        }
    }

    /// Records the key's use in the background (the store writes at most once a minute).
    fn touch(&self, key_id: &str) {
        let (store, key_id) = (self.store.clone(), key_id.to_string());
        tokio::spawn(async move {
            if let Err(e) = store.touch_key(&key_id).await {
                tracing::debug!(key_id, error = %e, "key use not recorded");
            }
        });
    }
}

/// The client app making the request, and its POST rate limit: 401 without a valid key, 403
/// when it is disabled.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    /// The client app.
    pub client_app: ClientAppId,
    /// Its rate limit, if any.
    pub limit: Option<RateLimit>,
}

impl FromRequestParts<Shared> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiError> {
        let token = service::bearer::bearer_token(&parts.headers);
        state.auth.client_app(token).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(pepper: &Pepper) -> (String, KeyGrant) {
        let key = pepper.new_key();
        let grant = KeyGrant {
            client_app_id: ClientAppId::generate(),
            hash: key.hash,
            expires_at: None,
            revoked_at: None,
            status: ClientStatus::Active,
            rate_limit: None,
        };
        (key.plaintext, grant)
    }

    #[test]
    fn a_key_grants_its_client_app_unless_anything_is_wrong() {
        let pepper = Pepper::new(&[3u8; 32]).unwrap();
        let now = Utc::now();
        let (plaintext, good) = grant(&pepper);
        let key = PresentedKey::parse(&plaintext).unwrap();
        let hour = chrono::Duration::hours(1);
        let (_, other) = grant(&pepper);
        let cases: Vec<(&str, Option<KeyGrant>, Result<ClientAppId, Refusal>)> = vec![
            ("valid", Some(good.clone()), Ok(good.client_app_id)),
            ("unknown key id", None, Err(Refusal::Unauthenticated)),
            (
                "another key's hash",
                Some(KeyGrant {
                    hash: other.hash.clone(),
                    ..good.clone()
                }),
                Err(Refusal::Unauthenticated),
            ),
            (
                "revoked",
                Some(KeyGrant {
                    revoked_at: Some(now - hour),
                    ..good.clone()
                }),
                Err(Refusal::Unauthenticated),
            ),
            (
                "expired",
                Some(KeyGrant {
                    expires_at: Some(now),
                    ..good.clone()
                }),
                Err(Refusal::Unauthenticated),
            ),
            (
                "expires later",
                Some(KeyGrant {
                    expires_at: Some(now + hour),
                    ..good.clone()
                }),
                Ok(good.client_app_id),
            ),
            (
                "disabled",
                Some(KeyGrant {
                    status: ClientStatus::Disabled,
                    ..good.clone()
                }),
                Err(Refusal::Disabled),
            ),
            (
                "disabled, wrong secret",
                Some(KeyGrant {
                    status: ClientStatus::Disabled,
                    hash: other.hash.clone(),
                    ..good.clone()
                }),
                Err(Refusal::Unauthenticated),
            ),
        ];
        for (case, grant, expected) in cases {
            assert_eq!(
                decide(&pepper, &key, grant.as_ref(), now),
                expected,
                "{case}"
            );
        }
    }
}
