//! The trace a request's work carries on: the client's W3C `traceparent` continued, or a new
//! trace. While spans are exported, each POST is a span of that trace ([`trace_request`]);
//! while none is (no exporter, or a collector that does not take them), no span is made (one
//! cost a POST about a sixth of its throughput, measured) and the handler continues the
//! client's span itself ([`JobTrace`]).

use axum::{
    extract::{FromRequestParts, MatchedPath, Request},
    http::{HeaderMap, request::Parts},
    middleware::Next,
    response::Response,
};
use service::trace::{self, TRACEPARENT, TRACESTATE};
use tracing::Instrument;

/// The W3C `traceparent` the jobs a request queues carry: set by [`trace_request`] while
/// spans are exported, passed on from the request's header otherwise.
#[derive(Debug, Clone)]
pub struct JobTrace(Option<String>);

impl JobTrace {
    /// The `traceparent` a job queued by the request carries.
    pub fn into_job(self) -> Option<String> {
        self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for JobTrace {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        if let Some(set) = parts.extensions.get::<JobTrace>() {
            return Ok(set.clone());
        }
        Ok(JobTrace(Some(trace::passed_on(header(
            &parts.headers,
            TRACEPARENT,
        )))))
    }
}

/// Makes each POST (the requests that queue work) a span of the client's trace, or of a new
/// one, and gives its jobs that span's `traceparent`. Layered only while export is configured;
/// it makes no span while the collector does not take them.
pub async fn trace_request(mut request: Request, next: Next) -> Response {
    if request.method() != axum::http::Method::POST || !trace::exporting() {
        return next.run(request).await;
    }
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str());
    let span = tracing::info_span!(
        target: trace::TARGET,
        "request",
        otel.name = %format_args!("POST {route}"),
        otel.kind = "server",
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    let headers = request.headers();
    trace::follow(
        &span,
        header(headers, TRACEPARENT),
        header(headers, TRACESTATE),
    );
    let passed = trace::headers_of(&span).remove(TRACEPARENT);
    request.extensions_mut().insert(JobTrace(passed));
    let response = next.run(request).instrument(span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    response
}

/// Header `name` of `headers`, if it is there and printable.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}
