//! What an operator sees on the board: a queue's jobs per state paged by cursor, one job, a
//! transaction's story, the throughput chart, and pause; through the JSON API and in a real
//! headless browser (Debian's Chromium through chromedriver).

use std::time::Duration;

use crate::support::{
    browser::{self, Driver, click, screenshot, text_of},
    *,
};
use domain::{
    QueueName,
    jobs::JobKind,
    jobs::{ProcessFrom, ProcessJob},
};
use fantoccini::Locator;
use serde_json::{Value, json};
use service::secret::Secret;
use uuid::Uuid;

const TOKEN: &str = "s3cret";

/// `GET /board/api{path}` with the token: the status and the JSON body (`null` if none).
async fn board_get(stack: &Stack, path: &str) -> (u16, Value) {
    let response = stack
        .http
        .get(format!("{}/board/api{path}", stack.consumer))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("board GET");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `POST /board/api{path}` as the page sends it (action header), with the token.
async fn board_post(stack: &Stack, path: &str) -> (u16, Value) {
    let response = stack
        .http
        .post(format!("{}/board/api{path}", stack.consumer))
        .bearer_auth(TOKEN)
        .header("x-board-action", "1")
        .send()
        .await
        .expect("board POST");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn with_token() -> Options {
    let mut options = Options::default();
    options.consumer.board_token = Some(Secret::new(TOKEN));
    options
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_pages_a_queues_jobs_finds_one_and_tells_a_transactions_story() {
    let stack = spawn_stack(with_token()).await;
    // Paused, the submissions wait where the board can see them. The flag is read by every
    // fetch, so nothing pushed from now on can start.
    assert_eq!(board_post(&stack, "/queues/process/pause").await.0, 200);
    let ids = post_all(&stack, 5).await;
    eventually(Duration::from_secs(20), "the submissions wait", || async {
        stack.queue_counts(QueueName::Process).await.waiting == 5
    })
    .await;

    // Five waiting jobs, two per page: three pages, in the order they will start.
    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &cursor {
            Some(c) => format!("&cursor={}", urlencode(c)),
            None => String::new(),
        };
        let (status, page) = board_get(
            &stack,
            &format!("/queues/process/jobs?state=waiting&limit=2{query}"),
        )
        .await;
        assert_eq!(status, 200);
        pages += 1;
        for job in page["jobs"].as_array().expect("jobs") {
            assert_eq!(job["state"], "waiting");
            assert_eq!(job["deliveries"], 0);
            let payload: Value =
                serde_json::from_str(job["payload"].as_str().expect("payload")).expect("JSON");
            assert_eq!(payload["from"]["kind"], "insert");
            listed.push(
                payload["id"]
                    .as_str()
                    .expect("id")
                    .parse::<Uuid>()
                    .expect("uuid"),
            );
        }
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let (mut sorted, mut posted) = (listed.clone(), ids.clone());
    sorted.sort();
    posted.sort();
    assert_eq!(sorted, posted, "every waiting submission listed once");

    let id = ids[0];
    let (status, job) = board_get(&stack, &format!("/queues/process/jobs/process:{id}")).await;
    assert_eq!((status, job["state"].as_str()), (200, Some("waiting")));
    assert_eq!(
        board_get(&stack, "/queues/process/jobs/process:nothing")
            .await
            .0,
        404
    );
    assert_eq!(board_get(&stack, "/queues/nothing/jobs").await.0, 404);
    assert_eq!(
        board_get(&stack, "/queues/process/jobs?state=bogus")
            .await
            .0,
        400
    );
    // Done jobs: the ids of the most recent, one page (the create jobs of the five).
    let (status, done) = board_get(&stack, "/queues/create/jobs?state=done&limit=200").await;
    assert_eq!(status, 200);
    let done_ids: Vec<&str> = done["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["id"].as_str().expect("id"))
        .collect();
    for id in &ids {
        assert!(
            done_ids.contains(&format!("create:{id}").as_str()),
            "{done}"
        );
    }
    assert!(done["next"].is_null());

    // The story while the submission waits: the row, one history step, no notification yet,
    // the create job done and the process job waiting.
    let (status, story) = board_get(&stack, &format!("/transactions/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(story["transaction"]["status"], "pending");
    assert_eq!(story["transaction"]["amount"], 100);
    assert_eq!(story["transaction"]["currency"], "EUR");
    assert_eq!(story["history"].as_array().map(Vec::len), Some(1));
    assert_eq!(story["history"][0]["source"], "api");
    assert!(story["notification"].is_null());
    let state_of = |story: &Value, job: &str| {
        story["jobs"]
            .as_array()
            .and_then(|jobs| jobs.iter().find(|j| j["id"] == job))
            .map(|j| (j["queue"].clone(), j["state"].clone()))
    };
    assert_eq!(
        state_of(&story, &format!("process:{id}")),
        Some((json!("process"), json!("waiting")))
    );
    assert_eq!(
        state_of(&story, &format!("create:{id}")),
        Some((json!("create"), json!("done")))
    );
    assert_eq!(board_get(&stack, "/transactions/not-a-uuid").await.0, 400);
    assert_eq!(
        board_get(&stack, &format!("/transactions/{}", Uuid::now_v7()))
            .await
            .0,
        404
    );

    assert_eq!(board_post(&stack, "/queues/process/resume").await.0, 200);
    stack
        .settles(&ids, 60, "everything ran after the resume")
        .await;
    // The whole story: a terminal step, and the notification the client received.
    let received = stack.received().await;
    let delivery = &received[&id][0].delivery_id;
    let (_, story) = board_get(&stack, &format!("/transactions/{id}")).await;
    let history = story["history"].as_array().expect("history");
    assert_eq!(history.len(), 2);
    assert_eq!(history[1]["status"], story["transaction"]["status"]);
    assert_ne!(history[1]["status"], "pending");
    assert_eq!(
        story["notification"]["delivery_id"].as_str(),
        Some(delivery.as_str())
    );
    assert!(story["notification"]["attempts"].as_i64() >= Some(1));
    assert!(!story["notification"]["delivered_at"].is_null());
    // Its delivery log: the accepted attempt last, with the client's 200.
    let log = story["notification"]["log"]
        .as_array()
        .expect("a delivery log");
    let last = log.last().expect("an attempt");
    assert_eq!(
        (&last["trigger"], &last["http_status"], &last["error"]),
        (&json!("scheduled"), &json!(200), &Value::Null),
        "{log:?}"
    );

    // Throughput since the consumer started: the five creates in the create queue's chart.
    eventually(
        Duration::from_secs(10),
        "the creates are counted",
        || async {
            let (_, all) = board_get(&stack, "/throughput").await;
            all.as_array().is_some_and(|queues| {
                queues.len() == 4
                    && queues
                        .iter()
                        .all(|q| q["points"].as_array().map(Vec::len) == Some(90))
                    && queues.iter().any(|q| {
                        q["name"] == "create"
                            && q["points"]
                                .as_array()
                                .map(|p| p.iter().filter_map(|p| p["done"].as_f64()).sum::<f64>())
                                .is_some_and(|done| done.round() == 5.0)
                    })
            })
        },
    )
    .await;
    stack.shutdown().await;
}

/// Percent-escapes a query value or path segment.
fn urlencode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_the_board_shows_no_payloads_or_amounts() {
    let stack = spawn_stack(Options::default()).await;
    let process = stack.queue::<Value>(QueueName::Process);
    process.set_paused(true).await.unwrap();
    let ids = post_all(&stack, 1).await;
    eventually(Duration::from_secs(20), "the submission waits", || async {
        stack.queue_counts(QueueName::Process).await.waiting == 1
    })
    .await;
    let (status, page) = board_get(&stack, "/queues/process/jobs").await;
    assert_eq!(status, 200);
    assert_eq!(page["jobs"][0]["payload"], "");
    let (_, story) = board_get(&stack, &format!("/transactions/{}", ids[0])).await;
    assert_eq!(story["transaction"]["status"], "pending");
    assert!(story["transaction"]["amount"].is_null());
    assert!(
        story["jobs"]
            .as_array()
            .is_some_and(|jobs| jobs.iter().all(|j| j["payload"] == ""))
    );
    process.set_paused(false).await.unwrap();
    stack.settles(&ids, 30, "it ran").await;
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_submission_retried_from_the_board_asks_the_third_party_first() {
    let mut options = with_token();
    // One delivery: a failing job dies at once.
    options.consumer.max_deliveries = 1;
    let stack = spawn_stack(options).await;
    // A submission written as create writes it ("nothing can have reached the third party"),
    // for a transaction without a row yet: it died; now the row exists.
    let job = stack.dead_submission(ProcessFrom::Insert).await;
    let id = job.id.as_uuid();

    // Retried while paused, so the board can show what will run: a job that asks first, since
    // the delivery that died may have reached the third party.
    assert_eq!(board_post(&stack, "/queues/process/pause").await.0, 200);
    let path = format!("/queues/process/failed/{}/retry", urlencode(&job.job_id()));
    let (status, answer) = board_post(&stack, &path).await;
    assert_eq!((status, answer["retried"].as_bool()), (200, Some(true)));
    assert_eq!(board_post(&stack, &path).await.1["retried"], false);
    let (_, waiting) = board_get(&stack, &format!("/queues/process/jobs/{}", job.job_id())).await;
    assert_eq!(waiting["state"], "waiting");
    let payload: ProcessJob =
        serde_json::from_str(waiting["payload"].as_str().expect("payload")).expect("a job");
    assert_eq!(payload, job.rerun());
    assert_eq!(payload.from, ProcessFrom::Recovery);

    assert_eq!(board_post(&stack, "/queues/process/resume").await.0, 200);
    stack.settles(&[id], 30, "the retry ran").await;
    let stats = stack.thirdparty_stats().await;
    assert_eq!((stats.created, stats.conflicts), (1, 0));
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_searches_a_story_opens_waiting_jobs_pauses_a_queue_and_sees_the_chart() {
    let stack = spawn_stack(with_token()).await;
    let driver = Driver::start().await;
    let browser = driver.browser().await;
    let board = format!("{}/board", stack.consumer);

    // Signing in: the token goes in the form's POST body; the cookie does the rest.
    browser.goto(&board).await.unwrap();
    browser
        .find(Locator::Css("input[name=token]"))
        .await
        .unwrap()
        .send_keys(TOKEN)
        .await
        .unwrap();
    click(&browser, "form button[type=submit]").await;
    eventually(Duration::from_secs(10), "the board opened", || async {
        browser.find(Locator::Css("#queues")).await.is_ok()
    })
    .await;

    // Traffic, then the chart: every queue's svg has a dot per bucket, some above zero.
    let ids = post_all(&stack, 20).await;
    stack.settles(&ids, 60, "the first traffic settled").await;
    eventually(
        Duration::from_secs(20),
        "the chart shows the traffic",
        || async {
            let _ = browser.refresh().await;
            let Ok(points) = browser
                .find_all(Locator::Css(
                    "svg.chart[data-queue=create] circle.point.done",
                ))
                .await
            else {
                return false;
            };
            let mut busiest = 0.0_f64;
            for p in &points {
                let value = p
                    .attr("data-value")
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                busiest = busiest.max(value.parse().unwrap_or(0.0));
            }
            points.len() == 90 && busiest > 0.0
        },
    )
    .await;
    assert_eq!(browser::count_of(&browser, "svg.chart").await, 4);
    screenshot(&browser, "board-traffic.png").await;

    // The search box: a transaction's story, with its history and its notification.
    let id = ids[0];
    let delivery = stack.received().await[&id][0].delivery_id.clone();
    browser
        .find(Locator::Css("#search input[name=id]"))
        .await
        .unwrap()
        .send_keys(&id.to_string())
        .await
        .unwrap();
    click(&browser, "#search button").await;
    eventually(Duration::from_secs(10), "the story opened", || async {
        !text_of(&browser, "#notification .delivery-id")
            .await
            .is_empty()
    })
    .await;
    let statuses = browser::attrs_of(&browser, "#history tr.step", "data-status").await;
    assert_eq!(statuses.len(), 2, "{statuses:?}");
    assert_eq!(statuses[0], "pending");
    assert_eq!(statuses[1], stack.statuses().await[&id]);
    assert_eq!(
        text_of(&browser, "#notification .delivery-id").await,
        delivery
    );
    assert_ne!(text_of(&browser, "#notification .delivered").await, "");
    assert!(
        browser::count_of(&browser, "#attempts tr.attempt").await >= 1,
        "the delivery log is shown"
    );
    screenshot(&browser, "board-story.png").await;

    // Pause `process` from its button: creates keep running, no submission starts.
    browser.goto(&board).await.unwrap();
    click(
        &browser,
        "tr[data-queue=process] button[data-action$='/pause']",
    )
    .await;
    eventually(
        Duration::from_secs(10),
        "the board shows the pause",
        || async { text_of(&browser, "tr[data-queue=process] td.state").await == "paused" },
    )
    .await;
    let process_done = stack.queue_counts(QueueName::Process).await.done;
    let paused_ids = post_all(&stack, 10).await;
    eventually(Duration::from_secs(20), "create kept running", || async {
        let statuses = stack.statuses().await;
        paused_ids.iter().all(|id| statuses.contains_key(id))
    })
    .await;
    eventually(Duration::from_secs(10), "the submissions wait", || async {
        stack.queue_counts(QueueName::Process).await.waiting == 10
    })
    .await;

    // The waiting count opens the list of waiting jobs, with their payloads.
    browser.goto(&board).await.unwrap();
    click(&browser, "tr[data-queue=process] td.waiting a").await;
    eventually(
        Duration::from_secs(10),
        "the waiting jobs are listed",
        || async { browser::count_of(&browser, "#jobs[data-state=waiting] tr.job").await == 10 },
    )
    .await;
    let listed = text_of(&browser, "#jobs").await;
    for id in &paused_ids {
        assert!(listed.contains(&format!("process:{id}")), "{id} listed");
    }
    assert!(
        listed.contains("insert"),
        "payloads are shown behind the token"
    );
    let counts = stack.queue_counts(QueueName::Process).await;
    assert_eq!(
        (counts.done, counts.running),
        (process_done, 0),
        "no submission started while paused"
    );
    assert_eq!(stack.thirdparty_stats().await.created, 20);

    // Resume from the page: everything runs.
    browser.goto(&board).await.unwrap();
    click(
        &browser,
        "tr[data-queue=process] button[data-action$='/resume']",
    )
    .await;
    stack
        .settles(&paused_ids, 60, "everything ran after the resume")
        .await;
    assert_eq!(stack.thirdparty_stats().await.created, 30);
    browser.close().await.unwrap();
    stack.shutdown().await;
}
