//! The application state and the router, with its middleware in one visible stack: the layers
//! that need the matched route on each route, the rest around the router once.

use std::{sync::Arc, time::Duration};

use axum::{
    Extension, Router,
    extract::DefaultBodyLimit,
    http::{HeaderName, HeaderValue, Method, header},
};
use domain::signature::Verifier;
use id_cache::IdCache;
use jobs::Queues;
use queue::QueueConfig;
use store::Store;
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    set_header::SetResponseHeaderLayer,
    trace::TraceLayer,
};

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::{Config, problem::ErrorCause, routes};

/// What every handler shares (behind an `Arc`: see [`Shared`]).
pub struct AppState {
    /// The queues: POSTs push `create` jobs (the id cache lives under that queue's hash
    /// tag), webhooks push *apply* `update` jobs.
    pub queues: Queues,
    /// The id cache.
    pub cache: IdCache,
    /// Postgres, read-only from here.
    pub store: Store,
    /// Finds the client app behind an API key.
    pub auth: crate::auth::Authenticator,
    /// Checks the third party's webhook signatures.
    pub verifier: Arc<Verifier>,
    /// The shared Redis connection.
    pub redis: queue::RedisConnection,
    /// Largest accepted body.
    pub body_limit: usize,
    /// The deployment's queue prefix: ids derived from idempotency keys are unique to it.
    pub queue_prefix: String,
    /// Whether Redis was found durable at start-up (shown by `/readyz`).
    pub durability: Arc<std::sync::RwLock<crate::durability::Durability>>,
    /// How long after its arrival a POST may still be reserved in Redis.
    pub accept_deadline: Duration,
    /// Replicas that must acknowledge a reservation before its 201.
    pub ack_replicas: u32,
    /// The key the list cursors are signed with (derived from the pepper, so every producer
    /// reads every other's cursors).
    pub cursor_key: Vec<u8>,
    /// POSTs' reservations and row look-ups, concurrent POSTs sharing one script and one
    /// statement (see [`crate::acceptance`]).
    pub acceptances: crate::acceptance::Acceptances,
}

/// How long a request waits for Redis: a 503 well inside the request's own timeout.
pub const REDIS_RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

impl AppState {
    /// Connects lazily to Redis and Postgres: the producer starts (and answers 503) while
    /// either is down.
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let connections = &config.connections;
        let accept_deadline = config.accept_deadline;
        if accept_deadline >= REDIS_RESPONSE_TIMEOUT {
            anyhow::bail!(
                "ACCEPT_DEADLINE_MS must be below the Redis response timeout ({} ms), so that a \
                 reservation made in time can still be answered",
                REDIS_RESPONSE_TIMEOUT.as_millis()
            );
        }
        let client = queue::RedisClient::new(&id_cache::redis_settings(connections))?;
        let redis = client.shared(REDIS_RESPONSE_TIMEOUT)?;
        let store = Store::connect_lazy(
            connections.database_url.as_str(),
            config.database_max_connections,
        )?;
        let queues = Queues::open(&client, &redis, |name| {
            QueueConfig::new(connections.queue_prefix.clone(), name.as_str())
        })?;
        let cache = IdCache::new(&connections.queue_prefix, config.idempotency);
        let acceptances = crate::acceptance::spawn(cache.clone(), queues.create.clone(), &store);
        let auth = crate::auth::Authenticator::new(
            store.clone(),
            config.api_key_pepper.clone(),
            config.auth_cache,
        );
        Ok(Self {
            queues,
            cache,
            auth,
            store,
            acceptances,
            cursor_key: config.api_key_pepper.derive("transactions-cursor"),
            verifier: Arc::new(Verifier::new(&config.webhook_secret)),
            redis,
            body_limit: config.body_limit_bytes,
            queue_prefix: connections.queue_prefix.clone(),
            durability: Arc::new(std::sync::RwLock::new(
                crate::durability::Durability::Unknown("not checked yet".into()),
            )),
            accept_deadline,
            ack_replicas: config.redis_ack_replicas,
        })
    }
}

/// The state as handlers receive it.
pub type Shared = Arc<AppState>;

/// The CORS layer allowing `origins`; none when none are configured.
fn cors(origins: &crate::config::Origins) -> Option<CorsLayer> {
    // Each was checked to be an ASCII origin when the settings were read.
    let allowed: Vec<HeaderValue> = origins
        .0
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if allowed.is_empty() {
        return None;
    }
    let layer = CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static(crate::input::IDEMPOTENCY_KEY),
        ]);
    Some(layer)
}

