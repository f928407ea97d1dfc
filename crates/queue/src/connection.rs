//! Connecting to Redis: every client and shared connection of the project is made here, from
//! one [`RedisSettings`] (URL, credentials kept out of it, extra CA for TLS, single node or
//! cluster). [`RedisClient`] and [`RedisConnection`] hide which of the two it is: no code
//! outside this crate knows.

use std::{path::PathBuf, time::Duration};

use base64::{Engine, engine::general_purpose::STANDARD};
use redis::{
    Client, Cmd, IntoConnectionInfo, Pipeline, RedisFuture, TlsCertificates, Value,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection},
    cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig},
    cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo, SingleNodeRoutingInfo},
};

use crate::{QueueError, cluster_link::ClusterLink};

/// How to reach Redis.
#[derive(Clone, Default)]
pub struct RedisSettings {
    /// `redis://` or `rediss://` (TLS); with `cluster`, the seed nodes, comma-separated.
    pub url: String,
    /// User, overriding the URL's.
    pub username: Option<String>,
    /// Password, overriding the URL's.
    pub password: Option<String>,
    /// PEM bundle trusted for `rediss://` besides the system roots.
    pub ca_file: Option<PathBuf>,
    /// A Redis Cluster rather than one node.
    pub cluster: bool,
}

impl RedisSettings {
    /// Redis at `url`, with whatever credentials the URL holds.
    pub fn url(url: &str) -> Self {
        Self {
            url: url.to_string(),
            ..Self::default()
        }
    }
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password too: only its scheme is shown.
        let scheme = self.url.split("://").next().unwrap_or("?");
        f.debug_struct("RedisSettings")
            .field("scheme", &scheme)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("ca_file", &self.ca_file)
            .field("cluster", &self.cluster)
            .finish()
    }
}

/// A client of one Redis node for `settings` (its URL; a cluster's first seed node) whose
/// connections send at once: redis-rs leaves Nagle's algorithm on by default, which can hold a
/// small command back until the previous one is acknowledged. A `rediss://` URL trusts the
/// system roots (and `SSL_CERT_FILE`), plus `ca_file` when given.
pub fn redis_client(settings: &RedisSettings) -> Result<Client, QueueError> {
    let url = settings.url.split(',').next().unwrap_or_default().trim();
    node_client(settings, url)
}

/// A client of the node at `url`, with the credentials and trust of `settings`.
fn node_client(settings: &RedisSettings, url: &str) -> Result<Client, QueueError> {
    let mut info = url
        .into_connection_info()?
        .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
    let mut auth = info.redis_settings().clone();
    if let Some(user) = &settings.username {
        auth = auth.set_username(user);
    }
    if let Some(password) = &settings.password {
        auth = auth.set_password(password);
    }
    info = info.set_redis_settings(auth);
    let tls = url.starts_with("rediss://");
    match (&settings.ca_file, tls) {
        (Some(ca_file), true) => {
            let root_cert = roots_with(ca_file)?;
            Ok(Client::build_with_tls(
                info,
                TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root_cert),
                },
            )?)
        }
        _ => Ok(Client::open(info)?),
    }
}

/// The system roots and the certificates of `ca_file`, as one PEM bundle (redis-rs trusts
/// only the bundle it is given once it is given one).
fn roots_with(ca_file: &std::path::Path) -> Result<Vec<u8>, QueueError> {
    let mut pem = std::fs::read(ca_file)
        .map_err(|e| QueueError::Config(format!("REDIS_CA_FILE {}: {e}", ca_file.display())))?;
    pem.push(b'\n');
    for cert in rustls_native_certs::load_native_certs().certs {
        pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        for line in STANDARD.encode(cert.as_ref()).as_bytes().chunks(64) {
            pem.extend_from_slice(line);
            pem.push(b'\n');
        }
        pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
    }
    Ok(pem)
}

/// How long a background caller (a worker, the acker) waits for Redis: a slow Redis (fsync on
/// every write) must not fail calls.
pub const BACKGROUND_TIMEOUT: Duration = Duration::from_secs(5);

/// A shared, reconnecting connection that connects lazily (so a service starts while Redis is
/// down) and gives up on a call after `response_timeout`. Every shared connection of the
/// project is made here.
pub fn connection_manager(
    client: &Client,
    response_timeout: Duration,
) -> redis::RedisResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(response_timeout))
        .set_connection_timeout(Some((response_timeout / 2).min(Duration::from_secs(2))))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_lazy_with_config(client.clone(), config)
}

/// A Redis deployment: one node, or a Redis Cluster found through its seed nodes. Cheap to
/// clone; nothing is connected until a connection is asked for.
#[derive(Clone)]
pub struct RedisClient {
    settings: RedisSettings,
    kind: ClientKind,
}

