//! `spawn_stack`: the real producer, consumer and both simulators, in-process on ephemeral
//! ports, against a database and a queue prefix of their own; and typed helpers to drive them.

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use clap::Parser;
use domain::{QueueName, WebhookSecrets, fault::Rate};
use serde::Deserialize;
use service::config::{Connections, DEFAULT_DATABASE_URL};
use sqlx::{Connection, PgConnection};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub mod browser;
pub use testkit::{PrivatePostgres, PrivateRedis, eventually};

/// The Postgres server the tests use (a database of their own is created on it).
pub fn postgres_server() -> String {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.into());
    url.rsplit_once('/')
        .map(|(server, _)| server.to_string())
        .unwrap_or(url)
}

pub use testkit::shared_redis_url as redis_url;

/// The directory of the service binaries as this profile builds them, built once per test
/// process (`cargo build --workspace --bins`): for tests that run them as separate processes.
pub fn built_binaries() -> std::path::PathBuf {
    static BUILT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let built = std::process::Command::new(&cargo)
                .current_dir(&root)
                .args(["build", "--workspace", "--bins"])
                .status()
                .expect("cargo build");
            assert!(built.success(), "cargo build --bins: {built}");
            let target = std::env::var("CARGO_TARGET_DIR")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|_| root.join("target"));
            target.join("debug")
        })
        .clone()
}

pub use reqwest::Method;

/// The status code and the JSON answer (`Null` when it is not JSON) to `request`.
pub async fn json_answer(request: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
    let response = request.sent().await;
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

/// Sending a test's request, where a transport error fails the test.
pub trait SendOrFail {
    /// Sends the request; panics if no answer came.
    async fn sent(self) -> reqwest::Response;

    /// Sends the request and reads its answer as JSON; panics if no JSON answer came.
    async fn json_answered(self) -> serde_json::Value;
}

impl SendOrFail for reqwest::RequestBuilder {
    async fn sent(self) -> reqwest::Response {
        self.send().await.expect("an answer")
    }

    async fn json_answered(self) -> serde_json::Value {
        self.sent().await.json().await.expect("a JSON answer")
    }
}

/// The string `field` of each element of the JSON array `array`, in order.
pub fn each_str<'a>(array: &'a serde_json::Value, field: &str) -> Vec<&'a str> {
    let elements = array.as_array().expect("a JSON array");
    elements
        .iter()
        .map(|e| e[field].as_str().expect("a string field"))
        .collect()
}

/// Asserts that the OpenAPI document `doc` defines each of `schemas`.
pub fn assert_schemas(doc: &serde_json::Value, schemas: &[&str]) {
    for schema in schemas {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "schema {schema}"
        );
    }
}

/// A rate, e.g. `rate("0.3")`.
pub fn rate(value: &str) -> Rate {
    value.parse().expect("a rate between 0 and 1")
}

/// The services' settings a test may change, typed. `spawn_stack` fills in what is the stack's
/// own: connections, queue prefix, addresses and the URLs between the services.
#[derive(Debug, Clone)]
pub struct Options {
    /// How the third-party simulator resolves transactions and misbehaves.
    pub thirdparty: thirdparty_sim::Behaviour,
    /// Which faults the client simulator injects.
    pub client: client_sim::Faults,
    /// The consumer's settings (its client webhook secret is the client simulator's).
    pub consumer: consumer::Config,
    /// The producer's settings (its webhook secret is the third-party simulator's).
    pub producer: producer::Config,
    /// Whether to run the consumer (without it, only the producer decides answers).
    pub run_consumer: bool,
    /// Redis to use instead of the shared one (URL, and a CA bundle for `rediss://`).
    pub redis_url: Option<String>,
    /// That Redis is a cluster (`redis_url` lists its seeds).
    pub redis_cluster: bool,
    /// That Redis's password (`REDIS_PASSWORD`).
    pub redis_password: Option<String>,
    /// The producer reaches that Redis through this URL instead (a proxy in between).
    pub producer_redis_url: Option<String>,
    /// A certificate and key (PEM files) the producer and both simulators serve HTTPS with.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// The key the third-party simulator requires.
    pub thirdparty_api_key: Option<service::secret::Secret>,
    /// The CA bundle that `rediss://` and `https://` connections trust.
    pub ca_file: Option<std::path::PathBuf>,
    /// A Postgres server to use instead of the shared one, as `postgres://user@host:port`, and
    /// the query string every connection to it carries (e.g. `?sslmode=verify-full&…`).
    pub postgres: Option<(String, String)>,
}

