//! A `redis-server` of the caller's own: a temporary directory, a free port, and the
//! durability or TLS asked for. It can be SIGKILLed, stalled with SIGSTOP and restarted on
//! the same data.

use std::{
    io,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::{ports::free_port, process};

/// How long a start may take before it is an error (an AOF reload included).
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// PEM files for a TLS-only server: the CA clients verify it with, its certificate and key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The CA certificate.
    pub ca: PathBuf,
    /// The server's certificate (valid for `localhost`).
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
}

/// How a [`PrivateRedis`] runs.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// AOF fsynced before every reply (the shipped setting) rather than no persistence.
    pub durable: bool,
    /// TLS only, with these files; plaintext when `None`.
    pub tls: Option<TlsFiles>,
}

impl Default for RedisOptions {
    /// Durable, plaintext: what the shipped deployment runs.
    fn default() -> Self {
        Self {
            durable: true,
            tls: None,
        }
    }
}

/// A running private `redis-server`; killed and its directory removed on drop.
pub struct PrivateRedis {
    dir: PathBuf,
    port: u16,
    options: RedisOptions,
    child: Option<Child>,
}

impl PrivateRedis {
    /// A durable one (AOF `always`), once it answers.
    pub async fn start() -> io::Result<Self> {
        Self::start_with(RedisOptions::default()).await
    }

    /// One run as `options` say, once it answers.
    pub async fn start_with(options: RedisOptions) -> io::Result<Self> {
        let mut redis = Self {
            dir: process::temp_dir("redis")?,
            port: free_port()?,
            options,
            child: None,
        };
        redis.spawn().await?;
        Ok(redis)
    }

    /// Its URL: `redis://127.0.0.1:<port>`, or `rediss://localhost:<port>` with TLS.
    pub fn url(&self) -> String {
        match self.options.tls {
            Some(_) => format!("rediss://localhost:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    async fn spawn(&mut self) -> io::Result<()> {
        let mut server = Command::new("redis-server");
        match &self.options.tls {
            Some(tls) => {
                server
                    .args(["--port", "0", "--tls-port", &self.port.to_string()])
                    .arg("--tls-cert-file")
                    .arg(&tls.cert)
                    .arg("--tls-key-file")
                    .arg(&tls.key)
                    .arg("--tls-ca-cert-file")
                    .arg(&tls.ca)
                    .args(["--tls-auth-clients", "no"]);
            }
            None => {
                server.args(["--port", &self.port.to_string()]);
            }
        }
        if self.options.durable {
            server.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            server.args(["--appendonly", "no"]);
        }
        let child = server
            .args(["--bind", "127.0.0.1", "--save", ""])
            .args(["--maxmemory-policy", "noeviction"])
            .args(["--logfile", "redis.log", "--dir"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        self.wait_until_it_answers().await
    }

    /// Polls PING with `redis-cli` (a server still loading its AOF answers `LOADING`).
    async fn wait_until_it_answers(&mut self) -> io::Result<()> {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            let mut cli = tokio::process::Command::new("redis-cli");
            if let Some(tls) = &self.options.tls {
                cli.arg("--tls").arg("--cacert").arg(&tls.ca);
            }
            let out = cli
                .args(["-p", &self.port.to_string(), "PING"])
                .output()
                .await?;
            if out.stdout.starts_with(b"PONG") {
                return Ok(());
            }
            let exited = match self.child.as_mut() {
                Some(child) => child.try_wait()?.is_some(),
                None => true,
            };
            if exited || tokio::time::Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(3).collect();
                return Err(io::Error::other(format!(
                    "redis-server on port {} did not answer PING: {}",
                    self.port,
                    tail.join(" | ")
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: whatever was not fsynced is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::kill(&mut child);
        }
    }

    /// SIGSTOP: Redis stalls with every connection open, as a hung host does.
    pub fn pause(&self) {
        process::signal(self.child.as_ref().expect("redis running"), "-STOP");
    }

    /// SIGCONT after [`PrivateRedis::pause`]: it carries on with what was queued meanwhile.
    pub fn resume(&self) {
        process::signal(self.child.as_ref().expect("redis running"), "-CONT");
    }

    /// Starts again on the same directory and port (reloading the AOF).
    pub async fn restart(&mut self) -> io::Result<()> {
        self.kill();
        self.spawn().await
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
