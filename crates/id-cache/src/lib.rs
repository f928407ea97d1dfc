//! The producer's id cache in Redis: what Redis knows of an id until Postgres answers for it.
//!
//! Until its row exists, an id is known by its `create` job, which the queue holds (waiting,
//! scheduled, running or dead) with what was accepted as its payload: reserving an id is pushing
//! that job, and nothing else is stored per id while a backlog waits. Once the row exists, the
//! consumer writes the entry `<create queue's tag>:txn:<id>` → hash `{a: amount, c: currency,
//! s: status (absent: pending), o: owner (client app)}` for `ID_CACHE_MARGIN_MS`: Postgres is the lasting memory
//! of ids. An outcome the third party reports before the row exists is an entry with only a
//! status (kept at most `IDEMPOTENCY_TTL_MS`).
//!
//! It sits under the `create` queue's hash tag, so its scripts read the held job and an entry
//! atomically, in one slot. It knows the queue only through `Keys::tag`, `PushHook`,
//! `QueueScript` and the job ids of `CreateJob`, never its key layout. Its Lua is in `lua/`,
//! one script per file.
//!
//! Beside it: the marker that tells the pipeline Redis lost data (`marker`), and how the
//! pipeline's settings reach Redis (`settings`).
#![deny(unsafe_code)]

pub mod marker;
pub mod settings;
#[cfg(test)]
mod tests;

pub use settings::{IdempotencyWindow, redis_settings};

use std::sync::LazyLock;

use queue::{HookedJob, PushHook, Queue, QueueError, QueueScript};
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

/// Reserve-and-push, a hook run with the queue's push: `entry` is the id's cache key,
/// `deadline_ms` the acceptance deadline (ms since the epoch), past which it does nothing.
/// `bucket` is the owner's token bucket's key, `rate_per_s` and `burst` its limit (0: none).
/// Returns {2} past the deadline, {1} for a new id (its job pushed), {0, <sighting>} for a known
/// one, or {3, ms until a token} over the owner's limit.
const RESERVE: &str = include_str!("../lua/reserve.lua");

static RESERVE_HOOK: LazyLock<PushHook> = LazyLock::new(|| {
    PushHook::with_prelude(
        &["entry", "bucket"],
        &["deadline_ms", "rate_per_s", "burst"],
        REDIS_NOW_MS,
        RESERVE,
    )
});

/// What Redis holds of an id: {<sighting>}.
static LOOKUP: LazyLock<QueueScript> = LazyLock::new(|| {
    QueueScript::new(
        &["entry"],
        &["create_job"],
        include_str!("../lua/lookup.lua"),
    )
});

/// What Redis holds of an id and whether its clock is past a deadline (ms):
/// {past (0/1), <sighting>}.
static REREAD: LazyLock<QueueScript> = LazyLock::new(|| {
    QueueScript::new(
        &["entry"],
        &["deadline_ms", "create_job"],
        &format!("{REDIS_NOW_MS}{}", include_str!("../lua/reread.lua")),
    )
});

/// Compare-and-set of an id's status (pending while only its held job knows it); an entry it
/// makes lives `ttl_ms`. Returns 1 if set, 0 if the status was not the expected one.
static COMPARE_AND_SET: LazyLock<QueueScript> = LazyLock::new(|| {
    QueueScript::new(
        &["entry"],
        &["expected", "new", "create_job", "ttl_ms"],
        include_str!("../lua/compare_and_set.lua"),
    )
});

/// Writes the entry of an id whose row was just inserted. KEYS: the cache key; ARGV: amount,
/// currency ('' = none), owner, the margin (ms).
static ROW_CREATED: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/row_created.lua")));

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

/// What the scripts read of an id, in this order: its entry's amount, currency, status and
/// owner, and its held `create` job's payload.
#[derive(Debug)]
struct Sighting {
    amount: Option<String>,
    currency: Option<String>,
    status: Option<String>,
    owner: Option<String>,
    held: Option<String>,
}

impl Sighting {
    /// The next five fields of a script's answer.
    fn read(fields: &mut impl Iterator<Item = Option<String>>) -> Self {
        let mut next = || fields.next().flatten();
        Self {
            amount: next(),
            currency: next(),
            status: next(),
            owner: next(),
            held: next(),
        }
    }

    /// What Redis knows of `id`, if anything. The status is the entry's: pending for an entry
    /// without one (written with its new row) or while only the held job knows the id. What was
    /// accepted is the held job's, else the entry's.
    fn cached(self, id: &TransactionId) -> Result<Option<Cached>, IdCacheError> {
        let corrupt = || IdCacheError::Corrupt(id.to_string());
        let status = match self.status {
            Some(status) => status,
            None if self.held.is_some() || self.owner.is_some() => {
                Status::Pending.as_str().to_string()
            }
            None => return Ok(None),
        };
        let Some(held) = self.held else {
            return parse_cached(self.amount, self.currency, &status, self.owner)
                .map(Some)
                .ok_or_else(corrupt);
        };
        let job: CreateJob = serde_json::from_str(&held).map_err(|_| corrupt())?;
        Ok(Some(Cached {
            money: job.money,
            status: status.parse().map_err(|_| corrupt())?,
            owner: Some(job.client_app),
        }))
    }
}

