//! Every error the API answers, and the one place that turns them into HTTP: RFC 9457
//! `application/problem+json` bodies naming exactly what was wrong. Conversions from the
//! libraries' errors have no side effects; a server-side failure travels with its response as
//! an [`ErrorCause`], which the request layer logs once (`app::record_request`).

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The field's name.
    pub field: String,
    /// What is wrong with it.
    pub detail: String,
}

impl FieldError {
    /// Field `field` is wrong because `detail`.
    pub fn new(field: &str, detail: impl Into<String>) -> Self {
        Self {
            field: field.to_string(),
            detail: detail.into(),
        }
    }
}

/// What went wrong with a request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON (400).
    #[error("{0}")]
    MalformedJson(String),
    /// Fields are invalid (422).
    #[error("invalid fields")]
    Invalid(Vec<FieldError>),
    /// The body is over the limit (413).
    #[error("request body is larger than {0} bytes")]
    TooLarge(usize),
    /// A body that is not declared JSON (415).
    #[error("the body must be JSON: send content-type: application/json (got {0:?})")]
    UnsupportedMediaType(String),
    /// The id is known with other parameters (409).
    #[error("{0}")]
    IdempotencyConflict(String),
    /// Over the client app's rate limit (429): nothing was reserved; a token comes after this.
    #[error("over this client app's rate limit; nothing was accepted")]
    RateLimited(std::time::Duration),
    /// The id is another client app's (409); nothing more about it is told.
    #[error("transaction {0} is not available to this client app; choose another id")]
    IdTaken(String),
    /// The webhook's status contradicts a terminal one (409).
    #[error("{0}")]
    StatusConflict(String),
    /// Unsigned, badly signed or stale webhook (401).
    #[error("{0}")]
    Unauthorized(String),
    /// No API key, or one that is malformed, unknown, expired or revoked (401): the same
    /// answer for each, so it cannot tell a guesser which part was wrong.
    #[error("a valid API key is required: Authorization: Bearer <api key>")]
    Unauthenticated,
    /// The key's client app is disabled (403).
    #[error("this client app is disabled")]
    Forbidden,
    /// No such transaction (404).
    #[error("no transaction {0}")]
    NotFound(String),
    /// No such route (404).
    #[error("no route {0}")]
    NoRoute(String),
    /// The request took longer than `REQUEST_TIMEOUT_MS` (408).
    #[error("the request took longer than {0} ms")]
    Timeout(u64),
    /// The route exists, the method does not (405).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Redis or Postgres is unavailable (503, retry later).
    #[error("{service} is unavailable; retry later")]
    Unavailable {
        /// What is unavailable, as the client is told.
        service: &'static str,
        /// Why, for the log only.
        cause: String,
    },
    /// The transaction is not terminal, so it has no notification yet (409).
    #[error("{0}")]
    NotTerminal(String),
    /// A query string this route cannot read, or a list cursor it did not make (400).
    #[error("{0}")]
    BadQuery(String),
    /// A dependency's settings are wrong in a way retrying will not fix (503 from `/readyz`,
    /// which an operator reads; the API's own routes say only [`ApiError::Unavailable`]).
    #[error("{0}")]
    Misconfigured(service::misconfiguration::Misconfiguration),
    /// Redis may or may not have accepted the transaction (504): retrying with its id is safe.
    #[error("outcome unknown; retrying with this id is always safe")]
    OutcomeUnknown {
        /// The transaction's id, repeated in the body and in `Location`.
        id: String,
        /// Why, for the log only.
        cause: String,
    },
    /// A bug or data this code cannot read (500: retrying will not help).
    #[error("internal error")]
    Internal(String),
}

/// Why a request failed on our side (5xx), attached to its response for the request layer to
/// log; never sent to the client.
#[derive(Debug, Clone)]
pub struct ErrorCause(pub String);