impl Options {
    /// The defaults, with no consumer started (the test starts its own, or none).
    pub fn without_consumer() -> Self {
        Options {
            run_consumer: false,
            ..Options::default()
        }
    }

    /// The third party resolves each transaction `min_ms` to `max_ms` after its submission.
    pub fn resolve_within(&mut self, min_ms: u64, max_ms: u64) {
        self.thirdparty.resolve_min_ms = min_ms;
        self.thirdparty.resolve_max_ms = max_ms;
    }

    /// These options on the Redis at `url` instead of the shared one.
    pub fn on_redis(self, url: String) -> Self {
        Options {
            redis_url: Some(url),
            ..self
        }
    }
}

impl Default for Options {
    /// Every schedule in fractions of a second, 30 % declines, a small connection pool.
    fn default() -> Self {
        let webhook = WebhookSecrets::generate().expose();
        let client_secret = WebhookSecrets::generate().expose();
        let mut consumer = consumer::Config::try_parse_from([
            "consumer",
            "--client-webhook-secret",
            &client_secret,
        ])
        .expect("consumer settings");
        consumer.schedules.process_backoff_ms = 100;
        consumer.schedules.notify_schedule = notify_doubling(50, 8);
        consumer.sweep_interval = Duration::from_millis(500);
        consumer.sweep_grace = Duration::from_secs(3);
        consumer.lease = Duration::from_secs(3);
        consumer.http_timeout = Duration::from_secs(1);
        consumer.shutdown.grace = Duration::from_secs(5);
        consumer.database_max_connections = 8;
        let pepper = domain::client_app::Pepper::generate();
        let mut producer = producer::Config::try_parse_from([
            "producer",
            "--webhook-secret",
            &webhook,
            "--api-key-pepper",
            &pepper,
        ])
        .expect("producer settings");
        // The fewest the producer accepts: one beside those its look-ups keep.
        producer.database_max_connections = producer::acceptance::KEPT_CONNECTIONS + 1;
        Self {
            thirdparty: thirdparty_sim::Behaviour {
                decline_rate: rate("0.3"),
                resolve_min_ms: 20,
                resolve_max_ms: 300,
                ..thirdparty_sim::Behaviour::RELIABLE
            },
            client: client_sim::Faults::NONE,
            consumer,
            producer,
            run_consumer: true,
            redis_url: None,
            producer_redis_url: None,
            redis_cluster: false,
            redis_password: None,
            tls: None,
            thirdparty_api_key: None,
            ca_file: None,
            postgres: None,
        }
    }
}

/// A running stack.
pub struct Stack {
    pub producer: String,
    pub thirdparty: String,
    pub client: String,
    pub consumer: String,
    pub database_url: String,
    pub prefix: String,
    /// Postgres, Redis and the prefix, as the services got them.
    pub connections: Connections,
    /// The API key of the stack's client app (`e2e`).
    pub api_key: String,
    /// That client app.
    pub client_app: domain::ClientAppId,
    pub http: reqwest::Client,
    /// The secret the third party signs webhooks with.
    pub webhook_secret: WebhookSecrets,
    /// The consumer's settings (to start one in a child process).
    pub consumer_config: consumer::Config,
    database: Database,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
    cleaned: bool,
}

async fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    (l, addr)
}

/// A database of a test's own.
#[derive(Debug, Clone)]
pub struct Database {
    /// Its name.
    pub name: String,
    /// Its URL.
    pub url: String,
    /// The server's `postgres` database, from which it is created and dropped.
    admin: String,
}

impl Database {
    /// Drops it.
    pub async fn drop(&self) {
        if let Ok(mut admin) = PgConnection::connect(&self.admin).await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut admin)
            .await;
        }
    }
}

/// Creates a private database on the shared server, migrated.
pub async fn private_database() -> Database {
    private_database_on(&postgres_server(), "").await
}

/// Creates a private database on `server` (`postgres://user@host:port`), every connection
/// carrying `params` (a query string or ""), migrated.
pub async fn private_database_on(server: &str, params: &str) -> Database {
    let name = format!("e2e_{}", Uuid::new_v4().simple());
    let admin = format!("{server}/postgres{params}");
    let mut conn = PgConnection::connect(&admin).await.expect("postgres");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create database");
    let url = format!("{server}/{name}{params}");
    consumer::migrate(&url).await.expect("migrate");
    Database { name, url, admin }
}

