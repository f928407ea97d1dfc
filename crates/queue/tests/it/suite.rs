//! The queue's suite: each case takes the Redis it runs on, and `on_both!` at the end makes
//! it two tests, one on the shared Redis and one on a cluster of its own.

use std::{collections::HashMap, sync::Arc, time::Duration};

use crate::support::*;
use queue::{Job, RetryPolicy, now_ms};

async fn a_backlog_of_200_000_jobs_drains_completely(on: On) {
    let mut config = private_config("backlog");
    config.fetch_batch = 100;
    let (queue, _cleanup) = private_queue(on, config);
    const JOBS: usize = 200_000;
    for chunk in (0..JOBS).collect::<Vec<_>>().chunks(2_000) {
        let jobs: Vec<_> = chunk
            .iter()
            .map(|i| Job::now(format!("j{i}"), Msg::default()))
            .collect();
        let pushed = queue.push_many(&jobs).await.unwrap();
        assert!(pushed.iter().all(|p| *p));
    }
    assert_eq!(queue.counts().await.unwrap().waiting, JOBS as u64);

    let probe = Arc::new(Probe::default());
    let pool = Pool::start(&queue, 32, probe.clone());
    eventually(Duration::from_secs(240), "the backlog drained", || async {
        queue.counts().await.unwrap().done == JOBS as u64
    })
    .await;
    pool.stop().await;

    let counts = queue.counts().await.unwrap();
    assert_eq!((counts.waiting, counts.running, counts.failed), (0, 0, 0));
    assert_eq!(probe.total_runs(), JOBS, "each job ran exactly once");
}

async fn scheduled_jobs_start_on_time_and_never_early(on: On) {
    let (queue, _cleanup) = private_queue(on, private_config("schedule"));
    let probe = Arc::new(Probe::default());
    let pool = Pool::start(&queue, 64, probe.clone());
    // Let the pool go idle first: the jobs must wake it from its blocking wait.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let jobs: Vec<_> = (0..200)
        .map(|i| Job::after(format!("s{i}"), Msg::default(), Duration::from_millis(200)))
        .collect();
    let due: Vec<u64> = jobs.iter().map(|j| j.due_ms).collect();
    queue.push_many(&jobs).await.unwrap();

    eventually(
        Duration::from_secs(10),
        "all scheduled jobs ran",
        || async { probe.finished.load(std::sync::atomic::Ordering::SeqCst) == 200 },
    )
    .await;
    pool.stop().await;
    for (i, due) in due.iter().enumerate() {
        let runs = probe.runs_of(&format!("s{i}"));
        assert_eq!(runs.len(), 1);
        let started = runs[0].started_ms;
        assert!(
            started >= *due,
            "job s{i} started {} ms early",
            due - started
        );
        assert!(
            started - due <= 250,
            "job s{i} started {} ms late",
            started - due
        );
    }
}

