//! The producer's id cache in Redis: `<create queue's tag>:txn:<id>` → hash `{a: amount,
//! c: currency, s: status, o: owner (client app)}`. It bridges the time until the id's row exists in Postgres (at
//! most `IDEMPOTENCY_TTL_MS`), then keeps the entry only `ID_CACHE_MARGIN_MS`: Postgres is
//! the lasting memory of ids. It sits under the `create` queue's hash tag, so reserving an id
//! and pushing its `create` job is one atomic script in one slot. It knows the queue only
//! through `Keys::tag` and `PushHook`, never its key layout. Its Lua is in `lua/`, one script
//! per file.
//!
//! Beside it: the marker that tells the pipeline Redis lost data (`marker`), and how the
//! pipeline's settings reach Redis (`settings`).
#![deny(unsafe_code)]

pub mod marker;
pub mod settings;

pub use settings::{IdempotencyWindow, redis_settings};

use std::sync::LazyLock;

use queue::{HookedJob, PushHook, Queue, QueueError};
use redis::{Script, aio::ConnectionLike};

use domain::{
    ClientAppId, Money, QueueName, Status, TransactionId, client_app::RateLimit, jobs::CreateJob,
};

/// What the cache holds for an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    /// Amount and currency as first accepted.
    pub money: Option<Money>,
    /// The latest status the pipeline knows of.
    pub status: Status,
    /// The client app that made it (`None`: an entry written before owners were kept).
    pub owner: Option<ClientAppId>,
}

/// Why the id cache could not answer.
#[derive(Debug, thiserror::Error)]
pub enum IdCacheError {
    /// Redis failed; nothing was reserved or pushed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The entry of this id was not written by this code.
    #[error("id cache entry of {0} is unreadable")]
    Corrupt(String),
}

/// The outcome of [`IdCache::reserve_many`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// The id was new: it is cached as pending and its `create` job is queued.
    New,
    /// The id was already known; nothing was pushed.
    Known(Cached),
    /// Redis ran the script after the acceptance deadline: nothing was reserved or pushed.
    TooLate,
    /// The owner's rate limit has no token left: nothing was reserved or pushed; the next
    /// token comes after this long.
    Limited(std::time::Duration),
}

/// One POST's reservation: its `create` job, its acceptance deadline (Redis's clock, ms since
/// the epoch) and its owner's rate limit.
#[derive(Debug, Clone)]
pub struct Reserve {
    /// The job to push for a new id.
    pub job: CreateJob,
    /// Past this, the script does nothing.
    pub deadline_ms: u64,
    /// The owner's token bucket, if limited.
    pub limit: Option<RateLimit>,
}

/// What a re-read of an id's reservation found (see [`IdCache::reread`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reread {
    /// The id is reserved (by this request or an earlier one).
    Reserved(Cached),
    /// Not reserved, and Redis's clock is past the deadline: it never will be by that request.
    NeverAccepted,
    /// Not reserved yet, but the deadline has not passed: the request may still land.
    Unknown,
}

/// Redis's clock in ms when the script started, for scripts (`TIME` is allowed in scripts
/// since Redis 5's effects replication, which is the only mode of Redis 7). A script is
/// atomic, so its start is when all of it happened: one `TIME` serves a whole batch.
const REDIS_NOW_MS: &str = include_str!("../lua/redis_now.lua");

/// Reserve-and-push, a hook run with the queue's push: `entry` is the id's cache key; `amount`
/// and `currency` ('' = none) and `ttl_ms` its fields and lifetime; `deadline_ms` the
/// acceptance deadline (ms since the epoch), past which it does nothing.
/// `owner` is the client app making it, `bucket` its token bucket's key, `rate_per_s` and
/// `burst` its limit (0: none). Returns {2} past the deadline, {1} for a new id,
/// {0, amount, currency, status, owner} for a known one, or {3, ms until a token} over the
/// owner's limit.
const RESERVE: &str = include_str!("../lua/reserve.lua");

static RESERVE_HOOK: LazyLock<PushHook> = LazyLock::new(|| {
    PushHook::with_prelude(
        &["entry", "bucket"],
        &[
            "amount",
            "currency",
            "ttl_ms",
            "deadline_ms",
            "owner",
            "rate_per_s",
            "burst",
        ],
        REDIS_NOW_MS,
        RESERVE,
    )
});

/// The entry of an id and whether Redis's clock is past a deadline. KEYS: the cache key;
/// ARGV: the deadline (ms). Returns {amount, currency, status, past (0/1), owner}.
static REREAD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{REDIS_NOW_MS}{}",
        include_str!("../lua/reread.lua")
    ))
});

