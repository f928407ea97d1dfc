//! Who is calling: the client app behind `Authorization: Bearer <api key>`.
//!
//! A key's stored grant is looked up in Postgres at most once per `AUTH_CACHE_MS` per key id
//! (refusals too; concurrent requests for one key id wait for one look-up), in a bounded
//! in-memory cache, so a revocation takes effect within that time and a flood of bad keys
//! costs Postgres one query per key id per interval. When Postgres cannot answer, the last
//! grant read for the key is used (logged): acceptance does not stop for keys already known
//! while the database is away.

use std::{
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use axum::{extract::FromRequestParts, http::request::Parts};
use chrono::{DateTime, Utc};
use domain::{
    ClientAppId, ClientStatus,
    client_app::{Pepper, PresentedKey, RateLimit, VerifiedSecret},
};
use moka::ops::compute::{CompResult, Op};
use store::{KeyGrant, Store, StoreError};

use crate::{app::Shared, problem::ApiError};

/// Most key ids remembered at once.
const CACHE_CAPACITY: u64 = 100_000;

/// How long a grant read before may stand in while Postgres does not answer.
const STALE_FOR: Duration = Duration::from_secs(600);

/// What an unknown key id's secret is checked against, so that it costs what a wrong secret
/// costs (no timing tells an unknown key id from a known one).
const NO_HASH: [u8; 32] = [0; 32];

/// Why a presented key does not grant access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Malformed, unknown, wrong secret, expired or revoked: 401.
    Unauthenticated,
    /// The client app is disabled: 403.
    Disabled,
}

/// Whether `key`'s secret is the one `grant` stores a hash of; for no grant, the same work
/// against a hash nothing matches.
pub fn secret_matches(pepper: &Pepper, key: &PresentedKey<'_>, grant: Option<&KeyGrant>) -> bool {
    let stored = grant.map_or(&NO_HASH[..], |g| &g.hash[..]);
    pepper.verifies(key, stored) && grant.is_some()
}

/// The one rule: whether a key whose secret did (`secret_ok`) or did not match its stored
/// grant `grant` may act at `now`, and for whom.
pub fn decide(
    secret_ok: bool,
    grant: Option<&KeyGrant>,
    now: DateTime<Utc>,
) -> Result<ClientAppId, Refusal> {
    let grant = grant.ok_or(Refusal::Unauthenticated)?;
    // The secret is checked before anything about the key is told apart.
    if !secret_ok || !unexpired(grant, now) {
        return Err(Refusal::Unauthenticated);
    }
    match grant.status {
        ClientStatus::Active => Ok(grant.client_app_id),
        ClientStatus::Disabled => Err(Refusal::Disabled),
    }
}

/// Neither revoked nor expired at `now`.
fn unexpired(grant: &KeyGrant, now: DateTime<Utc>) -> bool {
    grant.revoked_at.is_none() && grant.expires_at.is_none_or(|at| at > now)
}

/// A grant as read (or found absent) at a moment, with the secret that last verified against
/// it, so that a valid key's next requests compare bytes instead of computing the HMAC again.
#[derive(Debug)]
struct Looked {
    at: Instant,
    grant: Option<KeyGrant>,
    verified: OnceLock<VerifiedSecret>,
}

impl Looked {
    fn read(grant: Option<KeyGrant>) -> Arc<Self> {
        Arc::new(Self {
            at: Instant::now(),
            grant,
            verified: OnceLock::new(),
        })
    }

    /// Whether `key` carries the secret that verified before.
    fn verified_before(&self, key: &PresentedKey<'_>) -> bool {
        self.verified.get().is_some_and(|known| known.matches(key))
    }
}

/// Authenticates API keys against the store, through the cache.
pub struct Authenticator {
    store: Store,
    pepper: Pepper,
    fresh_for: Duration,
    cache: moka::future::Cache<String, Arc<Looked>>,
}

impl Authenticator {
    /// Keys checked under `pepper`, each grant read again after `fresh_for`.
    pub fn new(store: Store, pepper: Pepper, fresh_for: Duration) -> Self {
        let cache = moka::future::Cache::builder()
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
        let (looked, fresh) = self.grant(key.key_id).await?;
        let grant = looked.grant.as_ref();
        let now = Utc::now();
        // Only a usable grant's remembered secret shortcuts the HMAC: every refusal costs one.
        let remembered = grant.is_some_and(|g| unexpired(g, now)) && looked.verified_before(&key);
        let secret_ok = remembered || secret_matches(&self.pepper, &key, grant);
        let client_app = decide(secret_ok, grant, now).map_err(|r| match r {
            Refusal::Unauthenticated => ApiError::Unauthenticated,
            Refusal::Disabled => ApiError::Forbidden,
        })?;
        if !remembered {
            let _ = looked.verified.set(key.remember());
        }
        if fresh {
            self.touch(key.key_id);
        }
        let limit = grant.and_then(|g| g.rate_limit);
        Ok(Caller { client_app, limit })
    }

    /// The grant of `key_id`, and whether it was just read: from the cache while fresh, else
    /// from Postgres (one look-up for every request waiting on the key id); the last one read
    /// while Postgres fails.
    async fn grant(&self, key_id: &str) -> Result<(Arc<Looked>, bool), ApiError> {
        if let Some(looked) = self.cache.get(key_id).await
            && looked.at.elapsed() < self.fresh_for
        {
            return Ok((looked, false));
        }
        let fresh_for = self.fresh_for;
        let computed = self
            .cache
            .entry_by_ref(key_id)
            .and_try_compute_with(|held| async move {
                match held.map(|e| e.into_value()) {
                    // Another request read it while this one waited.
                    Some(looked) if looked.at.elapsed() < fresh_for => Ok::<_, StoreError>(Op::Nop),
                    held => match self.store.key_grant(key_id).await {
                        Ok(grant) => Ok(Op::Put(Looked::read(grant))),
                        Err(e) if held.is_some() => {
                            tracing::warn!(key_id, error = %e, "Postgres did not answer for an API key; its last known grant stands");
                            Ok(Op::Nop)
                        }
                        Err(e) => Err(e),
                    },
                }
            })
            .await?;
        match computed {
            CompResult::Inserted(e) | CompResult::ReplacedWith(e) => Ok((e.into_value(), true)),
            CompResult::Unchanged(e) => Ok((e.into_value(), false)),
            // The look-up above puts a value or keeps the one held; never nothing.
            CompResult::StillNone(_) | CompResult::Removed(_) => Err(ApiError::Internal(
                "the key cache kept no grant".to_string(),
            )),
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
            let secret_ok = secret_matches(&pepper, &key, grant.as_ref());
            assert_eq!(decide(secret_ok, grant.as_ref(), now), expected, "{case}");
        }
    }
}
