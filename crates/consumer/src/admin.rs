//! The admin HTTP API under `/admin`, behind `Authorization: Bearer $ADMIN_TOKEN`: the same
//! functions as `consumer clients …` (`clients.rs`), answered as JSON, errors as
//! `application/problem+json`. Without `ADMIN_TOKEN` every admin route is 404. The routes
//! carry their OpenAPI annotations, and the consumer serves the document at `/openapi.json`.

use std::{sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::{FromRequest, FromRequestParts, Path, Request, State},
    http::{HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use domain::{ClientAppId, ClientStatus, client_app::Pepper};
use serde::{Deserialize, Serialize};
use service::{bearer::BearerScheme, config::HttpUrl, secret::Secret};
use store::{ClientsError, NewClientApp, Store, StoreError};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use store::ClientApp;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::clients::{
    self, AdminError, ClientUpdate, Created, KeyMade, Recovered, Rotated, WithKeys,
};

/// What the admin API needs.
pub struct Admin {
    /// The client apps' store.
    pub store: Store,
    /// The token every request must carry.
    pub token: Secret,
    /// The producer's pepper, to make keys.
    pub pepper: Pepper,
    /// How long rotated-out signing secrets keep signing.
    pub overlap: Duration,
    /// Whether notify URLs must be `https://` (`REQUIRE_HTTPS_NOTIFY`).
    pub require_https: bool,
    /// The queues a recovery pushes to.
    pub queues: jobs::Queues,
}

type Shared = Arc<Admin>;

/// The admin routes; all 404 when `admin` is `None` (no `ADMIN_TOKEN`).
pub fn router(admin: Option<Admin>) -> Router {
    let Some(admin) = admin else {
        return Router::new().route("/admin/{*rest}", axum::routing::any(not_enabled));
    };
    let (routes, _) = routes().split_for_parts();
    routes.with_state(Arc::new(admin))
}

/// The admin routes, each registered with its OpenAPI annotation.
fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::with_openapi(AdminDoc::openapi())
        .routes(routes!(create, list))
        .routes(routes!(show, update))
        .routes(routes!(add_key))
        .routes(routes!(rotate))
        .routes(routes!(recover))
        .routes(routes!(revoke))
}

/// The consumer's OpenAPI document: the admin API.
pub fn document() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

/// The document's frame: title, description, the security scheme.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Transaction pipeline admin API",
        description = "Client apps, their API keys and signing secrets, on the consumer under /admin. Every route needs Authorization: Bearer <ADMIN_TOKEN>; without ADMIN_TOKEN set, every route is 404. Errors are application/problem+json (RFC 9457)."
    ),
    components(schemas(ProblemDocument)),
    modifiers(&ADMIN_TOKEN)
)]
struct AdminDoc;

/// The `admin_token` security scheme: `Authorization: Bearer <ADMIN_TOKEN>`.
const ADMIN_TOKEN: BearerScheme = BearerScheme {
    name: "admin_token",
    description: "The consumer's ADMIN_TOKEN",
};

async fn not_enabled() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not-found",
        "the admin API is not enabled (ADMIN_TOKEN)",
    )
}

/// A request carrying the admin token; 401 otherwise (compared in constant time).
struct Authorized;

impl FromRequestParts<Shared> for Authorized {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, admin: &Shared) -> Result<Self, Problem> {
        let given = service::bearer::bearer_token(&parts.headers).unwrap_or("");
        let expected = admin.token.expose().as_bytes();
        if bool::from(given.as_bytes().ct_eq(expected)) {
            Ok(Authorized)
        } else {
            Err(Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "the admin token is required: Authorization: Bearer <ADMIN_TOKEN>",
            ))
        }
    }
}

/// `POST /admin/clients`'s body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    notify_url: String,
    rate_limit_per_s: Option<i32>,
    burst: Option<i32>,
}