/// Starts the four services.
pub async fn spawn_stack(options: Options) -> Stack {
    let database = match &options.postgres {
        Some((server, params)) => private_database_on(server, params).await,
        None => private_database().await,
    };
    let database_url = database.url.clone();
    let redis = options.redis_url.clone().unwrap_or_else(redis_url);
    let prefix = format!("e2e-{}", Uuid::new_v4().simple());
    let (pl, p_addr) = listener().await;
    let (cl, c_addr) = listener().await;
    let (tl, t_addr) = listener().await;
    let (sl, s_addr) = listener().await;
    let mut connections = Connections::local(
        database_url.parse().expect("database URL"),
        redis.parse().expect("redis URL"),
        &prefix,
    );
    connections.redis_ca_file = options.ca_file.clone();
    connections.redis_cluster = options.redis_cluster;
    connections.redis_password = options
        .redis_password
        .clone()
        .map(service::secret::Secret::new);

    let mut producer = options.producer;
    producer.addr = p_addr;
    producer.connections = connections.clone();
    if let Some(url) = &options.producer_redis_url {
        producer.connections.redis_url = url.parse().expect("producer's redis URL");
    }
    let mut consumer = options.consumer;
    consumer.addr = c_addr;
    consumer.connections = connections.clone();
    // A certificate means the producer and both simulators serve HTTPS.
    let scheme = if options.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let url = |addr: SocketAddr, path: &str| -> service::config::HttpUrl {
        format!("{scheme}://localhost:{}{path}", addr.port())
            .parse()
            .expect("service URL")
    };
    consumer.thirdparty_url = url(t_addr, "");
    consumer.client_url = url(s_addr, "");
    consumer.https_ca_file = options.ca_file.clone();
    let mut thirdparty = thirdparty_sim::Config::local(
        url(p_addr, "/webhook"),
        producer.webhook_secret.clone(),
        options.thirdparty,
    );
    thirdparty.addr = t_addr;
    thirdparty.https_ca_file = options.ca_file.clone();
    thirdparty.api_key = options.thirdparty_api_key.clone();
    let mut client =
        client_sim::Config::local(consumer.client_webhook_secret.clone(), options.client);
    client.addr = s_addr;
    if let Some((cert, key)) = &options.tls {
        for server in [
            &mut producer.server,
            &mut thirdparty.server,
            &mut client.server,
        ] {
            server.tls_cert_file = Some(cert.clone());
            server.tls_key_file = Some(key.clone());
        }
    }

    // The stack's own client app, notified at the client simulator.
    let api_key = producer.api_key_pepper.new_key();
    let client_app = store::Store::connect_lazy(&database_url, 1)
        .expect("store")
        .create_client_app(
            &store::NewClientApp {
                name: "e2e",
                notify_url: consumer.client_url.as_str(),
                rate_limit_per_s: None,
                burst: None,
            },
            &api_key,
            // Signed with what the client simulator verifies.
            consumer
                .client_webhook_secret
                .each()
                .next()
                .expect("a secret"),
        )
        .await
        .expect("the stack's client app");

    let stop = CancellationToken::new();
    let webhook_secret = producer.webhook_secret.clone();
    let consumer_config = consumer.clone();
    let mut tasks = vec![tokio::spawn(producer::run(producer, pl, stop.clone()))];
    if options.run_consumer {
        tasks.push(tokio::spawn(consumer::run(consumer, cl, stop.clone())));
    }
    tasks.extend([
        tokio::spawn({
            let stop = stop.clone();
            async move { Ok(thirdparty_sim::run(thirdparty, tl, stop).await?) }
        }),
        tokio::spawn({
            let stop = stop.clone();
            async move { Ok(client_sim::run(client, sl, stop).await?) }
        }),
    ]);
    Stack {
        producer: url(p_addr, "").as_str().to_string(),
        thirdparty: url(t_addr, "").as_str().to_string(),
        client: url(s_addr, "").as_str().to_string(),
        consumer: format!("http://{c_addr}"),
        database_url,
        prefix,
        connections,
        api_key: api_key.plaintext,
        client_app: client_app.id,
        http: outbound::http_client::client(Duration::from_secs(30), options.ca_file.as_deref())
            .expect("test client"),
        webhook_secret,
        consumer_config,
        database,
        stop,
        tasks,
        cleaned: false,
    }
}

