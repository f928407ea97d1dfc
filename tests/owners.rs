//! Every accepted transaction has an owner until it is terminal: a job in Redis or a row the
//! sweeper picks up — never only a dead job.

mod support;

use std::time::Duration;

use support::*;
use txn_core::QueueName;

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
    options.consumer.dead_revive_ms = 1_000;
    options.consumer.sweep_interval_ms = 500;
    let stack = spawn_stack(options).await;

    let before = post_all(&stack, 20).await;
    postgres.stop();
    let during = post_all(&stack, 40).await;
    let create = stack.queue::<txn_core::jobs::CreateJob>(QueueName::Create);
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
        .settles(
            &ids,
            Duration::from_secs(90),
            "every transaction terminal after the outage",
        )
        .await;
    let revived = metric(&stack.consumer, "jobs_revived_total", "queue=\"create\"").await;
    assert!(
        revived >= 40,
        "the sweeper revived the dead create jobs ({revived})"
    );
    assert_eq!(create.counts().await.expect("counts").failed, 0);
    stack.shutdown().await;
}