/// An RFC 9457 problem document (`application/problem+json`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct Problem<'a> {
    /// A URI reference naming the kind of problem.
    #[serde(rename = "type")]
    kind: &'a str,
    /// A short summary of the kind.
    title: &'a str,
    /// The HTTP status code.
    status: u16,
    /// What exactly was wrong.
    detail: String,
    /// The invalid fields (422 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [FieldError]>,
    /// The transaction whose outcome is unknown (504 only): retry with this id.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<uuid::Uuid>)]
    id: Option<&'a str>,
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            ApiError::MalformedJson(_) => (
                StatusCode::BAD_REQUEST,
                "/problems/malformed-json",
                "Malformed JSON",
            ),
            ApiError::Invalid(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "/problems/validation",
                "Invalid request",
            ),
            ApiError::TooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "/problems/too-large",
                "Request body too large",
            ),
            ApiError::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "/problems/unsupported-media-type",
                "Request body is not JSON",
            ),
            ApiError::IdempotencyConflict(_) => (
                StatusCode::CONFLICT,
                "/problems/idempotency-conflict",
                "Id already used with other parameters",
            ),
            ApiError::RateLimited(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "/problems/rate-limited",
                "Rate limit exceeded",
            ),
            ApiError::IdTaken(_) => (StatusCode::CONFLICT, "/problems/id-taken", "Id taken"),
            ApiError::StatusConflict(_) => (
                StatusCode::CONFLICT,
                "/problems/status-conflict",
                "Status conflicts with the recorded one",
            ),
            ApiError::Unauthorized(_) => (
                StatusCode::UNAUTHORIZED,
                "/problems/unauthorized",
                "Webhook signature rejected",
            ),
            ApiError::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                "/problems/unauthenticated",
                "API key required",
            ),
            ApiError::Forbidden => (
                StatusCode::FORBIDDEN,
                "/problems/client-app-disabled",
                "Client app disabled",
            ),
            ApiError::NotFound(_) => (
                StatusCode::NOT_FOUND,
                "/problems/not-found",
                "Transaction not found",
            ),
            ApiError::NoRoute(_) => (StatusCode::NOT_FOUND, "/problems/no-route", "No such route"),
            ApiError::Timeout(_) => (
                StatusCode::REQUEST_TIMEOUT,
                "/problems/timeout",
                "Request timeout",
            ),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "/problems/method-not-allowed",
                "Method not allowed",
            ),
            ApiError::Unavailable { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "/problems/unavailable",
                "Service unavailable",
            ),
            ApiError::NotTerminal(_) => (
                StatusCode::CONFLICT,
                "/problems/not-terminal",
                "No notification yet",
            ),
            ApiError::BadQuery(_) => (
                StatusCode::BAD_REQUEST,
                "/problems/bad-query",
                "Bad query string or cursor",
            ),
            ApiError::Misconfigured(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "/problems/misconfigured",
                "A dependency is misconfigured",
            ),
            ApiError::OutcomeUnknown { .. } => (
                StatusCode::GATEWAY_TIMEOUT,
                "/problems/outcome-unknown",
                "Outcome unknown",
            ),
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "/problems/internal",
                "Internal error",
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind, title) = self.parts();
        let detail = match &self {
            ApiError::Invalid(errors) => errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.detail))
                .collect::<Vec<_>>()
                .join("; "),
            other => other.to_string(),
        };
        let errors = match &self {
            ApiError::Invalid(errors) => Some(errors.as_slice()),
            _ => None,
        };
        let id = match &self {
            ApiError::OutcomeUnknown { id, .. } => Some(id.as_str()),
            _ => None,
        };
        let body = Problem {
            kind,
            title,
            status: status.as_u16(),
            detail,
            errors,
            id,
        };
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let ApiError::RateLimited(wait) = &self {
            // Whole seconds, rounded up, at least one.
            let secs = wait.as_millis().div_ceil(1000).max(1);
            if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
                headers.insert(header::RETRY_AFTER, value);
            }
        }
        if matches!(self, ApiError::Unauthenticated) {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(location) =
            id.and_then(|id| HeaderValue::from_str(&format!("/transaction/{id}")).ok())
        {
            headers.insert(header::LOCATION, location);
        }
        match self {
            ApiError::Unavailable { cause, .. }
            | ApiError::Internal(cause)
            | ApiError::OutcomeUnknown { cause, .. } => {
                response.extensions_mut().insert(ErrorCause(cause));
            }
            _ => {}
        }
        response
    }
}

impl From<store::StoreError> for ApiError {
    fn from(e: store::StoreError) -> Self {
        use store::StoreError;
        match e {
            StoreError::Corrupt(_) => ApiError::Internal(e.to_string()),
            StoreError::Database(_) | StoreError::Migrate(_) => ApiError::Unavailable {
                service: "the database",
                cause: e.to_string(),
            },
        }
    }
}

impl From<redis::RedisError> for ApiError {
    fn from(e: redis::RedisError) -> Self {
        ApiError::Unavailable {
            service: "the queue",
            cause: e.to_string(),
        }
    }
}

impl From<&queue::QueueError> for ApiError {
    fn from(e: &queue::QueueError) -> Self {
        use queue::QueueError;
        match e {
            QueueError::Redis(_) | QueueError::Stopped => ApiError::Unavailable {
                service: "the queue",
                cause: e.to_string(),
            },
            QueueError::Shared(inner) => ApiError::from(inner.as_ref()),
            QueueError::Codec(_) | QueueError::Config(_) | QueueError::HookArity { .. } => {
                ApiError::Internal(e.to_string())
            }
        }
    }
}

impl From<queue::QueueError> for ApiError {
    fn from(e: queue::QueueError) -> Self {
        ApiError::from(&e)
    }
}

impl From<&id_cache::IdCacheError> for ApiError {
    fn from(e: &id_cache::IdCacheError) -> Self {
        use id_cache::IdCacheError;
        match e {
            IdCacheError::Queue(e) => e.into(),
            IdCacheError::Corrupt(_) => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<id_cache::IdCacheError> for ApiError {
    fn from(e: id_cache::IdCacheError) -> Self {
        ApiError::from(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::StoreError;

    #[test]
    fn a_corrupt_row_is_a_500_not_a_retry_later() {
        let response =
            ApiError::from(StoreError::Corrupt("status \"done\"".into())).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
        let cause = response.extensions().get::<ErrorCause>().unwrap();
        assert!(cause.0.contains("done"), "the cause is kept for the log");
    }

    #[test]
    fn an_unknown_outcome_is_a_504_naming_the_id_in_body_and_location() {
        let response = ApiError::OutcomeUnknown {
            id: "0b0e6f2e-3a8c-4f0e-9a7e-5d1f6c2b9a10".into(),
            cause: "connection reset".into(),
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(
            response.headers()[header::LOCATION],
            "/transaction/0b0e6f2e-3a8c-4f0e-9a7e-5d1f6c2b9a10"
        );
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
    }

    #[test]
    fn an_outage_is_a_503_with_retry_after_and_its_cause_stays_out_of_the_body() {
        let e = ApiError::Unavailable {
            service: "the queue",
            cause: "connection refused".into(),
        };
        assert_eq!(e.to_string(), "the queue is unavailable; retry later");
        let response = e.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert_eq!(
            response.extensions().get::<ErrorCause>().unwrap().0,
            "connection refused"
        );
    }
}
