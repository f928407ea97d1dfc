//! Where each client app's notifications go: its `notify_url`, signed with each of its valid
//! signing secrets; the client app `legacy` (transactions from before client apps) at
//! `CLIENT_URL` with `CLIENT_WEBHOOK_SECRET`. Read from Postgres at most once per
//! [`FRESH_FOR`] per client app, so a rotated secret or a changed URL is used within it.

use std::{sync::Arc, time::Duration};

use domain::{ClientAppId, ClientStatus, WebhookSecrets};
use outbound::notifier::Endpoint;
use service::config::HttpUrl;
use store::{Destination, Store, StoreError};

/// How long a client app's endpoint is used before it is read again.
pub const FRESH_FOR: Duration = Duration::from_secs(5);

/// Most client apps remembered at once.
const CAPACITY: u64 = 10_000;

/// Where a notification of a client app goes now.
#[derive(Clone)]
pub enum Route {
    /// To this endpoint.
    Deliver(Arc<Endpoint>),
    /// Nowhere yet: the client app is disabled, and its notifications wait.
    Wait,
}

/// Why a client app's endpoint cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// Postgres failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The client app's URL or secrets cannot be used (the message never shows a secret).
    #[error("client app {0}: {1}")]
    Unusable(ClientAppId, String),
}

/// The routes of every client app, cached.
pub struct Destinations {
    store: Store,
    legacy: Arc<Endpoint>,
    cache: moka::sync::Cache<ClientAppId, Route>,
}

impl Destinations {
    /// Routes read from `store`; `legacy`'s notifications go to `client_url`, signed with
    /// `secrets`.
    pub fn new(store: Store, client_url: &HttpUrl, secrets: &WebhookSecrets) -> Self {
        Self {
            store,
            legacy: Arc::new(Endpoint::new(client_url, secrets)),
            cache: moka::sync::Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(FRESH_FOR)
                .build(),
        }
    }

    /// Where `owner`'s notifications go now.
    pub async fn route(&self, owner: ClientAppId) -> Result<Route, RouteError> {
        if let Some(route) = self.cache.get(&owner) {
            return Ok(route);
        }
        let found = self.store.destinations(&[owner]).await?.pop();
        let destination =
            found.ok_or_else(|| RouteError::Unusable(owner, "no such client app".to_string()))?;
        let route = route_of(&destination, &self.legacy)?;
        self.cache.insert(owner, route.clone());
        Ok(route)
    }
}

/// The one rule: a disabled client app waits; one without a URL is `legacy`; otherwise its URL
/// with each of its secrets.
fn route_of(destination: &Destination, legacy: &Arc<Endpoint>) -> Result<Route, RouteError> {
    let owner = destination.client_app_id;
    if destination.status == ClientStatus::Disabled {
        return Ok(Route::Wait);
    }
    let Some(url) = &destination.notify_url else {
        return Ok(Route::Deliver(legacy.clone()));
    };
    let url: HttpUrl = url
        .parse()
        .map_err(|e| RouteError::Unusable(owner, format!("notify URL: {e}")))?;
    let secrets = WebhookSecrets::parse(&destination.secrets.join(","))
        .map_err(|e| RouteError::Unusable(owner, format!("signing secrets: {e}")))?;
    Ok(Route::Deliver(Arc::new(Endpoint::new(&url, &secrets))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn destination(status: ClientStatus, url: Option<&str>, secrets: usize) -> Destination {
        Destination {
            client_app_id: ClientAppId::generate(),
            notify_url: url.map(str::to_string),
            status,
            secrets: (0..secrets)
                .map(|_| WebhookSecrets::generate().expose())
                .collect(),
        }
    }

    #[test]
    fn each_client_app_is_routed_by_its_status_url_and_secrets() {
        let legacy = Arc::new(Endpoint::new(
            &"http://legacy".parse().unwrap(),
            &WebhookSecrets::generate(),
        ));
        let route = |d: &Destination| route_of(d, &legacy);
        let url = Some("https://shop.example");
        assert!(matches!(
            route(&destination(ClientStatus::Disabled, url, 1)),
            Ok(Route::Wait)
        ));
        assert!(matches!(
            route(&destination(ClientStatus::Active, None, 0)),
            Ok(Route::Deliver(e)) if Arc::ptr_eq(&e, &legacy)
        ));
        assert!(matches!(
            route(&destination(ClientStatus::Active, url, 2)),
            Ok(Route::Deliver(e)) if !Arc::ptr_eq(&e, &legacy)
        ));
        assert!(matches!(
            route(&destination(ClientStatus::Active, url, 0)),
            Err(RouteError::Unusable(..))
        ));
        assert!(matches!(
            route(&destination(ClientStatus::Active, Some("ftp://x"), 1)),
            Err(RouteError::Unusable(..))
        ));
    }
}
