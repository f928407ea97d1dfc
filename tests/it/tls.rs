//! Every connection encrypted: a Redis that only speaks TLS, a Postgres that only accepts
//! `hostssl`, and the producer and both simulators serving HTTPS, all with certificates of a
//! CA this test makes and the services trust through their settings. The pipeline must work
//! end to end — every transaction terminal, every client told over HTTPS — and a plaintext
//! connection to the Postgres must be refused.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use crate::support::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use sqlx::{Connection, PgConnection};
use testkit::{ClusterSecurity, RedisCluster, RedisOptions, TlsFiles};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A CA and a certificate it signed for `localhost` and 127.0.0.1, as PEM files in a temporary
/// directory.
pub(crate) struct Pki {
    pub(crate) dir: PathBuf,
    pub(crate) ca: PathBuf,
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

impl Pki {
    pub(crate) fn make() -> Self {
        let dir = std::env::temp_dir().join(format!("pki-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("pki dir");
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "txn test CA");
        let ca = ca_params.self_signed(&ca_key).expect("CA");
        let key = KeyPair::generate().expect("server key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let cert = params.signed_by(&key, &ca, &ca_key).expect("server cert");
        let write = |name: &str, pem: String| {
            let path = dir.join(name);
            std::fs::write(&path, pem).expect("write pem");
            path
        };
        Self {
            ca: write("ca.pem", ca.pem()),
            cert: write("cert.pem", cert.pem()),
            key: write("key.pem", key.serialize_pem()),
            dir,
        }
    }
}

impl Pki {
    /// A private Redis that speaks only TLS, with this CA's certificate.
    async fn redis(&self) -> PrivateRedis {
        let options = RedisOptions {
            durable: false,
            tls: Some(self.files()),
        };
        let redis = PrivateRedis::start_with(options).await;
        redis.expect("a TLS-only redis")
    }

    /// The files a TLS server is started with.
    fn files(&self) -> TlsFiles {
        TlsFiles {
            ca: self.ca.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
        }
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_works_with_every_connection_encrypted() {
    let started = Instant::now();
    let pki = Pki::make();
    let redis = pki.redis().await;
    let postgres = PrivatePostgres::start_tls(&pki.cert, &pki.key);
    let verify = format!("?sslmode=verify-full&sslrootcert={}", pki.ca.display());

    // The Postgres refuses plaintext and accepts TLS with the test's CA.
    let plaintext = format!("{}/postgres?sslmode=disable", postgres.server());
    let refused = PgConnection::connect(&plaintext).await;
    assert!(refused.is_err(), "a plaintext connection must be refused");
    PgConnection::connect(&format!("{}/postgres{verify}", postgres.server()))
        .await
        .expect("a verified TLS connection");
    // And the Redis speaks no plaintext.
    let plain_redis = format!("redis://localhost:{}", redis.port());
    let plain = async {
        let client = redis::Client::open(plain_redis.as_str())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    let plain = tokio::time::timeout(Duration::from_secs(5), plain).await;
    assert!(
        !matches!(plain, Ok(Ok(_))),
        "a plaintext Redis client must not get an answer"
    );

    let stack = spawn_stack(Options {
        postgres: Some((postgres.server(), verify)),
        redis_url: Some(redis.url()),
        ca_file: Some(pki.ca.clone()),
        tls: Some((pki.cert.clone(), pki.key.clone())),
        ..Options::default()
    })
    .await;
    assert!(stack.producer.starts_with("https://") && stack.client.starts_with("https://"));
    let up = started.elapsed();
    let ids = post_all(&stack, 100).await;
    let took = stack
        .settles(&ids, 120, "every transaction settled over TLS")
        .await;
    let received = stack.received().await;
    assert_eq!(
        received.len(),
        ids.len(),
        "the client was told every outcome over HTTPS"
    );
    eprintln!(
        "TLS everywhere: servers up in {up:?}; {} transactions settled in {took:?}",
        ids.len()
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_works_on_a_redis_cluster_with_tls_and_a_password() {
    let pki = Pki::make();
    let password = format!("pw-{}", Uuid::new_v4().simple());
    let redis = RedisCluster::start_secure(
        3,
        0,
        2_000,
        ClusterSecurity {
            tls: Some(pki.files()),
            password: Some(password.clone()),
        },
    );
    // Without the password, or without trusting the CA, nothing gets through.
    let seeds = redis.url();
    assert!(seeds.starts_with("rediss://"));
    for settings in [
        queue::RedisSettings {
            ca_file: Some(pki.ca.clone()),
            cluster: true,
            ..queue::RedisSettings::url(&seeds)
        },
        queue::RedisSettings {
            password: Some(password.clone()),
            cluster: true,
            ..queue::RedisSettings::url(&seeds)
        },
    ] {
        let mut conn = queue::RedisClient::new(&settings)
            .expect("client")
            .shared(Duration::from_secs(2))
            .expect("connection");
        let answer: redis::RedisResult<u8> = redis::cmd("EXISTS")
            .arg("{x}:y")
            .query_async(&mut conn)
            .await;
        assert!(answer.is_err(), "refused without every credential");
    }

    let stack = spawn_stack(Options {
        redis_url: Some(seeds),
        redis_cluster: true,
        redis_password: Some(password),
        ca_file: Some(pki.ca.clone()),
        ..Options::default()
    })
    .await;
    let (code, ready) = stack.readyz().await;
    assert_eq!(code, 200, "{ready}");
    let ids = post_all(&stack, 100).await;
    stack
        .settles(&ids, 60, "every transaction settled over TLS")
        .await;
    stack.shutdown().await;
}

/// A Redis certificate the producer does not trust, and a Postgres role that does not exist
/// for the consumer: each service says at `error` what to change, `/readyz` names it (503), it
/// is counted, and the service keeps running and retrying; with the setting fixed it is ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_setting_retrying_cannot_fix_is_logged_at_error_named_by_readyz_and_counted() {
    let pki = Pki::make();
    let redis = pki.redis().await;
    let database = private_database().await;
    let prefix = format!("e2e-{}", Uuid::new_v4().simple());
    let http = reqwest::Client::new();
    let get = |url: String| {
        let http = http.clone();
        async move {
            let r = http.get(url).send().await.expect("an answer");
            (r.status().as_u16(), r.text().await.unwrap_or_default())
        }
    };

    // The producer, without REDIS_CA_FILE.
    let mut producer = Options::default().producer;
    producer.connections = service::config::Connections::local(
        database.url.parse().unwrap(),
        redis.url().parse().unwrap(),
        &prefix,
    );
    let serve = |producer: producer::Config| async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let task = tokio::spawn(producer::run(producer, listener, stop.clone()));
        (base, stop, task)
    };
    let (base, stop, task) = serve(producer.clone()).await;
    let (code, body) = get(format!("{base}/readyz")).await;
    assert_eq!(code, 503, "{body}");
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["type"], "/problems/misconfigured", "{body}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("REDIS_CA_FILE"),
        "what to change: {body}"
    );
    let (_, metrics) = get(format!("{base}/metrics")).await;
    assert!(
        metrics.contains(r#"dependency_misconfigured_total{dependency="redis"}"#),
        "counted"
    );
    stop.cancel();
    task.await.unwrap().unwrap();
    // Trusting the CA is the whole fix.
    producer.connections.redis_ca_file = Some(pki.ca.clone());
    let (base, stop, task) = serve(producer).await;
    let (code, body) = get(format!("{base}/readyz")).await;
    assert_eq!(code, 200, "{body}");
    stop.cancel();
    task.await.unwrap().unwrap();

    // The consumer, in a process of its own, as a role Postgres does not know.
    let (_, server) = database.url.split_once('@').expect("a user in the URL");
    let mut consumer = Options::default().consumer;
    consumer.migrate_on_start = false;
    consumer.connections = service::config::Connections::local(
        format!("postgres://no_such_role@{server}").parse().unwrap(),
        redis_url().parse().unwrap(),
        &prefix,
    );
    let (child, addr) = ChildConsumer::spawn_serving(&consumer);
    let readyz = format!("http://{addr}/readyz");
    eventually(
        Duration::from_secs(30),
        "the consumer names the role",
        || {
            let readyz = readyz.clone();
            async move {
                let Ok(r) = reqwest::get(&readyz).await else {
                    return false; // not listening yet
                };
                let (code, body) = (r.status().as_u16(), r.text().await.unwrap_or_default());
                code == 503
                    && body.contains("postgres misconfigured")
                    && body.contains("DATABASE_URL")
            }
        },
    )
    .await;
    eventually(
        Duration::from_secs(15),
        "the consumer logs it at error",
        || async {
            let log = child.log();
            log.lines().any(|l| {
                l.contains("ERROR") && l.contains("DATABASE_URL") && l.contains("no_such_role")
            })
        },
    )
    .await;
    let (_, metrics) = get(format!("http://{addr}/metrics")).await;
    assert!(
        metrics.contains(r#"dependency_misconfigured_total{dependency="postgres"}"#),
        "counted"
    );
    assert!(
        !child
            .log()
            .lines()
            .any(|l| l.contains(" INFO ") && l.contains("no_such_role")),
        "never at info:\n{}",
        child.log()
    );
    let (code, _) = get(format!("http://{addr}/healthz")).await;
    assert_eq!(code, 200, "still running, still retrying");
    // Nothing left behind: the consumer first, so that it writes no key after the purge.
    drop(child);
    database.drop().await;
    delete_keys(&prefix).await;
}