#[derive(Clone)]
enum ClientKind {
    Single(Box<Client>),
    /// A cluster client is made per shared connection, with that connection's timeouts.
    Cluster,
}

/// How long connecting to a node may take.
fn connect_timeout(response_timeout: Duration) -> Duration {
    (response_timeout / 2).min(Duration::from_secs(2))
}

impl RedisClient {
    /// The deployment `settings` describe.
    pub fn new(settings: &RedisSettings) -> Result<Self, QueueError> {
        let kind = if settings.cluster {
            // Made once here to refuse bad settings at start.
            cluster_client(settings, None)?;
            ClientKind::Cluster
        } else {
            ClientKind::Single(Box::new(redis_client(settings)?))
        };
        Ok(Self {
            settings: settings.clone(),
            kind,
        })
    }

    /// A shared, reconnecting connection that connects lazily (so a service starts while Redis
    /// is down) and gives up on a call after `response_timeout`. On a cluster it routes each
    /// command by its keys and follows MOVED and ASK — within that time too, retries included.
    pub fn shared(&self, response_timeout: Duration) -> Result<RedisConnection, QueueError> {
        Ok(match &self.kind {
            ClientKind::Single(client) => {
                RedisConnection::Single(connection_manager(client, response_timeout)?)
            }
            ClientKind::Cluster => {
                let client = cluster_client(&self.settings, Some(response_timeout))?;
                let config = ClusterConfig::new()
                    .set_response_timeout(response_timeout)
                    .set_connection_timeout(connect_timeout(response_timeout));
                // Three whole calls without an answer: longer than a failover takes.
                RedisConnection::Cluster(ClusterLink::new(client, config, response_timeout * 3))
            }
        })
    }

    /// A connection of its own for blocking commands on `key` (no response timeout): to the
    /// only node, or to the node that owns `key`'s slot now — with that node's address, to
    /// unblock it through a shared connection ([`RedisConnection::unblock`]).
    pub(crate) async fn blocking_for(
        &self,
        shared: &mut RedisConnection,
        key: &str,
    ) -> Result<(MultiplexedConnection, Option<NodeAddress>), QueueError> {
        let config = redis::AsyncConnectionConfig::new()
            .set_response_timeout(None)
            .set_connection_timeout(Some(Duration::from_secs(2)));
        match &self.kind {
            ClientKind::Single(client) => Ok((
                client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?,
                None,
            )),
            ClientKind::Cluster => {
                let node = slot_owner(shared, key).await?;
                let scheme = if self.settings.url.trim_start().starts_with("rediss://") {
                    "rediss"
                } else {
                    "redis"
                };
                let client =
                    node_client(&self.settings, &format!("{scheme}://{}:{}", node.0, node.1))?;
                let conn = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                Ok((conn, Some(node)))
            }
        }
    }
}

/// A cluster client for `settings`; with a `response_timeout`, every call (its retries and
/// redirections included) gives up after it, and a node that does not answer is retried
/// quickly: a failover takes seconds, not the library's default minutes.
fn cluster_client(
    settings: &RedisSettings,
    response_timeout: Option<Duration>,
) -> Result<ClusterClient, QueueError> {
    let nodes = settings
        .url
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(|url| Ok(node_client(settings, url)?.get_connection_info().clone()))
        .collect::<Result<Vec<_>, QueueError>>()?;
    if nodes.is_empty() {
        return Err(QueueError::Config("REDIS_URL names no cluster node".into()));
    }
    let tls = settings.url.trim_start().starts_with("rediss://");
    let mut builder = ClusterClientBuilder::new(nodes)
        .tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true))
        .retries(8)
        .min_retry_wait(50)
        .max_retry_wait(500);
    if let Some(timeout) = response_timeout {
        builder = builder
            .response_timeout(timeout)
            .connection_timeout(connect_timeout(timeout));
    }
    if let Some(user) = &settings.username {
        builder = builder.username(user);
    }
    if let Some(password) = &settings.password {
        builder = builder.password(password);
    }
    if let (Some(ca_file), true) = (&settings.ca_file, tls) {
        builder = builder.certs(TlsCertificates {
            client_tls: None,
            root_cert: Some(roots_with(ca_file)?),
        });
    }
    Ok(builder.build()?)
}

/// A node's host and port.
pub(crate) type NodeAddress = (String, u16);