/// Every fault of both simulators at once, on short schedules: 504s before and after
/// creating, hangs, refusals, failing status checks, dropped, duplicate and stale webhooks,
/// and a client app that fails 30 % of notifications.
pub fn heavy_faults() -> Options {
    let mut o = Options::default();
    o.thirdparty = thirdparty_sim::Behaviour {
        create_504_before_rate: rate("0.2"),
        create_504_after_rate: rate("0.2"),
        create_hang_rate: rate("0.1"),
        create_4xx_rate: rate("0.05"),
        status_504_rate: rate("0.2"),
        webhook_drop_rate: rate("0.3"),
        webhook_dup_rate: rate("0.3"),
        webhook_stale_rate: rate("0.3"),
        latency_ms: 5,
        ..o.thirdparty
    };
    o.client.fail_rate = rate("0.3");
    o.client.latency_ms = 5;
    o.consumer.http_timeout = Duration::from_millis(500);
    let schedules = &mut o.consumer.schedules;
    schedules.process_backoff_ms = 100;
    schedules.notify_schedule = notify_doubling(20, 20);
    schedules.poll_initial_ms = 100;
    schedules.poll_max_interval_ms = 400;
    o
}

/// A notification schedule of `retries` steps from `first_ms`, doubling, at most 5 s each.
pub fn notify_doubling(first_ms: u64, retries: u32) -> domain::schedule::NotifySchedule {
    let steps: Vec<String> = (0..retries)
        .map(|i| format!("{}ms", first_ms.saturating_mul(1 << i.min(20)).min(5_000)))
        .collect();
    steps.join(",").parse().expect("a schedule")
}

