//! Client apps: every transaction route needs a valid API key of an active client app; each
//! client app sees only its own transactions; keys are administered with `consumer clients`.

use std::time::Duration;

use crate::support::*;
use domain::client_app::Pepper;
use serde_json::{Value, json};
use store::Store;
use uuid::Uuid;

const PROBLEM: &str = "application/problem+json";

/// Runs `consumer clients <args>` (parsed as the binary parses them) against the stack's
/// database; its JSON answer.
async fn clients(stack: &Stack, pepper: &str, args: &[&str]) -> Value {
    let mut argv = vec!["consumer", "clients", "--database-url", &stack.database_url];
    argv.extend_from_slice(args);
    let pepper_flag = format!("--api-key-pepper={pepper}");
    if matches!(args, ["create", ..] | ["keys", "create", ..]) {
        argv.push(&pepper_flag);
    }
    let consumer::Invocation::Clients(command) =
        consumer::invocation_from(argv.iter().map(std::ffi::OsString::from))
    else {
        panic!("`consumer clients` parses as the clients command")
    };
    consumer::administer(command).await.expect("the command")
}

/// `GET /transaction/{id}` with `key`: the status code.
async fn get_with(stack: &Stack, key: &str, id: &str) -> u16 {
    let url = format!("{}/transaction/{id}", stack.producer);
    stack
        .http
        .get(url)
        .bearer_auth(key)
        .sent()
        .await
        .status()
        .as_u16()
}

/// `POST /transaction` of `id` with `amount`, as the client app of `key`: the status code,
/// the body and `Retry-After`.
async fn post_id(stack: &Stack, key: &str, id: Uuid, amount: i64) -> (u16, Value, Option<String>) {
    let r = stack
        .http
        .post(format!("{}/transaction", stack.producer))
        .bearer_auth(key)
        .json(&json!({"id": id, "amount": amount, "currency": "EUR"}))
        .sent()
        .await;
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (
        r.status().as_u16(),
        r.json().await.unwrap_or(Value::Null),
        retry_after,
    )
}

/// A stack without a consumer (what was reserved stays in Redis alone), its pepper,
/// and a second client app made by `clients create --name <name> … <extra>`.
async fn producer_with_second_app(name: &str, extra: &[&str]) -> (Stack, Value) {
    let (stack, pepper) = producer_stack(Duration::from_secs(5)).await;
    let mut args = vec!["create", "--name", name, "--notify-url", &stack.client];
    args.extend_from_slice(extra);
    let app = clients(&stack, &pepper, &args).await;
    (stack, app)
}

/// Waits (within the auth cache's time, and then some) until a GET with `key` answers `code`.
async fn key_answers(stack: &Stack, key: &str, code: u16, what: &str) {
    let unknown = Uuid::now_v7().to_string();
    eventually(Duration::from_secs(3), what, || async {
        get_with(stack, key, &unknown).await == code
    })
    .await;
}

/// `POST /transaction` with `authorization` (the whole header, if any): status, content type,
/// `WWW-Authenticate`.
async fn post_as(stack: &Stack, authorization: Option<&str>, path: &str) -> (u16, String, String) {
    let mut request = stack
        .http
        .post(format!("{}{path}", stack.producer))
        .json(&json!({"amount": 100, "currency": "EUR"}));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let r = request.sent().await;
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    (
        r.status().as_u16(),
        header("content-type"),
        header("www-authenticate"),
    )
}

/// A URL on a free local port, for a client simulator started once its secret is known.
async fn free_url() -> String {
    format!(
        "http://127.0.0.1:{}",
        testkit::free_port().expect("a free port")
    )
}

/// A new client app named `name` with a notify URL of its own on a free port (nothing there
/// yet: see [`client_sim_at`]): that URL, and the client app as `clients create` gave it.
async fn client_app_at(stack: &Stack, pepper: &str, name: &str) -> (String, Value) {
    let url = free_url().await;
    let app = clients(
        stack,
        pepper,
        &["create", "--name", name, "--notify-url", &url],
    )
    .await;
    (url, app)
}

/// A client simulator of another client app at `url` (from [`free_url`]), verifying with
/// `secret` (a simulator answers 401 to any other signature); the token stops it.
async fn client_sim_at(url: &str, secret: &Value) -> tokio_util::sync::CancellationToken {
    let addr = url.trim_start_matches("http://");
    let listener = tokio::net::TcpListener::bind(addr).await.expect("the port");
    let secret = secret.as_str().expect("a signing secret");
    let secrets = domain::WebhookSecrets::parse(secret).expect("a signing secret");
    let config = client_sim::Config::local(secrets, client_sim::Faults::NONE);
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(client_sim::run(config, listener, stop.clone()));
    stop
}

/// The ids a client simulator at `url` heard of.
async fn heard_by(stack: &Stack, url: &str) -> Vec<String> {
    let (_, received): (_, Vec<Received>) = stack.get_json(&format!("{url}/received")).await;
    received.into_iter().map(|r| r.id.to_string()).collect()
}

/// POSTs `n` transactions with `key`; their ids.
async fn post_n_with(stack: &Stack, key: &str, n: usize) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let id = Uuid::now_v7();
        let r = stack
            .http
            .post(format!("{}/transaction", stack.producer))
            .bearer_auth(key)
            .json(&json!({"id": id, "amount": 100, "currency": "EUR"}))
            .sent()
            .await;
        assert_eq!(r.status(), 201);
        ids.push(id);
    }
    ids
}

