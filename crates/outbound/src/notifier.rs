//! The HTTP client that tells a client app about a status: `POST {its notify URL}/transactions/{id}/status`,
//! signed with each of its secrets, with the notification's delivery id as `webhook-id` (the same on every retry).

use std::time::SystemTime;

use domain::{
    DeliveryId, Status, TransactionId, WebhookSecrets,
    answer::{Answer, CallError, classify},
    signature::Signer,
};
use serde::Serialize;
use service::config::HttpUrl;

use crate::http_client::transport_error;

/// Why a notification was not accepted (see `answer` for the rule).
pub type NotifyError = CallError;

/// The body the client receives.
#[derive(Debug, Serialize)]
pub struct StatusNotification {
    /// The transaction.
    pub id: TransactionId,
    /// Its status.
    pub status: Status,
}

/// Where one client app's notifications go, and the secrets that sign them.
pub struct Endpoint {
    base_url: String,
    signer: Signer,
}

impl Endpoint {
    /// The client app at `base_url`, every notification signed with each of `secrets`.
    pub fn new(base_url: &HttpUrl, secrets: &WebhookSecrets) -> Self {
        Self {
            base_url: base_url.as_str().trim_end_matches('/').to_string(),
            signer: Signer::new(secrets),
        }
    }
}

/// The client of every client app's endpoint.
pub struct Notifier {
    http: reqwest::Client,
}

impl Notifier {
    /// A notifier calling with `http`.
    pub fn new(http: reqwest::Client) -> Self {
        Self { http }
    }

    /// Sends one delivery attempt to `to`.
    pub async fn notify(
        &self,
        to: &Endpoint,
        delivery_id: DeliveryId,
        id: TransactionId,
        status: Status,
    ) -> Result<(), NotifyError> {
        let body = serde_json::to_vec(&StatusNotification { id, status }).map_err(|e| {
            CallError::Transient {
                reason: e.to_string(),
                retry_after: None,
            }
        })?;
        let headers = to.signer.headers_now(&delivery_id.to_string(), &body);
        let response = self
            .http
            .post(format!("{}/transactions/{id}/status", to.base_url))
            .headers(headers)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        match classify(
            response.status().as_u16(),
            response.headers(),
            SystemTime::now(),
        ) {
            Answer::Success => Ok(()),
            Answer::NotFound => Err(CallError::Refused(404)),
            Answer::Conflict => Err(CallError::Refused(409)),
            Answer::Failed(e) => Err(e),
        }
    }
}