/// POSTs `n` new transactions (EUR 1.00 each, 32 at a time) and asserts each was accepted (201).
pub async fn post_all(stack: &Stack, n: usize) -> Vec<Uuid> {
    use futures::{StreamExt, stream};
    let ids: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
    let codes: Vec<u16> = stream::iter(ids.iter())
        .map(|id| async move {
            stack
                .post(serde_json::json!({"id": id, "amount": 100, "currency": "EUR"}))
                .await
                .0
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(codes.iter().all(|c| *c == 201), "every POST answered 201");
    ids
}

/// A consumer started by a test on its own (beside the stack's), with its own stop.
pub struct RunningConsumer {
    /// Its base URL (health, metrics, board).
    pub url: String,
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl RunningConsumer {
    /// Stops it gracefully and waits until it has.
    pub async fn stop(self) {
        self.stop.cancel();
        match tokio::time::timeout(Duration::from_secs(30), self.task).await {
            Ok(Ok(Ok(()))) => {}
            other => panic!("the consumer did not stop cleanly: {other:?}"),
        }
    }

    /// The value of the counter `name` with `labels` (e.g. `target="thirdparty"`) in its
    /// `/metrics`, 0 when absent.
    pub async fn counter(&self, name: &str, labels: &str) -> u64 {
        metric(&self.url, name, labels).await
    }
}

/// The value of counter `name{labels}` on the `/metrics` of the service at `base` (0 if absent).
pub async fn metric(base: &str, name: &str, labels: &str) -> u64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    let series = if labels.is_empty() {
        format!("{name} ")
    } else {
        format!("{name}{{{labels}}} ")
    };
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// What the client simulator recorded.
#[derive(Debug, Clone, Deserialize)]
pub struct Received {
    pub id: Uuid,
    pub status: String,
    pub delivery_id: String,
}

/// The third party's counters.
pub type ThirdPartyStats = thirdparty_sim::Stats;

impl Stack {
    /// A request to the producer at `path` (absolute, from `/`), with the stack's API key.
    pub fn producer_request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.producer))
            .bearer_auth(&self.api_key)
    }

    /// `GET {path}` on the producer with the stack's key: the JSON answer.
    pub async fn get_json_of(&self, path: &str) -> serde_json::Value {
        let r = self.producer_request(Method::GET, path).sent().await;
        r.json().await.expect("a JSON answer")
    }

    /// `POST /transaction` with `body`; the status code and the JSON answer.
    pub async fn post(&self, body: serde_json::Value) -> (u16, serde_json::Value) {
        json_answer(
            self.producer_request(Method::POST, "/transaction")
                .json(&body),
        )
        .await
    }

    /// `GET /transaction/{id}`.
    pub async fn get(&self, id: &str) -> (u16, serde_json::Value) {
        json_answer(self.producer_request(Method::GET, &format!("/transaction/{id}"))).await
    }

    /// Everything the client simulator was told, by transaction.
    pub async fn received(&self) -> HashMap<Uuid, Vec<Received>> {
        let (_, all): (_, Vec<Received>) =
            self.get_json(&format!("{}/received", self.client)).await;
        let mut by_id: HashMap<Uuid, Vec<Received>> = HashMap::new();
        for r in all {
            by_id.entry(r.id).or_default().push(r);
        }
        by_id
    }

    /// `GET url`: its status code and its JSON body.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> (u16, T) {
        let r = self.http.get(url).send().await.expect("GET");
        let code = r.status().as_u16();
        (code, r.json().await.expect("a JSON body"))
    }

    /// `GET url`: its body as text.
    pub async fn text_of(&self, url: &str) -> String {
        let r = self.http.get(url).sent().await;
        r.text().await.expect("a text body")
    }

    /// The producer's `/readyz`: its status code and body.
    pub async fn readyz(&self) -> (u16, serde_json::Value) {
        self.get_json(&format!("{}/readyz", self.producer)).await
    }

    /// The client simulator's counters.
    pub async fn client_stats(&self) -> client_sim::ReceivedStats {
        self.get_json(&format!("{}/stats", self.client)).await.1
    }

    /// The third party's counters.
    pub async fn thirdparty_stats(&self) -> ThirdPartyStats {
        self.get_json(&format!("{}/stats", self.thirdparty)).await.1
    }

    /// What the third party holds, by transaction (fault-free).
    pub async fn ledger(&self) -> HashMap<Uuid, String> {
        self.get_json(&format!("{}/ledger", self.thirdparty))
            .await
            .1
    }

    /// Starts a consumer with `config` (the stack's settings, changed by the test) in this
    /// process.
    pub async fn start_consumer(&self, config: consumer::Config) -> RunningConsumer {
        let (listener, addr) = listener().await;
        let stop = CancellationToken::new();
        let task = tokio::spawn(consumer::run(config, listener, stop.clone()));
        RunningConsumer {
            url: format!("http://{addr}"),
            stop,
            task,
        }
    }

    /// A handle on this stack's queue `name`.
    pub fn queue<T>(&self, name: QueueName) -> queue::Queue<T> {
        queue::Queue::connect(
            &id_cache::redis_settings(&self.connections),
            queue::QueueConfig::new(self.prefix.clone(), name.as_str()),
        )
        .expect("queue handle")
    }

    /// This stack's four queues, typed.
    pub fn queues(&self) -> jobs::Queues {
        let client = queue::RedisClient::new(&id_cache::redis_settings(&self.connections))
            .expect("redis client");
        let redis = client
            .shared(queue::BACKGROUND_TIMEOUT)
            .expect("redis connection");
        jobs::Queues::open(&client, &redis, |name| {
            queue::QueueConfig::new(self.prefix.clone(), name.as_str())
        })
        .expect("queue handles")
    }

    /// A submission of a transaction that has no row yet, pushed as `from` says: it fails and,
    /// with one delivery, dies. Then the transaction is POSTed, so its row exists (its own
    /// `process` push is a no-op while the dead job holds the id). Returns the dead job.
    pub async fn dead_submission(
        &self,
        from: domain::jobs::ProcessFrom,
    ) -> domain::jobs::ProcessJob {
        let id = Uuid::now_v7();
        let job = domain::jobs::ProcessJob {
            id: id.into(),
            from,
            trace: None,
        };
        let queues = self.queues();
        queues.push(job.clone()).await.expect("push");
        eventually(Duration::from_secs(20), "the job died", || async {
            queues.process.counts().await.expect("counts").failed == 1
        })
        .await;
        assert_eq!(self.post(serde_json::json!({ "id": id })).await.0, 201);
        eventually(Duration::from_secs(20), "the row exists", || async {
            self.statuses().await.contains_key(&id)
        })
        .await;
        job
    }

    /// The counts of this stack's queue `name`.
    pub async fn queue_counts(&self, name: QueueName) -> queue::Counts {
        let queue: queue::Queue<serde_json::Value> = self.queue(name);
        queue.counts().await.expect("queue counts")
    }

    /// Jobs leased to a worker right now, over the four queues.
    pub async fn running_jobs(&self) -> u64 {
        let mut running = 0;
        for &name in QueueName::ALL {
            running += self.queue_counts(name).await.running;
        }
        running
    }

    /// How many of `ids` are terminal in Postgres.
    pub async fn terminal_among(&self, ids: &[Uuid]) -> usize {
        let mut conn = PgConnection::connect(&self.database_url)
            .await
            .expect("postgres");
        let (n,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM transactions WHERE id = ANY($1) AND status <> 'pending'",
        )
        .bind(ids)
        .fetch_one(&mut conn)
        .await
        .expect("query");
        n as usize
    }

    /// Status per transaction in Postgres.
    pub async fn statuses(&self) -> HashMap<Uuid, String> {
        let mut conn = PgConnection::connect(&self.database_url)
            .await
            .expect("postgres");
        let rows: Vec<(Uuid, String)> = sqlx::query_as("SELECT id, status FROM transactions")
            .fetch_all(&mut conn)
            .await
            .expect("query");
        rows.into_iter().collect()
    }

    /// Stops every service gracefully, then drops the database and the queue keys.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        for task in std::mem::take(&mut self.tasks) {
            match tokio::time::timeout(Duration::from_secs(30), task).await {
                Ok(Ok(Ok(()))) => {}
                other => panic!("a service did not stop cleanly: {other:?}"),
            }
        }
        self.database.drop().await;
        delete_keys_on(&id_cache::redis_settings(&self.connections), &self.prefix).await;
        self.cleaned = true;
    }
}