/// The primary that owns `key`'s slot, from the cluster's own slot table.
async fn slot_owner(shared: &mut RedisConnection, key: &str) -> Result<NodeAddress, QueueError> {
    let slot: u16 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query_async(shared)
        .await?;
    let ranges: Vec<Vec<Value>> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(shared)
        .await?;
    for range in ranges {
        let mut fields = range.into_iter();
        let (Some(start), Some(end), Some(primary)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let (start, end): (u16, u16) = (
            redis::from_redis_value(start).map_err(redis::RedisError::from)?,
            redis::from_redis_value(end).map_err(redis::RedisError::from)?,
        );
        if (start..=end).contains(&slot) {
            let node: Vec<Value> =
                redis::from_redis_value(primary).map_err(redis::RedisError::from)?;
            let mut node = node.into_iter();
            let (Some(host), Some(port)) = (node.next(), node.next()) else {
                break;
            };
            return Ok((
                redis::from_redis_value(host).map_err(redis::RedisError::from)?,
                redis::from_redis_value(port).map_err(redis::RedisError::from)?,
            ));
        }
    }
    Err(QueueError::Config(format!(
        "no cluster node owns slot {slot} of {key}"
    )))
}

/// A shared connection to one node or to a cluster; cheap to clone (clones share it).
#[derive(Clone)]
pub enum RedisConnection {
    /// One node, through a reconnecting connection manager.
    Single(ConnectionManager),
    /// A Redis Cluster, through a connection replaced when it goes silent.
    Cluster(ClusterLink),
}

impl RedisConnection {
    /// `CLIENT UNBLOCK id` on the node at `node` (a blocking connection's; `None`: the only
    /// node).
    pub(crate) async fn unblock(
        &mut self,
        node: Option<&NodeAddress>,
        id: i64,
    ) -> redis::RedisResult<()> {
        let mut cmd = redis::cmd("CLIENT");
        cmd.arg("UNBLOCK").arg(id);
        match (self, node) {
            (RedisConnection::Cluster(cluster), Some((host, port))) => {
                let routing = SingleNodeRoutingInfo::ByAddress {
                    host: host.clone(),
                    port: *port,
                };
                cluster
                    .route_command(cmd, RoutingInfo::SingleNode(routing))
                    .await?;
            }
            (conn, _) => {
                let _: i64 = cmd.query_async(conn).await?;
            }
        }
        Ok(())
    }

    /// Runs `cmd` on every primary (the only node, when not a cluster): one answer each.
    pub async fn on_every_primary<T: redis::FromRedisValue>(
        &mut self,
        cmd: &Cmd,
    ) -> redis::RedisResult<Vec<T>> {
        match self {
            RedisConnection::Single(conn) => Ok(vec![cmd.query_async(conn).await?]),
            RedisConnection::Cluster(cluster) => {
                let routing = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
                match cluster.route_command(cmd.clone(), routing).await? {
                    // Without a response policy: node address → its answer.
                    Value::Map(answers) => answers
                        .into_iter()
                        .map(|(_, answer)| Ok(redis::from_redis_value(answer)?))
                        .collect(),
                    other => Ok(vec![redis::from_redis_value(other)?]),
                }
            }
        }
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConnection::Single(conn) => conn.req_packed_command(cmd),
            RedisConnection::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConnection::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            RedisConnection::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConnection::Single(conn) => conn.get_db(),
            RedisConnection::Cluster(conn) => conn.get_db(),
        }
    }
}

/// The cluster slot of `key`: CRC16 (XMODEM) of its hash tag (the part between the first `{`
/// and the next `}`, if not empty) or of the whole key, modulo 16384.
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = match key.iter().position(|b| *b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|b| *b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16::State::<crc16::XMODEM>::calculate(hashed) % 16_384
}

impl RedisConnection {
    /// Waits until `replicas` replicas of the node holding `key` have every write this
    /// connection sent it (`WAIT`), at most `timeout`; returns how many acknowledged.
    pub async fn wait_for_replicas(
        &mut self,
        key: &str,
        replicas: u32,
        timeout: Duration,
    ) -> redis::RedisResult<u32> {
        let mut wait = redis::cmd("WAIT");
        wait.arg(replicas).arg(timeout.as_millis() as u64);
        match self {
            RedisConnection::Single(conn) => wait.query_async(conn).await,
            RedisConnection::Cluster(cluster) => {
                let route = redis::cluster_routing::Route::new(
                    key_slot(key.as_bytes()),
                    redis::cluster_routing::SlotAddr::Master,
                );
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
                Ok(redis::from_redis_value(
                    cluster.route_command(wait, routing).await?,
                )?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::key_slot;

    #[test]
    fn slots_follow_the_cluster_spec() {
        // The examples of the Redis Cluster specification.
        assert_eq!(key_slot(b"123456789"), 12_739);
        assert_eq!(key_slot(b"foo"), 12_182);
        assert_eq!(
            key_slot(b"{user1000}.following"),
            key_slot(b"{user1000}.followers")
        );
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(
            key_slot(b"foo{}{bar}"),
            key_slot(b"foo{}{bar}"),
            "empty tag: whole key"
        );
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
    }
}
