//! Logging, traces and metrics set-up, shared by every binary.

use std::io::IsTerminal;

use tracing::Metadata;
use tracing_subscriber::{EnvFilter, Layer, filter::filter_fn, fmt, prelude::*};

/// Installs the global subscriber: `RUST_LOG` filters the log (default `info`),
/// `LOG_FORMAT=json` gives one JSON object per line, `pretty` human lines; unset means pretty
/// on a terminal and JSON otherwise. The spans of the pipeline's traced work (target
/// [`crate::trace::TARGET`], and [`crate::trace::LOGGED`] under it) exist whatever `RUST_LOG`
/// says, so their trace goes on and every log line inside one carries its `trace_id`. Calling
/// it twice is harmless.
pub fn init() {
    let filter = match EnvFilter::try_from_default_env() {
        Ok(filter) => filter,
        Err(_) => EnvFilter::new("info"),
    };
    let filter = match format!("{}=info", crate::trace::TARGET).parse() {
        Ok(traced) => filter.add_directive(traced),
        // A constant directive: only a change to TARGET could make it fail.
        Err(error) => {
            eprintln!("traced spans follow RUST_LOG: directive refused: {error}");
            filter
        }
    };
    let json = match std::env::var("LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("pretty") => false,
        _ => !std::io::stdout().is_terminal(),
    };
    // Only the traced spans leave the process, with the warnings and errors logged in them:
    // not every span a library opens, nor every line a request logs.
    let exported = filter_fn(|m: &Metadata<'_>| {
        if m.is_span() {
            m.target() == crate::trace::TARGET
        } else {
            *m.level() <= tracing::Level::WARN
        }
    });
    // No code location, thread or busy/idle timing on every span: they cost each POST and
    // job, and the span's name and fields already say where it is.
    // Without an exporter, no layer: spans are not recorded at all, and the trace goes on
    // as the callers' `traceparent`, passed on (`trace::Handling`).
    let traces = crate::trace::export_configured().then(|| {
        tracing_opentelemetry::layer()
            .with_tracer(crate::trace::tracer())
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_filter(exported)
    });
    let registry = tracing_subscriber::registry().with(filter).with(traces);
    let _ = if json {
        let log = fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false);
        registry.with(log).try_init()
    } else {
        registry.with(fmt::layer()).try_init()
    };
}

/// The process's Prometheus recorder, installed on first use; every service renders it at
/// `/metrics`. Latencies are histograms in seconds with fixed buckets.
pub fn metrics() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = metrics_exporter_prometheus::PrometheusBuilder::new()
            .set_buckets(&[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ])
            .unwrap_or_else(|_| metrics_exporter_prometheus::PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (a test harness): ours then stays empty,
        // which is harmless.
        let _ = metrics::set_global_recorder(recorder);
        // Histograms keep raw samples until drained: drain them even if nobody scrapes.
        let upkeep = handle.clone();
        let _ = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            });
        handle
    })
}

/// The Prometheus text of every metric of the process.
pub fn render_metrics() -> String {
    let handle = metrics();
    handle.run_upkeep();
    handle.render()
}
