//! A shared Redis Cluster connection that is replaced once it has gone silent. After a
//! primary failover the library's cluster connection was seen to stay wedged under load —
//! every call timing out for good, on every slot, while its slot refreshes kept completing —
//! when a new connection to the same cluster answered at once. So a connection that has
//! answered nothing for [`ClusterLink::new`]'s `replace_after` is dropped for a new one.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use redis::{
    Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value,
    aio::ConnectionLike,
    cluster::{ClusterClient, ClusterConfig},
    cluster_async::ClusterConnection,
    cluster_routing::RoutingInfo,
};

/// Whether `error` means the call got no answer from Redis (as opposed to an error reply,
/// which proves the connection works).
pub(crate) fn unanswered(error: &RedisError) -> bool {
    error.is_timeout()
        || error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.kind() == redis::ErrorKind::ClusterConnectionNotFound
}

/// How long a connection has gone without an answer: the one rule for replacing it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Silence {
    /// The first unanswered call since the last answer, if the last call went unanswered.
    since: Option<Instant>,
}

impl Silence {
    /// Records a call's outcome at `now`; true when nothing has answered for `replace_after`
    /// (the silence then starts over, for the replacement).
    pub(crate) fn record(&mut self, answered: bool, now: Instant, replace_after: Duration) -> bool {
        if answered {
            self.since = None;
            return false;
        }
        let since = *self.since.get_or_insert(now);
        if now.duration_since(since) >= replace_after {
            self.since = None;
            return true;
        }
        false
    }
}

/// A cluster connection shared by clones (cheap: one `Arc`), replaced when it has been
/// silent too long.
#[derive(Clone)]
pub struct ClusterLink(Arc<Link>);

struct Link {
    client: ClusterClient,
    config: ClusterConfig,
    replace_after: Duration,
    state: Mutex<LinkState>,
}

struct LinkState {
    conn: ClusterConnection,
    /// Which connection this is: outcomes of calls made on an earlier one are not counted.
    generation: u64,
    silence: Silence,
}

impl ClusterLink {
    /// A lazily connecting link of `client` with `config`, replaced after `replace_after`
    /// without an answer.
    pub(crate) fn new(
        client: ClusterClient,
        config: ClusterConfig,
        replace_after: Duration,
    ) -> Self {
        let conn = client.get_pending_async_connection_with_config(config.clone());
        Self(Arc::new(Link {
            client,
            config,
            replace_after,
            state: Mutex::new(LinkState {
                conn,
                generation: 0,
                silence: Silence::default(),
            }),
        }))
    }

    /// Runs `cmd` routed by `routing`.
    pub async fn route_command(&self, cmd: Cmd, routing: RoutingInfo) -> RedisResult<Value> {
        let (generation, mut conn) = self.current();
        let res = conn.route_command(cmd, routing).await;
        self.observe(generation, &res);
        res
    }

    fn current(&self) -> (u64, ClusterConnection) {
        let state = self.lock();
        (state.generation, state.conn.clone())
    }

    fn observe<T>(&self, generation: u64, res: &RedisResult<T>) {
        let answered = res.as_ref().err().is_none_or(|e| !unanswered(e));
        let mut state = self.lock();
        if state.generation != generation {
            return;
        }
        if state
            .silence
            .record(answered, Instant::now(), self.0.replace_after)
        {
            tracing::warn!(
                silent_for = ?self.0.replace_after,
                "Redis Cluster connection answered nothing; replacing it"
            );
            state.conn = self
                .0
                .client
                .get_pending_async_connection_with_config(self.0.config.clone());
            state.generation += 1;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LinkState> {
        // Every update leaves the state whole: a panic elsewhere cannot corrupt it.
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ConnectionLike for ClusterLink {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let (generation, mut conn) = self.current();
        Box::pin(async move {
            let res = conn.req_packed_command(cmd).await;
            self.observe(generation, &res);
            res
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let (generation, mut conn) = self.current();
        Box::pin(async move {
            let res = conn.req_packed_commands(pipeline, offset, count).await;
            self.observe(generation, &res);
            res
        })
    }

    fn get_db(&self) -> i64 {
        self.current().1.get_db()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AFTER: Duration = Duration::from_secs(10);

    #[test]
    fn a_connection_is_replaced_only_after_a_whole_silence() {
        let t0 = Instant::now();
        let mut s = Silence::default();
        assert!(
            !s.record(false, t0, AFTER),
            "the first miss starts the silence"
        );
        assert!(!s.record(false, t0 + Duration::from_secs(9), AFTER));
        assert!(
            s.record(false, t0 + AFTER, AFTER),
            "silent for the whole window"
        );
        // The replacement gets a window of its own.
        assert!(!s.record(false, t0 + AFTER, AFTER));
        assert!(!s.record(false, t0 + AFTER + Duration::from_secs(9), AFTER));
        assert!(s.record(false, t0 + AFTER * 2, AFTER));
    }

    #[test]
    fn any_answer_ends_a_silence() {
        let t0 = Instant::now();
        let mut s = Silence::default();
        assert!(!s.record(false, t0, AFTER));
        assert!(!s.record(true, t0 + Duration::from_secs(9), AFTER));
        assert!(
            !s.record(false, t0 + Duration::from_secs(11), AFTER),
            "the silence started again at the answer"
        );
        assert!(!s.record(false, t0 + Duration::from_secs(20), AFTER));
        assert!(s.record(false, t0 + Duration::from_secs(21), AFTER));
    }

    #[test]
    fn error_replies_are_answers_and_timeouts_are_not() {
        let timeout: RedisError = std::io::Error::from(std::io::ErrorKind::TimedOut).into();
        let refused: RedisError =
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into();
        let reply: RedisError = (redis::ErrorKind::Client, "NOSCRIPT No matching script").into();
        assert!(unanswered(&timeout));
        assert!(unanswered(&refused));
        assert!(!unanswered(&reply));
    }
}
