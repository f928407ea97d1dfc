//! One trace per transaction: the client's `traceparent` on its POST continues through every
//! job of the transaction's work, in whichever consumer runs it, and through the calls to the
//! third party and to the client app; the spans, exported over OTLP to a collector run here,
//! chain back to the client's span. The services run as their own binaries, one consumer per
//! queue, with exactly the environment an operator would give them.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Json, Router, extract::State, routing::post};
use bench::services::{Lineup, Redis, Services};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::*;

/// One span as the collector received it.
#[derive(Debug, Clone)]
struct Exported {
    trace_id: String,
    span_id: String,
    parent: String,
    name: String,
    service: String,
    attributes: HashMap<String, String>,
}

type Received = Arc<Mutex<Vec<Exported>>>;

/// An OTLP/HTTP collector (JSON) on a free port, keeping every span exported to it.
struct Collector {
    url: String,
    spans: Received,
}

impl Collector {
    async fn start() -> Self {
        Self::start_on(0).await
    }

    /// The collector on `port` of the loopback (0: any free one).
    async fn start_on(port: u16) -> Self {
        let spans = Received::default();
        let app = Router::new()
            .route("/v1/traces", post(receive))
            .with_state(spans.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, spans }
    }

    /// The standard variables pointing a service at this collector, exporting every 100 ms;
    /// then `more`.
    fn settings(&self, more: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        let mut all = vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", self.url.clone()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json".into()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
        ];
        all.extend(more.iter().map(|(k, v)| (*k, v.to_string())));
        all
    }

    fn of_trace(&self, trace_id: &str) -> Vec<Exported> {
        let spans = self.spans.lock().unwrap_or_else(|e| e.into_inner());
        spans
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .cloned()
            .collect()
    }

    /// Whether every span of a transaction's work in `client`'s trace has come, each with its
    /// parent (processes export in their own batches: a span can come before its parent).
    fn has_whole_trace(&self, client: &ClientSpan) -> bool {
        const WANTED: [(&str, &str); 7] = [
            ("POST /transaction", "producer"),
            ("create job", "consumer"),
            ("process job", "consumer"),
            ("third party: submit", "consumer"),
            ("update job", "consumer"),
            ("notify job", "consumer"),
            ("client app: notify", "consumer"),
        ];
        let spans = self.of_trace(&client.trace_id);
        let parents_in = spans
            .iter()
            .all(|s| s.parent == client.span_id || spans.iter().any(|p| p.span_id == s.parent));
        parents_in
            && WANTED.iter().all(|(name, service)| {
                spans
                    .iter()
                    .any(|s| s.name == *name && s.service == *service)
            })
    }

    /// Every job span of the jobs whose id names `id`.
    fn jobs_of(&self, id: Uuid) -> Vec<Exported> {
        let id = id.to_string();
        let spans = self.spans.lock().unwrap_or_else(|e| e.into_inner());
        spans
            .iter()
            .filter(|s| s.attributes.get("job_id").is_some_and(|j| j.contains(&id)))
            .cloned()
            .collect()
    }
}

async fn receive(State(spans): State<Received>, Json(body): Json<Value>) -> Json<Value> {
    let mut received = Vec::new();
    for resource in body["resourceSpans"].as_array().into_iter().flatten() {
        let service = attributes(&resource["resource"]["attributes"])
            .remove("service.name")
            .unwrap_or_default();
        for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
            for span in scope["spans"].as_array().into_iter().flatten() {
                let text = |key: &str| span[key].as_str().unwrap_or_default().to_string();
                received.push(Exported {
                    trace_id: text("traceId"),
                    span_id: text("spanId"),
                    parent: text("parentSpanId"),
                    name: text("name"),
                    service: service.clone(),
                    attributes: attributes(&span["attributes"]),
                });
            }
        }
    }
    spans
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .extend(received);
    Json(json!({}))
}

/// OTLP attributes (`[{key, value: {stringValue | intValue | …}}]`) as text.
fn attributes(list: &Value) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for attribute in list.as_array().into_iter().flatten() {
        let key = attribute["key"].as_str().unwrap_or_default().to_string();
        let value = attribute["value"]
            .as_object()
            .and_then(|v| v.values().next())
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_default();
        out.insert(key, value);
    }
    out
}

/// A client's span: a trace id and a span id of its own, as its `traceparent`.
struct ClientSpan {
    trace_id: String,
    span_id: String,
}

impl ClientSpan {
    fn new() -> Self {
        Self {
            trace_id: Uuid::new_v4().simple().to_string(),
            span_id: Uuid::new_v4().simple().to_string()[..16].to_string(),
        }
    }

    fn traceparent(&self) -> String {
        format!("00-{}-{}-01", self.trace_id, self.span_id)
    }
}

