//! Every row of the producer's HTTP contract, happy and unhappy: status code, content type and
//! the body's key fields. The consumer is not running, so answers come from the producer alone.

use std::time::Duration;

use crate::support::*;
use domain::{WebhookSecrets, signature::Signer};
use futures::future::join_all;
use reqwest::{Response, header};
use serde_json::{Value, json};
use service::config::Connections;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const PROBLEM: &str = "application/problem+json";

/// Sends `request`; its status code and content type.
async fn answer(request: reqwest::RequestBuilder) -> (u16, String) {
    let r = request.sent().await;
    answered(&r)
}

async fn producer_only() -> Stack {
    spawn_stack(Options::without_consumer()).await
}

/// The status and content type of an answer.
fn answered(r: &Response) -> (u16, String) {
    (r.status().as_u16(), content_type(r))
}

fn content_type(r: &Response) -> String {
    r.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// Sends `body` as raw bytes; returns status, content type, JSON body.
async fn post_raw(
    stack: &Stack,
    path: &str,
    body: Vec<u8>,
    json_type: bool,
) -> (u16, String, Value) {
    let mut req = stack.producer_request(Method::POST, path).body(body);
    if json_type {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    let r = req.sent().await;
    let (code, ct) = answered(&r);
    (code, ct, r.json().await.unwrap_or(Value::Null))
}

async fn post(stack: &Stack, body: Value) -> (u16, String, Value) {
    post_raw(
        stack,
        "/transaction",
        serde_json::to_vec(&body).unwrap(),
        true,
    )
    .await
}

fn fields(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|f| f["field"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// `bytes` POSTed to `/webhook` as JSON, signed with `secret` at `timestamp`.
async fn post_webhook(
    stack: &Stack,
    secret: &WebhookSecrets,
    timestamp: i64,
    bytes: Vec<u8>,
) -> reqwest::Response {
    let id = format!("msg_{}", Uuid::new_v4().simple());
    let headers = Signer::new(secret).headers(&id, timestamp, &bytes);
    stack
        .producer_request(Method::POST, "/webhook")
        .headers(headers)
        .header(header::CONTENT_TYPE, "application/json")
        .body(bytes)
        .sent()
        .await
}

/// A webhook signed with `secret` at `timestamp`.
async fn webhook_signed(
    stack: &Stack,
    secret: &WebhookSecrets,
    timestamp: i64,
    body: Value,
) -> (u16, String, Value) {
    let bytes = serde_json::to_vec(&body).unwrap();
    let r = post_webhook(stack, secret, timestamp, bytes).await;
    let (code, ct) = answered(&r);
    (code, ct, r.json().await.unwrap_or(Value::Null))
}

async fn webhook(stack: &Stack, id: &Value, status: &str) -> (u16, String, Value) {
    let now = chrono::Utc::now().timestamp();
    webhook_signed(
        stack,
        &stack.webhook_secret,
        now,
        json!({"id": id, "status": status}),
    )
    .await
}

async fn accepted(stack: &Stack) -> Value {
    let (code, _, body) = post(stack, json!({"amount": 500, "currency": "EUR"})).await;
    assert_eq!(code, 201);
    body["id"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_transaction_contract() {
    let stack = producer_only().await;

    // A new id: 201, Location, pending.
    let id = Uuid::now_v7();
    let r = stack
        .producer_request(Method::POST, "/transaction")
        .json(&json!({"id": id, "amount": 1250, "currency": "EUR"}))
        .sent()
        .await;
    assert_eq!(r.status(), 201);
    assert_eq!(content_type(&r), "application/json");
    assert_eq!(
        r.headers()[header::LOCATION],
        format!("/transaction/{id}").as_str()
    );
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"id": id, "status": "pending"})
    );

    // An empty body, with or without a content type, or {}: the server makes a UUIDv7.
    for (body, typed) in [(vec![], false), (vec![], true), (b"{}".to_vec(), true)] {
        let (code, _, body) = post_raw(&stack, "/transaction", body, typed).await;
        assert_eq!(code, 201);
        let made = Uuid::parse_str(body["id"].as_str().unwrap()).unwrap();
        assert_eq!(made.get_version_num(), 7);
    }

    // A body not declared JSON: 415, nothing accepted.
    let unaccepted = Uuid::now_v7();
    let bytes =
        serde_json::to_vec(&json!({"id": unaccepted, "amount": 1, "currency": "EUR"})).unwrap();
    for content_type_sent in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut request = stack
            .producer_request(Method::POST, "/transaction")
            .body(bytes.clone());
        if let Some(value) = content_type_sent {
            request = request.header(header::CONTENT_TYPE, value);
        }
        let r = request.sent().await;
        assert_eq!(
            answered(&r),
            (415, PROBLEM.to_string()),
            "{content_type_sent:?}"
        );
        let problem: Value = r.json().await.unwrap();
        assert_eq!(problem["type"], "/problems/unsupported-media-type");
    }
    assert_eq!(stack.get(&unaccepted.to_string()).await.0, 404);

    // The same id with the same parameters: 200 with its status.
    let (code, ct, body) = post(&stack, json!({"id": id, "amount": 1250, "currency": "EUR"})).await;
    assert_eq!(
        (code, ct.as_str(), body),
        (
            200,
            "application/json",
            json!({"id": id, "status": "pending"})
        )
    );

    // Other parameters: 409 naming the field; absent is not the same as present.
    let (code, ct, body) = post(&stack, json!({"id": id, "amount": 999, "currency": "EUR"})).await;
    assert_eq!((code, ct.as_str()), (409, PROBLEM));
    assert!(
        body["detail"].as_str().unwrap().contains("amount"),
        "{body}"
    );
    let (code, _, body) = post(&stack, json!({"id": id, "amount": 1250, "currency": "USD"})).await;
    assert_eq!(code, 409);
    assert!(
        body["detail"].as_str().unwrap().contains("currency"),
        "{body}"
    );
    let (code, _, body) = post(&stack, json!({"id": id})).await;
    assert_eq!(code, 409);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("amount and currency"),
        "{body}"
    );

    // Malformed JSON: 400; whitespace alone is not JSON (only a body of no bytes is empty).
    for raw in [b"{\"amount\": ".to_vec(), b"  \n ".to_vec()] {
        let (code, ct, body) = post_raw(&stack, "/transaction", raw, true).await;
        assert_eq!(
            (code, ct.as_str(), body["status"].as_u64()),
            (400, PROBLEM, Some(400))
        );
    }

    // Field errors: 422 naming each field.
    for (input, expected) in [
        (json!({"id": "not-a-uuid"}), vec!["id"]),
        (json!({"id": 42}), vec!["id"]),
        (json!({"amount": 0, "currency": "EUR"}), vec!["amount"]),
        (json!({"amount": -5, "currency": "EUR"}), vec!["amount"]),
        (json!({"amount": "12", "currency": "EUR"}), vec!["amount"]),
        (json!({"amount": 1.5, "currency": "EUR"}), vec!["amount"]),
        (json!({"amount": 5, "currency": "eur"}), vec!["currency"]),
        (json!({"amount": 5, "currency": "ABC"}), vec!["currency"]),
        (json!({"amount": 5}), vec!["currency"]),
        (json!({"currency": "EUR"}), vec!["amount"]),
        (
            json!({"id": "x", "amount": 0, "currency": "EUR"}),
            vec!["id", "amount"],
        ),
        (json!([1, 2]), vec!["body"]),
        (
            json!({"amount": 5, "currency": "EUR", "note": "x"}),
            vec!["note"],
        ),
    ] {
        let (code, ct, body) = post(&stack, input.clone()).await;
        assert_eq!((code, ct.as_str()), (422, PROBLEM), "{input}");
        assert_eq!(fields(&body), expected, "{input} → {body}");
        assert_eq!(body["status"], 422);
        assert!(body["title"].is_string() && body["type"].is_string());
    }

    // Over the body limit (64 KiB): 413.
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(70_000)).into_bytes();
    let (code, ct, body) = post_raw(&stack, "/transaction", big, true).await;
    assert_eq!(
        (code, ct.as_str(), body["status"].as_u64()),
        (413, PROBLEM, Some(413))
    );

    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_posts_of_one_id_yield_exactly_one_201() {
    let stack = producer_only().await;
    let id = Uuid::now_v7();
    let answers =
        join_all((0..50).map(|_| post(&stack, json!({"id": id, "amount": 7, "currency": "GBP"}))))
            .await;
    let created = answers.iter().filter(|(code, ..)| *code == 201).count();
    let known = answers.iter().filter(|(code, ..)| *code == 200).count();
    assert_eq!((created, known), (1, 49));
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_transaction_and_routing_contract() {
    let stack = producer_only().await;
    let id = accepted(&stack).await;

    // Accepted but not yet created by the consumer: pending from the id cache, empty history.
    let (code, body) = stack.get(id.as_str().unwrap()).await;
    assert_eq!(code, 200);
    assert_eq!(
        (
            body["status"].as_str(),
            body["amount"].as_i64(),
            body["currency"].as_str()
        ),
        (Some("pending"), Some(500), Some("EUR"))
    );
    assert_eq!(body["history"], json!([]));

    let unknown = format!("/transaction/{}", Uuid::now_v7());
    for (method, path, code) in [
        (Method::GET, unknown.as_str(), 404),
        (Method::GET, "/transaction/not-a-uuid", 422),
        (Method::GET, "/no/such/route", 404),
        (Method::DELETE, "/transaction", 405),
    ] {
        assert_eq!(
            answer(stack.producer_request(method.clone(), path)).await,
            (code, PROBLEM.to_string()),
            "{method} {path}"
        );
    }

    // Request ids are propagated; security headers set; CORS closed by default.
    let r = stack
        .producer_request(Method::GET, "/healthz")
        .header("x-request-id", "trace-me-42")
        .header(header::ORIGIN, "https://evil.example")
        .sent()
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], "trace-me-42");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert!(
        r.headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .is_none()
    );
    let r = stack.producer_request(Method::GET, "/readyz").sent().await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().get("x-request-id").is_some(),
        "a request id is made when none is sent"
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_signatures_are_enforced() {
    let stack = producer_only().await;
    let id = accepted(&stack).await;
    let now = chrono::Utc::now().timestamp();
    let body = json!({"id": id, "status": "completed"});

    // Unsigned.
    let r = stack
        .producer_request(Method::POST, "/webhook")
        .json(&body)
        .sent()
        .await;
    assert_eq!(answered(&r), (401, PROBLEM.to_string()));
    // Forged: signed with another secret.
    let (code, ct, _) =
        webhook_signed(&stack, &WebhookSecrets::generate(), now, body.clone()).await;
    assert_eq!((code, ct.as_str()), (401, PROBLEM));
    // Replayed late, or from the future: outside ±5 minutes.
    let (code, _, problem) =
        webhook_signed(&stack, &stack.webhook_secret, now - 6 * 60, body.clone()).await;
    assert_eq!(code, 401);
    assert!(
        problem["detail"].as_str().unwrap().contains("timestamp"),
        "{problem}"
    );
    let (code, ..) =
        webhook_signed(&stack, &stack.webhook_secret, now + 6 * 60, body.clone()).await;
    assert_eq!(code, 401);
    // Nothing above changed anything.
    assert_eq!(stack.get(id.as_str().unwrap()).await.1["status"], "pending");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_secret_of_a_rotation_is_accepted() {
    let old = WebhookSecrets::generate();
    let stack = producer_only().await;
    // Restart-free check: a producer of its own with "new,old" secrets on the same prefix.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let rotated = format!("{},{}", stack.webhook_secret.expose(), old.expose());
    let mut config = Options::default().producer;
    config.webhook_secret = WebhookSecrets::parse(&rotated).unwrap();
    config.connections = stack.connections.clone();
    let stop = CancellationToken::new();
    let server = tokio::spawn(producer::run(config.clone(), listener, stop.clone()));
    let id = accepted(&stack).await;
    let bytes = serde_json::to_vec(&json!({"id": id, "status": "declined"})).unwrap();
    let headers = Signer::new(&old).headers_now("msg_rotation", &bytes);
    let r = stack
        .http
        .post(format!("http://{addr}/webhook"))
        .headers(headers)
        .header(header::CONTENT_TYPE, "application/json")
        .body(bytes)
        .sent()
        .await;
    assert_eq!(
        r.status(),
        201,
        "the old secret still verifies during rotation"
    );
    stop.cancel();
    server.await.unwrap().unwrap();
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_answers_follow_the_transition_rule() {
    let stack = producer_only().await;
    let id = accepted(&stack).await;

    // pending on pending: 200, nothing changes.
    let (code, ct, body) = webhook(&stack, &id, "pending").await;
    assert_eq!(
        (code, ct.as_str(), body["status"].as_str()),
        (200, "application/json", Some("pending"))
    );
    // failed is ours, never the third party's; unknown statuses too: 422.
    for status in ["failed", "settled"] {
        let (code, ct, body) = webhook(&stack, &id, status).await;
        assert_eq!((code, ct.as_str()), (422, PROBLEM), "{status}");
        assert_eq!(fields(&body), vec!["status"]);
    }
    // A new terminal status: 201; the same again: 200.
    let (code, _, body) = webhook(&stack, &id, "completed").await;
    assert_eq!((code, body["status"].as_str()), (201, Some("completed")));
    let (code, _, body) = webhook(&stack, &id, "completed").await;
    assert_eq!((code, body["status"].as_str()), (200, Some("completed")));
    // A terminal flip attempt: 409, and nothing changes.
    let (code, ct, _) = webhook(&stack, &id, "declined").await;
    assert_eq!((code, ct.as_str()), (409, PROBLEM));
    // A stale pending after the terminal: 200, ignored.
    let (code, _, body) = webhook(&stack, &id, "pending").await;
    assert_eq!((code, body["status"].as_str()), (200, Some("completed")));
    assert_eq!(
        stack.get(id.as_str().unwrap()).await.1["status"],
        "completed"
    );

    // Unknown id: 404. Malformed (but signed) body: 400.
    let (code, ct, _) = webhook(&stack, &json!(Uuid::now_v7()), "completed").await;
    assert_eq!((code, ct.as_str()), (404, PROBLEM));
    let now = chrono::Utc::now().timestamp();
    let bytes = b"{not json".to_vec();
    let r = post_webhook(&stack, &stack.webhook_secret, now, bytes).await;
    assert_eq!(answered(&r), (400, PROBLEM.to_string()));

    // Two identical webhooks at once: one 201, one 200.
    let other = accepted(&stack).await;
    let (a, b) = tokio::join!(
        webhook(&stack, &other, "declined"),
        webhook(&stack, &other, "declined")
    );
    let mut codes = [a.0, b.0];
    codes.sort();
    assert_eq!(codes, [200, 201]);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_without_redis_or_postgres_degrades_to_503() {
    // Nothing listens on port 1.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = Options::default().producer;
    config.connections = Connections::local(
        "postgres://postgres@127.0.0.1:1/none".parse().unwrap(),
        "redis://127.0.0.1:1".parse().unwrap(),
        "unreachable",
    );
    let stop = CancellationToken::new();
    let server = tokio::spawn(producer::run(config.clone(), listener, stop.clone()));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let base = format!("http://{addr}");

    // A key of the right shape: without Postgres, whether it is valid cannot be known.
    let key = config.api_key_pepper.new_key().plaintext;
    let r = http
        .post(format!("{base}/transaction"))
        .bearer_auth(&key)
        .json(&json!({"amount": 5, "currency": "EUR"}))
        .sent()
        .await;
    assert_eq!(answered(&r), (503, PROBLEM.to_string()));
    assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    assert_eq!(
        http.get(format!("{base}/readyz")).sent().await.status(),
        503
    );
    assert_eq!(
        http.get(format!("{base}/healthz")).sent().await.status(),
        200
    );
    let r = http
        .get(format!("{base}/transaction/{}", Uuid::now_v7()))
        .bearer_auth(&key)
        .sent()
        .await;
    assert_eq!(answered(&r), (503, PROBLEM.to_string()));
    stop.cancel();
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_covers_every_route_and_error() {
    let stack = producer_only().await;
    let r = stack
        .producer_request(Method::GET, "/openapi.json")
        .sent()
        .await;
    assert_eq!(answered(&r), (200, "application/json".to_string()));
    let doc: Value = r.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    for (path, method, codes) in [
        (
            "/transaction",
            "post",
            vec![
                "200", "201", "400", "408", "409", "413", "415", "422", "500", "503", "504",
            ],
        ),
        (
            "/transaction/{id}",
            "get",
            vec!["200", "404", "422", "500", "503"],
        ),
        (
            "/webhook",
            "post",
            vec![
                "200", "201", "400", "401", "404", "409", "415", "422", "500", "503",
            ],
        ),
        ("/healthz", "get", vec!["200"]),
        ("/readyz", "get", vec!["200", "503"]),
        ("/metrics", "get", vec!["200"]),
        ("/openapi.json", "get", vec!["200"]),
    ] {
        let responses = &doc["paths"][path][method]["responses"];
        for code in codes {
            assert!(
                responses[code].is_object(),
                "{method} {path} documents {code}"
            );
        }
    }
    // As strict as the parser: a UUID, three capital letters, a positive amount, no other field.
    let body = &doc["components"]["schemas"]["NewTransactionBody"];
    assert_eq!(body["additionalProperties"], false, "{body}");
    assert_eq!(body["properties"]["id"]["format"], "uuid", "{body}");
    assert_eq!(
        body["properties"]["currency"]["pattern"], "^[A-Z]{3}$",
        "{body}"
    );
    assert_eq!(body["properties"]["amount"]["minimum"], 1, "{body}");
    let schemas = [
        "Problem",
        "FieldError",
        "Accepted",
        "TransactionView",
        "WebhookBody",
    ];
    assert_schemas(&doc, &schemas);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_simulator_rejects_unsigned_or_forged_notifications() {
    let stack = producer_only().await;
    let id = Uuid::now_v7();
    let url = format!("{}/transactions/{id}/status", stack.client);
    let bytes = serde_json::to_vec(&json!({"id": id, "status": "completed"})).unwrap();
    let r = stack.http.post(&url).body(bytes.clone()).sent().await;
    assert_eq!(r.status(), 401, "unsigned");
    let forged = Signer::new(&WebhookSecrets::generate()).headers_now("d-1", &bytes);
    let r = stack
        .http
        .post(&url)
        .headers(forged)
        .body(bytes)
        .sent()
        .await;
    assert_eq!(r.status(), 401, "signed with a foreign secret");
    assert!(stack.received().await.is_empty(), "nothing was recorded");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_dribbles_its_headers_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut options = Options::without_consumer();
    options.producer.server.header_read_timeout = Duration::from_millis(500);
    let stack = spawn_stack(options).await;
    let addr = stack.producer.trim_start_matches("http://").to_string();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nx-slow: ")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    // One header byte every 100 ms, as a slow-loris client sends them, until the server hangs up.
    let mut buf = [0u8; 512];
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still connected 10 s into a header that never ends"
        );
        if tcp.write_all(b"x").await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(100), tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) | Err(_) => {}
        }
    }
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "not disconnected before the timeout ({:?})",
        started.elapsed()
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durability_can_be_asserted_where_config_is_hidden_and_readyz_says_so() {
    let mut options = Options::without_consumer();
    // The shared Redis is not durable: only an assertion lets a strict producer start.
    options.producer.require_durable_redis = true;
    options.producer.redis_durability = producer::durability::DurabilityMode::Assume;
    let stack = spawn_stack(options).await;
    let (code, body) = stack.readyz().await;
    assert_eq!(code, 200);
    assert_eq!(body["durable_acceptance"], true, "{body}");
    assert!(
        body["redis"].as_str().unwrap().contains("not checked"),
        "{body}"
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_makes_a_post_without_an_id_safe_to_retry() {
    let stack = producer_only().await;
    let post = |key: &'static str, body: Value| {
        let request = stack.producer_request(Method::POST, "/transaction");
        async move {
            let r = request
                .header("Idempotency-Key", key)
                .json(&body)
                .sent()
                .await;
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let money = json!({"amount": 700, "currency": "EUR"});
    let (first, a) = post("order-7", money.clone()).await;
    let (again, b) = post("order-7", money).await;
    assert_eq!((first, again), (201, 200), "{a} {b}");
    assert_eq!(a["id"], b["id"], "the same key names the same transaction");
    let (other, c) = post("order-7", json!({"amount": 701, "currency": "EUR"})).await;
    assert_eq!(other, 409, "{c}");
    assert!(c["detail"].as_str().unwrap().contains("amount"), "{c}");
    let (with_id, d) = post("order-8", json!({"id": Uuid::now_v7()})).await;
    assert_eq!(with_id, 422, "{d}");
    assert_eq!(d["errors"][0]["field"], "Idempotency-Key", "{d}");
    let (another, e) = post("order-9", json!({})).await;
    assert_eq!(another, 201);
    assert_ne!(e["id"], a["id"], "another key, another transaction");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_a_problem_document_with_the_security_headers() {
    let redis = PrivateRedis::start().await.expect("a private redis");
    let mut options = Options::without_consumer().on_redis(redis.url());
    options.producer.request_timeout = Duration::from_millis(300);
    let stack = spawn_stack(options).await;

    // A path that is not UTF-8: the same 422 as any id that is not a UUID.
    let r = stack
        .producer_request(Method::GET, "/transaction/%FF")
        .sent()
        .await;
    assert_eq!(
        (r.status().as_u16(), content_type(&r).as_str()),
        (422, PROBLEM)
    );

    // A request that outlives REQUEST_TIMEOUT_MS (Redis stalled): 408, a problem document with
    // the same headers as every other answer.
    redis.pause();
    let r = stack
        .producer_request(Method::POST, "/transaction")
        .json(&json!({"amount": 100, "currency": "EUR"}))
        .sent()
        .await;
    redis.resume();
    assert_eq!(
        (r.status().as_u16(), content_type(&r).as_str()),
        (408, PROBLEM)
    );
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert!(r.headers().contains_key("x-request-id"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], 408);
    stack.shutdown().await;
}
