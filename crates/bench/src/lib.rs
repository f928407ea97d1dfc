//! Shared pieces of the benchmarks: the HTTP load generator, Redis command counting, Postgres
//! commit counting and percentiles; the comparison with another producer (`peer`); and the
//! chaos run (`chaos`, `faults`, `invariants`).
#![deny(unsafe_code)]

pub mod chaos;
pub mod faults;
pub mod invariants;
pub mod load;
pub mod peer;
pub mod progress;
pub mod services;

use std::collections::HashMap;

/// A shared connection to the Redis at `url` (a cluster's seeds if `cluster`).
pub fn redis(url: &str, cluster: bool) -> anyhow::Result<queue::RedisConnection> {
    let settings = queue::RedisSettings {
        cluster,
        ..queue::RedisSettings::url(url)
    };
    Ok(queue::RedisClient::new(&settings)?.shared(queue::BACKGROUND_TIMEOUT)?)
}

/// Deletes every key of a prefix (on every primary of a cluster; each queue's keys share a
/// slot, so each batch is one node's).
pub async fn purge(conn: &queue::RedisConnection, prefix: &str) -> anyhow::Result<()> {
    let mut keys = redis::cmd("KEYS");
    keys.arg(format!("{{{prefix}:*"));
    let per_node: Vec<Vec<String>> = conn.clone().on_every_primary(&keys).await?;
    for mut keys in per_node {
        // Grouped by hash tag, so every UNLINK names keys of one slot.
        keys.sort_by_key(|k| k.split('}').next().map(str::to_string));
        for chunk in keys.chunk_by(|a, b| a.split('}').next() == b.split('}').next()) {
            for batch in chunk.chunks(1000) {
                let _: () = redis::cmd("UNLINK")
                    .arg(batch)
                    .query_async(&mut conn.clone())
                    .await?;
            }
        }
    }
    Ok(())
}

/// Calls per command from `INFO commandstats` (commands run inside scripts included), summed
/// over every primary of a cluster.
pub async fn command_counts(
    conn: &mut queue::RedisConnection,
) -> anyhow::Result<HashMap<String, u64>> {
    let mut info = redis::cmd("INFO");
    info.arg("commandstats");
    let infos: Vec<String> = conn.on_every_primary(&info).await?;
    let mut counts = HashMap::new();
    for line in infos.iter().flat_map(|info| info.lines()) {
        // cmdstat_evalsha:calls=123,usec=…
        let Some(rest) = line.strip_prefix("cmdstat_") else {
            continue;
        };
        let Some((name, stats)) = rest.split_once(':') else {
            continue;
        };
        let calls = stats
            .split(',')
            .find_map(|kv| kv.strip_prefix("calls="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        *counts.entry(name.to_string()).or_insert(0) += calls;
    }
    Ok(counts)
}

/// Total commands between two snapshots, excluding the benchmark's own `INFO` calls.
pub fn delta(before: &HashMap<String, u64>, after: &HashMap<String, u64>) -> u64 {
    after
        .iter()
        .filter(|(name, _)| name.as_str() != "info")
        .map(|(name, n)| n.saturating_sub(*before.get(name).unwrap_or(&0)))
        .sum()
}

/// Bytes of memory Redis uses (`used_memory`), summed over every primary.
pub async fn used_memory(conn: &mut queue::RedisConnection) -> anyhow::Result<u64> {
    let mut info = redis::cmd("INFO");
    info.arg("memory");
    let infos: Vec<String> = conn.on_every_primary(&info).await?;
    let mut total = 0;
    for info in &infos {
        let used = info
            .lines()
            .find_map(|line| line.strip_prefix("used_memory:"))
            .ok_or_else(|| anyhow::anyhow!("INFO memory without used_memory"))?;
        total += used.trim().parse::<u64>()?;
    }
    Ok(total)
}

/// Write counters: one database's commits (`pg_stat_database`) and row updates with those that
/// were HOT (`pg_stat_user_tables`, by table), and the whole server's write-ahead log.
#[derive(Debug, Clone, Default)]
pub struct PgCounters {
    /// Committed transactions, read-only ones included.
    pub commits: i64,
    /// Row updates and HOT row updates, by table.
    pub updates: HashMap<String, (i64, i64)>,
    /// Bytes of write-ahead log written so far, by the whole server.
    pub wal_bytes: i64,
}

impl PgCounters {
    /// Row updates and HOT row updates since `before`, summed over the tables.
    pub fn updates_since(&self, before: &PgCounters) -> (i64, i64) {
        self.updates
            .iter()
            .map(|(table, (upd, hot))| {
                let (upd0, hot0) = before.updates.get(table).copied().unwrap_or_default();
                (upd - upd0, hot - hot0)
            })
            .fold((0, 0), |(u, h), (du, dh)| (u + du, h + dh))
    }
}

/// The write counters of the database `url` names (other backends' statistics reach the
/// shared views when they go idle).
pub async fn pg_counters(url: &str) -> anyhow::Result<PgCounters> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let commits: i64 = sqlx::query_scalar(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(&mut conn)
    .await?;
    let wal_bytes: i64 =
        sqlx::query_scalar("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint")
            .fetch_one(&mut conn)
            .await?;
    let updates: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT relname::text, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables")
            .fetch_all(&mut conn)
            .await?;
    Ok(PgCounters {
        commits,
        updates: updates
            .into_iter()
            .map(|(table, upd, hot)| (table, (upd, hot)))
            .collect(),
        wal_bytes,
    })
}

/// The `p`-th percentile (0–100) of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_by_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 51.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
    }
}
