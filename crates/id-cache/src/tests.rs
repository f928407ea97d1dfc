//! The id cache's rules against a real Redis: an id is known by its held `create` job until its
//! row exists, then by its entry; an outcome reported before the row keeps what was accepted.

use domain::{ClientAppId, Money, Status, TransactionId, jobs::CreateJob};
use queue::{Queue, QueueConfig, RedisSettings};
use redis::aio::MultiplexedConnection;

use crate::{Cached, IdCache, IdempotencyWindow, Reread, Reservation, Reserve};

const WINDOW: IdempotencyWindow = IdempotencyWindow {
    ttl_ms: 600_000,
    margin_ms: 30_000,
};

/// A deployment of its own on the shared Redis: the `create` queue, the cache, a connection.
struct Deployment {
    prefix: String,
    create: Queue<CreateJob>,
    cache: IdCache,
    conn: MultiplexedConnection,
}

impl Deployment {
    async fn new() -> Self {
        let url = testkit::shared_redis_url();
        let prefix = format!("idcache-test-{}", uuid::Uuid::new_v4().simple());
        let create = Queue::connect(
            &RedisSettings::url(&url),
            QueueConfig::new(prefix.clone(), "create"),
        )
        .expect("queue");
        let conn = redis::Client::open(url)
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("redis");
        Self {
            cache: IdCache::new(&prefix, WINDOW),
            prefix,
            create,
            conn,
        }
    }

    async fn reserve(&self, job: &CreateJob) -> Reservation {
        let reserve = Reserve {
            job: job.clone(),
            deadline_ms: queue::now_ms() + 60_000,
            limit: None,
        };
        let mut answers = self
            .cache
            .reserve_many(&self.create, &[reserve])
            .await
            .expect("reserve");
        answers.pop().expect("one answer").expect("readable")
    }

    async fn get(&self, id: &TransactionId) -> Option<Cached> {
        self.cache.get(&self.create, id).await.expect("get")
    }

    async fn reported(&self, id: &TransactionId) -> Option<Status> {
        self.cache
            .reported(&mut self.conn.clone(), id)
            .await
            .expect("reported")
    }

    /// The entry's remaining life in ms (-2: no entry).
    async fn entry_ttl(&self, id: &TransactionId) -> i64 {
        redis::cmd("PTTL")
            .arg(self.cache.key(id))
            .query_async(&mut self.conn.clone())
            .await
            .expect("PTTL")
    }

    async fn entry_fields(&self, id: &TransactionId) -> Vec<String> {
        redis::cmd("HKEYS")
            .arg(self.cache.key(id))
            .query_async(&mut self.conn.clone())
            .await
            .expect("HKEYS")
    }

