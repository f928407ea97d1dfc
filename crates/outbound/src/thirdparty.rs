//! The HTTP client of the third-party processor: look a transaction up, submit it.

use std::time::SystemTime;

use http::{HeaderName, HeaderValue, header::AUTHORIZATION};
use serde::{Deserialize, Serialize};

use domain::{
    Money, Status, TransactionId,
    answer::{Answer, CallError, classify},
};
use service::{config::HttpUrl, secret::Secret};

use crate::http_client::{traced_send, transport_error};

/// What the third party says about an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// It has the transaction, with this status.
    Found(Status),
    /// It has never seen it.
    NotFound,
}

/// Why a call to the third party did not give an answer (see `answer` for the rule).
pub type ThirdPartyError = CallError;

/// `{id, amount?, currency?}`: the money's fields sit beside the id.
#[derive(Serialize)]
struct SubmitBody {
    id: TransactionId,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    money: Option<Money>,
}

#[derive(Deserialize)]
struct StatusBody {
    status: Status,
}

/// How calls prove who we are: `Authorization: Bearer <key>`, or the raw key in a header of
/// the third party's choosing.
#[derive(Debug, Clone)]
pub struct ApiKey {
    /// The key.
    pub key: Secret,
    /// The header carrying the raw key; `None` = `Authorization: Bearer`.
    pub header: Option<HeaderName>,
}

impl ApiKey {
    /// The key of the settings `THIRDPARTY_API_KEY` and `THIRDPARTY_AUTH_HEADER` (a name
    /// already checked by [`header_name`]), if a key is set.
    pub fn from_settings(key: Option<&Secret>, header: Option<&str>) -> Option<Self> {
        key.map(|key| ApiKey {
            key: key.clone(),
            header: header.and_then(|h| h.parse().ok()),
        })
    }

    /// Whether a request's `headers` carry this key as it is sent (the simulator's check).
    pub fn carried_by(&self, headers: &http::HeaderMap) -> bool {
        self.header()
            .is_ok_and(|(name, value)| headers.get(name).is_some_and(|v| v == value))
    }

    /// Checks at start-up that the key can travel in a header (it names no value).
    pub fn check(&self) -> Result<(), &'static str> {
        self.header()
            .map(|_| ())
            .map_err(|_| "THIRDPARTY_API_KEY holds characters a header cannot carry")
    }

    fn header(&self) -> Result<(HeaderName, HeaderValue), CallError> {
        let (name, value) = match &self.header {
            Some(name) => (name.clone(), self.key.expose().to_string()),
            None => (AUTHORIZATION, format!("Bearer {}", self.key.expose())),
        };
        let mut value = HeaderValue::from_str(&value).map_err(|_| CallError::Unauthorized(0))?;
        value.set_sensitive(true);
        Ok((name, value))
    }
}

/// Parses a header name for `THIRDPARTY_AUTH_HEADER` (lower-cased, as HTTP/2 sends it).
pub fn header_name(s: &str) -> Result<String, String> {
    HeaderName::from_bytes(s.trim().as_bytes())
        .map(|h| h.as_str().to_string())
        .map_err(|_| "must be an HTTP header name such as x-api-key".to_string())
}

/// Client of the third party at `base_url`.
#[derive(Debug, Clone)]
pub struct ThirdParty {
    http: reqwest::Client,
    base_url: String,
    api_key: Option<ApiKey>,
}

impl ThirdParty {
    /// A client of `base_url` calling with `http`, authenticated by `api_key` when given.
    pub fn new(base_url: &HttpUrl, http: reqwest::Client, api_key: Option<ApiKey>) -> Self {
        Self {
            http,
            base_url: base_url.as_str().trim_end_matches('/').to_string(),
            api_key,
        }
    }

    /// Sends `request`, authenticated, and reads its answer by the one rule.
    async fn call(
        &self,
        request: reqwest::RequestBuilder,
        operation: &'static str,
    ) -> Result<(reqwest::Response, Answer), CallError> {
        let request = match &self.api_key {
            Some(key) => {
                let (name, value) = key.header()?;
                request.header(name, value)
            }
            None => request,
        };
        let response = traced_send(request, operation)
            .await
            .map_err(|e| transport_error(&e))?;
        let answer = classify(
            response.status().as_u16(),
            response.headers(),
            SystemTime::now(),
        );
        Ok((response, answer))
    }

    /// `GET /transactions/{id}`: does the third party have it, and in which status?
    pub async fn lookup(&self, id: TransactionId) -> Result<Lookup, ThirdPartyError> {
        let (response, answer) = self
            .call(
                self.http
                    .get(format!("{}/transactions/{id}", self.base_url)),
                "third party: look up",
            )
            .await?;
        match answer {
            Answer::Success => {
                let body: StatusBody = response.json().await.map_err(|e| transport_error(&e))?;
                Ok(Lookup::Found(body.status))
            }
            Answer::NotFound => Ok(Lookup::NotFound),
            Answer::Conflict => Err(CallError::Refused(409)),
            Answer::Failed(e) => Err(e),
        }
    }

    /// `POST /transactions`: true if created now, false if it already had it (409).
    pub async fn submit(
        &self,
        id: TransactionId,
        money: Option<Money>,
    ) -> Result<bool, ThirdPartyError> {
        let (_, answer) = self
            .call(
                self.http
                    .post(format!("{}/transactions", self.base_url))
                    .json(&SubmitBody { id, money }),
                "third party: submit",
            )
            .await?;
        match answer {
            Answer::Success => Ok(true),
            Answer::Conflict => Ok(false),
            Answer::NotFound => Err(CallError::Refused(404)),
            Answer::Failed(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_submission_carries_the_money_beside_the_id_or_only_the_id() {
        let id = TransactionId::generate();
        let money = Money::from_parts(Some(1250), Some("EUR")).unwrap();
        assert_eq!(
            serde_json::to_value(SubmitBody { id, money }).unwrap(),
            serde_json::json!({"id": id, "amount": 1250, "currency": "EUR"})
        );
        assert_eq!(
            serde_json::to_value(SubmitBody { id, money: None }).unwrap(),
            serde_json::json!({"id": id})
        );
    }

    #[test]
    fn the_key_goes_as_a_bearer_token_or_raw_in_the_named_header() {
        let key = |header: Option<&str>| ApiKey {
            key: Secret::new("sk_test_1"),
            header: header.map(|h| h.parse().unwrap()),
        };
        let (name, value) = key(None).header().unwrap();
        assert_eq!(
            (name.as_str(), value.to_str().unwrap()),
            ("authorization", "Bearer sk_test_1")
        );
        assert!(value.is_sensitive());
        let (name, value) = key(Some("x-api-key")).header().unwrap();
        assert_eq!(
            (name.as_str(), value.to_str().unwrap()),
            ("x-api-key", "sk_test_1")
        );
    }
}
