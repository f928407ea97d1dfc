//! The extractors for request bodies: each rejects with the problem document, so a handler
//! only ever sees a body that parsed.

use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::StatusCode,
};

use crate::{
    app::Shared,
    input::{self, RequestBody},
    problem::ApiError,
};

/// A route's JSON body, read within `BODY_LIMIT_BYTES` and parsed: 413 over the limit, 400
/// not JSON, 422 not an object.
pub struct Body<T>(pub T);

impl<T: RequestBody> FromRequest<Shared> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Shared) -> Result<Self, ApiError> {
        let bytes = limited_bytes(req, state).await?;
        input::parse(&bytes).map(Body)
    }
}

/// A JSON body signed per Standard Webhooks with the third party's secret: 401 unless the
/// signature over the exact bytes verifies, before the bytes are read as JSON.
pub struct Signed<T>(pub T);

impl<T: RequestBody> FromRequest<Shared> for Signed<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Shared) -> Result<Self, ApiError> {
        let headers = req.headers().clone();
        let bytes = limited_bytes(req, state).await?;
        state
            .verifier
            .verify(&bytes, &headers)
            .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
        input::parse(&bytes).map(Signed)
    }
}

/// The body's bytes, or 413 when it is over the limit.
async fn limited_bytes(req: Request, state: &Shared) -> Result<Bytes, ApiError> {
    let limit = state.body_limit;
    match Bytes::from_request(req, state).await {
        Ok(bytes) if bytes.len() <= limit => Ok(bytes),
        Ok(_) => Err(ApiError::TooLarge(limit)),
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::TooLarge(limit)),
        Err(e) => Err(ApiError::MalformedJson(e.body_text())),
    }
}
