//! The queue board in a real headless browser (Debian's Chromium through chromedriver): the page
//! loads, shows the four queues and a failed job with its error, and the Retry button moves the
//! job out of the failed list. Also the metrics endpoints after a run.

use std::time::Duration;

use crate::support::{
    browser::{self, Driver},
    *,
};
use domain::jobs::{JobKind, ProcessFrom};
use fantoccini::Locator;
use serde_json::{Value, json};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_shows_the_queues_and_retries_a_failed_job_in_a_browser() {
    let mut options = Options::default();
    // One delivery: a job whose handler fails goes straight to the failed list. No token, so
    // actions must be allowed explicitly.
    options.consumer.max_deliveries = 1;
    options.consumer.board_allow_actions = true;
    let stack = spawn_stack(options).await;

    // A submission for a transaction that had no row yet failed and was dead-lettered; now
    // the row exists.
    let job = stack.dead_submission(ProcessFrom::Recovery).await;
    let id = job.id.as_uuid();

    let driver = Driver::start().await;
    let browser = driver.browser().await;
    browser
        .goto(&format!("{}/board", stack.consumer))
        .await
        .unwrap();

    let names = browser::attrs_of(&browser, "#queues tbody tr", "data-queue").await;
    assert_eq!(names, ["create", "process", "update", "notify"]);
    let failed_count = browser::text_of(&browser, "tr[data-queue=process] td.failed").await;
    assert_eq!(failed_count, "1");
    let job_id = job.job_id();
    let failed_row = browser
        .find(Locator::Css(&format!("tr.failed-job[data-id='{job_id}']")))
        .await
        .unwrap();
    assert!(
        failed_row.text().await.unwrap().contains("has no row yet"),
        "the last error is shown"
    );
    browser::screenshot(&browser, "board.png").await;

    let button = failed_row.find(Locator::Css("button")).await.unwrap();
    button.click().await.unwrap();
    // The button posts with the action header, the server retries the job, the page reloads.
    eventually(
        Duration::from_secs(10),
        "the job left the failed list",
        || async { browser::count_of(&browser, "tr.failed-job").await == 0 },
    )
    .await;
    assert!(
        browser
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/board")
    );
    eventually(
        Duration::from_secs(30),
        "the retried submission completed the transaction",
        || async {
            stack
                .statuses()
                .await
                .get(&id)
                .is_some_and(|s| s != "pending")
        },
    )
    .await;
    browser.close().await.unwrap();
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_is_closed_without_its_token_which_never_travels_in_a_url() {
    let mut options = Options::default();
    options.consumer.board_token = Some(service::secret::Secret::new("s3cret"));
    let stack = spawn_stack(options).await;
    let url = format!("{}/board/api/queues", stack.consumer);
    let status = |request: reqwest::RequestBuilder| async move {
        request.send().await.expect("request").status().as_u16()
    };
    assert_eq!(status(stack.http.get(&url)).await, 401);
    // A token in a query string is ignored, right or wrong.
    assert_eq!(
        status(stack.http.get(format!("{url}?token=s3cret"))).await,
        401
    );
    assert_eq!(
        status(
            stack
                .http
                .get(format!("{}/board?token=s3cret", stack.consumer))
        )
        .await,
        401
    );
    let queues: Value = stack
        .http
        .get(&url)
        .bearer_auth("s3cret")
        .json_answered()
        .await;
    assert_eq!(
        each_str(&queues, "name"),
        ["create", "process", "update", "notify"]
    );

    // The login form sets an HttpOnly, SameSite=Strict session cookie that opens the board.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let log_in = |token: &'static str| {
        no_redirects
            .post(format!("{}/board/login", stack.consumer))
            .form(&[("token", token)])
            .sent()
    };
    assert_eq!(log_in("nope").await.status(), 401);
    let login = log_in("s3cret").await;
    assert_eq!(login.status(), 303);
    let cookie = login.headers()[reqwest::header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains("s3cret"), "the cookie is not the token");
    let session = cookie.split(';').next().unwrap().to_string();
    let page = no_redirects
        .get(format!("{}/board", stack.consumer))
        .header(reqwest::header::COOKIE, &session)
        .sent()
        .await;
    assert_eq!(page.status(), 200);
    assert!(!page.text().await.unwrap().contains("s3cret"));
    stack.shutdown().await;
}

/// A mutating request: the purge of `notify`'s failed jobs.
async fn purge(stack: &Stack, action_header: bool, bearer: Option<&str>, cross_site: bool) -> u16 {
    let mut request = stack.http.post(format!(
        "{}/board/api/queues/notify/failed/purge",
        stack.consumer
    ));
    if action_header {
        request = request.header("x-board-action", "1");
    }
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    if cross_site {
        // What a form on another site sends: no custom header can be added to it.
        request = request
            .header(reqwest::header::ORIGIN, "http://evil.example")
            .header(reqwest::header::CONTENT_TYPE, "text/plain")
            .body("x=1");
    }
    request.send().await.expect("purge").status().as_u16()
}