async fn an_idle_worker_wakes_promptly_on_a_push(on: On) {
    let (queue, _cleanup) = private_queue(on, private_config("wake"));
    let probe = Arc::new(Probe::default());
    let pool = Pool::start(&queue, 4, probe.clone());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pushed_at = now_ms();
    queue.push(Job::now("w1", Msg::default())).await.unwrap();
    eventually(Duration::from_secs(5), "the job ran", || async {
        probe.finished.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;
    pool.stop().await;
    // The default lease is 30 s, so a wait of 10 s would show a missed wake-up.
    let waited = probe.runs_of("w1")[0].started_ms - pushed_at;
    assert!(waited < 1_000, "woke after {waited} ms");
}

async fn a_job_pushed_twice_while_waiting_runs_once(on: On) {
    let (queue, _cleanup) = private_queue(on, private_config("dupe"));
    assert!(queue.push(Job::now("same", Msg::default())).await.unwrap());
    assert!(!queue.push(Job::now("same", Msg::default())).await.unwrap());
    assert!(
        !queue
            .push(Job::after("same", Msg::default(), Duration::from_secs(5)))
            .await
            .unwrap()
    );
    assert_eq!(queue.counts().await.unwrap().waiting, 1);

    let probe = Arc::new(Probe::default());
    let pool = Pool::start(&queue, 4, probe.clone());
    eventually(Duration::from_secs(5), "the job ran", || async {
        queue.counts().await.unwrap().done == 1
    })
    .await;
    pool.stop().await;
    assert_eq!(probe.runs_of("same").len(), 1);
    // Once done, the id is free again.
    assert!(queue.push(Job::now("same", Msg::default())).await.unwrap());
}

async fn concurrent_pushes_each_get_their_own_answer(on: On) {
    let (queue, _cleanup) = private_queue(on, private_config("pushes"));
    // 100 ids pushed three times each and 50 ids for later once: 350 pushes in flight at
    // once, so that most share a script, often with a repeat of their own id.
    let mut jobs: Vec<(String, Job<Msg>)> = Vec::new();
    for _ in 0..3 {
        for i in 0..100 {
            let id = format!("p{i}");
            jobs.push((id.clone(), Job::now(id, Msg::default())));
        }
    }
    for i in 0..50 {
        let id = format!("l{i}");
        jobs.push((
            id.clone(),
            Job::after(id, Msg::default(), Duration::from_secs(60)),
        ));
    }
    let answers =
        futures::future::join_all(jobs.iter().map(|(_, job)| queue.push(job.clone()))).await;
    let mut pushed: HashMap<String, usize> = HashMap::new();
    for ((id, _), answer) in jobs.iter().zip(answers) {
        *pushed.entry(id.clone()).or_default() += usize::from(answer.unwrap());
    }
    assert_eq!(pushed.len(), 150);
    assert!(
        pushed.values().all(|n| *n == 1),
        "one push of each id took: {pushed:?}"
    );
    let counts = queue.counts().await.unwrap();
    assert_eq!((counts.waiting, counts.scheduled), (100, 50));
    let waiting = queue
        .jobs(queue::JobState::Waiting, None, 200)
        .await
        .unwrap();
    let mut ids: Vec<String> = waiting.jobs.into_iter().map(|j| j.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 100, "each id waits once");
}

async fn a_killed_worker_s_jobs_are_delivered_again_and_complete(on: On) {
    let mut config = private_config("killed");
    config.lease = Duration::from_millis(1_000);
    let prefix = config.prefix.clone();
    let (queue, cleanup) = private_queue(on, config);
    let settings = cleanup.settings();
    let jobs: Vec<_> = (0..50)
        .map(|i| {
            let msg = Msg {
                hang_on_attempt: 1,
                ..Msg::default()
            };
            Job::now(format!("k{i}"), msg)
        })
        .collect();
    queue.push_many(&jobs).await.unwrap();

    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", crate::CHILD_WORKER, "--nocapture"])
        .env("QUEUE_TEST_CHILD_PREFIX", &prefix)
        .env("QUEUE_TEST_CHILD_LEASE_MS", "1000")
        .env("QUEUE_TEST_CHILD_REDIS", &settings.url)
        .env("QUEUE_TEST_CHILD_CLUSTER", settings.cluster.to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    eventually(
        Duration::from_secs(30),
        "the child leased every job",
        || async { queue.counts().await.unwrap().running == 50 },
    )
    .await;
    // Longer than a lease: the child's renewals are what keep the jobs from coming back.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        queue.counts().await.unwrap().running,
        50,
        "a live worker keeps its leases"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let probe = Arc::new(Probe::default());
    let pool = Pool::start(&queue, 64, probe.clone());
    eventually(
        Duration::from_secs(30),
        "every job completed elsewhere",
        || async { queue.counts().await.unwrap().done == 50 },
    )
    .await;
    pool.stop().await;
    for i in 0..50 {
        let runs = probe.runs_of(&format!("k{i}"));
        assert_eq!(runs.len(), 1, "k{i} ran once after the kill");
        assert_eq!(
            runs[0].attempt, 2,
            "k{i}'s second delivery is its second attempt"
        );
    }
}

async fn a_handler_running_longer_than_its_lease_is_not_delivered_twice(on: On) {
    let mut config = private_config("long");
    config.lease = Duration::from_millis(300);
    let (queue, _cleanup) = private_queue(on, config);
    let msg = Msg {
        sleep_ms: 1_500,
        ..Msg::default()
    };
    let jobs: Vec<_> = (0..4)
        .map(|i| Job::now(format!("l{i}"), msg.clone()))
        .collect();
    queue.push_many(&jobs).await.unwrap();

    // Two pools compete: either would take a job whose lease lapsed.
    let probe = Arc::new(Probe::default());
    let first = Pool::start(&queue, 4, probe.clone());
    let second = Pool::start(&queue, 4, probe.clone());
    eventually(
        Duration::from_secs(10),
        "the long jobs finished",
        || async { queue.counts().await.unwrap().done == 4 },
    )
    .await;
    first.stop().await;
    second.stop().await;
    for i in 0..4 {
        assert_eq!(probe.runs_of(&format!("l{i}")).len(), 1, "l{i} ran once");
    }
}

async fn a_job_failing_twice_runs_three_times_at_the_configured_delays(on: On) {
    let mut config = private_config("retry");
    config.retry = RetryPolicy::new(5, |attempt| Duration::from_millis(200 * u64::from(attempt)));
    let (queue, _cleanup) = private_queue(on, config);
    let probe = Arc::new(Probe::default());
    let pool = Pool::start(&queue, 4, probe.clone());
    let msg = Msg {
        fail_times: 2,
        ..Msg::default()
    };
    queue.push(Job::now("r", msg)).await.unwrap();
    eventually(Duration::from_secs(10), "the job succeeded", || async {
        queue.counts().await.unwrap().done == 1
    })
    .await;
    pool.stop().await;

    let runs = probe.runs_of("r");
    assert_eq!(
        runs.iter().map(|r| r.attempt).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    for (i, pair) in runs.windows(2).enumerate() {
        let gap = pair[1].started_ms - pair[0].started_ms;
        let wanted = 200 * (i as u64 + 1);
        assert!(
            gap >= wanted,
            "retry {} came after {gap} ms, before its {wanted} ms delay",
            i + 1
        );
        assert!(
            gap <= wanted + 250,
            "retry {} came after {gap} ms, wanted {wanted} ms",
            i + 1
        );
    }
    assert_eq!(queue.counts().await.unwrap().retried, 2);
}

async fn an_always_failing_job_ends_dead_with_its_error_and_can_be_retried(on: On) {
    let mut config = private_config("dead");
    config.retry = RetryPolicy::new(3, |_| Duration::from_millis(10));
    let (queue, _cleanup) = private_queue(on, config);
    let probe = Arc::new(Probe::default());
    let pool = Pool::start(&queue, 4, probe.clone());
    let always = Msg {
        fail_times: u32::MAX,
        ..Msg::default()
    };
    let panics = Msg {
        fail_times: u32::MAX,
        panic: true,
        ..Msg::default()
    };
    queue.push(Job::now("bad", always)).await.unwrap();
    queue.push(Job::now("panics", panics)).await.unwrap();
    eventually(Duration::from_secs(10), "both jobs died", || async {
        queue.counts().await.unwrap().failed == 2
    })
    .await;

    let dead = queue.dead_jobs(0, 10).await.unwrap();
    let bad = dead.iter().find(|d| d.id == "bad").unwrap();
    assert_eq!(bad.attempts, 3);
    assert_eq!(bad.error, "asked to fail on attempt 3");
    let panicked = dead.iter().find(|d| d.id == "panics").unwrap();
    assert!(
        panicked.error.contains("handler panicked"),
        "{}",
        panicked.error
    );
    assert_eq!(probe.runs_of("bad").len(), 3);
    let listed = queue.jobs(queue::JobState::Failed, None, 10).await.unwrap();
    assert_eq!(listed.jobs.len(), 2);
    assert!(
        listed
            .jobs
            .iter()
            .all(|j| !j.error.is_empty() && j.at_ms.is_some())
    );

    // A dead job keeps its id: pushing it again is a no-op until it is retried or purged.
    assert!(!queue.push(Job::now("bad", Msg::default())).await.unwrap());
    assert!(queue.retry_dead("bad").await.unwrap());
    assert!(!queue.retry_dead("bad").await.unwrap());
    eventually(
        Duration::from_secs(10),
        "the retried job failed again",
        || async { probe.runs_of("bad").len() == 6 },
    )
    .await;
    eventually(Duration::from_secs(10), "it is dead again", || async {
        queue.counts().await.unwrap().failed == 2
    })
    .await;
    pool.stop().await;
    assert_eq!(
        probe.runs_of("bad")[3].attempt,
        1,
        "a retried dead job starts counting afresh"
    );
    assert_eq!(queue.purge_dead().await.unwrap(), 2);
    assert_eq!(queue.counts().await.unwrap().failed, 0);
}

async fn counts_are_exact_after_a_mixed_run_and_done_jobs_leave_no_memory_behind(on: On) {
    let mut config = private_config("mixed");
    config.retry = RetryPolicy::new(2, |_| Duration::from_millis(10));
    let (queue, _cleanup) = private_queue(on, config);
    let ok: Vec<_> = (0..5_000)
        .map(|i| Job::now(format!("ok{i}"), Msg::default()))
        .collect();
    let failing = Msg {
        fail_times: u32::MAX,
        ..Msg::default()
    };
    let bad: Vec<_> = (0..7)
        .map(|i| Job::now(format!("bad{i}"), failing.clone()))
        .collect();
    let later: Vec<_> = (0..11)
        .map(|i| {
            Job::after(
                format!("later{i}"),
                Msg::default(),
                Duration::from_secs(3600),
            )
        })
        .collect();
    queue.push_many(&ok).await.unwrap();
    queue.push_many(&bad).await.unwrap();
    queue.push_many(&later).await.unwrap();
    let loaded = memory_used(&queue).await;

    let probe = Arc::new(Probe::default());
    let pool = Pool::start(&queue, 16, probe.clone());
    eventually(Duration::from_secs(60), "the run settled", || async {
        let c = queue.counts().await.unwrap();
        c.done == 5_000 && c.failed == 7
    })
    .await;
    pool.stop().await;
    let counts = queue.counts().await.unwrap();
    assert_eq!(
        counts,
        queue::Counts {
            waiting: 0,
            scheduled: 11,
            running: 0,
            failed: 7,
            done: 5_000,
            retried: 7,
            paused: false,
        }
    );

    queue.purge_dead().await.unwrap();
    redis::cmd("DEL")
        .arg(queue.keys().scheduled())
        .query_async::<()>(&mut queue.connection())
        .await
        .unwrap();
    // What is left: the counters and the capped list of recent ids (100 by default).
    let left = memory_used(&queue).await;
    assert!(
        left < 20_000,
        "{left} bytes left after the run (loaded: {loaded})"
    );
    assert!(
        left * 10 < loaded,
        "{left} bytes left after the run (loaded: {loaded})"
    );
}

async fn memory_used(queue: &queue::Queue<Msg>) -> u64 {
    let mut conn = queue.connection();
    let mut total = 0;
    for key in queue.keys().in_script_order() {
        let used: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        total += used.unwrap_or(0);
    }
    total
}

async fn a_pool_of_concurrency_n_never_runs_more_than_n_at_once(on: On) {
    let (queue, _cleanup) = private_queue(on, private_config("limit"));
    let msg = Msg {
        sleep_ms: 20,
        ..Msg::default()
    };
    let jobs: Vec<_> = (0..200)
        .map(|i| Job::now(format!("c{i}"), msg.clone()))
        .collect();
    queue.push_many(&jobs).await.unwrap();
    let probe = Arc::new(Probe::default());
    let pool = Pool::start(&queue, 5, probe.clone());
    eventually(Duration::from_secs(30), "all ran", || async {
        queue.counts().await.unwrap().done == 200
    })
    .await;
    pool.stop().await;
    assert_eq!(
        probe.max_running.load(std::sync::atomic::Ordering::SeqCst),
        5
    );
}

async fn shutdown_gives_fetched_but_unstarted_jobs_back_at_once(on: On) {
    let mut config = private_config("release");
    config.fetch_batch = 20;
    let (queue, _cleanup) = private_queue(on, config);
    let msg = Msg {
        sleep_ms: 300,
        ..Msg::default()
    };
    let jobs: Vec<_> = (0..20)
        .map(|i| Job::now(format!("u{i}"), msg.clone()))
        .collect();
    queue.push_many(&jobs).await.unwrap();
    // Concurrency 2: the pool leases 20 but can start only 2.
    let probe = Arc::new(Probe::default());
    let pool = Pool::start(&queue, 2, probe.clone());
    eventually(Duration::from_secs(5), "two jobs started", || async {
        probe.total_runs() == 2
    })
    .await;
    pool.stop().await;

    let counts = queue.counts().await.unwrap();
    assert_eq!(counts.done, 2, "the started jobs finished during shutdown");
    assert_eq!(
        (counts.waiting, counts.running),
        (18, 0),
        "the rest are waiting again, not leased"
    );
    // Released jobs were never attempted: their next delivery is their first attempt.
    let probe = Arc::new(Probe::default());
    let pool = Pool::start(&queue, 20, probe.clone());
    eventually(Duration::from_secs(5), "the rest ran", || async {
        queue.counts().await.unwrap().done == 20
    })
    .await;
    pool.stop().await;
    let runs = probe.runs.lock().unwrap();
    assert!(runs.values().flatten().all(|r| r.attempt == 1));
}

async fn the_dead_set_pages_oldest_first_by_cursor_and_revives_in_batches(on: On) {
    let mut config = private_config("revive");
    config.retry = RetryPolicy::new(1, |_| Duration::from_millis(10));
    let (queue, _cleanup) = private_queue(on, config);
    let probe = Arc::new(Probe::default());
    let pool = Pool::start(&queue, 8, probe.clone());
    let always = Msg {
        fail_times: u32::MAX,
        ..Msg::default()
    };
    let jobs: Vec<_> = (0..25)
        .map(|i| Job::now(format!("d{i:02}"), always.clone()))
        .collect();
    queue.push_many(&jobs).await.unwrap();
    eventually(Duration::from_secs(10), "all 25 died", || async {
        queue.counts().await.unwrap().failed == 25
    })
    .await;
    pool.stop().await;

    // Pages of 10 cover every dead job once, in (death time, id) order, however many died in
    // the same millisecond.
    let mut cursor = queue::DeadCursor::default();
    let mut seen = Vec::new();
    loop {
        let page = queue.dead_after(&cursor, now_ms(), 10).await.unwrap();
        let Some(last) = page.last() else { break };
        cursor = queue::DeadCursor::after(last);
        seen.extend(page.into_iter().map(|d| (d.dead_at_ms, d.id)));
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "oldest first");
    sorted.dedup();
    assert_eq!(sorted.len(), 25, "each dead job exactly once");
    let first_death = seen[0].0;
    assert!(
        queue
            .dead_after(&queue::DeadCursor::default(), first_death - 1, 10)
            .await
            .unwrap()
            .is_empty(),
        "none died before the first"
    );

    // Revived with a payload that succeeds: the revival's payload is the one that runs.
    let healthy = Msg::default();
    let revive: Vec<(&str, &Msg)> = seen
        .iter()
        .take(12)
        .map(|(_, id)| (id.as_str(), &healthy))
        .collect();
    assert_eq!(queue.revive_dead(&revive).await.unwrap(), 12);
    assert_eq!(
        queue.revive_dead(&revive).await.unwrap(),
        0,
        "a job no longer dead is skipped"
    );
    let counts = queue.counts().await.unwrap();
    assert_eq!((counts.failed, counts.waiting), (13, 12));
    let pool = Pool::start(&queue, 8, probe.clone());
    eventually(Duration::from_secs(10), "the revived jobs ran", || async {
        queue.counts().await.unwrap().done == 12
    })
    .await;
    pool.stop().await;
    assert_eq!(queue.counts().await.unwrap().failed, 13);
}

async fn a_paused_queue_starts_nothing_until_resumed(on: On) {
    let (queue, _cleanup) = private_queue(on, private_config("pause"));
    let probe = Arc::new(Probe::default());
    let pool = Pool::start(&queue, 8, probe.clone());
    queue
        .push(Job::now("before", Msg::default()))
        .await
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "a job ran before the pause",
        || async { queue.counts().await.unwrap().done == 1 },
    )
    .await;

    queue.set_paused(true).await.unwrap();
    assert!(queue.counts().await.unwrap().paused);
    // A paused worker looks again within a second: after that, nothing may start.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let jobs: Vec<_> = (0..20)
        .map(|i| Job::now(format!("p{i}"), Msg::default()))
        .collect();
    queue.push_many(&jobs).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let counts = queue.counts().await.unwrap();
    assert_eq!(
        (counts.waiting, counts.done),
        (20, 1),
        "nothing started while paused"
    );

    queue.set_paused(false).await.unwrap();
    eventually(
        Duration::from_secs(10),
        "the jobs ran after the resume",
        || async { queue.counts().await.unwrap().done == 21 },
    )
    .await;
    assert!(!queue.counts().await.unwrap().paused);
    pool.stop().await;
}

async fn jobs_are_listed_per_state_by_cursor_and_found_by_id(on: On) {
    use queue::JobState;
    let mut config = private_config("lists");
    // A failed attempt waits a minute for its retry; a second one is the last.
    config.retry = RetryPolicy::new(2, |_| Duration::from_secs(60));
    let (queue, _cleanup) = private_queue(on, config);
    let far = now_ms() + 3_600_000;
    let waiting: Vec<_> = (0..5)
        .map(|i| Job::now(format!("w{i}"), Msg::default()))
        .collect();
    queue.push_many(&waiting).await.unwrap();
    // Two share a due time: the cursor orders them by id.
    let scheduled: Vec<_> = (0..5)
        .map(|i| Job {
            due_ms: far + [0, 10, 10, 20, 30][i],
            ..Job::now(format!("s{i}"), Msg::default())
        })
        .collect();
    queue.push_many(&scheduled).await.unwrap();

    async fn all(queue: &queue::Queue<Msg>, state: JobState, limit: u64) -> Vec<Vec<String>> {
        let mut pages = Vec::new();
        let mut cursor = None;
        loop {
            let page = queue.jobs(state, cursor.as_deref(), limit).await.unwrap();
            pages.push(page.jobs.iter().map(|j| j.id.clone()).collect());
            match page.next {
                Some(next) => cursor = Some(next),
                None => return pages,
            }
        }
    }
    assert_eq!(
        all(&queue, JobState::Waiting, 2).await,
        [vec!["w0", "w1"], vec!["w2", "w3"], vec!["w4"]]
    );
    assert_eq!(
        all(&queue, JobState::Scheduled, 2).await,
        [vec!["s0", "s1"], vec!["s2", "s3"], vec!["s4"]]
    );
    let page = queue.jobs(JobState::Scheduled, None, 1).await.unwrap();
    assert_eq!(page.jobs[0].at_ms, Some(far));
    assert_eq!(
        page.jobs[0].payload,
        serde_json::to_string(&Msg::default()).unwrap()
    );
    // A waiting cursor whose job has started begins again at the head.
    let first = queue.jobs(JobState::Waiting, None, 2).await.unwrap();
    queue.delete_all().await.unwrap();
    let again = queue
        .jobs(JobState::Waiting, first.next.as_deref(), 2)
        .await
        .unwrap();
    assert!(again.jobs.is_empty() && again.next.is_none());

    // Now one job of each state, run by a pool.
    let probe = Arc::new(Probe::default());
    let pool = Pool::start(&queue, 4, probe.clone());
    let jobs = [
        Job::now("ok", Msg::default()),
        Job::now(
            "hangs",
            Msg {
                hang_on_attempt: 1,
                ..Msg::default()
            },
        ),
        Job::now(
            "retries",
            Msg {
                fail_times: 1,
                ..Msg::default()
            },
        ),
    ];
    queue.push_many(&jobs).await.unwrap();
    eventually(
        Duration::from_secs(10),
        "every job reached its state",
        || async {
            let c = queue.counts().await.unwrap();
            (c.done, c.running, c.scheduled, c.waiting) == (1, 1, 1, 0)
        },
    )
    .await;
    let found = queue
        .find_jobs(&["ok", "hangs", "retries", "nothing"].map(String::from))
        .await
        .unwrap();
    let states: Vec<_> = found.iter().map(|j| (j.id.as_str(), j.state)).collect();
    assert_eq!(
        states,
        [
            ("ok", JobState::Done),
            ("hangs", JobState::Running),
            ("retries", JobState::Scheduled)
        ]
    );
    let retries = &found[2];
    assert_eq!(
        retries.error, "asked to fail on attempt 1",
        "a retry shows why"
    );
    assert_eq!(retries.deliveries, 1);
    assert!(retries.at_ms.is_some_and(|at| at > now_ms() + 50_000));
    assert!(found[1].at_ms.is_some_and(|lease| lease > now_ms()));
    let running = queue.jobs(JobState::Running, None, 10).await.unwrap();
    assert_eq!(running.jobs.len(), 1);
    assert_eq!(running.jobs[0].id, "hangs");
    pool.stop().await;
}

async fn throughput_counts_done_jobs_and_failed_attempts_since_the_first_sample(on: On) {
    let mut config = private_config("throughput");
    config.retry = RetryPolicy::new(3, |_| Duration::from_millis(10));
    let (queue, _cleanup) = private_queue(on, config);
    queue.sample_throughput().await.unwrap();
    // A second sample of the same bucket changes nothing.
    queue.sample_throughput().await.unwrap();
    let before = queue.throughput().await.unwrap();
    assert_eq!(before.len(), 90);
    assert!(before.iter().all(|p| p.done == 0.0 && p.failed == 0.0));

    let probe = Arc::new(Probe::default());
    let pool = Pool::start(&queue, 4, probe.clone());
    let mut jobs: Vec<_> = (0..10)
        .map(|i| Job::now(format!("t{i}"), Msg::default()))
        .collect();
    jobs.push(Job::now(
        "twice",
        Msg {
            fail_times: 1,
            ..Msg::default()
        },
    ));
    queue.push_many(&jobs).await.unwrap();
    eventually(Duration::from_secs(10), "every job completed", || async {
        queue.counts().await.unwrap().done == 11
    })
    .await;
    pool.stop().await;
    let points = queue.throughput().await.unwrap();
    let done: f64 = points.iter().map(|p| p.done).sum();
    let failed: f64 = points.iter().map(|p| p.failed).sum();
    assert_eq!((done.round(), failed.round()), (11.0, 1.0));
    let twice = queue.find_jobs(&["twice".to_string()]).await.unwrap();
    assert_eq!(twice[0].state, queue::JobState::Done);
    assert_eq!(twice[0].error, "", "a completed job leaves no error behind");
    let last = points.last().unwrap();
    assert!(last.at_ms <= now_ms() && now_ms() < last.at_ms + 20_000);
}

async fn a_push_hook_sees_its_own_keys_and_arguments_after_the_queues(on: On) {
    let (queue, _cleanup) = private_queue(on, private_config("hook"));
    let hook = queue::PushHook::new(
        &["marker"],
        &["value"],
        "redis.call('SET', marker, value, 'PX', 60000) return push_this_job()",
    );
    // The caller's key lives in the queue's slot, under its tag.
    let marker = format!("{}:marker", queue.keys().tag());
    let pushed: u8 = queue
        .push_with(&hook, Job::now("h", Msg::default()), &[&marker], &["seen"])
        .await
        .unwrap();
    assert_eq!(pushed, 1);
    let mut conn = queue.connection();
    let value: Option<String> = redis::cmd("GET")
        .arg(&marker)
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg(&marker)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(value.as_deref(), Some("seen"));
    assert_eq!(queue.counts().await.unwrap().waiting, 1);

    // The batch form runs the body once per job, each with its own keys and arguments.
    let hook = queue::PushHook::new(
        &["marker"],
        &["value"],
        "redis.call('SET', marker, value, 'PX', 60000) return {push_this_job(), value}",
    );
    let jobs: Vec<_> = (0..3)
        .map(|i| queue::HookedJob {
            job: Job::now(format!("m{i}"), Msg::default()),
            keys: vec![format!("{marker}:{i}")],
            args: vec![format!("v{i}")],
        })
        .collect();
    let mut again = jobs[0].clone();
    again.args = vec!["again".into()];
    let all: Vec<_> = jobs.iter().cloned().chain([again]).collect();
    let answers: Vec<(u8, String)> = queue.push_many_with(&hook, &all).await.unwrap();
    assert_eq!(
        answers,
        [
            (1, "v0".into()),
            (1, "v1".into()),
            (1, "v2".into()),
            (0, "again".into())
        ],
        "one answer per job, in order; a pushed id is not pushed twice"
    );
    // The body ran for the repeated job too (it sets its marker before pushing).
    for (i, wanted) in ["again", "v1", "v2"].iter().enumerate() {
        let value: Option<String> = redis::cmd("GETDEL")
            .arg(format!("{marker}:{i}"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(value.as_deref(), Some(*wanted));
    }
    assert_eq!(queue.counts().await.unwrap().waiting, 4);
    // Within one batch, a job an earlier one stored is held with the payload it was stored
    // with before the batch writes its payloads, and a job held before the batch is held with
    // its own: a repeated id answers its first payload, never its second.
    let reading = queue::PushHook::new(
        &[],
        &[],
        "return {push_this_job(), held_payload(job_id) or ''}",
    );
    let payload = |fail_times| Msg {
        fail_times,
        ..Msg::default()
    };
    let held_before = serde_json::to_string(&Msg::default()).unwrap();
    let stored_first = serde_json::to_string(&payload(7)).unwrap();
    let batch: Vec<_> = [("m0", 8), ("r", 7), ("r", 9)]
        .into_iter()
        .map(|(id, fail_times)| queue::HookedJob {
            job: Job::now(id, payload(fail_times)),
            keys: vec![],
            args: vec![],
        })
        .collect();
    let answers: Vec<(u8, String)> = queue.push_many_with(&reading, &batch).await.unwrap();
    assert_eq!(
        answers,
        [
            (0, held_before),
            (1, stored_first.clone()),
            (0, stored_first)
        ],
        "held before the batch, stored by it, and stored earlier in it"
    );
    assert_eq!(queue.counts().await.unwrap().waiting, 5);
    let wrong = queue::HookedJob {
        args: vec![],
        ..jobs[0].clone()
    };
    assert!(
        queue
            .push_many_with::<Vec<u8>>(&hook, &[wrong])
            .await
            .is_err()
    );
}

on_both! {
    a_backlog_of_200_000_jobs_drains_completely,
    scheduled_jobs_start_on_time_and_never_early,
    an_idle_worker_wakes_promptly_on_a_push,
    a_job_pushed_twice_while_waiting_runs_once,
    concurrent_pushes_each_get_their_own_answer,
    a_killed_worker_s_jobs_are_delivered_again_and_complete,
    a_handler_running_longer_than_its_lease_is_not_delivered_twice,
    a_job_failing_twice_runs_three_times_at_the_configured_delays,
    an_always_failing_job_ends_dead_with_its_error_and_can_be_retried,
    counts_are_exact_after_a_mixed_run_and_done_jobs_leave_no_memory_behind,
    a_pool_of_concurrency_n_never_runs_more_than_n_at_once,
    shutdown_gives_fetched_but_unstarted_jobs_back_at_once,
    the_dead_set_pages_oldest_first_by_cursor_and_revives_in_batches,
    a_paused_queue_starts_nothing_until_resumed,
    jobs_are_listed_per_state_by_cursor_and_found_by_id,
    throughput_counts_done_jobs_and_failed_attempts_since_the_first_sample,
    a_push_hook_sees_its_own_keys_and_arguments_after_the_queues,
}
