//! `txn-bench --spawn`: the four services as separate processes, as they are deployed, from the
//! release binaries beside the bench. Each gets the bench's environment (for instance
//! `.env.example`'s settings, exported), then addresses on free ports, a database and a queue
//! prefix of its own run, so nothing else shares them. CPU time is read per process from
//! `/proc` (Linux), Redis's from `INFO cpu`, Postgres's from its backends serving the run's
//! database.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use domain::{WebhookSecrets, client_app::Pepper};
use testkit::free_port;

/// The services, in the order they start (each one's peers first).
const SERVICES: [&str; 4] = ["thirdparty-sim", "client-sim", "consumer", "producer"];

/// The consumer's queues, one consumer each in [`Lineup::Scaled`].
pub const QUEUES: [&str; 4] = ["create", "process", "update", "notify"];

/// Which services a run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lineup {
    /// All four: the whole pipeline.
    Pipeline,
    /// The producer alone, on a migrated database: nothing consumes what it accepts.
    ProducerAlone,
    /// The whole pipeline scaled out as it is deployed: two producers (`producer`,
    /// `producer-2`) and one consumer per queue (`consumer-create`, …).
    Scaled,
}

impl Lineup {
    fn runs(self, service: &str) -> bool {
        self != Lineup::ProducerAlone || service == "producer"
    }
}

/// How one running process was started, so it can be started again.
struct Instance {
    name: String,
    binary: &'static str,
    env: Vec<(&'static str, String)>,
    base: String,
    child: Option<Child>,
}

/// The running services and what they run on.
pub struct Services {
    instances: Vec<Instance>,
    bin_dir: PathBuf,
    env: Vec<(&'static str, String)>,
    /// The producer's base URL.
    pub producer: String,
    /// Every producer's base URL (`producer` first).
    pub producers: Vec<String>,
    /// The third-party simulator's base URL, with a pipeline.
    pub thirdparty: String,
    /// Each client app's simulator's base URL (`dev` first), with `Lineup::Pipeline`.
    pub client_sims: Vec<String>,
    /// The run's own database.
    pub database_url: String,
    /// The run's queue prefix.
    pub prefix: String,
    /// The API keys of the run's two client apps: `dev`, made by `consumer migrate`, and a
    /// second one made by `consumer clients create`, each signing with a secret of its own.
    pub api_keys: Vec<String>,
    admin_url: String,
    database: String,
    /// The Redis they use, where `stop` purges the run's prefix.
    redis_url: String,
    redis_cluster: bool,
    logs: PathBuf,
}

/// The Redis the services use.
pub struct Redis<'a> {
    /// `REDIS_URL`.
    pub url: &'a str,
    /// `REDIS_CLUSTER`.
    pub cluster: bool,
}

/// `url` with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> anyhow::Result<String> {
    let mut url = reqwest::Url::parse(url)?;
    url.set_path(&format!("/{database}"));
    Ok(url.to_string())
}

impl Services {
    /// Creates the run's database on the server `database_url` names, starts the `lineup`'s
    /// services on the Redis `redis` names from the binaries in `bin_dir` (logs to files in a
    /// temporary directory) and waits until each answers.
    pub async fn start(
        bin_dir: &Path,
        database_url: &str,
        redis: &Redis<'_>,
        lineup: Lineup,
    ) -> anyhow::Result<Self> {
        Self::start_with(bin_dir, database_url, redis, lineup, Vec::new()).await
    }

