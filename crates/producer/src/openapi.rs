//! The OpenAPI 3.1 document of the API. Its paths come from the handlers' annotations as the
//! router registers them (`app::router`); this module adds the title and the shared schemas,
//! and serves the result at `/openapi.json`.

use std::sync::Arc;

use axum::{Extension, Json};
use utoipa::{OpenApi, ToSchema};

use crate::{
    problem::{FieldError, Problem},
    routes::{health, transaction},
};

/// The document's frame: title, description and shared schemas (the router adds the paths).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Transaction pipeline API",
        description = "Accepts transactions, reports their status, and receives the third party's signed webhooks. Errors are application/problem+json (RFC 9457)."
    ),
    components(schemas(
        transaction::Accepted,
        NewTransactionBody,
        transaction::TransactionView,
        transaction::HistoryView,
        WebhookBody,
        Problem,
        FieldError,
        health::Readiness,
    ))
)]
pub struct ApiDoc;

#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "This document", content_type = "application/json")))]
/// `GET /openapi.json`: the document the router was built with.
pub async fn document(
    Extension(document): Extension<Arc<utoipa::openapi::OpenApi>>,
) -> Json<utoipa::openapi::OpenApi> {
    Json(document.as_ref().clone())
}

// The wire format of the request bodies, for the document; `input.rs` parses the real thing.

/// The body of `POST /transaction` (every field optional; an empty body is valid; no other
/// field is accepted).
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTransactionBody {
    /// The client's id for the transaction; the server makes a UUIDv7 when absent.
    pub id: Option<uuid::Uuid>,
    /// Amount in minor units (> 0); only together with `currency`.
    #[schema(minimum = 1, example = 1250)]
    pub amount: Option<i64>,
    /// ISO 4217 code in upper case; only together with `amount`.
    #[schema(
        example = "EUR",
        pattern = "^[A-Z]{3}$",
        min_length = 3,
        max_length = 3
    )]
    pub currency: Option<String>,
}

/// The body the third party signs and sends.
#[derive(Debug, ToSchema)]
pub struct WebhookBody {
    /// The transaction's id.
    pub id: uuid::Uuid,
    /// pending, completed or declined.
    #[schema(example = "completed")]
    pub status: String,
}