/// Reads the reserve hook's answer: {1} new, {2} too late, {3, ms} limited, {0, <sighting>}.
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
    Sighting::read(&mut fields)
        .cached(&job.id)?
        .map(Reservation::Known)
        .ok_or_else(|| IdCacheError::Corrupt(job.id.to_string()))
}

impl IdCache {
    /// The cache of deployment `prefix`: entries kept `window.margin_ms` once their row exists;
    /// an outcome reported before the row, `window.ttl_ms`.
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

    /// The reserve hook's arguments: deadline, limit.
    fn reserve_args(&self, reserve: &Reserve) -> [String; 3] {
        let (rate, burst) = reserve.limit.map_or((0, 0), |l| (l.per_s, l.burst));
        [
            reserve.deadline_ms.to_string(),
            rate.to_string(),
            burst.to_string(),
        ]
    }

    /// After a reserve whose answer was lost: whether `id` is reserved now, and if not, whether
    /// Redis's clock has passed `deadline_ms`, so that the lost reserve can no longer land.
    pub async fn reread(
        &self,
        create: &Queue<CreateJob>,
        id: &TransactionId,
        deadline_ms: u64,
    ) -> Result<Reread, IdCacheError> {
        let reply: Vec<Option<String>> = create
            .run_script(
                &REREAD,
                &[&self.key(id)],
                &[&deadline_ms.to_string(), &CreateJob::id_of(*id)],
            )
            .await?;
        let mut fields = reply.into_iter();
        let past = fields.next().flatten().as_deref() == Some("1");
        Ok(match Sighting::read(&mut fields).cached(id)? {
            Some(cached) => Reread::Reserved(cached),
            None if past => Reread::NeverAccepted,
            None => Reread::Unknown,
        })
    }

    /// What Redis knows of `id`, if anything: its entry, or its held `create` job.
    pub async fn get(
        &self,
        create: &Queue<CreateJob>,
        id: &TransactionId,
    ) -> Result<Option<Cached>, IdCacheError> {
        // Most ids asked about have a row, and so an entry with what was accepted (an owner):
        // one command. Otherwise the entry and the held job are read together (the job may be
        // acked meanwhile, after writing the entry; a reported status alone needs the job's
        // payload beside it).
        let fields: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.key(id))
            .arg(&["a", "c", "s", "o"])
            .query_async(&mut create.connection())
            .await
            .map_err(QueueError::from)?;
        let entry = Sighting::read(&mut fields.into_iter());
        if entry.owner.is_some() {
            return entry.cached(id);
        }
        let reply: Vec<Option<String>> = create
            .run_script(&LOOKUP, &[&self.key(id)], &[&CreateJob::id_of(*id)])
            .await?;
        Sighting::read(&mut reply.into_iter()).cached(id)
    }

    /// Sets the status to `new` only if it is still `expected`; false if someone changed it first.
    pub async fn compare_and_set(
        &self,
        create: &Queue<CreateJob>,
        id: &TransactionId,
        expected: Status,
        new: Status,
    ) -> Result<bool, IdCacheError> {
        let set: u8 = create
            .run_script(
                &COMPARE_AND_SET,
                &[&self.key(id)],
                &[
                    expected.as_str(),
                    new.as_str(),
                    &CreateJob::id_of(*id),
                    &self.ttl_ms.to_string(),
                ],
            )
            .await?;
        Ok(set == 1)
    }

    /// The status reported for `id` before its row existed, if any: what its `create` job
    /// finishes the new row with.
    pub async fn reported<C: ConnectionLike>(
        &self,
        conn: &mut C,
        id: &TransactionId,
    ) -> Result<Option<Status>, IdCacheError> {
        let status: Option<String> = redis::cmd("HGET")
            .arg(self.key(id))
            .arg("s")
            .query_async(conn)
            .await
            .map_err(QueueError::from)?;
        status
            .map(|s| s.parse().map_err(|_| IdCacheError::Corrupt(id.to_string())))
            .transpose()
    }

    /// `job`'s row was just inserted: its entry holds what was accepted for the margin (its
    /// status is pending unless one was reported), so that a POST whose look-up ran before the
    /// insert still finds the id once the job is done.
    pub async fn row_created<C: ConnectionLike>(
        &self,
        conn: &mut C,
        job: &CreateJob,
    ) -> redis::RedisResult<()> {
        let (amount, currency) = money_fields(job.money);
        let _: u8 = ROW_CREATED
            .key(self.key(&job.id))
            .arg(amount)
            .arg(currency)
            .arg(job.client_app.to_string())
            .arg(self.margin_ms)
            .invoke_async(conn)
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