    async fn remove(self) {
        let mut conn = self.conn.clone();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{{{}:*", self.prefix))
            .query_async(&mut conn)
            .await
            .expect("KEYS");
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL")
                .arg(keys)
                .query_async(&mut conn)
                .await
                .expect("DEL");
        }
    }
}

fn job(amount: i64) -> CreateJob {
    CreateJob {
        id: TransactionId::generate(),
        money: Money::from_parts(Some(amount), Some("EUR")).expect("money"),
        client_app: ClientAppId::from(uuid::Uuid::new_v4()),
        trace: None,
    }
}

fn accepted(job: &CreateJob, status: Status) -> Cached {
    Cached {
        money: job.money,
        status,
        owner: Some(job.client_app),
    }
}

#[tokio::test]
async fn an_id_is_known_by_its_held_job_until_its_row_exists_then_by_its_entry() {
    let d = Deployment::new().await;
    let first = job(1250);

    assert_eq!(d.reserve(&first).await, Reservation::New);
    // Nothing but the job is stored while it waits.
    assert_eq!(d.entry_ttl(&first.id).await, -2, "no entry before the row");
    let again = CreateJob {
        money: Money::from_parts(Some(999), Some("EUR")).expect("money"),
        client_app: ClientAppId::from(uuid::Uuid::new_v4()),
        ..first.clone()
    };
    assert_eq!(
        d.reserve(&again).await,
        Reservation::Known(accepted(&first, Status::Pending)),
        "known as first accepted, whoever asks again"
    );
    assert_eq!(
        d.get(&first.id).await,
        Some(accepted(&first, Status::Pending))
    );

    // The row exists: the entry bridges the margin, and the pipeline's statuses reach it.
    d.cache
        .row_created(&mut d.conn.clone(), &first)
        .await
        .expect("row created");
    let ttl = d.entry_ttl(&first.id).await;
    assert!(
        0 < ttl && ttl <= WINDOW.margin_ms as i64,
        "entry lives {ttl} ms"
    );
    assert_eq!(d.reported(&first.id).await, None, "nothing was reported");
    d.cache
        .refresh(&mut d.conn.clone(), &first.id, Status::Completed)
        .await
        .expect("refresh");
    assert_eq!(
        d.get(&first.id).await,
        Some(accepted(&first, Status::Completed))
    );

    // A deployment that holds no job for the id (its job done) knows it by the entry alone.
    let done = Deployment::new().await;
    let other = job(42);
    assert_eq!(done.get(&other.id).await, None);
    done.cache
        .row_created(&mut done.conn.clone(), &other)
        .await
        .expect("row created");
    assert_eq!(
        done.get(&other.id).await,
        Some(accepted(&other, Status::Pending))
    );
    assert_eq!(
        done.reserve(&other).await,
        Reservation::Known(accepted(&other, Status::Pending))
    );
    d.remove().await;
    done.remove().await;
}

#[tokio::test]
async fn an_outcome_reported_before_the_row_keeps_what_was_accepted() {
    let d = Deployment::new().await;
    let first = job(1250);
    assert_eq!(d.reserve(&first).await, Reservation::New);

    let set = |expected, new| d.cache.compare_and_set(&d.create, &first.id, expected, new);
    assert!(set(Status::Pending, Status::Declined).await.expect("cas"));
    assert!(
        !set(Status::Pending, Status::Completed).await.expect("cas"),
        "only one report applies"
    );
    assert_eq!(d.entry_fields(&first.id).await, vec!["s".to_string()]);
    let ttl = d.entry_ttl(&first.id).await;
    assert!(
        WINDOW.margin_ms as i64 <= ttl && ttl <= WINDOW.ttl_ms as i64,
        "a reported outcome lives the window: {ttl} ms"
    );
    assert_eq!(
        d.get(&first.id).await,
        Some(accepted(&first, Status::Declined))
    );
    assert_eq!(d.reported(&first.id).await, Some(Status::Declined));

    // The row is inserted finished: the entry gains what was accepted and keeps the outcome.
    d.cache
        .row_created(&mut d.conn.clone(), &first)
        .await
        .expect("row created");
    let mut fields = d.entry_fields(&first.id).await;
    fields.sort();
    assert_eq!(fields, ["a", "c", "o", "s"]);
    assert!(d.entry_ttl(&first.id).await <= WINDOW.margin_ms as i64);
    assert_eq!(
        d.get(&first.id).await,
        Some(accepted(&first, Status::Declined))
    );
    d.remove().await;
}

#[tokio::test]
async fn an_unknown_id_stays_unknown_and_a_reread_tells_a_late_reserve_from_a_lost_answer() {
    let d = Deployment::new().await;
    let unknown = job(1250);
    assert_eq!(d.get(&unknown.id).await, None);
    assert!(
        !d.cache
            .compare_and_set(&d.create, &unknown.id, Status::Pending, Status::Declined)
            .await
            .expect("cas"),
        "a report of an id Redis does not know is not applied here"
    );
    assert_eq!(
        d.entry_ttl(&unknown.id).await,
        -2,
        "and leaves nothing behind"
    );

    let past = queue::now_ms() - 1_000;
    let future = queue::now_ms() + 60_000;
    let reread = |id, deadline| {
        let d = &d;
        async move {
            d.cache
                .reread(&d.create, &id, deadline)
                .await
                .expect("reread")
        }
    };
    assert_eq!(reread(unknown.id, past).await, Reread::NeverAccepted);
    assert_eq!(reread(unknown.id, future).await, Reread::Unknown);

    let reserved = job(7);
    assert_eq!(d.reserve(&reserved).await, Reservation::New);
    assert_eq!(
        reread(reserved.id, past).await,
        Reread::Reserved(accepted(&reserved, Status::Pending))
    );
    d.remove().await;
}
