//! Traces: the W3C trace context carried through every hop of a transaction's work (HTTP
//! headers in and out, the jobs between them), and their export over OTLP.
//!
//! Spans are recorded, and leave the process, only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set;
//! without it each hop passes its caller's `traceparent` on as it came, so the trace id still
//! reaches every job, call and log line of the work. The standard variables configure export
//! (`OTEL_EXPORTER_OTLP_PROTOCOL` `http/protobuf` or `http/json`, `OTEL_SERVICE_NAME`,
//! `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`/`_ARG`). Export is batched on its own
//! thread: a collector that is down or slow costs dropped spans, never a slower pipeline; while
//! its exports fail, spans are not even recorded (see [`crate::collector`]).

use std::{collections::HashMap, sync::OnceLock, time::Duration};

use opentelemetry::{
    propagation::TextMapPropagator,
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_sdk::{
    Resource,
    propagation::TraceContextPropagator,
    trace::{BatchSpanProcessor, Sampler, SdkTracerProvider, Tracer},
};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::collector::{Watched, health};

/// The target of the traced spans (requests that queue work, job handlings, calls out): the
/// only spans exported, and enabled whatever `RUST_LOG` says.
pub const TARGET: &str = "trace";

/// The target of a span made only for its log lines (a handling whose span is not recorded):
/// enabled with [`TARGET`], never exported.
pub const LOGGED: &str = "trace::logged";

/// The W3C header naming the parent span.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C header of vendor-specific trace state.
pub const TRACESTATE: &str = "tracestate";

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// The process's tracer, exporting over OTLP (used only while [`exporting`]). Built once.
pub(crate) fn tracer() -> Tracer {
    PROVIDER
        .get_or_init(|| {
            let provider = SdkTracerProvider::builder().with_resource(resource());
            match exporter() {
                Some(exporter) => provider
                    .with_span_processor(BatchSpanProcessor::builder(Watched(exporter)).build())
                    .build(),
                // The exporter could not be built (logged): nothing would leave the process,
                // so nothing is recorded.
                None => provider.with_sampler(Sampler::AlwaysOff).build(),
            }
        })
        .tracer("txn-pipeline")
}

/// Whether spans are recorded and exported now: export is configured and its collector takes
/// them (see [`crate::collector`]). Each POST and job asks once and keeps the answer.
pub fn exporting() -> bool {
    export_configured() && health().taking()
}

/// Whether export is configured (`OTEL_EXPORTER_OTLP_ENDPOINT` or its traces-only variant set
/// at start).
pub fn export_configured() -> bool {
    static CONFIGURED: OnceLock<bool> = OnceLock::new();
    *CONFIGURED.get_or_init(|| {
        [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
    })
}

/// The `traceparent` to pass on for work a request with the W3C header `incoming` starts, when
/// no span of this process records it (nothing is exported): the caller's own, so the next
/// hop is its child, or a new unsampled trace when it has none or a malformed one.
pub fn passed_on(incoming: Option<&str>) -> String {
    use opentelemetry::trace::{SpanContext, TraceFlags, TraceState};
    use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
    if let Some(valid) = valid(incoming) {
        return valid;
    }
    let ids = RandomIdGenerator::default();
    let new = SpanContext::new(
        ids.new_trace_id(),
        ids.new_span_id(),
        TraceFlags::default(),
        false,
        TraceState::NONE,
    );
    format_traceparent(&new)
}

/// The W3C `traceparent` `incoming`, as the propagator writes it, if it is well formed.
pub fn valid(incoming: Option<&str>) -> Option<String> {
    let context = TraceContextPropagator::new().extract(&Incoming {
        traceparent: incoming?,
        tracestate: None,
    });
    let span = context.span();
    let span = span.span_context();
    span.is_valid().then(|| format_traceparent(span))
}

/// The trace id a W3C `traceparent` names, if it is well formed.
pub fn trace_id_of(traceparent: &str) -> Option<&str> {
    traceparent.split('-').nth(1).filter(|id| id.len() == 32)
}

/// `span`'s W3C `traceparent`, as the propagator writes it.
fn format_traceparent(span: &opentelemetry::trace::SpanContext) -> String {
    let context = opentelemetry::Context::new().with_remote_span_context(span.clone());
    let mut written = Written::default();
    TraceContextPropagator::new().inject_context(&context, &mut written);
    written.0.unwrap_or_default()
}

/// A caller's W3C headers as the propagator reads them (without building a map of them on
/// every POST and job).
struct Incoming<'a> {
    traceparent: &'a str,
    tracestate: Option<&'a str>,
}

impl opentelemetry::propagation::Extractor for Incoming<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TRACEPARENT => Some(self.traceparent),
            TRACESTATE => self.tracestate,
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT, TRACESTATE]
    }
}

