//! Acceptance is exact: a 503 means the transaction exists nowhere, ever — even when Redis
//! stalls with the reservation already on the wire and runs it once it resumes.

use std::{collections::HashSet, time::Duration};

use crate::support::*;
use futures::{StreamExt, stream};
use serde_json::json;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_during_a_redis_stall_is_never_created_submitted_or_notified() {
    let redis = PrivateRedis::start().await.expect("a private redis");
    let stack = spawn_stack(Options::default().on_redis(redis.url())).await;
    let ids: Vec<Uuid> = (0..200).map(|_| Uuid::now_v7()).collect();
    let stack_ref = &stack;
    let started = std::time::Instant::now();
    // 200 POSTs at a steady pace (one every 15 ms, 16 in flight), with Redis stalled from
    // 0.6 s to 3.6 s: the stall meets requests already sent, which Redis runs when it resumes.
    let posts = stream::iter(ids.iter().enumerate())
        .map(|(i, id)| async move {
            tokio::time::sleep_until(
                tokio::time::Instant::from_std(started) + Duration::from_millis(15 * i as u64),
            )
            .await;
            (
                *id,
                stack_ref
                    .post(json!({"id": id, "amount": 100, "currency": "EUR"}))
                    .await
                    .0,
            )
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>();
    let stall = async {
        tokio::time::sleep(Duration::from_millis(600)).await;
        redis.pause();
        tokio::time::sleep(Duration::from_secs(3)).await;
        redis.resume();
    };
    let (answers, ()) = tokio::join!(posts, stall);

    let with = |code: u16| -> Vec<Uuid> {
        answers
            .iter()
            .filter(|(_, c)| *c == code)
            .map(|(id, _)| *id)
            .collect()
    };
    let (created, refused, unknown) = (with(201), with(503), with(504));
    eprintln!(
        "201: {}, 503: {}, 504: {}",
        created.len(),
        refused.len(),
        unknown.len()
    );
    assert_eq!(
        created.len() + refused.len() + unknown.len(),
        ids.len(),
        "every answer is 201, 503 or 504: {answers:?}"
    );
    assert!(
        refused.len() >= 10,
        "the stall hit requests in flight ({} refused)",
        refused.len()
    );
    assert!(
        created.len() >= 50,
        "requests before and after the stall were accepted"
    );

    // A 504 may go either way; retrying it with its id settles it, as its answer promises.
    let mut accepted = created.clone();
    for id in &unknown {
        let (code, body) = stack
            .post(json!({"id": id, "amount": 100, "currency": "EUR"}))
            .await;
        match code {
            201 | 200 => accepted.push(*id),
            other => panic!("retrying 504 {id} answered {other}: {body}"),
        }
    }
    stack
        .settles(&accepted, 60, "every accepted transaction settled")
        .await;

    // Nothing refused exists: no row, no cache entry, never submitted, never notified.
    let accepted_set: HashSet<Uuid> = accepted.iter().copied().collect();
    let statuses = stack.statuses().await;
    let received = stack.received().await;
    let ledger = stack.ledger().await;
    for id in &refused {
        assert!(!accepted_set.contains(id));
        assert!(!statuses.contains_key(id), "503 {id} has a row");
        assert!(!ledger.contains_key(id), "503 {id} was submitted");
        assert!(!received.contains_key(id), "503 {id} was notified");
        let (code, body) = stack.get(&id.to_string()).await;
        assert_eq!(code, 404, "503 {id} is unknown: {body}");
    }
    let stats = stack.thirdparty_stats().await;
    assert_eq!(
        stats.created as usize,
        accepted.len(),
        "the third party holds exactly the accepted transactions"
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_id_stays_known_after_the_id_cache_lost_it() {
    let stack = spawn_stack(Options::default()).await;
    let ids = post_all(&stack, 100).await;
    stack.settles(&ids, 60, "all 100 terminal").await;
    let statuses = stack.statuses().await;

    // The cache forgets every id, as after a Redis restart without persistence.
    let client =
        queue::redis_client(&id_cache::redis_settings(&stack.connections)).expect("redis client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let pattern = format!("{{{}:create}}:txn:*", stack.prefix);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(&pattern)
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    assert_eq!(keys.len(), ids.len(), "the cache held every id until now");
    // Once its row exists an entry lives only the margin, not the whole window.
    let margin = stack.consumer_config.idempotency.margin_ms as i64;
    for key in &keys {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .expect("PTTL");
        assert!(
            0 < ttl && ttl <= margin,
            "{key} lives {ttl} ms (margin {margin} ms)"
        );
    }
    {
        let _: () = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .expect("DEL");
    }

    // Each known id again, with the same and with other parameters, all at once and among new
    // POSTs (a client's new id, and no id at all): the batches mix ids with rows, ids without
    // and ids made here, and each POST must get its own answer.
    let posts: Vec<(Option<Uuid>, i64, Option<Uuid>)> = ids
        .iter()
        .flat_map(|id| {
            [
                (Some(*id), 100, Some(*id)),
                (Some(*id), 999, Some(*id)),
                (Some(Uuid::now_v7()), 100, None),
                (None, 100, None),
            ]
        })
        .collect();
    let answers: Vec<_> = stream::iter(posts)
        .map(|(id, amount, known)| {
            let stack = &stack;
            async move {
                let body = match id {
                    Some(id) => json!({"id": id, "amount": amount, "currency": "EUR"}),
                    None => json!({"amount": amount, "currency": "EUR"}),
                };
                (amount, known, stack.post(body).await)
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let mut new_ids = Vec::new();
    for (amount, known, (code, body)) in answers {
        match known {
            Some(id) if amount == 100 => {
                assert_eq!(code, 200, "{id}, same parameters: {body}");
                assert_eq!(body["status"], statuses[&id].as_str(), "{id}: its status");
            }
            Some(id) => assert_eq!(code, 409, "{id}, other parameters: {body}"),
            None => {
                assert_eq!(code, 201, "a new transaction: {body}");
                new_ids.push(
                    body["id"]
                        .as_str()
                        .expect("its id")
                        .parse()
                        .expect("a UUID"),
                );
            }
        }
    }
    let entries_of_known = |keys: Vec<String>| -> Vec<String> {
        keys.into_iter()
            .filter(|k| ids.iter().any(|id| k.ends_with(&id.to_string())))
            .collect()
    };
    // Each re-POST was reserved while Postgres was asked (the cache had forgotten the id): the
    // reservation is its `create` job alone, which finds the row and changes nothing.
    let left: Vec<String> = redis::cmd("KEYS")
        .arg(&pattern)
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    let left = entries_of_known(left);
    assert!(left.is_empty(), "entries made for known ids: {left:?}");
    stack
        .settles(&new_ids, 60, "the new transactions among them terminal")
        .await;
    eventually(
        Duration::from_secs(30),
        "the re-POSTs' create jobs done",
        || async {
            let create = stack.queue_counts(domain::QueueName::Create).await;
            create.waiting + create.scheduled + create.running == 0
        },
    )
    .await;
    let left: Vec<String> = redis::cmd("KEYS")
        .arg(&pattern)
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    let left = entries_of_known(left);
    assert!(
        left.is_empty(),
        "a create job that found its row wrote an entry: {left:?}"
    );
    let now = stack.statuses().await;
    for id in &ids {
        assert_eq!(now[id], statuses[id], "{id}: no known row changed");
    }
    assert_eq!(
        stack.thirdparty_stats().await.created,
        (ids.len() + new_ids.len()) as u64,
        "nothing submitted again"
    );
    stack.shutdown().await;
}

/// A TCP proxy in front of Redis that can cut a connection after Redis has run a request but
/// before its reply reaches the client, and then refuse new connections for a while.
struct CuttingProxy {
    addr: std::net::SocketAddr,
    /// 0: pass everything; 1: cut the connection that sent `needle` when its next reply comes;
    /// 2: close every new connection at once.
    mode: std::sync::Arc<std::sync::atomic::AtomicU8>,
    needle: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

/// Copies `rx` to `tx` chunk by chunk while `forward` lets each chunk through; stops at the
/// end of either side or at the first chunk `forward` refuses.
async fn pump(
    mut rx: tokio::net::tcp::OwnedReadHalf,
    mut tx: tokio::net::tcp::OwnedWriteHalf,
    mut forward: impl FnMut(&[u8]) -> bool,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = rx.read(&mut buf).await.unwrap_or(0);
        if n == 0 || !forward(&buf[..n]) || tx.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
}

impl CuttingProxy {
    async fn start(upstream: std::net::SocketAddr) -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mode = std::sync::Arc::new(std::sync::atomic::AtomicU8::new(0));
        let needle = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (shared, wanted) = (mode.clone(), needle.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if shared.load(Ordering::SeqCst) == 2 {
                    drop(client);
                    continue;
                }
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    continue;
                };
                let (mode, wanted) = (shared.clone(), wanted.clone());
                tokio::spawn(async move {
                    let (client_rx, client_tx) = client.into_split();
                    let (server_rx, server_tx) = server.into_split();
                    // Whether this connection has sent a script since the cut was armed.
                    let sent_script =
                        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                    let seen = sent_script.clone();
                    let mode_up = mode.clone();
                    let up = pump(client_rx, server_tx, move |chunk| {
                        let needle = wanted.lock().expect("needle").clone();
                        if mode_up.load(Ordering::SeqCst) == 1
                            && !needle.is_empty()
                            && chunk.windows(needle.len()).any(|w| w == needle.as_slice())
                        {
                            seen.store(true, Ordering::SeqCst);
                        }
                        true
                    });
                    let down = pump(server_rx, client_tx, move |_| {
                        // Once Redis ran the script, its reply is lost with the connection.
                        !(sent_script.load(Ordering::SeqCst)
                            && mode
                                .compare_exchange(1, 2, Ordering::SeqCst, Ordering::SeqCst)
                                .is_ok())
                    });
                    tokio::select! {
                        _ = up => {}
                        _ = down => {}
                    }
                });
            }
        });
        Self { addr, mode, needle }
    }

    /// Cuts the connection that next sends `needle`, once Redis has answered it.
    fn cut_after(&self, needle: &str) {
        *self.needle.lock().expect("needle") = needle.as_bytes().to_vec();
        self.set(1);
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, std::sync::atomic::Ordering::SeqCst);
    }

    fn mode(&self) -> u8 {
        self.mode.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_whose_answer_is_lost_is_a_504_and_retrying_its_id_is_safe() {
    let redis = PrivateRedis::start().await.expect("a private redis");
    let upstream: std::net::SocketAddr = redis
        .url()
        .trim_start_matches("redis://")
        .parse()
        .expect("redis address");
    let proxy = CuttingProxy::start(upstream).await;
    let stack = spawn_stack(Options {
        redis_url: Some(redis.url()),
        producer_redis_url: Some(format!("redis://{}", proxy.addr)),
        ..Options::default()
    })
    .await;
    assert_eq!(stack.readyz().await.0, 200);
    // Loads the reserve script, so the cut meets a run rather than a NOSCRIPT answer.
    let warm = Uuid::now_v7();
    assert_eq!(stack.post(json!({"id": warm})).await.0, 201);

    let id = Uuid::now_v7();
    let body = json!({"id": id, "amount": 100, "currency": "EUR"});
    proxy.cut_after(&id.to_string());
    let (code, problem) = stack.post(body.clone()).await;
    assert_eq!(proxy.mode(), 2, "the cut hit the reservation in flight");
    assert_eq!(code, 504, "{problem}");
    assert_eq!(
        problem["id"],
        id.to_string(),
        "the id to retry with: {problem}"
    );

    proxy.set(0);
    // The reservation ran: only its answer was lost.
    assert_eq!(stack.get(&id.to_string()).await.0, 200);
    let retried = {
        let mut code = 0;
        for _ in 0..50 {
            code = stack.post(body.clone()).await.0;
            if code != 503 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        code
    };
    assert!(
        retried == 200 || retried == 201,
        "retrying the id is safe: {retried}"
    );
    stack.settles(&[id], 30, "the transaction settled").await;
    assert_eq!(
        stack.thirdparty_stats().await.created,
        2,
        "each submitted once (with the warm-up)"
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_posts_share_reservation_scripts_and_each_gets_its_own_answer() {
    let redis = PrivateRedis::start().await.expect("a private redis");
    let stack = spawn_stack(Options::without_consumer().on_redis(redis.url())).await;
    let ids: Vec<Uuid> = (0..200).map(|_| Uuid::now_v7()).collect();
    // Every id twice at once (the second finds the first's reservation, in the same script or
    // the next), and with another amount once: 600 POSTs, 64 in flight.
    let mut posts: Vec<(Uuid, i64)> = Vec::new();
    for id in &ids {
        posts.extend([(*id, 100), (*id, 100), (*id, 999)]);
    }
    let answers: Vec<(Uuid, i64, u16)> = stream::iter(posts)
        .map(|(id, amount)| {
            let stack = &stack;
            async move {
                let code = stack
                    .post(json!({"id": id, "amount": amount, "currency": "EUR"}))
                    .await
                    .0;
                (id, amount, code)
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    for id in &ids {
        let mine: Vec<(i64, u16)> = answers
            .iter()
            .filter(|(a, ..)| a == id)
            .map(|(_, amount, code)| (*amount, *code))
            .collect();
        let created = mine.iter().filter(|(_, c)| *c == 201).count();
        assert_eq!(created, 1, "{id}: one 201 ({mine:?})");
        // The rest: 200 with the amount accepted first, 409 with the other one.
        let accepted = mine.iter().find(|(_, c)| *c == 201).map(|(a, _)| *a);
        for (amount, code) in &mine {
            let wanted = if Some(*amount) == accepted {
                [200, 201]
            } else {
                [409, 409]
            };
            assert!(
                wanted.contains(code),
                "{id}: {amount} answered {code}, {accepted:?} was accepted"
            );
        }
    }
    let create = stack.queue_counts(domain::QueueName::Create).await;
    assert_eq!(create.waiting, ids.len() as u64, "one create job per id");
    // Fewer scripts than reservations: concurrent POSTs shared them.
    let mut conn = bench::redis(&redis.url(), false).expect("redis connection");
    let counts = bench::command_counts(&mut conn)
        .await
        .expect("commandstats");
    let scripts = counts.get("evalsha").copied().unwrap_or(0);
    eprintln!("{scripts} reservation scripts for 600 POSTs");
    assert!(
        scripts > 0 && scripts < 600,
        "{scripts} scripts for 600 POSTs"
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_id_is_accepted_while_postgres_holds_its_look_up() {
    use sqlx::{Connection, PgConnection};
    let stack = spawn_stack(Options::without_consumer()).await;
    // The API key is read once, then cached: the lock below stands only in the look-up's way.
    assert_eq!(post_all(&stack, 1).await.len(), 1);
    let mut locker = PgConnection::connect(&stack.database_url)
        .await
        .expect("postgres");
    sqlx::query("BEGIN")
        .execute(&mut locker)
        .await
        .expect("begin");
    sqlx::query("LOCK TABLE transactions IN ACCESS EXCLUSIVE MODE")
        .execute(&mut locker)
        .await
        .expect("lock");

    let id = Uuid::now_v7();
    let post = stack.post(json!({"id": id, "amount": 100, "currency": "EUR"}));
    let (code, body) = tokio::time::timeout(Duration::from_secs(10), post)
        .await
        .expect("answered while Postgres held the look-up");
    assert_eq!(code, 201, "{body}");
    // The look-up did meet the lock, and still waits on it: the POST did not wait for it.
    let mut watcher = PgConnection::connect(&stack.database_url)
        .await
        .expect("postgres");
    let waiting: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND wait_event_type = 'Lock'
           AND query LIKE '%FROM transactions WHERE id = ANY%'",
    )
    .fetch_one(&mut watcher)
    .await
    .expect("pg_stat_activity");
    assert!(waiting >= 1, "no look-up waited on the lock");
    sqlx::query("ROLLBACK")
        .execute(&mut locker)
        .await
        .expect("rollback");

    // Once Postgres answers again, the id is answered from what was accepted.
    let (code, body) = stack
        .post(json!({"id": id, "amount": 100, "currency": "EUR"}))
        .await;
    assert_eq!((code, &body["status"]), (200, &json!("pending")), "{body}");
    stack.shutdown().await;
}
