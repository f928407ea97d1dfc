//! Every accepted transaction has an owner until it is terminal: a job in Redis or a row the
//! sweeper picks up — never only a dead job.

use std::time::Duration;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_jobs_dead_lettered_during_a_postgres_outage_are_revived_without_a_hand() {
    let postgres = PrivatePostgres::start();
    let mut options = Options {
        postgres: Some((postgres.server(), String::new())),
        ..Options::default()
    };
    // Three deliveries (1 s, then 2 s apart) reach the dead set within seconds; revived after
    // a second dead.
    options.consumer.max_deliveries = 3;
    options.consumer.dead_revive = Duration::from_secs(1);
    options.consumer.sweep_interval = Duration::from_millis(500);
    let stack = spawn_stack(options).await;

    let before = post_all(&stack, 20).await;
    postgres.stop();
    let during = post_all(&stack, 40).await;
    let create = stack.queues().create;
    eventually(
        Duration::from_secs(30),
        "every create job accepted during the outage is dead",
        || async { create.counts().await.expect("counts").failed >= during.len() as u64 },
    )
    .await;
    let dead = create.dead_jobs(0, 100).await.expect("dead jobs");
    assert!(
        dead.iter().all(|d| d.attempts == 3),
        "each died of its deliveries: {dead:?}"
    );

    postgres.resume();
    let ids: Vec<_> = before.into_iter().chain(during).collect();
    stack
        .settles(&ids, 90, "every transaction terminal after the outage")
        .await;
    let revived = metric(&stack.consumer, "jobs_revived_total", "queue=\"create\"").await;
    assert!(
        revived >= 40,
        "the sweeper revived the dead create jobs ({revived})"
    );
    assert_eq!(create.counts().await.expect("counts").failed, 0);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_party_outage_longer_than_every_budget_ends_with_everything_terminal() {
    let mut options = Options {
        thirdparty: thirdparty_sim::Behaviour {
            // Only polls can tell the outcome: the outage must not end them. Resolved only
            // after the outage has begun, so submitted transactions meet it while pending.
            webhook_drop_rate: rate("1"),
            resolve_min_ms: 1_000,
            resolve_max_ms: 1_800,
            ..Options::default().thirdparty
        },
        ..Options::default()
    };
    let consumer = &mut options.consumer;
    consumer.schedules.process_retries = 2;
    consumer.schedules.poll_max_interval_ms = 500;
    consumer.schedules.poll_max_total_ms = 2_000;
    consumer.max_deliveries = 4;
    consumer.dead_revive = Duration::from_millis(500);
    let stack = spawn_stack(options).await;
    let outage = |on: bool| {
        let url = format!("{}/admin/outage", stack.thirdparty);
        let http = stack.http.clone();
        async move {
            let r = http
                .post(url)
                .json(&serde_json::json!({ "on": on }))
                .send()
                .await
                .expect("outage switch");
            assert_eq!(r.status(), 200);
        }
    };

    let first = post_all(&stack, 30).await;
    eventually(
        Duration::from_secs(20),
        "the first 30 submitted",
        || async { stack.thirdparty_stats().await.created == 30 },
    )
    .await;
    outage(true).await;
    let during = post_all(&stack, 30).await;
    // Longer than the submission retries, the deliveries and the whole poll window.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let ids: Vec<_> = first.into_iter().chain(during).collect();
    let stats = stack.thirdparty_stats().await;
    assert!(stats.outage_refusals > 0, "the outage met live calls");
    let terminal = stack.terminal_among(&ids).await;
    assert!(
        terminal < ids.len(),
        "the outage hit unfinished work ({terminal} of {} terminal)",
        ids.len()
    );
    outage(false).await;

    stack
        .settles(&ids, 90, "every transaction terminal after the outage")
        .await;
    let statuses = stack.statuses().await;
    let ledger = stack.ledger().await;
    for id in &ids {
        if statuses[id] == "failed" {
            assert!(
                !ledger.contains_key(id),
                "{id} failed but the third party has it"
            );
        }
    }
    assert_eq!(stack.thirdparty_stats().await.conflicts, 0);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submissions_the_third_party_lost_are_submitted_again_once() {
    let options = Options {
        thirdparty: thirdparty_sim::Behaviour {
            create_lost_rate: rate("0.3"),
            ..Options::default().thirdparty
        },
        ..Options::default()
    };
    let stack = spawn_stack(options).await;
    let ids = post_all(&stack, 100).await;
    stack.settles(&ids, 90, "every transaction terminal").await;
    let stats = stack.thirdparty_stats().await;
    assert!(stats.lost >= 10, "the fault hit submissions ({stats:?})");
    assert_eq!(
        stats.created,
        ids.len() as u64,
        "each created exactly once ({stats:?})"
    );
    assert_eq!(stats.conflicts, 0);
    let resubmitted = metric(&stack.consumer, "transactions_resubmitted_total", "").await;
    assert!(
        resubmitted >= stats.lost,
        "every lost submission was made again ({resubmitted} for {} lost)",
        stats.lost
    );
    stack.shutdown().await;
}
