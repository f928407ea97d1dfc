//! A lean HTTP/1.1 load generator: `n` keep-alive connections, each sending the next request as
//! soon as the previous answer is read (closed loop, like wrk), recording latencies in an HDR
//! histogram corrected for coordinated omission.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::{Request, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// What to send, and when to stop.
#[derive(Clone)]
pub struct Plan {
    /// Where.
    pub addr: SocketAddr,
    /// `POST` path.
    pub path: String,
    /// The client apps' API keys, sent as `Authorization: Bearer <key>`: connection `i` uses
    /// key `i` modulo their number.
    pub api_keys: Vec<String>,
    /// Makes the body of request number `n`.
    pub body: Arc<dyn Fn(u64) -> Bytes + Send + Sync>,
    /// Stop after this many requests in all (None = until the deadline).
    pub limit: Option<u64>,
    /// Stop at this instant (None = until the limit).
    pub deadline: Option<Instant>,
    /// The mean interval between requests on one connection, for the coordinated-omission
    /// correction (a stall of k intervals also delays the k requests that were never sent).
    pub expected_interval: Option<Duration>,
}

/// Results of one run.
pub struct Outcome {
    /// Latencies in microseconds (corrected when an expected interval was given).
    pub latency_us: Histogram<u64>,
    /// Answers by class: 2xx, other.
    pub ok: u64,
    /// Non-2xx answers and transport errors.
    pub failed: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
}

async fn connection(
    plan: Plan,
    index: usize,
    counter: Arc<AtomicU64>,
    done: Arc<AtomicU64>,
) -> anyhow::Result<(Histogram<u64>, u64, u64)> {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let stream = TcpStream::connect(plan.addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let (mut ok, mut failed) = (0, 0);
    let host = plan.addr.to_string();
    let key = plan
        .api_keys
        .get(index % plan.api_keys.len().max(1))
        .ok_or_else(|| anyhow::anyhow!("no API key to send"))?;
    let authorization = format!("Bearer {key}");
    loop {
        if plan.deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let n = counter.fetch_add(1, Ordering::Relaxed);
        if plan.limit.is_some_and(|l| n >= l) {
            break;
        }
        let request = Request::post(plan.path.as_str())
            .header(header::HOST, host.as_str())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, authorization.as_str())
            .body(Full::new((plan.body)(n)))?;
        let started = Instant::now();
        sender.ready().await?;
        match sender.send_request(request).await {
            Ok(response) => {
                let success = response.status().is_success();
                response.into_body().collect().await?;
                if success { ok += 1 } else { failed += 1 }
            }
            Err(_) => failed += 1,
        }
        let micros = started.elapsed().as_micros().max(1) as u64;
        match plan.expected_interval {
            Some(interval) => hist.record_correct(micros, interval.as_micros().max(1) as u64)?,
            None => hist.record(micros)?,
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
    Ok((hist, ok, failed))
}

/// Runs `plan` over `connections` connections; `done` counts finished requests (for progress).
pub async fn run(plan: Plan, connections: usize, done: Arc<AtomicU64>) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let counter = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(connections);
    for index in 0..connections {
        tasks.push(tokio::spawn(connection(
            plan.clone(),
            index,
            counter.clone(),
            done.clone(),
        )));
    }
    let mut latency_us = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut ok, mut failed) = (0, 0);
    for task in tasks {
        let (hist, o, f) = task.await??;
        latency_us.add(hist)?;
        ok += o;
        failed += f;
    }
    Ok(Outcome {
        latency_us,
        ok,
        failed,
        elapsed: started.elapsed(),
    })
}

/// [`run`] on a thread and a one-thread runtime of its own, as `wrk -t1` runs: apart from the
/// caller's runtime, and from whatever else that runtime serves.
pub async fn run_on_own_thread(
    plan: Plan,
    connections: usize,
    done: Arc<AtomicU64>,
) -> anyhow::Result<Outcome> {
    let (answer, outcome) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("load".into())
        .spawn(move || {
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|runtime| runtime.block_on(run(plan, connections, done)));
            let _ = answer.send(result);
        })?;
    outcome.await?
}
