//! The OpenAPI 3.1 document of the API. Its paths come from the handlers' annotations as the
//! router registers them (`app::router`); this module adds the title and the shared schemas,
//! and serves the result at `/openapi.json`.

use std::sync::Arc;

use axum::{Extension, Json};
use service::bearer::BearerScheme;
use utoipa::{
    OpenApi,
    openapi::{
        RefOr,
        schema::{AdditionalProperties, Schema},
    },
};

use crate::{
    input::{NewTransactionBody, WebhookBody},
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
    )),
    modifiers(&API_KEY)
)]
pub struct ApiDoc;

/// The `api_key` security scheme the transaction routes require.
const API_KEY: BearerScheme = BearerScheme {
    name: "api_key",
    description: "A client app's API key, txk_<key id>_<secret>",
};

/// What a route that needs an API key answers when the key does not open it.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Never built: it exists to describe the responses.
pub enum KeyRefusals {
    /// No API key, or one that is malformed, unknown, expired or revoked
    #[response(status = 401, content_type = "application/problem+json", headers(("www-authenticate" = String, description = "Bearer")))]
    Unauthenticated(Problem<'static>),
    /// The client app is disabled
    #[response(status = 403, content_type = "application/problem+json")]
    Disabled(Problem<'static>),
}

/// What a route of one transaction answers for an id it will not look up.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Never built: it exists to describe the responses.
pub enum IdRefusals {
    /// Unknown id, or another client app's
    #[response(status = 404, content_type = "application/problem+json")]
    Unknown(Problem<'static>),
    /// The id is not a UUID
    #[response(status = 422, content_type = "application/problem+json")]
    NotUuid(Problem<'static>),
}

/// What a route that reads a JSON body answers when it cannot read it.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Never built: it exists to describe the responses.
pub enum BodyRefusals {
    /// Malformed JSON
    #[response(status = 400, content_type = "application/problem+json")]
    Malformed(Problem<'static>),
    /// A body without content-type: application/json
    #[response(status = 415, content_type = "application/problem+json")]
    NotJson(Problem<'static>),
}

/// What a route that only reads Postgres answers when it cannot.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Never built: it exists to describe the responses.
pub enum ReadRefusals {
    /// Postgres or Redis unavailable
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem<'static>),
    /// Stored data this version cannot read (retrying will not help)
    #[response(status = 500, content_type = "application/problem+json")]
    Unreadable(Problem<'static>),
}

/// What a route of a transaction's notification answers before there is one.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Never built: it exists to describe the responses.
pub enum NotTerminal {
    /// No notification yet: the transaction is not terminal
    #[response(status = 409, content_type = "application/problem+json")]
    NotTerminal(Problem<'static>),
}

/// What a route that reads stored rows answers when one is of a kind this version cannot read.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Never built: it exists to describe the responses.
pub enum Unreadable {
    /// Stored data this version cannot read (retrying will not help)
    #[response(status = 500, content_type = "application/problem+json")]
    Unreadable(Problem<'static>),
}

/// What the annotations cannot say, added to the document once the routes' schemas are in:
/// `POST /transaction` refuses any field it does not know. Its body type collects them (to
/// name each one in the 422) instead of failing on the first, so the document is told here:
/// `additionalProperties: false`.
pub fn finish(document: &mut utoipa::openapi::OpenApi) {
    let schemas = document.components.as_mut().map(|c| &mut c.schemas);
    if let Some(RefOr::T(Schema::Object(body))) =
        schemas.and_then(|s| s.get_mut("NewTransactionBody"))
    {
        body.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
    }
}

#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "This document", content_type = "application/json")))]
/// `GET /openapi.json`: the document the router was built with.
pub async fn document(
    Extension(document): Extension<Arc<utoipa::openapi::OpenApi>>,
) -> Json<utoipa::openapi::OpenApi> {
    Json(document.as_ref().clone())
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    /// The schema named `name` in the document the router serves.
    fn schema(name: &str) -> Value {
        let (_, document) = crate::app::routes_and_document();
        let document = serde_json::to_value(document).expect("the document as JSON");
        document["components"]["schemas"][name].clone()
    }

    #[test]
    fn the_request_bodies_are_documented_from_the_types_that_read_them() {
        let new = schema("NewTransactionBody");
        assert_eq!(new["additionalProperties"], json!(false), "{new:#}");
        assert_eq!(
            new.get("required"),
            None,
            "every field is optional: {new:#}"
        );
        let types = |schema: &Value, field: &str| schema["properties"][field]["type"].clone();
        assert_eq!(types(&new, "id"), json!(["string", "null"]));
        assert_eq!(new["properties"]["id"]["format"], json!("uuid"));
        assert_eq!(types(&new, "amount"), json!(["integer", "null"]));
        assert_eq!(new["properties"]["amount"]["minimum"], json!(1));
        assert_eq!(types(&new, "currency"), json!(["string", "null"]));
        assert_eq!(
            new["properties"]["currency"]["pattern"],
            json!("^[A-Z]{3}$")
        );
        let properties: Vec<&String> = new["properties"].as_object().unwrap().keys().collect();
        assert_eq!(properties, ["amount", "currency", "id"]);

        let webhook = schema("WebhookBody");
        assert_eq!(webhook["required"], json!(["id", "status"]), "{webhook:#}");
        assert_eq!(types(&webhook, "id"), json!("string"));
        assert_eq!(webhook["properties"]["id"]["format"], json!("uuid"));
        assert_eq!(types(&webhook, "status"), json!("string"));
    }
}