/// The trace id a `traceparent` names.
fn trace_of(traceparent: &str) -> &str {
    service::trace::trace_id_of(traceparent).unwrap_or_default()
}

/// Short schedules, so a transaction is done in about a second.
const QUICK: [(&str, &str); 6] = [
    ("RESOLVE_MAX_MS", "300"),
    ("POLL_INITIAL_MS", "200"),
    ("POLL_MAX_INTERVAL_MS", "1000"),
    ("PROCESS_BACKOFF_MS", "200"),
    ("NOTIFY_SCHEDULE", "200ms,500ms,1s,2s,5s"),
    ("SWEEP_GRACE_MS", "3000"),
];

/// The services of `lineup` as their own binaries, on a database of their own, with the quick
/// schedules and `settings` on top.
async fn services(lineup: Lineup, settings: Vec<(&'static str, String)>) -> Services {
    let mut all: Vec<(&'static str, String)> =
        QUICK.iter().map(|(k, v)| (*k, v.to_string())).collect();
    all.extend(settings);
    let url = redis_url();
    Services::start_with(
        &built_binaries(),
        &format!("{}/postgres", postgres_server()),
        &Redis {
            url: &url,
            cluster: false,
        },
        lineup,
        all,
    )
    .await
    .expect("the services start")
}

/// POSTs a transaction with the client's own id, the run's API key and `client`'s
/// `traceparent`; its id.
async fn post_traced(services: &Services, client: &ClientSpan) -> Uuid {
    let id = Uuid::now_v7();
    let answer = reqwest::Client::new()
        .post(format!("{}/transaction", services.producer))
        .bearer_auth(&services.api_keys[0])
        .header("traceparent", client.traceparent())
        .json(&json!({ "id": id, "amount": 1250, "currency": "EUR" }))
        .sent()
        .await;
    assert_eq!(answer.status(), 201, "{id} accepted");
    id
}

/// POSTs `n` transactions, each in the trace of a client span of its own; the spans and the
/// ids, in order.
async fn post_traced_n(services: &Services, n: usize) -> (Vec<ClientSpan>, Vec<Uuid>) {
    let clients: Vec<ClientSpan> = (0..n).map(|_| ClientSpan::new()).collect();
    let mut ids = Vec::new();
    for client in &clients {
        ids.push(post_traced(services, client).await);
    }
    (clients, ids)
}

/// What the client simulator received for `id`.
async fn received_by_client(services: &Services, id: Uuid) -> Vec<client_sim::Received> {
    let url = format!("{}/received/{id}", services.client_sims[0]);
    let answer = reqwest::Client::new().get(url).sent().await;
    answer.json().await.unwrap_or_default()
}

/// The `traceparent` of each call the third party received, per id.
async fn heard_by_third_party(services: &Services) -> HashMap<Uuid, Vec<String>> {
    let url = format!("{}/traces", services.thirdparty);
    let answer = reqwest::Client::new().get(url).sent().await;
    answer.json().await.expect("the third party's traces")
}

/// Waits until the client app was told of each of `ids`.
async fn all_told(services: &Services, ids: &[Uuid], secs: u64) {
    eventually(
        Duration::from_secs(secs),
        "every client app told",
        || async {
            for &id in ids {
                if received_by_client(services, id).await.is_empty() {
                    return false;
                }
            }
            true
        },
    )
    .await;
}

/// Asserts that `spans` form one tree under the client's span: each one's parent is the
/// client's span or another of them.
fn assert_chained_to(client: &ClientSpan, spans: &[Exported]) {
    let ids: HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let by_id: HashMap<&str, &Exported> = spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    for span in spans {
        assert!(
            span.parent == client.span_id || ids.contains(span.parent.as_str()),
            "{} ({}) has parent {}, neither the client's span nor one of the trace's: {spans:#?}",
            span.name,
            span.service,
            span.parent
        );
        // No cycle: the walk up reaches the client's span.
        let mut at = span;
        for _ in 0..=spans.len() {
            if at.parent == client.span_id {
                break;
            }
            at = by_id[at.parent.as_str()];
        }
        assert_eq!(
            at.parent, client.span_id,
            "{} reaches the client",
            span.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_is_one_trace_from_the_clients_post_to_its_notification() {
    let collector = Collector::start().await;
    let services = services(Lineup::Scaled, collector.settings(&[])).await;
    let (clients, ids) = post_traced_n(&services, 5).await;
    all_told(&services, &ids, 60).await;

    // Each transaction's work, whichever process ran it, is in its client's trace.
    for (client, id) in clients.iter().zip(&ids) {
        eventually(
            Duration::from_secs(20),
            "every span of the transaction's work exported, each with its parent",
            || async { collector.has_whole_trace(client) },
        )
        .await;
        let spans = collector.of_trace(&client.trace_id);
        assert_chained_to(client, &spans);
        for span in spans.iter().filter(|s| s.name.ends_with(" job")) {
            assert_eq!(span.attributes["trace_id"], client.trace_id, "{span:?}");
            assert!(
                span.attributes["job_id"].contains(&id.to_string()) || span.name == "notify job"
            );
            assert_eq!(span.attributes["outcome"], "done", "{span:?}");
        }
        // Every job of this transaction, in any queue, ran in this trace and no other.
        for job in collector.jobs_of(*id) {
            assert_eq!(job.trace_id, client.trace_id, "{job:?}");
        }
    }

    assert_peers_heard_their_traces(&services, &clients, &ids).await;
    services.stop(false).await.expect("stop");
}

/// Asserts that the peers were called in each transaction's trace: the third party on every
/// call, the client app on its notification.
async fn assert_peers_heard_their_traces(
    services: &Services,
    clients: &[ClientSpan],
    ids: &[Uuid],
) {
    let heard = heard_by_third_party(services).await;
    for (client, id) in clients.iter().zip(ids) {
        let calls = heard.get(id).expect("the third party was called");
        assert!(!calls.is_empty());
        for traceparent in calls {
            assert_eq!(trace_of(traceparent), client.trace_id, "{id}: {calls:?}");
        }
        let told = received_by_client(services, *id).await;
        assert!(!told.is_empty(), "{id} told");
        for told in told {
            let traceparent = told.traceparent.expect("the notification's traceparent");
            assert_eq!(trace_of(&traceparent), client.trace_id, "{id}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_exporter_the_trace_still_goes_from_the_post_to_every_peer() {
    let services = services(Lineup::Pipeline, Vec::new()).await;
    // The client's trace is passed on as it is.
    let (clients, ids) = post_traced_n(&services, 5).await;
    // Without a traceparent, each transaction is a trace of its own, named by its id.
    let mut untraced = Vec::new();
    for _ in 0..5 {
        let id = Uuid::now_v7();
        let answer = reqwest::Client::new()
            .post(format!("{}/transaction", services.producer))
            .bearer_auth(&services.api_keys[0])
            .json(&json!({ "id": id, "amount": 100, "currency": "EUR" }))
            .sent()
            .await;
        assert_eq!(answer.status(), 201, "{id} accepted");
        untraced.push(id);
    }
    all_told(&services, &[ids.clone(), untraced.clone()].concat(), 60).await;
    assert_peers_heard_their_traces(&services, &clients, &ids).await;
    let heard = heard_by_third_party(&services).await;
    let mut traces = HashSet::new();
    for id in &untraced {
        let told = received_by_client(&services, *id).await;
        let traceparent = told[0].traceparent.clone().expect("a traceparent");
        let trace = trace_of(&traceparent).to_string();
        assert_eq!(trace, id.simple().to_string(), "{traceparent}");
        for call in &heard[id] {
            assert_eq!(trace_of(call), trace, "{id}: every call in its one trace");
        }
        assert!(traces.insert(trace), "{id}: a trace of its own");
    }
    // The consumer's log lines about each transaction's work carry its trace id.
    let log = services.log_of("consumer").expect("the consumer's log");
    for (client, id) in clients.iter().zip(&ids) {
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(&id.to_string()))
            .collect();
        assert!(lines.len() >= 2, "{id} logged: {lines:#?}");
        for line in lines {
            assert!(
                line.contains(&client.trace_id),
                "{id}: no trace id in {line}"
            );
        }
    }
    services.stop(false).await.expect("stop");
}

/// Waits until the notify job of each of `clients`' transactions is exported, then asserts
/// that every job of each transaction ran in its client's trace; the job spans, per
/// transaction.
async fn jobs_in_their_traces(
    collector: &Collector,
    clients: &[ClientSpan],
    ids: &[Uuid],
) -> Vec<Vec<Exported>> {
    let mut all = Vec::new();
    for (client, id) in clients.iter().zip(ids) {
        eventually(
            Duration::from_secs(20),
            "the notify job exported",
            || async {
                collector
                    .of_trace(&client.trace_id)
                    .iter()
                    .any(|s| s.name == "notify job")
            },
        )
        .await;
        let jobs = collector.jobs_of(*id);
        for job in &jobs {
            assert_eq!(job.trace_id, client.trace_id, "{job:?}");
        }
        all.push(jobs);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_redelivered_after_a_consumer_is_killed_mid_job_stays_in_its_trace() {
    let collector = Collector::start().await;
    // Submissions take a second each: the kill finds them in flight.
    let settings = collector.settings(&[("THIRDPARTY_LATENCY_MS", "1000"), ("LEASE_MS", "2000")]);
    let mut services = services(Lineup::Scaled, settings).await;
    let (clients, ids) = post_traced_n(&services, 10).await;
    // The process consumer is killed while submissions are in flight: their jobs are
    // delivered again once their leases run out.
    eventually(Duration::from_secs(20), "submissions in flight", || async {
        !heard_by_third_party(&services).await.is_empty()
    })
    .await;
    services.kill_one("consumer-process");
    services
        .restart("consumer-process")
        .await
        .expect("consumer-process restarted");
    all_told(&services, &ids, 90).await;

    // The kill hit work in progress: its submissions are delivered again once their leases
    // run out (after the outcomes, which the third party reported meanwhile).
    eventually(
        Duration::from_secs(30),
        "a submission delivered again after the kill",
        || async {
            ids.iter().any(|id| {
                let jobs = collector.jobs_of(*id);
                jobs.iter()
                    .any(|j| j.name == "process job" && j.attributes["attempt"] != "1")
            })
        },
    )
    .await;
    // And every job, the redelivered ones too, ran in its transaction's trace.
    jobs_in_their_traces(&collector, &clients, &ids).await;
    services.stop(false).await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_job_revived_by_the_sweeper_stays_in_its_trace() {
    let collector = Collector::start().await;
    // A job that fails once dies, and the sweeper revives it a second later.
    let settings = collector.settings(&[
        ("MAX_DELIVERIES", "1"),
        ("DEAD_REVIVE_MS", "1000"),
        ("SWEEP_INTERVAL_MS", "500"),
    ]);
    let services = services(Lineup::Pipeline, settings).await;
    let outage = |on: bool| {
        let url = format!("{}/admin/outage", services.thirdparty);
        async move {
            let answer = reqwest::Client::new()
                .post(url)
                .json(&json!({ "on": on }))
                .sent()
                .await;
            assert!(answer.status().is_success(), "outage {on}");
        }
    };
    // The third party is down: every submission fails, dies and is revived.
    outage(true).await;
    let (clients, ids) = post_traced_n(&services, 5).await;
    eventually(Duration::from_secs(30), "submissions revived", || async {
        ids.iter().all(|id| {
            let runs = collector.jobs_of(*id);
            runs.iter().filter(|j| j.name == "process job").count() >= 2
        })
    })
    .await;
    outage(false).await;
    all_told(&services, &ids, 90).await;
    jobs_in_their_traces(&collector, &clients, &ids).await;
    services.stop(false).await.expect("stop");
}

/// What a service logs when its collector did not take an export (recording pauses).
const PAUSED: &str = "the collector did not take the spans";
/// What it logs when an export after a pause went through (recording resumes).
const RESUMED: &str = "the collector takes spans again";

/// Whether every one of `names` logged `line`.
fn all_logged(services: &Services, names: &[&str], line: &str) -> bool {
    names
        .iter()
        .all(|name| services.log_of(name).is_ok_and(|log| log.contains(line)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_is_down_fails_nothing_and_its_return_is_noticed() {
    let port = testkit::free_port().expect("a free port");
    let settings = vec![
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{port}"),
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json".into()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_string()),
    ];
    let services = services(Lineup::Pipeline, settings).await;
    let processes = ["producer", "consumer"];

    // Work in progress while the collector is down: recorded until an export fails, then
    // each service stops recording, and the rest is posted during that pause.
    let (mut clients, mut ids) = post_traced_n(&services, 20).await;
    eventually(
        Duration::from_secs(30),
        "each service paused recording after a failed export",
        || async { all_logged(&services, &processes, PAUSED) },
    )
    .await;
    let (paused_clients, paused_ids) = post_traced_n(&services, 20).await;
    clients.extend(paused_clients);
    ids.extend(paused_ids);
    all_told(&services, &ids, 60).await;
    assert_peers_heard_their_traces(&services, &clients, &ids).await;

    // The collector comes back at the same address: after its pause each service records
    // again (the traffic of new transactions, five a second, makes the export that finds
    // out), and a new transaction is one whole trace there again.
    let collector = Collector::start_on(port).await;
    let mut polls = 0u32;
    eventually(
        Duration::from_secs(60),
        "each service resumed recording",
        || {
            polls += 1;
            let post = polls % 10 == 1;
            let services = &services;
            async move {
                if post {
                    post_traced(services, &ClientSpan::new()).await;
                }
                all_logged(services, &processes, RESUMED)
            }
        },
    )
    .await;
    let (clients, ids) = post_traced_n(&services, 3).await;
    all_told(&services, &ids, 60).await;
    for client in &clients {
        eventually(
            Duration::from_secs(20),
            "every span of the transaction's work exported, each with its parent",
            || async { collector.has_whole_trace(client) },
        )
        .await;
        assert_chained_to(client, &collector.of_trace(&client.trace_id));
    }
    services.stop(false).await.expect("stop");
}
