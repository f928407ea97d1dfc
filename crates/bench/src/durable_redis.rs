//! A private Redis with the durability the shipped deployment uses (AOF fsynced before every
//! reply), for measuring the path production takes.

use std::time::Duration;

use crate::services::free_port;

/// A private redis-server with the AOF fsynced before every reply.
pub struct DurableRedis {
    child: std::process::Child,
    dir: std::path::PathBuf,
    /// Its URL.
    pub url: String,
}

impl DurableRedis {
    /// Starts one on a free port, in a fresh directory of its own.
    pub async fn start() -> anyhow::Result<Self> {
        let dir =
            std::env::temp_dir().join(format!("txn-bench-redis-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let port = free_port()?;
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
            ])
            .args([
                "--appendfsync",
                "always",
                "--maxmemory-policy",
                "noeviction",
                "--dir",
            ])
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .spawn()?;
        let url = format!("redis://127.0.0.1:{port}");
        for _ in 0..100 {
            let client = redis::Client::open(url.as_str())?;
            if let Ok(mut c) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut c)
                    .await
                    .is_ok()
            {
                return Ok(Self { child, dir, url });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("redis-server did not start")
    }
}

impl Drop for DurableRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