fn stack_options(auth_cache: Duration) -> (Options, String) {
    let mut options = Options::default();
    let pepper = Pepper::generate();
    options.producer.api_key_pepper = pepper.parse().expect("a pepper");
    options.producer.auth_cache = auth_cache;
    (options, pepper)
}

/// A whole stack, its keys cached for `auth_cache`, the third party resolving within
/// `[min_ms, max_ms]`; and its pepper.
async fn resolving_stack(auth_cache: Duration, min_ms: u64, max_ms: u64) -> (Stack, String) {
    let (mut options, pepper) = stack_options(auth_cache);
    options.resolve_within(min_ms, max_ms);
    (spawn_stack(options).await, pepper)
}

/// A stack without a consumer, its keys cached for `auth_cache`, and its pepper.
async fn producer_stack(auth_cache: Duration) -> (Stack, String) {
    let (mut options, pepper) = stack_options(auth_cache);
    options.run_consumer = false;
    (spawn_stack(options).await, pepper)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transaction_route_needs_a_valid_key_and_says_so_the_same_way() {
    let (stack, _) = producer_stack(Duration::from_secs(5)).await;
    let good = stack.api_key.clone();
    let (key_id, secret) = good["txk_".len()..].split_once('_').unwrap();
    let wrong_secret = format!("txk_{key_id}_{}", "0".repeat(secret.len()));
    let unknown_id = format!("txk_{}_{secret}", "f".repeat(key_id.len()));
    let refused = (401, PROBLEM.to_string(), "Bearer".to_string());
    for (case, authorization) in [
        ("none", None),
        ("empty", Some("Bearer ".to_string())),
        ("not bearer", Some(format!("Basic {good}"))),
        ("malformed", Some("Bearer sk_live_123".to_string())),
        ("unknown key id", Some(format!("Bearer {unknown_id}"))),
        ("wrong secret", Some(format!("Bearer {wrong_secret}"))),
    ] {
        assert_eq!(
            post_as(&stack, authorization.as_deref(), "/transaction").await,
            refused,
            "{case}"
        );
    }
    // A key in the query string is never read.
    assert_eq!(
        post_as(&stack, None, &format!("/transaction?api_key={good}")).await,
        refused
    );
    assert_eq!(
        get_with(&stack, &wrong_secret, &Uuid::now_v7().to_string()).await,
        401
    );
    let (code, _) = stack.post(json!({"amount": 100, "currency": "EUR"})).await;
    assert_eq!(code, 201, "the stack's own key works");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_expired_and_disabled_keys_stop_working() {
    let (stack, pepper) = producer_stack(Duration::from_millis(300)).await;
    let app = stack.client_app.to_string();
    let made = clients(
        &stack,
        &pepper,
        &["keys", "create", &app, "--name", "spare"],
    )
    .await;
    let spare = made["api_key"]
        .as_str()
        .expect("the key, shown once")
        .to_string();
    let unknown = Uuid::now_v7().to_string();
    assert_eq!(
        get_with(&stack, &spare, &unknown).await,
        404,
        "a working key"
    );

    // Revoked: refused within AUTH_CACHE_MS.
    let key_id = made["key_id"].as_str().unwrap();
    clients(&stack, &pepper, &["keys", "revoke", key_id]).await;
    key_answers(&stack, &spare, 401, "the revoked key is refused").await;

    // Expired: refused at once.
    let past = (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
    let expired = clients(
        &stack,
        &pepper,
        &["keys", "create", &app, "--expires-at", &past],
    )
    .await;
    let expired = expired["api_key"].as_str().unwrap().to_string();
    assert_eq!(get_with(&stack, &expired, &unknown).await, 401);

    // Disabled: 403 for every key of the client app, until it is enabled again.
    clients(&stack, &pepper, &["disable", &app]).await;
    key_answers(
        &stack,
        &stack.api_key,
        403,
        "a disabled client app is refused",
    )
    .await;
    clients(&stack, &pepper, &["enable", &app]).await;
    key_answers(&stack, &stack.api_key, 404, "enabled again").await;

    // What is stored: no secret, the use recorded.
    let listed = clients(&stack, &pepper, &["list"]).await;
    let listed_text = listed.to_string();
    assert!(
        !listed_text.contains(&stack.api_key["txk_".len() + 17..]),
        "no secret listed"
    );
    let ours = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["client_app"]["id"] == app.as_str())
        .expect("the stack's client app is listed");
    let keys = ours["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 3, "{ours:#}");
    assert!(
        keys[0]["last_used_at"].is_string(),
        "the use is recorded: {ours:#}"
    );
    assert!(keys[1]["revoked_at"].is_string(), "{ours:#}");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_client_apps_each_see_only_their_own_transactions() {
    let (options, pepper) = stack_options(Duration::from_secs(5));
    let stack = spawn_stack(options).await;
    let other_url = free_url().await;
    let other = clients(
        &stack,
        &pepper,
        &["create", "--name", "other", "--notify-url", &other_url],
    )
    .await;
    let other_key = other["api_key"].as_str().unwrap().to_string();
    assert_eq!(other["status"], "active");
    // No ADMIN_TOKEN here: there is no admin API.
    let admin = stack
        .http
        .get(format!("{}/admin/clients", stack.consumer))
        .sent()
        .await;
    assert_eq!(admin.status(), 404);
    let other_sim = client_sim_at(&other_url, &other["signing_secret"]).await;

    // Each client app's notifications reach its own simulator only, verified there with its
    // own secret (a simulator answers 401 to any other signature).
    let theirs = post_n_with(&stack, &other_key, 5).await;
    let ours = post_all(&stack, 5).await;
    let all: Vec<Uuid> = theirs.iter().chain(&ours).copied().collect();
    eventually(
        Duration::from_secs(60),
        "every notification delivered",
        || settled_ids(&stack.database_url, &all),
    )
    .await;
    let mut heard_by_other = heard_by(&stack, &other_url).await;
    heard_by_other.sort();
    let mut expected: Vec<String> = theirs.iter().map(Uuid::to_string).collect();
    expected.sort();
    assert_eq!(
        heard_by_other, expected,
        "the other simulator heard exactly its own"
    );
    let heard_by_ours = heard_by(&stack, &stack.client).await;
    assert!(
        theirs
            .iter()
            .all(|id| !heard_by_ours.contains(&id.to_string()))
    );
    assert!(
        ours.iter()
            .all(|id| heard_by_ours.contains(&id.to_string()))
    );

    // A rotation: both secrets sign during the overlap, so the simulator that still knows only
    // the old one verifies every notification.
    let other_id = other["id"].as_str().unwrap();
    let rotated = clients(&stack, &pepper, &["secrets", "rotate", other_id]).await;
    assert_ne!(rotated["signing_secret"], other["signing_secret"]);
    let after_rotation = post_n_with(&stack, &other_key, 3).await;
    eventually(
        Duration::from_secs(60),
        "delivered after the rotation",
        || settled_ids(&stack.database_url, &after_rotation),
    )
    .await;
    let heard = heard_by(&stack, &other_url).await;
    assert!(
        after_rotation
            .iter()
            .all(|id| heard.contains(&id.to_string()))
    );
    other_sim.cancel();

    let ids = post_all(&stack, 5).await;
    stack
        .settles(&ids, 60, "the first client app's transactions")
        .await;
    for id in &ids {
        let id = id.to_string();
        assert_eq!(stack.get(&id).await.0, 200);
        assert_eq!(
            get_with(&stack, &other_key, &id).await,
            404,
            "another's is unknown"
        );
    }

    // The same Idempotency-Key names a different transaction for each client app.
    let post_keyed = |key: String| {
        let http = stack.http.clone();
        let url = format!("{}/transaction", stack.producer);
        async move {
            let r = http
                .post(url)
                .bearer_auth(key)
                .header("Idempotency-Key", "order-1")
                .json(&json!({"amount": 100, "currency": "EUR"}))
                .sent()
                .await;
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap()["id"].clone(),
            )
        }
    };
    let (code_a, id_a) = post_keyed(stack.api_key.clone()).await;
    let (code_b, id_b) = post_keyed(other_key.clone()).await;
    assert_eq!((code_a, code_b), (201, 201));
    assert_ne!(id_a, id_b);

    // Each row records its owner.
    let store = Store::connect_lazy(&stack.database_url, 1).unwrap();
    let id_b: Uuid = id_b.as_str().unwrap().parse().unwrap();
    eventually(Duration::from_secs(30), "the row exists", || async {
        store.get(id_b.into()).await.unwrap().is_some()
    })
    .await;
    let row = store.get(id_b.into()).await.unwrap().unwrap();
    assert_eq!(row.client_app_id.to_string(), other["id"].as_str().unwrap());
    assert_eq!(
        get_with(&stack, &stack.api_key, &id_b.to_string()).await,
        404
    );
    assert_eq!(get_with(&stack, &other_key, &id_b.to_string()).await, 200);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_app_name_is_taken_once_and_a_notify_url_must_be_http() {
    let (stack, pepper) = producer_stack(Duration::from_secs(5)).await;
    #[derive(clap::Parser)]
    struct Clients {
        #[command(flatten)]
        command: consumer::clients::ClientsCommand,
    }
    let command = |name: &str, url: &str| {
        let pepper = format!("--api-key-pepper={pepper}");
        let argv = [
            "clients",
            "--database-url",
            &stack.database_url,
            "create",
            "--name",
            name,
            "--notify-url",
            url,
            &pepper,
        ];
        <Clients as clap::Parser>::try_parse_from(argv).map(|c| c.command)
    };
    let error = command("shop", "ftp://example").unwrap_err().to_string();
    assert!(error.contains("http"), "{error}");
    let mut plain = command("shop", "http://shop.example").expect("a valid command");
    plain.require_https_notify = true;
    let error = consumer::administer(plain).await.unwrap_err().to_string();
    assert!(error.contains("must be https://"), "{error}");
    let taken = command("e2e", &stack.client).expect("a valid command");
    let error = consumer::administer(taken).await.unwrap_err().to_string();
    assert!(
        error.contains("a client app named \"e2e\" exists"),
        "{error}"
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_client_apps_notifications_wait_until_it_is_enabled() {
    // Outcomes come a second or two after the POST: the client app is disabled by then.
    let (stack, pepper) = resolving_stack(Duration::from_millis(200), 1_500, 2_000).await;
    let (url, paused) = client_app_at(&stack, &pepper, "paused").await;
    let sim = client_sim_at(&url, &paused["signing_secret"]).await;
    let key = paused["api_key"].as_str().unwrap().to_string();
    let id = paused["id"].as_str().unwrap().to_string();
    let ids = post_n_with(&stack, &key, 5).await;
    clients(&stack, &pepper, &["disable", &id]).await;

    let store = Store::connect_lazy(&stack.database_url, 1).unwrap();
    let terminal = || async {
        let mut n = 0;
        for id in &ids {
            let row = store.get((*id).into()).await.unwrap();
            n += usize::from(row.is_some_and(|r| r.status != domain::Status::Pending));
        }
        n
    };
    eventually(Duration::from_secs(30), "every outcome known", || async {
        terminal().await == ids.len()
    })
    .await;
    // Waiting notifications look again on the schedule, saying why, never delivered nor given
    // up; no attempt is made (none is on the delivery log).
    let owed = |database_url: String| async move {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&database_url)
            .await
            .unwrap();
        let (owed, waited): (i64, i64) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (
                        WHERE last_error LIKE '%is disabled%' AND next_attempt_at IS NOT NULL
                          AND attempts = 0
                          AND NOT EXISTS (SELECT 1 FROM delivery_attempts a
                                          WHERE a.delivery_id = n.delivery_id))
             FROM notifications n
             WHERE delivered_at IS NULL AND failed_at IS NULL",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        (owed as usize, waited as usize)
    };
    eventually(
        Duration::from_secs(30),
        "each notification looked and waited",
        || async { owed(stack.database_url.clone()).await == (ids.len(), ids.len()) },
    )
    .await;
    assert!(
        heard_by(&stack, &url).await.is_empty(),
        "nothing told while disabled"
    );

    clients(&stack, &pepper, &["enable", &id]).await;
    eventually(
        Duration::from_secs(60),
        "every notification delivered once enabled",
        || settled_ids(&stack.database_url, &ids),
    )
    .await;
    assert_eq!(heard_by(&stack, &url).await.len(), ids.len());
    sim.cancel();
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_client_apps_id_is_taken_on_post_and_unknown_on_get() {
    let (stack, other) = producer_with_second_app("other", &[]).await;
    let other_key = other["api_key"].as_str().unwrap().to_string();
    let post = |key: String, id: Uuid, amount: i64| {
        let stack = &stack;
        async move {
            let (code, body, _) = post_id(stack, &key, id, amount).await;
            (code, body)
        }
    };
    let id = Uuid::now_v7();
    assert_eq!(post(stack.api_key.clone(), id, 100).await.0, 201);
    // The same id from another client app: taken, with nothing about it told, whatever the
    // parameters; unknown on GET.
    for amount in [100, 999] {
        let (code, body) = post(other_key.clone(), id, amount).await;
        assert_eq!(code, 409, "{body}");
        assert_eq!(body["type"], "/problems/id-taken");
        assert!(!body.to_string().contains("amount"), "nothing told: {body}");
    }
    assert_eq!(get_with(&stack, &other_key, &id.to_string()).await, 404);
    // The owner's retry is still answered as before.
    assert_eq!(post(stack.api_key.clone(), id, 100).await.0, 200);
    assert_eq!(get_with(&stack, &stack.api_key, &id.to_string()).await, 200);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_a_client_apps_limit_is_refused_with_nothing_reserved() {
    let limit = ["--rate-limit-per-s", "2", "--burst", "5"];
    let (stack, limited) = producer_with_second_app("limited", &limit).await;
    let key = limited["api_key"].as_str().unwrap().to_string();
    let post = |key: String| {
        let stack = &stack;
        async move {
            let id = Uuid::now_v7();
            let (code, _, retry_after) = post_id(stack, &key, id, 100).await;
            (id, code, retry_after)
        }
    };
    // 25 at once from the limited client app (5 times its burst), and 25 from another.
    let burst: Vec<_> = (0..25).map(|_| post(key.clone())).collect();
    let others: Vec<_> = (0..25).map(|_| post(stack.api_key.clone())).collect();
    let (burst, others) = tokio::join!(
        futures::future::join_all(burst),
        futures::future::join_all(others)
    );
    let accepted: Vec<Uuid> = burst
        .iter()
        .filter(|(_, c, _)| *c == 201)
        .map(|(id, _, _)| *id)
        .collect();
    let refused: Vec<&(Uuid, u16, Option<String>)> =
        burst.iter().filter(|(_, c, _)| *c == 429).collect();
    assert_eq!(
        accepted.len() + refused.len(),
        25,
        "only 201 and 429: {burst:?}"
    );
    // The bucket holds 5; it refills at 2 a second while the burst is answered.
    assert!(
        (5..=7).contains(&accepted.len()),
        "{} accepted",
        accepted.len()
    );
    for (id, _, retry_after) in &refused {
        let seconds: u64 = retry_after
            .as_deref()
            .expect("Retry-After")
            .parse()
            .unwrap();
        assert!(seconds >= 1, "whole seconds, rounded up");
        assert_eq!(
            get_with(&stack, &key, &id.to_string()).await,
            404,
            "nothing reserved"
        );
    }
    for id in &accepted {
        assert_eq!(get_with(&stack, &key, &id.to_string()).await, 200);
    }
    assert!(
        others.iter().all(|(_, c, _)| *c == 201),
        "the other client app is not limited"
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_administers_client_apps_as_the_command_line_does() {
    let stack = admin_stack(Duration::from_millis(300)).await;
    let admin = |method: Method, path: &str, token: &str| {
        stack
            .http
            .request(method, format!("{}/admin{path}", stack.consumer))
            .bearer_auth(token)
    };
    const TOKEN: &str = ADMIN_TOKEN;
    let answer = |request: reqwest::RequestBuilder| async move {
        let r = request.sent().await;
        let code = r.status().as_u16();
        let content_type = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        (
            code,
            content_type,
            r.json::<Value>().await.unwrap_or(Value::Null),
        )
    };

    let (code, kind, _) = answer(admin(Method::GET, "/clients", "wrong")).await;
    assert_eq!((code, kind.as_deref()), (401, Some(PROBLEM)));
    let body = json!({"name": "shop", "notify_url": "ftp://shop"});
    let (code, _, problem) = answer(admin(Method::POST, "/clients", TOKEN).json(&body)).await;
    assert_eq!(code, 422, "{problem}");
    let body = json!({"name": "shop", "notify_url": stack.client, "rate_limit_per_s": 100});
    let (code, _, shop) = answer(admin(Method::POST, "/clients", TOKEN).json(&body)).await;
    assert_eq!(code, 201, "{shop}");
    let (code, _, problem) = answer(admin(Method::POST, "/clients", TOKEN).json(&body)).await;
    assert_eq!(
        (code, problem["type"].as_str()),
        (409, Some("/problems/name-taken"))
    );
    let id = shop["id"].as_str().unwrap().to_string();
    let key = shop["api_key"].as_str().unwrap().to_string();
    assert!(
        shop["signing_secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );
    let unknown = Uuid::now_v7().to_string();
    assert_eq!(
        get_with(&stack, &key, &unknown).await,
        404,
        "the new key works"
    );

    let (code, _, shown) = answer(admin(Method::GET, &format!("/clients/{id}"), TOKEN)).await;
    assert_eq!(
        (code, shown["keys"].as_array().map(Vec::len)),
        (200, Some(1))
    );
    assert_eq!(
        answer(admin(Method::GET, &format!("/clients/{unknown}"), TOKEN))
            .await
            .0,
        404
    );
    assert_eq!(
        answer(admin(Method::GET, "/clients/not-a-uuid", TOKEN))
            .await
            .0,
        422
    );
    let (code, _, listed) = answer(admin(Method::GET, "/clients", TOKEN)).await;
    assert_eq!(code, 200);
    assert!(
        !listed.to_string().contains(&key["txk_".len() + 17..]),
        "no secret listed"
    );

    // A second key, revoked: refused within AUTH_CACHE_MS.
    let (code, _, spare) = answer(admin(Method::POST, &format!("/clients/{id}/keys"), TOKEN)).await;
    assert_eq!(code, 201, "{spare}");
    let spare_key = spare["api_key"].as_str().unwrap().to_string();
    assert_eq!(get_with(&stack, &spare_key, &unknown).await, 404);
    let path = format!("/keys/{}", spare["key_id"].as_str().unwrap());
    assert_eq!(answer(admin(Method::DELETE, &path, TOKEN)).await.0, 204);
    assert_eq!(
        answer(admin(Method::DELETE, "/keys/0000000000000000", TOKEN))
            .await
            .0,
        404
    );
    key_answers(&stack, &spare_key, 401, "the revoked key is refused").await;

    // Disabled by PATCH: 403 until enabled again.
    let path = format!("/clients/{id}");
    let (code, _, patched) =
        answer(admin(Method::PATCH, &path, TOKEN).json(&json!({"status": "disabled"}))).await;
    assert_eq!((code, patched["status"].as_str()), (200, Some("disabled")));
    key_answers(&stack, &key, 403, "a disabled client app is refused").await;
    let (code, _, _) =
        answer(admin(Method::PATCH, &path, TOKEN).json(&json!({"status": "active"}))).await;
    assert_eq!(code, 200);

    // The board lists the client apps with their keys by id, never a secret.
    let (_, listed): (_, Value) = stack
        .get_json(&format!("{}/board/api/clients", stack.consumer))
        .await;
    let shop_view = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "shop")
        .expect("shop is listed")
        .clone();
    assert_eq!(shop_view["rate_limit_per_s"], 100);
    assert_eq!(shop_view["keys"].as_array().map(Vec::len), Some(2));
    let page = stack
        .text_of(&format!("{}/board/clients", stack.consumer))
        .await;
    assert!(
        page.contains(shop["key_id"].as_str().unwrap()),
        "key ids shown"
    );
    for secret in [
        &key["txk_".len() + 17..],
        shop["signing_secret"].as_str().unwrap(),
    ] {
        assert!(!page.contains(secret) && !listed.to_string().contains(secret));
    }

    // A rotation hands out a new signing secret.
    let path = format!("/clients/{id}/secrets");
    let (code, _, rotated) = answer(admin(Method::POST, &path, TOKEN)).await;
    assert_eq!(code, 201, "{rotated}");
    assert_ne!(rotated["signing_secret"], shop["signing_secret"]);
    stack.shutdown().await;
}

/// Ends every other connection to `database_url`'s database (a backend writes its statistics
/// as it exits) and waits until they are gone: the statistics read next are complete.
async fn quiet(database_url: &str) -> sqlx::PgConnection {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(database_url)
        .await
        .unwrap();
    let others =
        "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()";
    sqlx::query(&format!("SELECT pg_terminate_backend(pid) {others}"))
        .execute(&mut conn)
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "no other backend", || async {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(database_url)
            .await
            .unwrap();
        let (n,): (i64,) = sqlx::query_as(&format!(
            "SELECT count(*) {others} AND backend_type = 'client backend'"
        ))
        .fetch_one(&mut conn)
        .await
        .unwrap();
        n <= 1 // the connection asking
    })
    .await;
    conn
}

/// Reads of `api_keys` the database has counted (index and sequential scans).
async fn api_key_reads(conn: &mut sqlx::PgConnection) -> i64 {
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(&mut *conn)
        .await
        .unwrap();
    let (n,): (i64,) = sqlx::query_as(
        "SELECT coalesce(idx_scan, 0) + seq_scan FROM pg_stat_user_tables WHERE relname = 'api_keys'",
    )
    .fetch_one(conn)
    .await
    .unwrap();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_keys_reads_postgres_once_per_key_id() {
    let (stack, _) = producer_stack(Duration::from_secs(60)).await;
    let (key_id, secret) = stack.api_key["txk_".len()..].split_once('_').unwrap();
    // Four unknown key ids, and wrong secrets for the stack's own key id: five key ids.
    let mut bad: Vec<String> = (0..4)
        .map(|i| format!("txk_{:016x}_{secret}", 0xbad0 + i))
        .collect();
    bad.extend((0..10).map(|i| format!("txk_{key_id}_{:048x}", i)));
    let before = api_key_reads(&mut quiet(&stack.database_url).await).await;

    let unknown = Uuid::now_v7().to_string();
    let answers = futures::future::join_all(
        (0..400).map(|i| get_with(&stack, &bad[i % bad.len()], &unknown)),
    )
    .await;
    assert!(answers.iter().all(|&code| code == 401), "{answers:?}");

    let reads = api_key_reads(&mut quiet(&stack.database_url).await).await - before;
    assert!(
        (1..=5).contains(&reads),
        "400 requests with bad keys of 5 key ids read api_keys {reads} times"
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumers_openapi_document_lists_every_admin_route_as_served() {
    let stack = admin_stack(Duration::from_secs(5)).await;
    let (code, doc): (_, Value) = stack
        .get_json(&format!("{}/openapi.json", stack.consumer))
        .await;
    assert_eq!(code, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let mut documented = Vec::new();
    for (path, operations) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in operations.as_object().unwrap() {
            documented.push(format!("{} {path}", method.to_uppercase()));
            for code in ["401", "404", "503"] {
                assert!(
                    operation["responses"][code].is_object(),
                    "{method} {path} documents {code}"
                );
            }
            assert_eq!(operation["security"][0]["admin_token"], json!([]));
            // Served, and guarded: without the token, 401 (an unknown route would be 404).
            let concrete = path
                .replace("{id}", &Uuid::now_v7().to_string())
                .replace("{key_id}", "0123456789abcdef");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = stack
                .http
                .request(method, format!("{}{concrete}", stack.consumer))
                .sent()
                .await;
            assert_eq!(r.status(), 401, "{path}");
        }
    }
    documented.sort();
    assert_eq!(
        documented,
        [
            "DELETE /admin/keys/{key_id}",
            "GET /admin/clients",
            "GET /admin/clients/{id}",
            "PATCH /admin/clients/{id}",
            "POST /admin/clients",
            "POST /admin/clients/{id}/keys",
            "POST /admin/clients/{id}/recover",
            "POST /admin/clients/{id}/secrets",
        ]
    );
    let schemas = [
        "Created",
        "WithKeys",
        "ClientApp",
        "KeyInfo",
        "KeyMade",
        "Rotated",
        "CreateBody",
        "UpdateBody",
        "RecoverBody",
        "Recovered",
        "ProblemDocument",
    ];
    assert_schemas(&doc, &schemas);
    stack.shutdown().await;
}

/// A client app's endpoint that verifies with one secret at a time, switched by the test:
/// counts what verified with each and what did not.
#[derive(Clone, Default)]
struct SwitchingEndpoint {
    verifier: std::sync::Arc<std::sync::Mutex<Option<domain::signature::Verifier>>>,
    /// Verified notifications under the first secret, under the second, and refused ones.
    counts: std::sync::Arc<std::sync::Mutex<[usize; 3]>>,
    switched: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl SwitchingEndpoint {
    fn verify_with(&self, secret: &Value) {
        let secrets = domain::WebhookSecrets::parse(secret.as_str().unwrap()).unwrap();
        *self.verifier.lock().unwrap() = Some(domain::signature::Verifier::new(&secrets));
    }

    async fn serve(self, url: &str) -> tokio_util::sync::CancellationToken {
        use axum::{body::Bytes, http::HeaderMap, routing::post};
        let listener = tokio::net::TcpListener::bind(url.trim_start_matches("http://"))
            .await
            .unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        let endpoint = self.clone();
        let app = axum::Router::new().route(
            "/transactions/{id}/status",
            post(move |headers: HeaderMap, body: Bytes| {
                let endpoint = endpoint.clone();
                async move {
                    let ok = endpoint
                        .verifier
                        .lock()
                        .unwrap()
                        .as_ref()
                        .is_some_and(|v| v.verify(&body, &headers).is_ok());
                    let slot = match (
                        ok,
                        endpoint.switched.load(std::sync::atomic::Ordering::SeqCst),
                    ) {
                        (false, _) => 2,
                        (true, false) => 0,
                        (true, true) => 1,
                    };
                    endpoint.counts.lock().unwrap()[slot] += 1;
                    if ok {
                        axum::http::StatusCode::OK
                    } else {
                        axum::http::StatusCode::UNAUTHORIZED
                    }
                }
            }),
        );
        let stopped = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stopped.cancelled_owned())
                .await
        });
        stop
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_app_may_switch_to_a_rotated_secret_the_moment_it_learns_it() {
    let (stack, pepper) = resolving_stack(Duration::from_secs(5), 0, 50).await;
    let (url, app) = client_app_at(&stack, &pepper, "rotating").await;
    let endpoint = SwitchingEndpoint::default();
    endpoint.verify_with(&app["signing_secret"]);
    let served = endpoint.clone().serve(&url).await;
    let key = app["api_key"].as_str().unwrap().to_string();

    // A steady stream of transactions for the client app, before, during and after the rotation.
    let streaming = tokio_util::sync::CancellationToken::new();
    let poster = tokio::spawn({
        let (http, producer, key, streaming) = (
            stack.http.clone(),
            stack.producer.clone(),
            key.clone(),
            streaming.clone(),
        );
        async move {
            let mut ids = Vec::new();
            while !streaming.is_cancelled() {
                let id = Uuid::now_v7();
                let r = http
                    .post(format!("{producer}/transaction"))
                    .bearer_auth(&key)
                    .json(&json!({"id": id, "amount": 100, "currency": "EUR"}))
                    .sent()
                    .await;
                assert_eq!(r.status(), 201);
                ids.push(id);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            ids
        }
    });
    eventually(
        Duration::from_secs(30),
        "notifications under the first secret",
        || async { endpoint.counts.lock().unwrap()[0] >= 10 },
    )
    .await;
    let rotated = clients(
        &stack,
        &pepper,
        &["secrets", "rotate", app["id"].as_str().unwrap()],
    )
    .await;
    // The client app switches the moment it learns the new secret.
    endpoint.verify_with(&rotated["signing_secret"]);
    endpoint
        .switched
        .store(true, std::sync::atomic::Ordering::SeqCst);
    eventually(
        Duration::from_secs(30),
        "notifications under the new secret",
        || async { endpoint.counts.lock().unwrap()[1] >= 50 },
    )
    .await;
    streaming.cancel();
    let ids = poster.await.unwrap();
    eventually(
        Duration::from_secs(60),
        "every notification delivered",
        || settled_ids(&stack.database_url, &ids),
    )
    .await;
    let [old, new, refused] = *endpoint.counts.lock().unwrap();
    assert_eq!(
        refused, 0,
        "{old} verified with the old secret, {new} with the new"
    );
    assert_eq!(old + new, ids.len());
    served.cancel();
    stack.shutdown().await;
}

const ADMIN_TOKEN: &str = "admin-token-for-tests";

/// [`stack_options`] with the admin API on (its token [`ADMIN_TOKEN`]).
fn admin_options(auth_cache: Duration) -> (Options, String) {
    let (mut options, pepper) = stack_options(auth_cache);
    options.consumer.admin_token = Some(service::secret::Secret::new(ADMIN_TOKEN));
    options.consumer.api_key_pepper = Some(pepper.parse().unwrap());
    (options, pepper)
}

/// A stack with the admin API on, its keys cached for `auth_cache`.
async fn admin_stack(auth_cache: Duration) -> Stack {
    spawn_stack(admin_options(auth_cache).0).await
}

/// [`admin_options`] with notifications retried briefly ("50ms,50ms").
fn recoverable_options() -> (Options, String) {
    let (mut options, pepper) = admin_options(Duration::from_millis(200));
    options.consumer.schedules.notify_schedule = "50ms,50ms".parse().unwrap();
    (options, pepper)
}

/// A stack with a client app whose endpoint is down (nothing listens at its URL yet), and
/// transactions of it.
struct Down {
    stack: Stack,
    app: Value,
    url: String,
    id: String,
    key: String,
    ids: Vec<Uuid>,
    since: chrono::DateTime<chrono::Utc>,
}

impl Down {
    /// The stack from `options`, the client app `down`, and `n` of its transactions.
    async fn start(options: Options, pepper: &str, n: usize) -> Self {
        let stack = spawn_stack(options).await;
        let since = chrono::Utc::now();
        let (url, app) = client_app_at(&stack, pepper, "down").await;
        let id = app["id"].as_str().unwrap().to_string();
        let key = app["api_key"].as_str().unwrap().to_string();
        let ids = post_n_with(&stack, &key, n).await;
        Self {
            stack,
            app,
            url,
            id,
            key,
            ids,
            since,
        }
    }
}

/// `POST /admin/clients/{id}/recover` with `body`: the status and the answer.
async fn recover(stack: &Stack, id: &str, body: Value) -> (u16, Value) {
    let r = stack
        .http
        .post(format!("{}/admin/clients/{id}/recover", stack.consumer))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .sent()
        .await;
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// The notifications of `ids`: (delivery id, delivered, given up, last attempt's trigger).
async fn deliveries_of(stack: &Stack, ids: &[Uuid]) -> Vec<(Uuid, bool, bool, Option<String>)> {
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&stack.database_url)
        .await
        .unwrap();
    sqlx::query_as(
        "SELECT n.delivery_id, n.delivered_at IS NOT NULL, n.failed_at IS NOT NULL,
                (SELECT a.trigger FROM delivery_attempts a WHERE a.delivery_id = n.delivery_id
                 ORDER BY a.attempt DESC LIMIT 1)
         FROM notifications n WHERE n.transaction_id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(&mut db)
    .await
    .unwrap()
}

/// Waits until every notification of `ids` is delivered.
async fn all_delivered(stack: &Stack, ids: &[Uuid]) {
    eventually(
        Duration::from_secs(30),
        "every notification delivered",
        || async {
            let all = deliveries_of(stack, ids).await;
            all.iter().all(|(_, delivered, _, _)| *delivered)
        },
    )
    .await;
}

/// A client app whose endpoint was down past the schedule: every notification exhausted.
/// Back up and recovered (twice, the second while the first is in flight), it hears each one
/// exactly once more, under its original webhook-id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_client_app_recovered_hears_each_notification_once_under_its_webhook_id() {
    let (options, pepper) = recoverable_options();
    let Down {
        stack,
        app,
        url,
        id,
        ids,
        since,
        ..
    } = Down::start(options, &pepper, 10).await;
    eventually(
        Duration::from_secs(30),
        "every notification exhausted",
        || async {
            let all = deliveries_of(&stack, &ids).await;
            all.len() == ids.len()
                && all
                    .iter()
                    .all(|(_, delivered, given_up, _)| !delivered && *given_up)
        },
    )
    .await;

    let _sim = client_sim_at(&url, &app["signing_secret"]).await;
    let (code, first) = recover(&stack, &id, json!({"since": since})).await;
    assert_eq!(
        (code, &first["queued"]),
        (202, &json!(ids.len())),
        "{first}"
    );
    let (code, _) = recover(&stack, &id, json!({"since": since})).await;
    assert_eq!(code, 202);
    all_delivered(&stack, &ids).await;
    let (_, told): (_, Vec<Received>) = stack.get_json(&format!("{url}/received")).await;
    for (delivery, _, _, trigger) in deliveries_of(&stack, &ids).await {
        let heard: Vec<&Received> = told
            .iter()
            .filter(|r| r.delivery_id == delivery.to_string())
            .collect();
        assert_eq!(heard.len(), 1, "{delivery} heard exactly once");
        assert_eq!(trigger.as_deref(), Some("recover"));
    }
    // Bad windows are refused.
    let (code, _) = recover(&stack, &id, json!({"since": since, "until": since})).await;
    assert_eq!(code, 422);
    let (code, _) = recover(&stack, &Uuid::now_v7().to_string(), json!({"since": since})).await;
    assert_eq!(code, 404);
    stack.shutdown().await;
}

/// A client app that fails every delivery for DISABLE_AFTER_MS (shortened) is disabled: its
/// keys stop working, its owed notifications wait, and it is counted. Enabled and recovered,
/// it hears every one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_app_failing_for_the_whole_window_is_disabled_and_recovers_when_enabled() {
    let (mut options, pepper) = recoverable_options();
    options.consumer.disable_after = Duration::from_millis(300);
    options.consumer.schedules.notify_schedule =
        "100ms,100ms,100ms,100ms,100ms,30s".parse().unwrap();
    let Down {
        stack,
        app,
        url,
        id,
        key,
        ids,
        since,
    } = Down::start(options, &pepper, 5).await;
    let store = Store::connect_lazy(&stack.database_url, 1).unwrap();
    let app_id = domain::ClientAppId::from(Uuid::parse_str(&id).unwrap());
    eventually(
        Duration::from_secs(30),
        "the client app is disabled",
        || async {
            store
                .client_app(app_id)
                .await
                .unwrap()
                .is_some_and(|a| a.status == domain::ClientStatus::Disabled)
        },
    )
    .await;
    // The gauge is set at each scrape (other stacks in this process scrape too) and a key's
    // grant is read again within AUTH_CACHE_MS: both within a few seconds.
    eventually(Duration::from_secs(5), "counted as disabled", || async {
        metric(&stack.consumer, "client_apps_disabled", "").await >= 1
    })
    .await;
    eventually(Duration::from_secs(5), "its keys stop working", || async {
        post_status(&stack, &key).await == 403
    })
    .await;
    let before = deliveries_of(&stack, &ids).await;
    assert!(before.iter().all(|(_, delivered, _, _)| !delivered));

    clients(&stack, &pepper, &["enable", &id]).await;
    let _sim = client_sim_at(&url, &app["signing_secret"]).await;
    let (code, answer) = recover(&stack, &id, json!({"since": since})).await;
    assert_eq!(code, 202, "{answer}");
    all_delivered(&stack, &ids).await;
    let healthy = store.client_app(app_id).await.unwrap().unwrap();
    assert!(healthy.failing_since.is_none() && healthy.last_success_at.is_some());
    // Its keys work again within AUTH_CACHE_MS.
    eventually(Duration::from_secs(5), "its keys work again", || async {
        post_status(&stack, &key).await == 201
    })
    .await;
    stack.shutdown().await;
}

/// A `POST /transaction` with `key`: its status code.
async fn post_status(stack: &Stack, key: &str) -> u16 {
    stack
        .http
        .post(format!("{}/transaction", stack.producer))
        .bearer_auth(key)
        .json(&json!({}))
        .sent()
        .await
        .status()
        .as_u16()
}