/// `PATCH /admin/clients/{id}`'s body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    notify_url: Option<String>,
    rate_limit_per_s: Option<i32>,
    burst: Option<i32>,
    #[schema(value_type = Option<String>, pattern = "^(active|disabled)$")]
    status: Option<ClientStatus>,
}

/// `POST /admin/clients/{id}/recover`'s body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RecoverBody {
    /// Notifications created at or after this instant.
    since: DateTime<Utc>,
    /// …and before this one (default: now).
    until: Option<DateTime<Utc>>,
}

/// `POST /admin/clients/{id}/keys`'s body (may be empty).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct KeyBody {
    name: Option<String>,
    expires_at: Option<DateTime<Utc>>,
}

#[utoipa::path(
    post,
    path = "/admin/clients",
    security(("admin_token" = [])),
    request_body(content = CreateBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Made, with its first API key and signing secret, each shown this once", body = Created),
        (status = 409, description = "The name is taken", body = ProblemDocument, content_type = "application/problem+json"),
        BodyRefusals,
        Refusals,
    )
)]
async fn create(
    State(admin): State<Shared>,
    _: Authorized,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<(StatusCode, Json<Created>), Problem> {
    let notify_url = valid_url(&body.notify_url)?;
    clients::notify_url_allowed(&notify_url, admin.require_https)?;
    valid_limit(body.rate_limit_per_s, body.burst)?;
    if body.name.trim().is_empty() {
        return Err(Problem::invalid("name", "must not be empty"));
    }
    let new = NewClientApp {
        name: &body.name,
        notify_url: notify_url.as_str(),
        rate_limit_per_s: body.rate_limit_per_s,
        burst: body.burst,
    };
    let created = clients::create(&admin.store, &admin.pepper, &new).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(
    get,
    path = "/admin/clients",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Every client app with its keys, never a secret", body = Vec<WithKeys>),
        Refusals,
    )
)]
async fn list(State(admin): State<Shared>, _: Authorized) -> Result<Json<Vec<WithKeys>>, Problem> {
    Ok(Json(clients::list(&admin.store).await?))
}

#[utoipa::path(
    get,
    path = "/admin/clients/{id}",
    security(("admin_token" = [])),
    params(ClientPath),
    responses(
        (status = 200, description = "The client app with its keys, never a secret", body = WithKeys),
        (status = 422, description = "The id is not a UUID", body = ProblemDocument, content_type = "application/problem+json"),
        Refusals,
    )
)]
async fn show(
    State(admin): State<Shared>,
    _: Authorized,
    ClientPath { id }: ClientPath,
) -> Result<Json<WithKeys>, Problem> {
    Ok(Json(clients::show(&admin.store, id).await?))
}

#[utoipa::path(
    patch,
    path = "/admin/clients/{id}",
    security(("admin_token" = [])),
    params(ClientPath),
    request_body(content = UpdateBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The client app after the change", body = ClientApp),
        BodyRefusals,
        Refusals,
    )
)]
async fn update(
    State(admin): State<Shared>,
    _: Authorized,
    ClientPath { id }: ClientPath,
    JsonBody(body): JsonBody<UpdateBody>,
) -> Result<Json<ClientApp>, Problem> {
    let notify_url = body.notify_url.as_deref().map(valid_url).transpose()?;
    if let Some(url) = &notify_url {
        clients::notify_url_allowed(url, admin.require_https)?;
    }
    valid_limit(body.rate_limit_per_s.or(Some(1)), body.burst)?;
    let change = ClientUpdate {
        notify_url: notify_url.as_ref().map(HttpUrl::as_str),
        rate_limit_per_s: body.rate_limit_per_s,
        burst: body.burst,
        status: body.status,
    };
    Ok(Json(clients::update(&admin.store, id, &change).await?))
}