/// How a board is set up for actions.
#[derive(Debug, Clone, Copy, PartialEq)]
enum BoardAccess {
    /// No token, actions not allowed: read-only.
    ReadOnly,
    /// No token, `BOARD_ALLOW_ACTIONS=true`.
    ActionsAllowed,
    /// `BOARD_TOKEN=s3cret`.
    Token,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn board_actions_need_the_action_header_and_the_right_to_act() {
    use BoardAccess::*;
    // (access, action header, bearer token, cross-site form) → status, why.
    type Case<'a> = (BoardAccess, bool, Option<&'a str>, bool, u16, &'a str);
    let cases: &[Case] = &[
        (ReadOnly, false, None, true, 403, "cross-site form"),
        (
            ReadOnly,
            true,
            None,
            false,
            403,
            "read-only without a token",
        ),
        (ActionsAllowed, false, None, true, 403, "cross-site form"),
        (ActionsAllowed, false, None, false, 403, "no action header"),
        (
            ActionsAllowed,
            true,
            None,
            false,
            200,
            "allowed, with the header",
        ),
        (Token, false, None, true, 403, "cross-site form"),
        (Token, false, Some("s3cret"), false, 403, "no action header"),
        (Token, true, None, false, 401, "no token"),
        (Token, true, Some("wrong"), false, 401, "wrong token"),
        (
            Token,
            true,
            Some("s3cret"),
            false,
            200,
            "the token and the header",
        ),
    ];
    for access in [ReadOnly, ActionsAllowed, Token] {
        let mut options = Options::default();
        match access {
            ReadOnly => {}
            ActionsAllowed => options.consumer.board_allow_actions = true,
            Token => options.consumer.board_token = Some(service::secret::Secret::new("s3cret")),
        }
        let stack = spawn_stack(options).await;
        for &(_, header, bearer, cross_site, status, why) in cases.iter().filter(|c| c.0 == access)
        {
            assert_eq!(
                purge(&stack, header, bearer, cross_site).await,
                status,
                "{access:?}: {why}"
            );
        }
        stack.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_services_expose_prometheus_metrics() {
    let stack = spawn_stack(Options::default()).await;
    let id = Uuid::now_v7();
    assert_eq!(stack.post(json!({"id": id})).await.0, 201);
    eventually(Duration::from_secs(30), "the client heard", || async {
        stack.received().await.contains_key(&id)
    })
    .await;

    let producer = stack
        .producer_request(Method::GET, "/metrics")
        .sent()
        .await
        .text()
        .await
        .unwrap();
    assert!(
        producer
            .contains(r#"http_request_duration_seconds_count{method="POST",route="/transaction",status="201"}"#),
        "{producer}"
    );
    assert!(producer.contains("http_request_duration_seconds_bucket"));
    let wanted = [
        r#"queue_jobs{queue="create",state="waiting"}"#,
        r#"queue_jobs{queue="update",state="scheduled"}"#,
        r#"queue_jobs_pushed_total{queue="create"}"#,
        r#"queue_jobs_done_total{queue="notify"}"#,
        "queue_handler_duration_seconds_bucket",
        "queue_jobs_running",
        "transactions_finished_total",
        "notifications_delivered_total",
    ];
    let scrape = || async { stack.text_of(&format!("{}/metrics", stack.consumer)).await };
    // The notify job counts its delivery just after the client answered it.
    eventually(
        Duration::from_secs(10),
        "the consumer's metrics",
        || async {
            let consumer = scrape().await;
            wanted.iter().all(|m| consumer.contains(m))
        },
    )
    .await;
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_paused_from_the_board_starts_nothing_while_the_others_run() {
    let mut options = Options::default();
    options.consumer.board_allow_actions = true;
    let stack = spawn_stack(options).await;
    let act = |path: &str| {
        let request = stack
            .http
            .post(format!(
                "{}/board/api/queues/process/{path}",
                stack.consumer
            ))
            .header("x-board-action", "1");
        async move {
            request
                .send()
                .await
                .expect("board action")
                .status()
                .as_u16()
        }
    };
    assert_eq!(act("pause").await, 200);
    assert_eq!(
        metric(&stack.consumer, "queue_paused", "queue=\"process\"").await,
        1
    );
    // Workers look again within a second of a pause; from then on nothing of it starts.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let process = stack.queues().process;
    let before = process.counts().await.unwrap().done;

    let ids = post_all(&stack, 20).await;
    eventually(Duration::from_secs(20), "create kept running", || async {
        stack.statuses().await.len() == ids.len()
    })
    .await;
    eventually(Duration::from_secs(10), "the submissions wait", || async {
        process.counts().await.unwrap().waiting == ids.len() as u64
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let counts = process.counts().await.unwrap();
    assert!(counts.paused);
    assert_eq!(
        (counts.done, counts.running),
        (before, 0),
        "no process job started while paused"
    );
    assert_eq!(
        stack.thirdparty_stats().await.created,
        0,
        "nothing submitted"
    );

    assert_eq!(act("resume").await, 200);
    stack
        .settles(&ids, 60, "everything ran after the resume")
        .await;
    assert_eq!(
        metric(&stack.consumer, "queue_paused", "queue=\"process\"").await,
        0
    );
    stack.shutdown().await;
}