/// The `traceparent` the propagator writes; the rest (an empty `tracestate`) is dropped.
#[derive(Default)]
struct Written(Option<String>);

impl opentelemetry::propagation::Injector for Written {
    fn set(&mut self, key: &str, value: String) {
        if key == TRACEPARENT {
            self.0 = Some(value);
        }
    }
}

/// The OTLP exporter the environment asks for, if any; one it cannot build is logged and
/// left out (the pipeline runs without export rather than not at all).
fn exporter() -> Option<opentelemetry_otlp::SpanExporter> {
    use opentelemetry_otlp::WithHttpConfig;
    if !export_configured() {
        return None;
    }
    let built = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(BlockingHttp::new())
        .build();
    match built {
        Ok(exporter) => Some(exporter),
        Err(error) => {
            tracing::error!(%error, "traces are not exported: the OTLP exporter cannot be built");
            None
        }
    }
}

/// The service's resource: `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` as the SDK
/// reads them; without a service name, the binary's name.
fn resource() -> Resource {
    let builder = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_some() {
        return builder.build();
    }
    let binary = std::env::args()
        .next()
        .and_then(|path| {
            std::path::Path::new(&path)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "txn-pipeline".into());
    builder.with_service_name(binary).build()
}

/// Sends the spans still buffered and stops the exporter; the end of a binary's `main`.
pub fn flush() {
    if let Some(provider) = PROVIDER.get()
        && let Err(error) = provider.shutdown()
    {
        tracing::warn!(%error, "traces: the last spans were not all exported");
    }
}

/// Makes `span` a child of the span the W3C headers name (a new trace when they are absent or
/// malformed: a bad header never fails the work) and records its `trace_id`. Call it before
/// the span is first entered.
pub fn follow(span: &Span, traceparent: Option<&str>, tracestate: Option<&str>) {
    if let Some(traceparent) = traceparent {
        let parent = TraceContextPropagator::new().extract(&Incoming {
            traceparent,
            tracestate,
        });
        if parent.span().span_context().is_valid() {
            // Fails only for a span no subscriber records, which then has no trace to join.
            let _ = span.set_parent(parent);
        }
    }
    let trace_id = span.context().span().span_context().trace_id();
    span.record("trace_id", tracing::field::display(trace_id));
}

tokio::task_local! {
    /// The `traceparent` the handling being run passes on while no span records it (nothing
    /// is exported): its caller's, as it came (see [`Handling`]).
    static PASSED_ON: Option<String>;
}

/// The trace a handling of queued work continues: the one its W3C `traceparent` names (a new
/// trace when absent or malformed). While spans are exported, the handling's span is the
/// caller's child and what the work queues or calls continues that span. Otherwise no span is
/// recorded (each cost the consumer CPU per job, measured) and the work passes the caller's
/// `traceparent` on as it came. Which of the two is decided once, when the handling begins.
#[derive(Debug)]
pub struct Handling {
    /// The caller's `traceparent` when recorded (the span follows it); else the one passed on.
    traceparent: Option<String>,
    recorded: bool,
}

impl Handling {
    /// The handling of work queued with `incoming`.
    pub fn of(incoming: Option<&str>) -> Self {
        let recorded = exporting();
        let traceparent = if recorded {
            incoming.map(str::to_string)
        } else {
            Some(passed_on(incoming))
        };
        Self {
            traceparent,
            recorded,
        }
    }

    /// Whether the handling's span is recorded (and exported).
    pub fn recorded(&self) -> bool {
        self.recorded
    }

    /// The trace id, when known before the span exists (not recorded): the span is made with
    /// it. When recorded, [`Handling::run`] records it on the span instead.
    pub fn trace_id(&self) -> Option<&str> {
        if self.recorded {
            return None;
        }
        self.traceparent.as_deref().and_then(trace_id_of)
    }

    /// Runs `work` inside `span`, in this trace.
    pub fn run<F: std::future::Future>(
        self,
        span: Span,
        work: F,
    ) -> tokio::task::futures::TaskLocalFuture<Option<String>, tracing::instrument::Instrumented<F>>
    {
        use tracing::Instrument;
        if self.recorded {
            follow(&span, self.traceparent.as_deref(), None);
            return PASSED_ON.scope(None, work.instrument(span));
        }
        PASSED_ON.scope(self.traceparent, work.instrument(span))
    }
}

/// Whether the current handling passes its caller's `traceparent` on (its span is not
/// recorded): work it calls or queues then records no span either.
pub fn passing_on() -> bool {
    PASSED_ON.try_with(Option::is_some).unwrap_or(false)
}

/// The W3C `traceparent` for work the current handling queues or calls it makes: what it
/// passes on (see [`Handling`]), else its span's; `None` outside any span recorded.
pub fn traceparent() -> Option<String> {
    match PASSED_ON.try_with(Clone::clone) {
        Ok(Some(passed)) => Some(passed),
        _ => headers_of(&Span::current()).remove(TRACEPARENT),
    }
}

/// The W3C headers (`traceparent`, and `tracestate` when there is one) naming `span`.
pub fn headers_of(span: &Span) -> HashMap<String, String> {
    let mut carrier = HashMap::with_capacity(2);
    let context = span.context();
    if context.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&context, &mut carrier);
    }
    carrier
}