/// The API's routes and the OpenAPI document of exactly those routes.
pub fn routes_and_document() -> (axum::Router<Shared>, utoipa::openapi::OpenApi) {
    let (routes, mut document) = routes().split_for_parts();
    crate::openapi::finish(&mut document);
    (routes, document)
}

/// The API's routes, each registered with its OpenAPI annotation, so the router and
/// `/openapi.json` cannot drift apart.
fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::with_openapi(crate::openapi::ApiDoc::openapi())
        .routes(utoipa_axum::routes!(routes::transaction::create))
        .routes(utoipa_axum::routes!(routes::transaction::get))
        .routes(utoipa_axum::routes!(routes::transactions::list))
        .routes(utoipa_axum::routes!(routes::notification::get))
        .routes(utoipa_axum::routes!(routes::notification::resend))
        .routes(utoipa_axum::routes!(routes::webhook::receive))
        .routes(utoipa_axum::routes!(routes::health::live))
        .routes(utoipa_axum::routes!(routes::health::ready))
        .routes(utoipa_axum::routes!(routes::health::metrics))
        .routes(utoipa_axum::routes!(crate::openapi::document))
}

/// The producer's routes and middleware.
pub fn router(state: AppState, config: &Config) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let (routes, document) = routes_and_document();
    let body_limit = state.body_limit;
    let routes: Router = routes
        .fallback(routes::health::no_route)
        .method_not_allowed_fallback(routes::health::method_not_allowed)
        // One Arc: axum clones the state for every request.
        .with_state(Arc::new(state));
    // No origins configured: no CORS layer at all, so no CORS headers and browsers refuse
    // cross-origin calls (a preflight is a 405, like any OPTIONS).
    let routes = match cors(&config.cors_allowed_origins) {
        Some(cors) => routes.layer(cors),
        None => routes,
    };
    let routes = routes
        // Inside the request metrics, which count a 408 too.
        .layer(axum::middleware::from_fn_with_state(
            config.request_timeout,
            request_timeout,
        ))
        .layer(axum::middleware::from_fn(record_request));
    // Only while export is configured: without, a POST's jobs pass the client's trace on
    // (`JobTrace`) and no span is made. (Every layer is one more service each request clones.)
    let routes = if service::trace::export_configured() {
        routes.layer(axum::middleware::from_fn(crate::trace::trace_request))
    } else {
        routes
    };
    // The layers that need no route wrap the router once, rather than each of its routes:
    // a request clones (and boxes) every layer of its route anew, and these were a tenth of
    // the producer's CPU per POST (measured). Outermost first.
    let outer = tower::ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            let id = req
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            // Debug, not info: a span per request cost a fifth of the POST throughput
            // (measured); the one place that logs failed requests names the request id itself.
            tracing::debug_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(PropagateRequestIdLayer::new(request_id))
        // Outside the routes: every answer has them, a 408 and a fallback's too.
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(Extension(Arc::new(document)))
        // Bodies are checked against the limit by their extractors (`extract.rs`: 413 as
        // problem+json); this cap is the hard stop behind them.
        .layer(DefaultBodyLimit::max(body_limit))
        .service(routes);
    Router::new().fallback_service(outer)
}

/// Answers 408 (problem+json) when a request takes longer than `limit`.
async fn request_timeout(
    axum::extract::State(limit): axum::extract::State<Duration>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => crate::problem::ApiError::Timeout(limit.as_millis() as u64).into_response(),
    }
}

/// Records every request's latency by method, route template and status (the histogram's
/// `_count` is the request count), and logs why a request failed on our side: the one place
/// errors are logged (see `problem::ErrorCause`).
async fn record_request(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = match *request.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    };
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    // A clone of the header is a reference count, not a copy.
    let request_id = request.headers().get("x-request-id").cloned();
    // A clone of the header is a reference count too; it is read only if the request fails.
    let traceparent = request.headers().get(service::trace::TRACEPARENT).cloned();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    if let Some(ErrorCause(cause)) = response.extensions().get::<ErrorCause>() {
        let request_id = request_id
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        // Inside a POST's span (while exported) the line has its trace id already; without
        // one it names the client's, if it sent one.
        let trace_id = traceparent
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .and_then(service::trace::trace_id_of);
        if response.status().as_u16() == 500 {
            tracing::error!(error = %cause, %route, request_id, trace_id, "request failed");
        } else {
            tracing::warn!(error = %cause, %route, request_id, trace_id, "request failed");
        }
    }
    let status = response.status().as_u16().to_string();
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route, "status" => status)
        .record(started.elapsed().as_secs_f64());
    response
}
