//! The handlers, one module per resource.

pub mod health;
pub mod transaction;
pub mod webhook;

use axum::{body::Bytes, extract::rejection::BytesRejection, http::StatusCode};

use crate::problem::ApiError;

/// The body, or 413 as problem+json when it is over the limit.
pub(crate) fn body(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, ApiError> {
    match body {
        Ok(bytes) if bytes.len() <= limit => Ok(bytes),
        Ok(_) => Err(ApiError::TooLarge(limit)),
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::TooLarge(limit)),
        Err(e) => Err(ApiError::MalformedJson(e.body_text())),
    }
}
