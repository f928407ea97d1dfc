//! The admin HTTP API under `/admin`, behind `Authorization: Bearer $ADMIN_TOKEN`: the same
//! functions as `consumer clients …` (`clients.rs`), answered as JSON, errors as
//! `application/problem+json`. Without `ADMIN_TOKEN` every admin route is 404.

use std::{sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::{FromRequestParts, Path, State, rejection::JsonRejection},
    http::{HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
    routing::{delete, get, post},
};
use chrono::{DateTime, Utc};
use domain::{ClientAppId, ClientStatus, client_app::Pepper};
use serde::Deserialize;
use serde_json::{Value, json};
use service::{config::HttpUrl, secret::Secret};
use store::{ClientsError, NewClientApp, Store, StoreError};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::clients::{self, AdminError, ClientUpdate};

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
}

type Shared = Arc<Admin>;

/// The admin routes; all 404 when `admin` is `None` (no `ADMIN_TOKEN`).
pub fn router(admin: Option<Admin>) -> Router {
    let Some(admin) = admin else {
        return Router::new().route("/admin/{*rest}", axum::routing::any(not_enabled));
    };
    Router::new()
        .route("/admin/clients", post(create).get(list))
        .route("/admin/clients/{id}", get(show).patch(update))
        .route("/admin/clients/{id}/keys", post(add_key))
        .route("/admin/clients/{id}/secrets", post(rotate))
        .route("/admin/keys/{key_id}", delete(revoke))
        .with_state(Arc::new(admin))
}

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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    notify_url: String,
    rate_limit_per_s: Option<i32>,
    burst: Option<i32>,
}

/// `PATCH /admin/clients/{id}`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    notify_url: Option<String>,
    rate_limit_per_s: Option<i32>,
    burst: Option<i32>,
    status: Option<ClientStatus>,
}

/// `POST /admin/clients/{id}/keys`'s body (may be empty).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyBody {
    name: Option<String>,
    expires_at: Option<DateTime<Utc>>,
}

async fn create(
    State(admin): State<Shared>,
    _: Authorized,
    body: Result<Json<CreateBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let Json(body) = body.map_err(Problem::from_json)?;
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

async fn list(State(admin): State<Shared>, _: Authorized) -> Result<Json<Value>, Problem> {
    Ok(Json(clients::list(&admin.store).await?))
}

async fn show(
    State(admin): State<Shared>,
    _: Authorized,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    let id = client_id(&id)?;
    Ok(Json(clients::show(&admin.store, id).await?))
}

async fn update(
    State(admin): State<Shared>,
    _: Authorized,
    Path(id): Path<String>,
    body: Result<Json<UpdateBody>, JsonRejection>,
) -> Result<Json<Value>, Problem> {
    let id = client_id(&id)?;
    let Json(body) = body.map_err(Problem::from_json)?;
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

async fn add_key(
    State(admin): State<Shared>,
    _: Authorized,
    Path(id): Path<String>,
    body: Option<Json<KeyBody>>,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let id = client_id(&id)?;
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

async fn rotate(
    State(admin): State<Shared>,
    _: Authorized,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let id = client_id(&id)?;
    let rotated = clients::rotate(&admin.store, id, admin.overlap).await?;
    Ok((StatusCode::CREATED, Json(rotated)))
}

async fn revoke(
    State(admin): State<Shared>,
    _: Authorized,
    Path(key_id): Path<String>,
) -> Result<StatusCode, Problem> {
    clients::revoke(&admin.store, &key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn client_id(id: &str) -> Result<ClientAppId, Problem> {
    Uuid::parse_str(id)
        .map(ClientAppId::from)
        .map_err(|_| Problem::invalid("id", "must be a UUID"))
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

/// An RFC 9457 problem document: the one error-to-HTTP mapping of the admin API.
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

    fn from_json(rejection: JsonRejection) -> Self {
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
        let body = json!({
            "type": format!("/problems/{}", self.kind),
            "title": self.status.canonical_reason().unwrap_or(""),
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
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
