//! The fencing token at the level of the scripts: once a lease has passed to a new delivery,
//! the old delivery can neither ack nor renew.

use std::time::Duration;

use crate::{Job, Queue, QueueConfig, now_ms, scripts};

type Fetched = (Vec<(String, u64, String)>, i64);

async fn fetch(queue: &Queue<u32>) -> Fetched {
    scripts::invocation(&scripts::FETCH, queue.keys())
        .arg(now_ms())
        .arg(10)
        .arg(50)
        .arg(20)
        .invoke_async(&mut queue.conn())
        .await
        .unwrap()
}

async fn ack(queue: &Queue<u32>, token: u64) -> Vec<u8> {
    scripts::invocation(&scripts::ACK_DONE, queue.keys())
        .arg(100)
        .arg("job")
        .arg(token)
        .invoke_async(&mut queue.conn())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_stale_delivery_cannot_ack_or_renew() {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("qtest-fence-{}", now_ms());
    let queue: Queue<u32> = Queue::connect(
        &crate::RedisSettings::url(&url),
        QueueConfig::new(prefix, "fence"),
    )
    .unwrap();
    queue.push(Job::now("job", 7)).await.unwrap();

    let (first, _) = fetch(&queue).await;
    assert_eq!(first, vec![("job".to_string(), 1, "7".to_string())]);
    tokio::time::sleep(Duration::from_millis(80)).await;
    let (second, _) = fetch(&queue).await;
    assert_eq!(
        second[0].1, 2,
        "the expired lease was reclaimed and delivered again"
    );

    let renewed: Vec<u8> = scripts::invocation(&scripts::RENEW, queue.keys())
        .arg(now_ms() + 1_000)
        .arg("job")
        .arg(1)
        .invoke_async(&mut queue.conn())
        .await
        .unwrap();
    assert_eq!(renewed, vec![0], "the first delivery cannot renew");
    assert_eq!(
        ack(&queue, 1).await,
        vec![0],
        "the first delivery's ack is refused"
    );
    assert_eq!(queue.counts().await.unwrap().running, 1);
    assert_eq!(
        ack(&queue, 2).await,
        vec![1],
        "the current delivery's ack is accepted"
    );
    assert_eq!(queue.counts().await.unwrap().done, 1);
    queue.delete_all().await.unwrap();
}
