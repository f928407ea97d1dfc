//! The HTTP client of the third-party processor: look a transaction up, submit it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Money, Status, TransactionId};

/// What the third party says about an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// It has the transaction, with this status.
    Found(Status),
    /// It has never seen it.
    NotFound,
}

/// Why a call to the third party did not give an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThirdPartyError {
    /// 504, other 5xx, a timeout or a connection error: worth retrying, and the call may or
    /// may not have taken effect.
    #[error("third party unavailable: {0}")]
    Transient(String),
    /// A 4xx other than 404/409: the request will never succeed.
    #[error("third party refused the request: HTTP {0}")]
    Rejected(u16),
}

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

/// Client of the third party at `base_url`.
#[derive(Debug, Clone)]
pub struct ThirdParty {
    http: reqwest::Client,
    base_url: String,
}

fn transient(e: reqwest::Error) -> ThirdPartyError {
    ThirdPartyError::Transient(if e.is_timeout() {
        "timeout".into()
    } else {
        e.to_string()
    })
}

impl ThirdParty {
    /// A client whose calls time out after `timeout`.
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: reqwest::Client::builder().timeout(timeout).build()?,
            base_url: base_url.trim_end_matches('/').to_string(),
        })
    }

    /// `GET /transactions/{id}`: does the third party have it, and in which status?
    pub async fn lookup(&self, id: TransactionId) -> Result<Lookup, ThirdPartyError> {
        let response = self
            .http
            .get(format!("{}/transactions/{id}", self.base_url))
            .send()
            .await
            .map_err(transient)?;
        match response.status().as_u16() {
            200 => {
                let body: StatusBody = response.json().await.map_err(transient)?;
                Ok(Lookup::Found(body.status))
            }
            404 => Ok(Lookup::NotFound),
            code if code >= 500 => Err(ThirdPartyError::Transient(format!("HTTP {code}"))),
            code => Err(ThirdPartyError::Rejected(code)),
        }
    }

    /// `POST /transactions`: true if created now, false if it already had it (409).
    pub async fn submit(
        &self,
        id: TransactionId,
        money: Option<Money>,
    ) -> Result<bool, ThirdPartyError> {
        let response = self
            .http
            .post(format!("{}/transactions", self.base_url))
            .json(&SubmitBody { id, money })
            .send()
            .await
            .map_err(transient)?;
        match response.status().as_u16() {
            200 | 201 => Ok(true),
            409 => Ok(false),
            code if code >= 500 => Err(ThirdPartyError::Transient(format!("HTTP {code}"))),
            code => Err(ThirdPartyError::Rejected(code)),
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
}