#[utoipa::path(
    post,
    path = "/admin/clients/{id}/keys",
    security(("admin_token" = [])),
    params(ClientPath),
    request_body(content = Option<KeyBody>, content_type = "application/json"),
    responses(
        (status = 201, description = "A new API key, shown this once", body = KeyMade),
        (status = 422, description = "A field the rules refuse", body = ProblemDocument, content_type = "application/problem+json"),
        Refusals,
    )
)]
async fn add_key(
    State(admin): State<Shared>,
    _: Authorized,
    ClientPath { id }: ClientPath,
    body: Option<Json<KeyBody>>,
) -> Result<(StatusCode, Json<KeyMade>), Problem> {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let made = clients::add_key(
        &admin.store,
        &admin.pepper,
        id,
        body.name.as_deref(),
        body.expires_at,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(made)))
}

#[utoipa::path(
    post,
    path = "/admin/clients/{id}/secrets",
    security(("admin_token" = [])),
    params(ClientPath),
    responses(
        (status = 201, description = "A new signing secret, shown this once; the previous ones keep signing for SECRET_ROTATION_OVERLAP_MS", body = Rotated),
        (status = 422, description = "The id is not a UUID", body = ProblemDocument, content_type = "application/problem+json"),
        Refusals,
    )
)]
async fn rotate(
    State(admin): State<Shared>,
    _: Authorized,
    ClientPath { id }: ClientPath,
) -> Result<(StatusCode, Json<Rotated>), Problem> {
    let rotated = clients::rotate(&admin.store, id, admin.overlap).await?;
    Ok((StatusCode::CREATED, Json(rotated)))
}

#[utoipa::path(
    post,
    path = "/admin/clients/{id}/recover",
    security(("admin_token" = [])),
    params(ClientPath),
    request_body(content = RecoverBody, content_type = "application/json"),
    responses(
        (status = 202, description = "Every notification of the window the client app has not accepted goes out again: a given-up one from now on a fresh schedule, an owed one on its queued retry. At most 10,000 a call, oldest first. The jobs are the notifications' own, so a second call while they are queued queues none twice.", body = Recovered),
        BodyRefusals,
        Refusals,
    )
)]
async fn recover(
    State(admin): State<Shared>,
    _: Authorized,
    ClientPath { id }: ClientPath,
    JsonBody(body): JsonBody<RecoverBody>,
) -> Result<(StatusCode, Json<Recovered>), Problem> {
    if body.until.is_some_and(|until| until <= body.since) {
        return Err(Problem::invalid("since", "must be before until"));
    }
    let recovered =
        clients::recover(&admin.store, &admin.queues, id, body.since, body.until).await?;
    Ok((StatusCode::ACCEPTED, Json(recovered)))
}

#[utoipa::path(
    delete,
    path = "/admin/keys/{key_id}",
    security(("admin_token" = [])),
    params(("key_id" = String, Path, description = "The key's public id (after txk_)")),
    responses(
        (status = 204, description = "Revoked: refused by the producers within their AUTH_CACHE_MS"),
        Refusals,
    )
)]
async fn revoke(
    State(admin): State<Shared>,
    _: Authorized,
    Path(key_id): Path<String>,
) -> Result<StatusCode, Problem> {
    clients::revoke(&admin.store, &key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The `{id}` of a client app's route; 422 unless it is a UUID.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
struct ClientPath {
    /// The client app's id
    #[param(value_type = uuid::Uuid)]
    id: ClientAppId,
}

impl FromRequestParts<Shared> for ClientPath {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, admin: &Shared) -> Result<Self, Problem> {
        let not_uuid = || Problem::invalid("id", "must be a UUID");
        let Path(id) = Path::<String>::from_request_parts(parts, admin)
            .await
            .map_err(|_| not_uuid())?;
        let id = Uuid::parse_str(&id).map_err(|_| not_uuid())?;
        Ok(Self { id: id.into() })
    }
}

/// A JSON body read with serde, whose rejection is the admin's problem document.
struct JsonBody<T>(T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        let Json(body) = Json::<T>::from_request(request, state)
            .await
            .map_err(Problem::from_json)?;
        Ok(Self(body))
    }
}

