//! The extractors for request bodies and the transaction id of a path: each rejects with the
//! problem document, so a handler only ever sees a body that parsed and an id that is one.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Path, Request},
    http::{HeaderValue, StatusCode, header, request::Parts},
};
use domain::TransactionId;

use crate::{
    app::Shared,
    input::{self, RequestBody},
    problem::{ApiError, FieldError},
};

/// The `{id}` of a transaction's route: 422 unless it is a UUID (a path that is not even
/// UTF-8, `%FF`, is the same mistake).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TransactionPath {
    /// The transaction's id
    #[param(value_type = uuid::Uuid)]
    pub id: TransactionId,
}

impl FromRequestParts<Shared> for TransactionPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiError> {
        let id = Path::<String>::from_request_parts(parts, state)
            .await
            .ok()
            .and_then(|Path(id)| TransactionId::parse(&id).ok())
            .ok_or_else(|| ApiError::Invalid(vec![FieldError::new("id", "must be a UUID")]))?;
        Ok(Self { id })
    }
}

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

/// The body's bytes, or 413 when it is over the limit; 415 when a body is there and is not
/// declared JSON (a bodiless request needs no content type).
async fn limited_bytes(req: Request, state: &Shared) -> Result<Bytes, ApiError> {
    let limit = state.body_limit;
    let content_type = req.headers().get(header::CONTENT_TYPE).cloned();
    match Bytes::from_request(req, state).await {
        Ok(bytes) if bytes.len() <= limit => {
            if !bytes.is_empty() && !declared_json(content_type.as_ref()) {
                let got = content_type
                    .as_ref()
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .unwrap_or_else(|| "none".to_string());
                return Err(ApiError::UnsupportedMediaType(got));
            }
            Ok(bytes)
        }
        Ok(_) => Err(ApiError::TooLarge(limit)),
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::TooLarge(limit)),
        Err(e) => Err(ApiError::MalformedJson(e.body_text())),
    }
}

/// Whether a content type says JSON: `application/json` or `application/<anything>+json`,
/// any parameters (such as `charset`) after it.
fn declared_json(content_type: Option<&HeaderValue>) -> bool {
    let Some(value) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|subtype| subtype.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_application_json_or_a_json_suffix() {
        for (value, json) in [
            ("application/json", true),
            ("application/json; charset=utf-8", true),
            ("Application/JSON", true),
            ("application/merge-patch+json", true),
            ("text/plain", false),
            ("application/x-www-form-urlencoded", false),
            ("application/jsonx", false),
            ("", false),
        ] {
            let header = HeaderValue::from_str(value).unwrap();
            assert_eq!(declared_json(Some(&header)), json, "{value}");
        }
        assert!(!declared_json(None));
    }
}
