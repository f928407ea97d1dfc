//! The HTTP clients the pipeline calls out with (the third party, the client app, the
//! simulator's webhooks): TLS by rustls, trusting the system roots (and `SSL_CERT_FILE`), plus
//! an extra PEM bundle when one is configured (`HTTPS_CA_FILE`).

use std::{path::Path, time::Duration};

/// Why an HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum HttpClientError {
    /// The extra CA bundle cannot be read.
    #[error("HTTPS_CA_FILE {path}: {error}")]
    CaFile {
        /// The file.
        path: String,
        /// What went wrong.
        error: String,
    },
    /// reqwest refused the settings.
    #[error(transparent)]
    Build(#[from] reqwest::Error),
}

/// A client whose calls time out after `timeout`, trusting `ca_file` besides the system roots.
pub fn client(
    timeout: Duration,
    ca_file: Option<&Path>,
) -> Result<reqwest::Client, HttpClientError> {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .use_rustls_tls()
        .tcp_nodelay(true);
    if let Some(path) = ca_file {
        let ca_error = |error: String| HttpClientError::CaFile {
            path: path.display().to_string(),
            error,
        };
        let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca_error(e.to_string()))?;
        if certs.is_empty() {
            return Err(ca_error("no certificate in it".into()));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    Ok(builder.build()?)
}

/// Sends `request` in a client span named `operation`, a child of the current span, with
/// that span's W3C `traceparent` (and `tracestate`) among its headers, so the peer can join
/// the trace.
pub async fn traced_send(
    request: reqwest::RequestBuilder,
    operation: &'static str,
) -> Result<reqwest::Response, reqwest::Error> {
    use tracing::Instrument;
    if service::trace::passing_on() || !service::trace::exporting() {
        // No span is recorded for the call: it carries the trace the handling is in.
        return match service::trace::traceparent() {
            Some(traceparent) => request.header(service::trace::TRACEPARENT, traceparent),
            None => request,
        }
        .send()
        .await;
    }
    let span = tracing::info_span!(
        target: service::trace::TARGET,
        "call",
        otel.name = operation,
        otel.kind = "client",
        http.response.status_code = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    service::trace::follow(&span, None, None);
    let mut request = request;
    for (name, value) in service::trace::headers_of(&span) {
        request = request.header(name, value);
    }
    let sent = request.send().instrument(span.clone()).await;
    if let Ok(response) = &sent {
        span.record("http.response.status_code", response.status().as_u16());
    }
    sent
}

/// A call that failed before any answer (timeout, connection refused, TLS): transient.
pub fn transport_error(e: &reqwest::Error) -> domain::answer::CallError {
    domain::answer::CallError::Transient {
        reason: if e.is_timeout() {
            "timeout".into()
        } else {
            // The whole chain: "error sending request" alone hides a TLS or DNS failure.
            service::misconfiguration::text(e)
        },
        retry_after: None,
    }
}