fn valid_url(url: &str) -> Result<HttpUrl, Problem> {
    url.parse().map_err(|_| {
        Problem::invalid(
            "notify_url",
            "must be an http:// or https:// URL with a host",
        )
    })
}

fn valid_limit(rate: Option<i32>, burst: Option<i32>) -> Result<(), Problem> {
    if rate.is_some_and(|r| r < 1) {
        return Err(Problem::invalid("rate_limit_per_s", "must be at least 1"));
    }
    if burst.is_some_and(|b| b < 1) {
        return Err(Problem::invalid("burst", "must be at least 1"));
    }
    if burst.is_some() && rate.is_none() {
        return Err(Problem::invalid("burst", "needs rate_limit_per_s"));
    }
    Ok(())
}

/// The answers every admin route may give besides its own, stated once for the document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Never built: it exists to describe the responses.
enum Refusals {
    /// No or a wrong admin token
    #[response(status = 401, content_type = "application/problem+json", headers(("www-authenticate" = String, description = "Bearer")))]
    Unauthenticated(ProblemDocument),
    /// Not enabled (no ADMIN_TOKEN)
    #[response(status = 404, content_type = "application/problem+json")]
    NotEnabled(ProblemDocument),
    /// Postgres unavailable
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(ProblemDocument),
}

/// What a route that reads a JSON body answers when it cannot read it or refuses a field.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Never built: it exists to describe the responses.
enum BodyRefusals {
    /// Malformed JSON
    #[response(status = 400, content_type = "application/problem+json")]
    Malformed(ProblemDocument),
    /// A field the rules refuse, each named
    #[response(status = 422, content_type = "application/problem+json")]
    Refused(ProblemDocument),
}

/// The body of every admin error: an RFC 9457 problem document.
#[derive(Serialize, ToSchema)]
struct ProblemDocument {
    /// A URI reference naming the kind of problem.
    #[serde(rename = "type")]
    kind: String,
    /// A short summary of the kind.
    title: String,
    /// The HTTP status code.
    status: u16,
    /// What exactly was wrong.
    detail: String,
}

/// An RFC 9457 problem: the one error-to-HTTP mapping of the admin API.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    kind: &'static str,
    detail: String,
}

impl Problem {
    fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            detail: detail.into(),
        }
    }

    fn invalid(field: &str, detail: &str) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            format!("{field}: {detail}"),
        )
    }

    fn from_json(rejection: axum::extract::rejection::JsonRejection) -> Self {
        Self::new(
            rejection.status(),
            "malformed-request",
            rejection.body_text(),
        )
    }
}

impl From<AdminError> for Problem {
    fn from(e: AdminError) -> Self {
        let detail = e.to_string();
        match e {
            AdminError::UnknownKey(_) | AdminError::Clients(ClientsError::UnknownClientApp(_)) => {
                Self::new(StatusCode::NOT_FOUND, "not-found", detail)
            }
            AdminError::Invalid(_) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", detail)
            }
            AdminError::Clients(ClientsError::NameTaken(_)) => {
                Self::new(StatusCode::CONFLICT, "name-taken", detail)
            }
            AdminError::Queue(_) => {
                tracing::warn!(error = %detail, "admin: redis unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the queues are unavailable; retry later (what was queued stays queued)",
                )
            }
            AdminError::Clients(ClientsError::Store(StoreError::Database(_))) => {
                tracing::warn!(error = %detail, "admin: postgres unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the database is unavailable; retry later",
                )
            }
            other => {
                tracing::error!(error = %other, "admin request failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            }
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = ProblemDocument {
            kind: format!("/problems/{}", self.kind),
            title: self.status.canonical_reason().unwrap_or("").to_string(),
            status: self.status.as_u16(),
            detail: self.detail,
        };
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
