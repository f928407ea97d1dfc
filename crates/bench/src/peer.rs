//! Another producer to compare with in the same run (`txn-bench --peer`): started from a shell
//! command on a Redis of its own, and the rounds of the comparison summed up as the median and
//! spread of the per-round ratios, which hold where absolute figures drift between runs.

use std::{
    net::SocketAddr,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// How long a peer may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running peer: killed, with every process its command started, on drop.
pub struct Peer {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its output.
    pub log: PathBuf,
}

impl Peer {
    /// Runs `command` with `sh -c` in a process group of its own, with `PORT` (a free port) and
    /// `REDIS_URL` set and its output in `log`; returns once the port accepts connections.
    pub async fn start(command: &str, redis_url: &str, log: &Path) -> anyhow::Result<Self> {
        let port = testkit::free_port()?;
        let output = std::fs::File::create(log)?;
        let child = Command::new("sh")
            .args(["-c", command])
            .env("PORT", port.to_string())
            .env("REDIS_URL", redis_url)
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output)
            // Its own group, so that a `cd … && node …` is stopped whole.
            .process_group(0)
            .spawn()?;
        let mut peer = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log: log.to_path_buf(),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while tokio::net::TcpStream::connect(peer.addr).await.is_err() {
            if let Some(status) = peer.child.try_wait()? {
                anyhow::bail!("the peer exited ({status}); its output: {}", log.display());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the peer did not listen on port {port} within {START_TIMEOUT:?}; its output: {}",
                log.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(peer)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // The group's id is the shell's pid (`process_group(0)`).
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

/// One round of the comparison: the peer's run, then ours, each on a fresh Redis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Round {
    /// The peer's requests per second.
    pub peer_rps: f64,
    /// The peer's p99 latency (ms).
    pub peer_p99_ms: f64,
    /// Our requests per second.
    pub ours_rps: f64,
    /// Our p99 latency (ms).
    pub ours_p99_ms: f64,
}

impl Round {
    /// Ours over the peer's throughput.
    pub fn ratio(&self) -> f64 {
        self.ours_rps / self.peer_rps
    }
}

/// The comparison over its rounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// The median of the per-round ratios (ours ÷ peer).
    pub ratio_median: f64,
    /// The lowest per-round ratio.
    pub ratio_min: f64,
    /// The highest per-round ratio.
    pub ratio_max: f64,
    /// The median of the peer's requests per second.
    pub peer_rps_median: f64,
    /// The median of the peer's p99 latencies (ms).
    pub peer_p99_median_ms: f64,
}

/// The median, spread and peer figures of `rounds`; `None` without any.
pub fn summarize(rounds: &[Round]) -> Option<Summary> {
    let ratios: Vec<f64> = rounds.iter().map(Round::ratio).collect();
    Some(Summary {
        ratio_median: median(&ratios)?,
        ratio_min: ratios.iter().copied().reduce(f64::min)?,
        ratio_max: ratios.iter().copied().reduce(f64::max)?,
        peer_rps_median: median(&rounds.iter().map(|r| r.peer_rps).collect::<Vec<_>>())?,
        peer_p99_median_ms: median(&rounds.iter().map(|r| r.peer_p99_ms).collect::<Vec<_>>())?,
    })
}

/// The index of the round whose throughput of ours is the median (the lower of the middle
/// two for an even count): the round whose own figures stand for ours.
pub fn median_round(rounds: &[Round]) -> Option<usize> {
    let mut order: Vec<usize> = (0..rounds.len()).collect();
    order.sort_by(|&a, &b| rounds[a].ours_rps.total_cmp(&rounds[b].ours_rps));
    order.get(rounds.len().saturating_sub(1) / 2).copied()
}

/// The median of `values` (the mean of the middle two for an even count); `None` if empty.
fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(peer_rps: f64, ours_rps: f64) -> Round {
        Round {
            peer_rps,
            peer_p99_ms: peer_rps / 1000.0,
            ours_rps,
            ours_p99_ms: 1.0,
        }
    }

    #[test]
    fn the_ratio_is_the_median_of_each_rounds_own_not_of_the_medians() {
        // Medians of throughput alone would give 20,000 / 10,000 = 2.0; the rounds say less.
        let rounds = [
            round(10_000.0, 17_000.0),
            round(8_000.0, 20_000.0),
            round(12_000.0, 21_000.0),
        ];
        let summary = summarize(&rounds).expect("rounds");
        assert_eq!(summary.ratio_median, 1.75);
        assert_eq!(summary.ratio_min, 1.7);
        assert_eq!(summary.ratio_max, 2.5);
        assert_eq!(summary.peer_rps_median, 10_000.0);
        assert_eq!(summary.peer_p99_median_ms, 10.0);
    }

    #[test]
    fn an_even_count_takes_the_mean_of_the_middle_two() {
        let rounds = [
            round(10_000.0, 15_000.0),
            round(10_000.0, 25_000.0),
            round(10_000.0, 18_000.0),
            round(10_000.0, 20_000.0),
        ];
        let summary = summarize(&rounds).expect("rounds");
        assert!((summary.ratio_median - 1.9).abs() < 1e-9);
        assert_eq!((summary.ratio_min, summary.ratio_max), (1.5, 2.5));
    }

    #[test]
    fn the_median_round_is_ours_by_throughput() {
        let rounds = [
            round(1.0, 30.0),
            round(1.0, 10.0),
            round(1.0, 20.0),
            round(1.0, 40.0),
        ];
        assert_eq!(median_round(&rounds), Some(2));
        assert_eq!(median_round(&rounds[..3]), Some(2));
        assert_eq!(median_round(&rounds[..1]), Some(0));
    }

    #[tokio::test]
    async fn a_peer_is_given_its_port_and_redis_and_stopped_whole() {
        let dir = testkit::temp_dir("peer").expect("a temporary directory");
        // The shell stays the listener's parent: only a stop of the whole group ends both.
        let command =
            r#"echo "$REDIS_URL"; redis-server --port "$PORT" --save '' --appendonly no & wait"#;
        let peer = Peer::start(command, "redis://127.0.0.1:1", &dir.join("peer.log"))
            .await
            .expect("the peer listens on PORT");
        let addr = peer.addr;
        let output = std::fs::read_to_string(&peer.log).expect("its output");
        assert!(output.starts_with("redis://127.0.0.1:1\n"), "{output}");
        drop(peer);
        testkit::eventually(
            Duration::from_secs(10),
            "the peer's listener gone",
            || async { tokio::net::TcpStream::connect(addr).await.is_err() },
        )
        .await;
        std::fs::remove_dir_all(&dir).expect("cleaned up");
    }

    #[tokio::test]
    async fn a_peer_that_exits_is_an_error_naming_its_output() {
        let dir = testkit::temp_dir("peer").expect("a temporary directory");
        let log = dir.join("peer.log");
        let refused = Peer::start("echo no such producer >&2; exit 3", "redis://x", &log).await;
        let error = refused.err().expect("an exit is an error").to_string();
        assert!(
            error.contains("exited") && error.contains(&*log.to_string_lossy()),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).expect("cleaned up");
    }

    #[test]
    fn no_rounds_no_summary() {
        assert_eq!(summarize(&[]), None);
        assert_eq!(median_round(&[]), None);
    }
}
