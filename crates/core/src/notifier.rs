//! The HTTP client that tells the client app about a status: `POST {CLIENT_URL}/transactions/{id}/status`,
//! signed, with the notification's delivery id as `webhook-id` (the same on every retry).

use std::time::Duration;

use serde::Serialize;
use uuid::Uuid;

use crate::{Status, TransactionId, secret::WebhookSecrets, signature::Signer};

/// Why a notification was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    /// 5xx, a timeout or a connection error: retry later.
    #[error("client unavailable: {0}")]
    Transient(String),
    /// A 4xx: the client will never accept it.
    #[error("client refused the notification: HTTP {0}")]
    Rejected(u16),
}

/// The body the client receives.
#[derive(Debug, Serialize)]
pub struct StatusNotification {
    /// The transaction.
    pub id: TransactionId,
    /// Its status.
    pub status: Status,
}

/// Client of the client app at `base_url`.
pub struct Notifier {
    http: reqwest::Client,
    base_url: String,
    signer: Signer,
}

impl Notifier {
    /// A notifier signing with `secrets`, whose calls time out after `timeout`.
    pub fn new(
        base_url: &str,
        secrets: &WebhookSecrets,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: reqwest::Client::builder().timeout(timeout).build()?,
            base_url: base_url.trim_end_matches('/').to_string(),
            signer: Signer::new(secrets),
        })
    }

    /// Sends one delivery attempt.
    pub async fn notify(
        &self,
        delivery_id: Uuid,
        id: TransactionId,
        status: Status,
    ) -> Result<(), NotifyError> {
        let body = serde_json::to_vec(&StatusNotification { id, status })
            .map_err(|e| NotifyError::Transient(e.to_string()))?;
        let headers = self.signer.headers_now(&delivery_id.to_string(), &body);
        let response = self
            .http
            .post(format!("{}/transactions/{id}/status", self.base_url))
            .headers(headers)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| {
                NotifyError::Transient(if e.is_timeout() {
                    "timeout".into()
                } else {
                    e.to_string()
                })
            })?;
        match response.status().as_u16() {
            200..=299 => Ok(()),
            code if (400..500).contains(&code) => Err(NotifyError::Rejected(code)),
            code => Err(NotifyError::Transient(format!("HTTP {code}"))),
        }
    }
}