impl Drop for Stack {
    /// A failed test never reaches `shutdown`: its database and keys go anyway.
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        self.stop.cancel();
        let (database, redis, prefix) = (
            self.database.clone(),
            id_cache::redis_settings(&self.connections),
            self.prefix.clone(),
        );
        // Drop cannot await, and may run inside the test's runtime: clean up from a thread.
        let _ = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                runtime.block_on(async {
                    database.drop().await;
                    delete_keys_on(&redis, &prefix).await;
                });
            }
        })
        .join();
    }
}

/// Deletes every key under a test prefix; returns how many there were.
pub async fn delete_keys(prefix: &str) -> usize {
    delete_keys_on(&queue::RedisSettings::url(&redis_url()), prefix).await
}

/// Deletes every key under a test prefix on `redis`; returns how many there were.
pub async fn delete_keys_on(redis: &queue::RedisSettings, prefix: &str) -> usize {
    let Ok(client) = queue::redis_client(redis) else {
        return 0;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return 0;
    };
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{{{prefix}:*"))
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    for chunk in keys.chunks(500) {
        let _: Result<(), _> = redis::cmd("DEL").arg(chunk).query_async(&mut conn).await;
    }
    keys.len()
}

/// Environment variable carrying the consumer's settings (JSON) to a child process.
pub const CHILD_CONSUMER_CONFIG: &str = "E2E_CHILD_CONSUMER_CONFIG";

/// Environment variable carrying the address a child consumer serves on (port 0 without it).
pub const CHILD_CONSUMER_ADDR: &str = "E2E_CHILD_CONSUMER_ADDR";

/// A consumer in a child process (this test binary, re-run as `child_consumer_process`), so a
/// test can SIGKILL it or read its log.
pub struct ChildConsumer {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl ChildConsumer {
    /// Starts a consumer with `config` (as in [`Stack::consumer_config`]).
    pub fn spawn(config: &consumer::Config) -> Self {
        Self::start(config, None)
    }

    /// Starts a consumer with `config` serving its HTTP side on a free port; its address.
    pub fn spawn_serving(config: &consumer::Config) -> (Self, SocketAddr) {
        let port = testkit::free_port().expect("a free port");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        (Self::start(config, Some(addr)), addr)
    }

    fn start(config: &consumer::Config, addr: Option<SocketAddr>) -> Self {
        let log = std::env::temp_dir().join(format!("child-consumer-{}.log", Uuid::new_v4()));
        let append = |path: &std::path::Path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .expect("the child's log file")
        };
        let mut command = std::process::Command::new(std::env::current_exe().expect("test binary"));
        command
            .args([
                "--exact",
                "child_consumer_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(
                CHILD_CONSUMER_CONFIG,
                serde_json::to_string(config).expect("settings as JSON"),
            )
            // Logs go to stdout, panics to stderr: both to the one file.
            .stdout(append(&log))
            .stderr(append(&log));
        if let Some(addr) = addr {
            command.env(CHILD_CONSUMER_ADDR, addr.to_string());
        }
        let child = command.spawn().expect("spawn the child consumer");
        Self { child, log }
    }

    /// What it has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then waits for the exit; returns the exit code and how long it took.
    pub fn terminate(mut self) -> (Option<i32>, Duration) {
        let started = std::time::Instant::now();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().expect("wait for the child");
        eprintln!("child consumer exited: {status:?}");
        (status.code(), started.elapsed())
    }

    /// SIGKILL: no shutdown, no acks, leases left to expire.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildConsumer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The body of the child process: runs the consumer until killed (only when the parent set the
/// environment; otherwise returns at once).
pub async fn run_child_consumer() {
    let Ok(json) = std::env::var(CHILD_CONSUMER_CONFIG) else {
        return;
    };
    service::telemetry::init();
    let config: consumer::Config = serde_json::from_str(&json).expect("child consumer settings");
    let addr = std::env::var(CHILD_CONSUMER_ADDR).unwrap_or_else(|_| "127.0.0.1:0".into());
    let listener = TcpListener::bind(addr).await.expect("bind");
    let shutdown = service::shutdown::on_signal().expect("signal handlers");
    consumer::run(config, listener, shutdown)
        .await
        .expect("child consumer");
}

/// Whether each of `ids` is terminal in Postgres and no notification is still owed.
pub async fn settled_ids(database_url: &str, ids: &[Uuid]) -> bool {
    let Ok(mut conn) = PgConnection::connect(database_url).await else {
        return false;
    };
    let (terminal,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM transactions WHERE id = ANY($1) AND status <> 'pending'",
    )
    .bind(ids)
    .fetch_one(&mut conn)
    .await
    .unwrap_or((0,));
    let (owed,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM notifications WHERE delivered_at IS NULL AND failed_at IS NULL",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap_or((1,));
    terminal as usize == ids.len() && owed == 0
}

impl Stack {
    /// Waits (at most `secs` seconds) until each of `ids` is terminal and no notification is
    /// owed, then checks the end state ([`Stack::assert_consistent`]); prints and returns how long
    /// it took.
    pub async fn settles(&self, ids: &[Uuid], secs: u64, what: &str) -> Duration {
        let started = std::time::Instant::now();
        eventually(Duration::from_secs(secs), what, || {
            settled_ids(&self.database_url, ids)
        })
        .await;
        let took = started.elapsed();
        eprintln!("{what}: {} transactions, {took:?}", ids.len());
        self.assert_consistent(ids).await;
        took
    }

    /// The end-state assertions of every scenario: each transaction terminal; `failed` only if
    /// the third party does not have it, otherwise the third party's status; no blind
    /// re-submission; the client told each terminal status under one delivery id.
    pub async fn assert_consistent(&self, ids: &[Uuid]) {
        let statuses = self.statuses().await;
        let ledger = self.ledger().await;
        let received = self.received().await;
        let stats = self.thirdparty_stats().await;
        assert_eq!(stats.conflicts, 0, "no blind re-submission ({stats:?})");
        for id in ids {
            let status = statuses
                .get(id)
                .unwrap_or_else(|| panic!("{id} has no row"));
            match (status.as_str(), ledger.get(id)) {
                ("failed", None) => {}
                ("failed", Some(theirs)) => {
                    panic!("{id} is failed here but the third party has it as {theirs}")
                }
                (ours, Some(theirs)) => assert_eq!(ours, theirs, "{id}: ours vs the third party's"),
                (ours, None) => panic!("{id} is {ours} but the third party never had it"),
            }
            let told = received
                .get(id)
                .unwrap_or_else(|| panic!("the client never heard of {id} ({status})"));
            assert!(
                told.iter().all(|r| &r.status == status),
                "{id}: told {told:?}, recorded {status}"
            );
            let deliveries: std::collections::HashSet<&str> =
                told.iter().map(|r| r.delivery_id.as_str()).collect();
            assert_eq!(
                deliveries.len(),
                1,
                "{id}: duplicates carry the same delivery id"
            );
        }
    }
}