/// Compare-and-set of the cached status. KEYS: the cache key; ARGV: expected, new status.
/// Returns 1 if set, 0 if the cached status was not the expected one (or the entry is gone).
static COMPARE_AND_SET: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/compare_and_set.lua")));

/// Sets the cached status if the entry still exists. KEYS: the cache key; ARGV: the status.
static REFRESH: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/refresh.lua")));

/// The id cache of one deployment (queue prefix).
#[derive(Debug, Clone)]
pub struct IdCache {
    tag: String,
    ttl_ms: u64,
    margin_ms: u64,
}

/// An amount and a currency as the scripts store them ('' = none).
fn money_fields(money: Option<Money>) -> (String, String) {
    match money {
        Some(m) => (m.amount.minor_units().to_string(), m.currency.to_string()),
        None => (String::new(), String::new()),
    }
}

/// The entry's fields as the scripts store them ('' = no money); None if unreadable.
fn parse_cached(
    amount: Option<String>,
    currency: Option<String>,
    status: &str,
    owner: Option<String>,
) -> Option<Cached> {
    let amount = match amount.filter(|a| !a.is_empty()) {
        Some(a) => Some(a.parse::<i64>().ok()?),
        None => None,
    };
    let currency = currency.filter(|c| !c.is_empty());
    Some(Cached {
        money: Money::from_parts(amount, currency.as_deref()).ok()?,
        status: status.parse().ok()?,
        owner: match owner {
            Some(o) => Some(ClientAppId::from(uuid::Uuid::parse_str(&o).ok()?)),
            None => None,
        },
    })
}

/// Reads the reserve hook's answer: {1} new, {2} too late, {0, amount, currency, status}.
fn reservation(
    create: &Queue<CreateJob>,
    job: &CreateJob,
    reply: Vec<Option<String>>,
) -> Result<Reservation, IdCacheError> {
    let mut fields = reply.into_iter();
    match fields.next().flatten().as_deref() {
        Some("1") => {
            create.count_pushed(1);
            return Ok(Reservation::New);
        }
        Some("2") => return Ok(Reservation::TooLate),
        Some("3") => {
            let wait_ms = fields.next().flatten().and_then(|ms| ms.parse().ok());
            let wait_ms = wait_ms.ok_or_else(|| IdCacheError::Corrupt(job.id.to_string()))?;
            return Ok(Reservation::Limited(std::time::Duration::from_millis(
                wait_ms,
            )));
        }
        _ => {}
    }
    let (amount, currency, status, owner) = (
        fields.next().flatten(),
        fields.next().flatten(),
        fields.next().flatten().unwrap_or_default(),
        fields.next().flatten(),
    );
    parse_cached(amount, currency, &status, owner)
        .map(Reservation::Known)
        .ok_or_else(|| IdCacheError::Corrupt(job.id.to_string()))
}

impl IdCache {
    /// The cache of deployment `prefix`: entries kept `window.ttl_ms` until their row exists,
    /// then `window.margin_ms`.
    pub fn new(prefix: &str, window: IdempotencyWindow) -> Self {
        Self {
            tag: queue::Keys::new(prefix, QueueName::Create.as_str())
                .tag()
                .to_string(),
            ttl_ms: window.ttl_ms,
            margin_ms: window.margin_ms,
        }
    }

    /// The cache key of `id`.
    pub fn key(&self, id: &TransactionId) -> String {
        format!("{}:txn:{id}", self.tag)
    }

    /// Reserves each job's id and pushes its `create` job, atomically per job, or reports the
    /// id as known; for many POSTs in one script and one round trip. A job does nothing if
    /// Redis runs it after its deadline (Redis's clock, ms since the epoch). One answer per
    /// job, in order. The outer error fails them all and may hide reservations made in time
    /// (see [`IdCache::reread`]); an inner one is that job's alone (an unreadable entry), so
    /// it never hides another job's acceptance.
    pub async fn reserve_many(
        &self,
        create: &Queue<CreateJob>,
        jobs: &[Reserve],
    ) -> Result<Vec<Result<Reservation, IdCacheError>>, IdCacheError> {
        let hooked: Vec<HookedJob<CreateJob>> = jobs
            .iter()
            .map(|reserve| HookedJob {
                job: jobs::now(reserve.job.clone()),
                keys: vec![
                    self.key(&reserve.job.id),
                    self.bucket_key(reserve.job.client_app),
                ],
                args: self.reserve_args(reserve).to_vec(),
            })
            .collect();
        let mut replies: Vec<Vec<Option<String>>> =
            create.push_many_with(&RESERVE_HOOK, &hooked).await?;
        // Every answer is a table, so none is missing; if one were, it reads as unreadable.
        replies.resize(jobs.len(), Vec::new());
        Ok(jobs
            .iter()
            .zip(replies)
            .map(|(reserve, reply)| reservation(create, &reserve.job, reply))
            .collect())
    }