/// The OTLP exporter's HTTP client: the workspace's reqwest, blocking, because the batch
/// exporter runs on a thread of its own, outside the async runtime.
#[derive(Debug)]
struct BlockingHttp(OnceLock<Result<reqwest::blocking::Client, String>>);

impl BlockingHttp {
    fn new() -> Self {
        Self(OnceLock::new())
    }

    /// Built on first use, on the exporter's thread: a blocking client cannot be built inside
    /// the async runtime.
    fn client(&self) -> Result<&reqwest::blocking::Client, String> {
        self.0
            .get_or_init(|| {
                reqwest::blocking::Client::builder()
                    .timeout(export_timeout())
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// How long one export may take before its spans are dropped: `OTEL_EXPORTER_OTLP_TIMEOUT`
/// (ms), 10 s without it.
fn export_timeout() -> Duration {
    const DEFAULT: Duration = Duration::from_secs(10);
    match std::env::var("OTEL_EXPORTER_OTLP_TIMEOUT") {
        Err(_) => DEFAULT,
        Ok(ms) => match ms.trim().parse() {
            Ok(ms) => Duration::from_millis(ms),
            Err(_) => {
                tracing::warn!(value = %ms, "OTEL_EXPORTER_OTLP_TIMEOUT is not a number of ms: 10 s taken");
                DEFAULT
            }
        },
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for BlockingHttp {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let client = self.client()?;
        let (parts, body) = request.into_parts();
        let response = client
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body.to_vec())
            .send()?;
        let status = response.status();
        let headers = response.headers().clone();
        let mut answer = http::Response::builder()
            .status(status)
            .body(response.bytes()?)?;
        *answer.headers_mut() = headers;
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_without_a_span_continues_the_callers_trace_or_starts_an_unsampled_one() {
        let client = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(passed_on(Some(client)), client);
        for bad in [
            None,
            Some("garbage"),
            Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"),
        ] {
            let new = passed_on(bad);
            let parts: Vec<&str> = new.split('-').collect();
            assert_eq!(parts.len(), 4, "{new}");
            assert_eq!((parts[0], parts[3]), ("00", "00"), "{bad:?}: {new}");
            assert_eq!(trace_id_of(&new).map(str::len), Some(32));
            assert_ne!(parts[1], "0".repeat(32));
            assert_eq!(parts[2].len(), 16);
        }
        assert_ne!(passed_on(None), passed_on(None), "each new trace its own");
        assert_eq!(
            trace_id_of(client),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(trace_id_of("00-short-x-01"), None);
    }
}
