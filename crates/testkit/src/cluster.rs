//! A Redis Cluster of the test's own: `redis-server --cluster-enabled yes` on free ports in a
//! temporary directory, joined by `redis-cli --cluster create`. Killed and removed on drop.

//!
//! Test-only: a cluster that cannot start panics with the reason.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{ports::free_port_with_bus, process, redis::TlsFiles};

/// A running cluster.
pub struct RedisCluster {
    dir: PathBuf,
    /// Every node's port, primaries first (as `--cluster create` assigns them).
    pub ports: Vec<u16>,
    children: Vec<Option<Child>>,
    security: ClusterSecurity,
}

/// TLS (a CA, and a certificate for 127.0.0.1 with its key) and a password, for a cluster
/// that has them.
#[derive(Debug, Clone, Default)]
pub struct ClusterSecurity {
    /// TLS on every port (clients, cluster bus, replication) when set.
    pub tls: Option<TlsFiles>,
    /// `requirepass` (and `masterauth`) of every node.
    pub password: Option<String>,
}

impl ClusterSecurity {
    /// What `redis-cli` needs to reach a node.
    fn cli_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(tls) = &self.tls {
            args.extend([
                "--tls".into(),
                "--cacert".into(),
                tls.ca.display().to_string(),
            ]);
        }
        if let Some(password) = &self.password {
            args.extend(["-a".into(), password.clone(), "--no-auth-warning".into()]);
        }
        args
    }
}

impl RedisCluster {
    /// `primaries` primaries with `replicas` replicas each, `node_timeout_ms` to declare a node
    /// failed; returns once every node reports `cluster_state:ok`.
    pub fn start(primaries: usize, replicas: usize, node_timeout_ms: u64) -> Self {
        Self::start_secure(
            primaries,
            replicas,
            node_timeout_ms,
            ClusterSecurity::default(),
        )
    }

    /// [`RedisCluster::start`] with TLS on every port (clients, cluster bus, replication)
    /// and/or a password.
    pub fn start_secure(
        primaries: usize,
        replicas: usize,
        node_timeout_ms: u64,
        security: ClusterSecurity,
    ) -> Self {
        let dir = process::temp_dir("cluster").expect("a directory for the cluster");
        let n = primaries * (1 + replicas);
        let mut cluster = Self {
            dir,
            ports: Vec::new(),
            children: Vec::new(),
            security,
        };
        for _ in 0..n {
            let (port, child) = cluster.start_node(node_timeout_ms);
            cluster.ports.push(port);
            cluster.children.push(Some(child));
        }
        let ports = cluster.ports.clone();
        let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let status = Command::new("redis-cli")
            .args(cluster.security.cli_args())
            .arg("--cluster")
            .arg("create")
            .args(&nodes)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli on PATH");
        assert!(status.success(), "redis-cli --cluster create");
        cluster.wait_ok(Duration::from_secs(30));
        // A replica can take over only once it has synced with its primary.
        wait_until(Duration::from_secs(30), || {
            ports.iter().all(|p| {
                cluster
                    .cli(*p, &["INFO", "replication"])
                    .is_some_and(|info| {
                        info.contains("role:master") || info.contains("master_link_status:up")
                    })
            })
        });
        cluster
    }

    /// Starts a node on a free port and waits until it answers. A node that exits at once
    /// lost its port to another process (the probe and the bind are not atomic): it starts
    /// again on another port.
    fn start_node(&self, node_timeout_ms: u64) -> (u16, Child) {
        for _ in 0..5 {
            let port = free_port_with_bus().expect("a free port");
            let mut child = self.spawn(port, node_timeout_ms);
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                // The node's own pid: not another server that holds the port.
                let pid = format!("process_id:{}", child.id());
                let info = self.cli(port, &["INFO", "server"]).unwrap_or_default();
                if info.lines().any(|line| line.trim_end() == pid) {
                    return (port, child);
                }
                if child.try_wait().ok().flatten().is_some() {
                    eprintln!("node on port {port} exited: {}", self.log_tail(port));
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "the node on port {port} did not answer in 10 s: {}",
                        self.log_tail(port)
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("no node started on five free ports");
    }

    /// The last lines of the log of the node on `port`, for a failure message.
    fn log_tail(&self, port: u16) -> String {
        let log = std::fs::read_to_string(self.dir.join(port.to_string()).join("redis.log"))
            .unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(3)..].join(" | ")
    }

    fn spawn(&self, port: u16, node_timeout_ms: u64) -> Child {
        let node_dir = self.dir.join(port.to_string());
        std::fs::create_dir_all(&node_dir).expect("node dir");
        let mut server = Command::new("redis-server");
        match &self.security.tls {
            Some(tls) => {
                server
                    .args(["--port", "0", "--tls-port", &port.to_string()])
                    .args(["--tls-cluster", "yes", "--tls-replication", "yes"])
                    .args(["--tls-auth-clients", "no"])
                    .arg("--tls-cert-file")
                    .arg(&tls.cert)
                    .arg("--tls-key-file")
                    .arg(&tls.key)
                    .arg("--tls-ca-cert-file")
                    .arg(&tls.ca);
            }
            None => {
                server.args(["--port", &port.to_string()]);
            }
        }
        if let Some(password) = &self.security.password {
            server.args(["--requirepass", password, "--masterauth", password]);
        }
        server
            .args(["--bind", "127.0.0.1"])
            .args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ])
            .args(["--cluster-node-timeout", &node_timeout_ms.to_string()])
            .args(["--save", "", "--appendonly", "no", "--logfile", "redis.log"])
            // Replicas sync at once (the default waits 5 s for more replicas to join).
            .args(["--repl-diskless-sync-delay", "0"])
            .arg("--dir")
            .arg(&node_dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server on PATH")
    }