    /// The key of `owner`'s token bucket (in the cache's slot, beside the entries).
    pub fn bucket_key(&self, owner: ClientAppId) -> String {
        format!("{}:bucket:{owner}", self.tag)
    }

    /// The reserve hook's arguments: amount, currency, lifetime, deadline, owner, limit.
    fn reserve_args(&self, reserve: &Reserve) -> [String; 7] {
        let job = &reserve.job;
        let (amount, currency) = money_fields(job.money);
        let (rate, burst) = reserve.limit.map_or((0, 0), |l| (l.per_s, l.burst));
        [
            amount,
            currency,
            self.ttl_ms.to_string(),
            reserve.deadline_ms.to_string(),
            job.client_app.to_string(),
            rate.to_string(),
            burst.to_string(),
        ]
    }

    /// After a reserve whose answer was lost: whether `id` is reserved now, and if not, whether
    /// Redis's clock has passed `deadline_ms`, so that the lost reserve can no longer land.
    pub async fn reread<C: ConnectionLike>(
        &self,
        conn: &mut C,
        id: &TransactionId,
        deadline_ms: u64,
    ) -> Result<Reread, IdCacheError> {
        type Reply = (
            Option<String>,
            Option<String>,
            Option<String>,
            u8,
            Option<String>,
        );
        let (amount, currency, status, past, owner): Reply = REREAD
            .key(self.key(id))
            .arg(deadline_ms)
            .invoke_async(conn)
            .await
            .map_err(QueueError::from)?;
        Ok(match status {
            Some(status) => Reread::Reserved(
                parse_cached(amount, currency, &status, owner)
                    .ok_or_else(|| IdCacheError::Corrupt(id.to_string()))?,
            ),
            None if past == 1 => Reread::NeverAccepted,
            None => Reread::Unknown,
        })
    }

    /// The cached entry of `id`, if any.
    pub async fn get<C: ConnectionLike>(
        &self,
        conn: &mut C,
        id: &TransactionId,
    ) -> redis::RedisResult<Option<Cached>> {
        type Reply = (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let (amount, currency, status, owner): Reply = redis::cmd("HMGET")
            .arg(self.key(id))
            .arg(&["a", "c", "s", "o"])
            .query_async(conn)
            .await?;
        Ok(status.and_then(|s| parse_cached(amount, currency, &s, owner)))
    }

    /// Sets the status to `new` only if it is still `expected`; false if someone changed it first.
    pub async fn compare_and_set<C: ConnectionLike>(
        &self,
        conn: &mut C,
        id: &TransactionId,
        expected: Status,
        new: Status,
    ) -> redis::RedisResult<bool> {
        let set: u8 = COMPARE_AND_SET
            .key(self.key(id))
            .arg(expected.as_str())
            .arg(new.as_str())
            .invoke_async(conn)
            .await?;
        Ok(set == 1)
    }

    /// The row of `id` exists now: its entry is kept only for the margin from here on.
    pub async fn row_created<C: ConnectionLike>(
        &self,
        conn: &mut C,
        id: &TransactionId,
    ) -> redis::RedisResult<()> {
        // LT: only ever shortens, so a second call cannot lengthen it again.
        let _: u8 = redis::cmd("PEXPIRE")
            .arg(self.key(id))
            .arg(self.margin_ms)
            .arg("LT")
            .query_async(conn)
            .await?;
        Ok(())
    }

    /// Drops the entry of `id`: it was reserved while its row already existed, and only the
    /// row may answer for the id.
    pub async fn forget<C: ConnectionLike>(
        &self,
        conn: &mut C,
        id: &TransactionId,
    ) -> redis::RedisResult<()> {
        let _: u8 = redis::cmd("DEL")
            .arg(self.key(id))
            .query_async(conn)
            .await?;
        Ok(())
    }

    /// Records a status change made by the consumer, if the id is still cached.
    pub async fn refresh<C: ConnectionLike>(
        &self,
        conn: &mut C,
        id: &TransactionId,
        status: Status,
    ) -> redis::RedisResult<()> {
        let _: u8 = REFRESH
            .key(self.key(id))
            .arg(status.as_str())
            .invoke_async(conn)
            .await?;
        Ok(())
    }
}
