//! The HTTP client that tells a client app about a status: `POST {its notify URL}/transactions/{id}/status`,
//! signed with each of its secrets, with the notification's delivery id as `webhook-id` (the same on every retry).

use std::time::{Duration, Instant, SystemTime};

use domain::{
    DeliveryId, Status, TransactionId, WebhookSecrets,
    answer::{Answer, CallError, classify},
    signature::Signer,
};
use serde::Serialize;
use service::config::HttpUrl;

use crate::http_client::{traced_send, transport_error};

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

    /// Sends one delivery attempt to `to`, timing it.
    pub async fn notify(
        &self,
        to: &Endpoint,
        delivery_id: DeliveryId,
        id: TransactionId,
        status: Status,
    ) -> Sent {
        let started_at = SystemTime::now();
        let clock = Instant::now();
        let (http_status, result) = self.send(to, delivery_id, id, status).await;
        Sent {
            started_at,
            took: clock.elapsed(),
            http_status,
            result,
        }
    }

    async fn send(
        &self,
        to: &Endpoint,
        delivery_id: DeliveryId,
        id: TransactionId,
        status: Status,
    ) -> (Option<u16>, Result<(), NotifyError>) {
        let body = match serde_json::to_vec(&StatusNotification { id, status }) {
            Ok(body) => body,
            Err(e) => {
                let reason = e.to_string();
                let error = CallError::Transient {
                    reason,
                    retry_after: None,
                };
                return (None, Err(error));
            }
        };
        let headers = to.signer.headers_now(&delivery_id.to_string(), &body);
        let request = self
            .http
            .post(format!("{}/transactions/{id}/status", to.base_url))
            .headers(headers)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body);
        let response = match traced_send(request, "client app: notify").await {
            Ok(response) => response,
            Err(e) => return (None, Err(transport_error(&e))),
        };
        let code = response.status().as_u16();
        let result = match classify(code, response.headers(), SystemTime::now()) {
            Answer::Success => Ok(()),
            Answer::NotFound => Err(CallError::Refused(404)),
            Answer::Conflict => Err(CallError::Refused(409)),
            Answer::Failed(e) => Err(e),
        };
        (Some(code), result)
    }
}

/// One delivery attempt as it went: when it began, how long it took, what came back.
#[derive(Debug)]
pub struct Sent {
    /// When the call began.
    pub started_at: SystemTime,
    /// How long it took.
    pub took: Duration,
    /// The client's HTTP status, if it answered.
    pub http_status: Option<u16>,
    /// Whether the client accepted it.
    pub result: Result<(), NotifyError>,
}
