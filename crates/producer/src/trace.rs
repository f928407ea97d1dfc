//! The trace a request's work carries on: the client's W3C `traceparent` continued, or a new
//! trace. While spans are exported, each POST is a span of that trace ([`trace_request`]);
//! while none is (no exporter, or a collector that does not take them), no span is made (one
//! cost a POST about a sixth of its throughput, measured) and the handler continues the
//! client's span itself ([`JobTrace`]). Work no caller put in a trace continues its
//! transaction's implied one (`TransactionId::implied_trace`).

use axum::{
    extract::{FromRequestParts, MatchedPath, Request},
    http::{HeaderMap, request::Parts},
    middleware::Next,
    response::Response,
};
use domain::TransactionId;
use service::trace::{self, TRACEPARENT, TRACESTATE};
use tracing::Instrument;

/// The W3C `traceparent` the jobs a request queues carry: set by [`trace_request`] while
/// spans are exported, passed on from the request's header otherwise; none when the request
/// named no valid one.
#[derive(Debug, Clone)]
pub struct JobTrace(Option<String>);

impl JobTrace {
    /// The `traceparent` a job about transaction `id` queued by the request carries: the
    /// request's, else the transaction's implied one (a new trace for the nil id).
    pub fn into_job(self, id: TransactionId) -> Option<String> {
        self.0
            .or_else(|| id.implied_trace())
            .or_else(|| Some(trace::passed_on(None)))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for JobTrace {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        if let Some(set) = parts.extensions.get::<JobTrace>() {
            return Ok(set.clone());
        }
        Ok(JobTrace(trace::valid(header(&parts.headers, TRACEPARENT))))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_continues_the_requests_trace_else_its_transactions_implied_one() {
        let id = TransactionId::generate();
        let implied = id.implied_trace().expect("a trace");
        // The implied trace is one the propagator reads as it is written.
        assert_eq!(trace::valid(Some(&implied)).as_deref(), Some(&*implied));
        assert_eq!(JobTrace(None).into_job(id), Some(implied));
        let named = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            JobTrace(Some(named.into())).into_job(id).as_deref(),
            Some(named)
        );
        // The nil id names no valid trace: its work gets a new one.
        let nil = TransactionId::from(uuid::Uuid::nil());
        let new = JobTrace(None).into_job(nil).expect("a trace");
        assert!(trace::valid(Some(&new)).is_some(), "{new}");
    }
}
