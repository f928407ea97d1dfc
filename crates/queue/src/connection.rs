//! Connecting to Redis: every client and shared connection of the project is made here, from
//! one [`RedisSettings`] (URL, credentials kept out of it, extra CA for TLS).

use std::{path::PathBuf, time::Duration};

use base64::{Engine, engine::general_purpose::STANDARD};
use redis::{
    Client, IntoConnectionInfo, TlsCertificates,
    aio::{ConnectionManager, ConnectionManagerConfig},
};

use crate::QueueError;

/// How to reach Redis.
#[derive(Clone, Default)]
pub struct RedisSettings {
    /// `redis://` or `rediss://` (TLS).
    pub url: String,
    /// User, overriding the URL's.
    pub username: Option<String>,
    /// Password, overriding the URL's.
    pub password: Option<String>,
    /// PEM bundle trusted for `rediss://` besides the system roots.
    pub ca_file: Option<PathBuf>,
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
            .finish()
    }
}

/// A Redis client for `settings` whose connections send at once: redis-rs leaves Nagle's
/// algorithm on by default, which can hold a small command back until the previous one is
/// acknowledged. A `rediss://` URL trusts the system roots (and `SSL_CERT_FILE`), plus
/// `ca_file` when given.
pub fn redis_client(settings: &RedisSettings) -> Result<Client, QueueError> {
    let mut info = settings
        .url
        .as_str()
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
    let tls = settings.url.starts_with("rediss://");
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