    /// Waits until every live node reports `cluster_state:ok`.
    pub fn wait_ok(&self, within: Duration) {
        let ok = |p: &u16| {
            self.cli(*p, &["CLUSTER", "INFO"])
                .is_some_and(|o| o.contains("cluster_state:ok"))
        };
        let deadline = Instant::now() + within;
        while !self.live_ports().iter().all(ok) {
            if Instant::now() > deadline {
                let port = self.live_ports()[0];
                panic!(
                    "cluster not ok in {within:?}: {}",
                    self.cli(port, &["CLUSTER", "NODES"]).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn live_ports(&self) -> Vec<u16> {
        self.ports
            .iter()
            .zip(&self.children)
            .filter(|(_, c)| c.is_some())
            .map(|(p, _)| *p)
            .collect()
    }

    /// The seed nodes as `REDIS_URL` lists them.
    pub fn url(&self) -> String {
        let scheme = if self.security.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        self.ports
            .iter()
            .map(|p| format!("{scheme}://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The password every node requires, if any.
    pub fn password(&self) -> Option<String> {
        self.security.password.clone()
    }

    /// The CA a client verifies the nodes with, if they speak TLS.
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.security.tls.as_ref().map(|tls| tls.ca.clone())
    }

    /// `redis-cli` on the node at `port` with `args`: its output, if it ran.
    pub fn cli(&self, port: u16, args: &[&str]) -> Option<String> {
        let out = Command::new("redis-cli")
            .args(self.security.cli_args())
            .args(["-p", &port.to_string()])
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The port of the primary that owns `key`'s slot now.
    pub fn owner_of(&self, key: &str) -> u16 {
        let port = self.live_ports()[0];
        let slot = self
            .cli(port, &["CLUSTER", "KEYSLOT", key])
            .expect("KEYSLOT");
        let slot: u16 = slot.trim().parse().expect("slot");
        let nodes = self.cli(port, &["CLUSTER", "NODES"]).expect("NODES");
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let owns = fields[8..].iter().any(|range| match range.split_once('-') {
                Some((a, b)) => {
                    a.parse::<u16>().is_ok_and(|a| a <= slot)
                        && b.parse::<u16>().is_ok_and(|b| slot <= b)
                }
                None => range.parse::<u16>().is_ok_and(|s| s == slot),
            });
            if owns {
                let addr = fields[1].split('@').next().expect("address");
                return addr
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .expect("port");
            }
        }
        panic!("no primary owns slot {slot}");
    }

    /// Moves the slot of `key`, with its keys, to the primary on `to` while clients run: the
    /// steps of a live reshard (IMPORTING/MIGRATING, MIGRATE in batches, SETSLOT NODE).
    /// Returns how many keys it moved.
    pub fn move_slot_of(&self, key: &str, to: u16) -> usize {
        let from = self.owner_of(key);
        assert_ne!(from, to, "the slot is already there");
        let slot = self
            .cli(from, &["CLUSTER", "KEYSLOT", key])
            .expect("KEYSLOT");
        let slot = slot.trim();
        let id = |port: u16| {
            self.cli(port, &["CLUSTER", "MYID"])
                .expect("MYID")
                .trim()
                .to_string()
        };
        let (from_id, to_id) = (id(from), id(to));
        let ok = |out: Option<String>, what: &str| {
            let out = out.unwrap_or_default();
            assert!(out.trim() == "OK" || out.trim() == "NOKEY", "{what}: {out}");
        };
        ok(
            self.cli(to, &["CLUSTER", "SETSLOT", slot, "IMPORTING", &from_id]),
            "IMPORTING",
        );
        ok(
            self.cli(from, &["CLUSTER", "SETSLOT", slot, "MIGRATING", &to_id]),
            "MIGRATING",
        );
        let mut moved = 0;
        loop {
            let keys = self
                .cli(from, &["CLUSTER", "GETKEYSINSLOT", slot, "100"])
                .expect("GETKEYSINSLOT");
            let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
            if keys.is_empty() {
                break;
            }
            moved += keys.len();
            let port = to.to_string();
            let mut args = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
            args.extend(keys);
            ok(self.cli(from, &args), "MIGRATE");
        }
        for port in self.live_ports() {
            // Replicas refuse SETSLOT; every primary learns the new owner.
            let _ = self.cli(port, &["CLUSTER", "SETSLOT", slot, "NODE", &to_id]);
        }
        self.wait_ok(Duration::from_secs(30));
        moved
    }

    /// SIGKILLs the node on `port`.
    pub fn kill(&mut self, port: u16) {
        let i = self
            .ports
            .iter()
            .position(|p| *p == port)
            .expect("a node's port");
        if let Some(mut child) = self.children[i].take() {
            process::kill(&mut child);
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            process::kill(child);
        }
        if std::env::var("KEEP_CLUSTER_LOGS").is_err() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "cluster not ready in {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