    /// [`Services::start`] with `settings` given to every service on top of the run's own.
    pub async fn start_with(
        bin_dir: &Path,
        database_url: &str,
        redis: &Redis<'_>,
        lineup: Lineup,
        settings: Vec<(&'static str, String)>,
    ) -> anyhow::Result<Self> {
        let run = uuid::Uuid::new_v4().simple().to_string();
        let database = format!("txn_bench_{run}");
        // The server's maintenance database: the one `database_url` names may not exist yet.
        let admin_url = with_database(database_url, "postgres")?;
        sqlx_execute(&admin_url, &format!("CREATE DATABASE {database}")).await?;
        let logs = std::env::temp_dir().join(format!("txn-bench-{run}"));
        std::fs::create_dir_all(&logs)?;
        // The third-party simulator, the client simulator, the consumer, the producer, and the
        // second client app's simulator.
        let ports = [
            free_port()?,
            free_port()?,
            free_port()?,
            free_port()?,
            free_port()?,
        ];
        let url = |port: u16| format!("http://127.0.0.1:{port}");
        // The run's client app: `consumer migrate` makes it with this key.
        let pepper_text = std::env::var("API_KEY_PEPPER").unwrap_or_else(|_| Pepper::generate());
        let pepper: Pepper = pepper_text
            .parse()
            .map_err(|e| anyhow::anyhow!("API_KEY_PEPPER {e}"))?;
        let api_key = match std::env::var("DEV_API_KEY") {
            Ok(key) => key,
            Err(_) => pepper.new_key().plaintext,
        };
        let mut services = Self {
            instances: Vec::new(),
            bin_dir: bin_dir.to_path_buf(),
            env: Vec::new(),
            producer: url(ports[3]),
            producers: vec![url(ports[3])],
            thirdparty: url(ports[0]),
            client_sims: Vec::new(),
            database_url: with_database(database_url, &database)?,
            prefix: format!("bench-{run}"),
            api_keys: vec![api_key.clone()],
            admin_url,
            database,
            redis_url: redis.url.to_string(),
            redis_cluster: redis.cluster,
            logs,
        };
        let secret = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| WebhookSecrets::generate().expose())
        };
        let env: Vec<(&'static str, String)> = vec![
            ("THIRDPARTY_ADDR", format!("127.0.0.1:{}", ports[0])),
            ("CLIENT_SIM_ADDR", format!("127.0.0.1:{}", ports[1])),
            ("CONSUMER_ADDR", format!("127.0.0.1:{}", ports[2])),
            ("PRODUCER_ADDR", format!("127.0.0.1:{}", ports[3])),
            ("THIRDPARTY_URL", url(ports[0])),
            ("CLIENT_URL", url(ports[1])),
            ("WEBHOOK_URL", format!("{}/webhook", url(ports[3]))),
            ("WEBHOOK_SECRET", secret("WEBHOOK_SECRET")),
            ("CLIENT_WEBHOOK_SECRET", secret("CLIENT_WEBHOOK_SECRET")),
            ("DATABASE_URL", services.database_url.clone()),
            ("REDIS_URL", redis.url.to_string()),
            ("REDIS_CLUSTER", redis.cluster.to_string()),
            ("QUEUE_PREFIX", services.prefix.clone()),
            ("MIGRATE_ON_START", "true".into()),
            ("API_KEY_PEPPER", pepper_text),
            ("DEV_API_KEY", api_key),
            ("DEV_NOTIFY_URL", url(ports[1])),
        ];
        let mut env = env;
        env.extend(settings);
        services.env = env.clone();
        if let Err(e) = services.launch(bin_dir, &env, ports, lineup).await {
            // Keeps the logs, for the error.
            services.stop(true).await?;
            return Err(e);
        }
        Ok(services)
    }

    /// Prepares the database with `consumer migrate` (which makes the run's client app), then
    /// starts each service of `lineup` in turn and waits until it answers.
    async fn launch(
        &mut self,
        bin_dir: &Path,
        env: &[(&str, String)],
        ports: [u16; 5],
        lineup: Lineup,
    ) -> anyhow::Result<()> {
        let migrate = self.command(bin_dir, "consumer", &["migrate"], "migrate", env)?;
        let status = tokio::process::Command::from(migrate).status().await?;
        anyhow::ensure!(
            status.success(),
            "consumer migrate failed ({status}); its log: {}",
            self.logs.display()
        );
        let second_url = format!("http://127.0.0.1:{}", ports[4]);
        let (second_key, second_secret) = self.second_client_app(bin_dir, env, &second_url).await?;
        self.api_keys.push(second_key);
        if lineup != Lineup::ProducerAlone {
            // The second client app's simulator verifies with its secret alone.
            let own = vec![
                ("CLIENT_SIM_ADDR", format!("127.0.0.1:{}", ports[4])),
                ("CLIENT_WEBHOOK_SECRET", second_secret),
            ];
            self.start_instance("client-sim-2", "client-sim", own, &second_url)
                .await?;
            self.client_sims.push(second_url);
        }
        for (name, port) in SERVICES.into_iter().zip(ports) {
            if !lineup.runs(name) {
                continue;
            }
            let base = format!("http://127.0.0.1:{port}");
            match (lineup, name) {
                (Lineup::Scaled, "consumer") => {
                    for queue in QUEUES {
                        let port = free_port()?;
                        let own = vec![
                            ("CONSUMER_ADDR", format!("127.0.0.1:{port}")),
                            ("QUEUES", queue.to_string()),
                        ];
                        let base = format!("http://127.0.0.1:{port}");
                        self.start_instance(&format!("consumer-{queue}"), name, own, &base)
                            .await?;
                    }
                }
                (Lineup::Scaled, "producer") => {
                    self.start_instance(name, name, Vec::new(), &base).await?;
                    let port = free_port()?;
                    let own = vec![("PRODUCER_ADDR", format!("127.0.0.1:{port}"))];
                    let second = format!("http://127.0.0.1:{port}");
                    self.start_instance("producer-2", name, own, &second)
                        .await?;
                    self.producers.push(second);
                }
                _ => self.start_instance(name, name, Vec::new(), &base).await?,
            }
            if name == "client-sim" {
                self.client_sims.insert(0, base);
            }
        }
        Ok(())
    }

    /// Starts `binary` as `name` with the run's environment and `own` on top, and waits until
    /// it answers at `base`.
    async fn start_instance(
        &mut self,
        name: &str,
        binary: &'static str,
        own: Vec<(&'static str, String)>,
        base: &str,
    ) -> anyhow::Result<()> {
        self.instances.push(Instance {
            name: name.to_string(),
            binary,
            env: own,
            base: base.to_string(),
            child: None,
        });
        self.restart(name).await
    }

    /// The names of the running instances, in the order they started.
    pub fn names(&self) -> Vec<String> {
        self.instances.iter().map(|i| i.name.clone()).collect()
    }

    /// SIGKILLs instance `name`: whatever it held in flight is cut off.
    pub fn kill_one(&mut self, name: &str) {
        if let Some(child) = self
            .instances
            .iter_mut()
            .find(|i| i.name == name)
            .and_then(|i| i.child.as_mut())
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// What instance `name` (`consumer`, `producer`, …) has logged so far.
    pub fn log_of(&self, name: &str) -> anyhow::Result<String> {
        Ok(std::fs::read_to_string(
            self.logs.join(format!("{name}.log")),
        )?)
    }

    /// Starts instance `name` (again, after [`Services::kill_one`]: its log is appended to)
    /// and waits until it answers.
    pub async fn restart(&mut self, name: &str) -> anyhow::Result<()> {
        self.kill_one(name);
        let index = self
            .instances
            .iter()
            .position(|i| i.name == name)
            .ok_or_else(|| anyhow::anyhow!("no instance {name}"))?;
        let mut env = self.env.clone();
        env.extend(self.instances[index].env.iter().cloned());
        let binary = self.instances[index].binary;
        let child = self
            .command(&self.bin_dir, binary, &[], name, &env)?
            .spawn()
            .map_err(|e| {
                anyhow::anyhow!("cannot start {binary} in {}: {e}", self.bin_dir.display())
            })?;
        self.instances[index].child = Some(child);
        let base = self.instances[index].base.clone();
        self.wait_until_up(name, binary, &base).await
    }

    /// Makes the run's second client app with `consumer clients create`, notified at
    /// `notify_url`: its API key and signing secret.
    async fn second_client_app(
        &self,
        bin_dir: &Path,
        env: &[(&str, String)],
        notify_url: &str,
    ) -> anyhow::Result<(String, String)> {
        let args = [
            "clients",
            "create",
            "--name",
            "bench-second",
            "--notify-url",
            notify_url,
        ];
        let mut command = self.command(bin_dir, "consumer", &args, "clients", env)?;
        command.stdout(Stdio::piped());
        let output = tokio::process::Command::from(command).output().await?;
        anyhow::ensure!(
            output.status.success(),
            "consumer clients create failed ({}); its log: {}",
            output.status,
            self.logs.display()
        );
        // The answer is the pretty-printed JSON object at the end of the output (log lines,
        // if any, come before it, one line each).
        let stdout = String::from_utf8(output.stdout)?;
        let start = stdout
            .rfind("\n{\n")
            .map(|i| i + 1)
            .or_else(|| stdout.starts_with("{\n").then_some(0))
            .ok_or_else(|| anyhow::anyhow!("no answer from consumer clients create: {stdout}"))?;
        let created: serde_json::Value = serde_json::from_str(&stdout[start..])?;
        let field = |name: &str| {
            created[name]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| anyhow::anyhow!("consumer clients create: no {name} in {created}"))
        };
        Ok((field("api_key")?, field("signing_secret")?))
    }

    /// `bin_dir`'s `binary` with `args` and `env`, its output to `<log>.log` in the logs.
    fn command(
        &self,
        bin_dir: &Path,
        binary: &str,
        args: &[&str],
        log: &str,
        env: &[(&str, String)],
    ) -> anyhow::Result<Command> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(format!("{log}.log")))?;
        let mut command = Command::new(bin_dir.join(binary));
        command
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(file.try_clone()?)
            .stderr(file)
            .stdin(Stdio::null());
        Ok(command)
    }

    /// Waits until `name` answers `/readyz` (the simulators: `/healthz`) or exits.
    async fn wait_until_up(&mut self, name: &str, binary: &str, base: &str) -> anyhow::Result<()> {
        let path = if binary.contains("-sim") {
            "healthz"
        } else {
            "readyz"
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(child) = self
                .instances
                .iter_mut()
                .find(|i| i.name == name)
                .and_then(|i| i.child.as_mut())
                && let Some(status) = child.try_wait()?
            {
                anyhow::bail!("{name} exited ({status}); its log: {}", self.logs.display());
            }
            let ready = http.get(format!("{base}/{path}")).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{name} not ready within 60 s; its log: {}",
                self.logs.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// CPU seconds used so far by each service, each Postgres backend serving the run's
    /// database, and Redis.
    pub async fn cpu(&self, redis: &mut queue::RedisConnection) -> anyhow::Result<Cpu> {
        let mut by_process = HashMap::new();
        for instance in &self.instances {
            if let Some(child) = &instance.child {
                let cpu = process_cpu(child.id()).unwrap_or(0.0);
                *by_process.entry(instance.binary.to_string()).or_insert(0.0) += cpu;
            }
        }
        let backends: Vec<i32> = sqlx_pids(&self.admin_url, &self.database).await?;
        let postgres: f64 = backends
            .iter()
            .filter_map(|pid| u32::try_from(*pid).ok().and_then(process_cpu))
            .sum();
        by_process.insert("postgres".into(), postgres);
        let info: String = redis::cmd("INFO").arg("cpu").query_async(redis).await?;
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        by_process.insert(
            "redis".into(),
            field("used_cpu_user:") + field("used_cpu_sys:"),
        );
        Ok(Cpu(by_process))
    }

    /// Where the services' logs are.
    pub fn logs(&self) -> &Path {
        &self.logs
    }

    /// Stops the services (SIGKILL: the run is over), drops the run's database and deletes
    /// its queue prefix's keys; deletes their logs unless `keep_logs`.
    pub async fn stop(mut self, keep_logs: bool) -> anyhow::Result<()> {
        self.kill();
        if !keep_logs {
            let _ = std::fs::remove_dir_all(&self.logs);
        }
        sqlx_execute(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.database),
        )
        .await?;
        crate::purge(
            &crate::redis(&self.redis_url, self.redis_cluster)?,
            &self.prefix,
        )
        .await
    }

    fn kill(&mut self) {
        for instance in &mut self.instances {
            if let Some(mut child) = instance.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        self.kill();
    }
}

/// CPU seconds per process (or process group: Postgres's backends, Redis).
pub struct Cpu(pub HashMap<String, f64>);

impl Cpu {
    /// What each used between `before` and `self`, in seconds.
    pub fn since(&self, before: &Cpu) -> HashMap<String, f64> {
        self.0
            .iter()
            .map(|(name, s)| (name.clone(), s - before.0.get(name).copied().unwrap_or(0.0)))
            .collect()
    }
}

/// User + system CPU seconds of a process, from `/proc/<pid>/stat` (clock ticks of 1/100 s,
/// the Linux default); None where there is no `/proc`.
fn process_cpu(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after its ')' are fixed.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

async fn sqlx_execute(url: &str, statement: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    sqlx::raw_sql(statement).execute(&mut conn).await?;
    Ok(())
}

/// The pids of the Postgres backends connected to `database`.
async fn sqlx_pids(admin_url: &str, database: &str) -> anyhow::Result<Vec<i32>> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin_url).await?;
    Ok(
        sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE datname = $1")
            .bind(database)
            .fetch_all(&mut conn)
            .await?,
    )
}
