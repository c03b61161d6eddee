//! Configuration from `CALLHUB_*` environment variables, or the same keys in a
//! `callhub.toml` (the environment wins). Every key has a default that runs as is.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use callhub_store::PoolSettings;

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub public_url: String,
    pub database_url: String,
    pub data_dir: PathBuf,
    /// Unset: made on first start and kept in the data dir.
    pub jwt_secret: Option<String>,
    pub ring_timeout: Duration,
    pub rejoin_grace: Duration,
    /// How often sockets are pinged; one silent for twice this is closed.
    pub ws_ping_interval: Duration,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub turn_urls: Vec<String>,
    pub turn_secret: Option<String>,
    pub cors_origins: Vec<String>,
    pub pool: PoolSettings,
    /// How often the worker looks for due ring timeouts and planned starts.
    pub tick_interval: Duration,
    /// Login attempts a client address may make per minute.
    pub login_rate_per_ip: u32,
    /// Failed logins an account may have per 5 minutes.
    pub login_failures_per_account: u32,
    /// Wrong guest-link tokens a client address may present per minute.
    pub guest_failures_per_ip: u32,
    pub delivery: DeliveryConfig,
    /// Contacts one call may hold, guests included.
    pub max_call_contacts: usize,
    /// External invitations (mails and SMS) one account may cause per hour.
    pub invites_per_hour: u32,
    /// How long a client may take to send a request's headers, and its body.
    pub request_read_timeout: Duration,
    /// Open connections one client address may hold.
    pub connections_per_ip: usize,
    /// How often the gauges read from the store (calls, ringing, backlog) are refreshed.
    pub gauge_refresh: Duration,
    pub log_format: LogFormat,
    /// NATS between nodes; None: one node.
    pub nats_url: Option<String>,
    /// The first token of every subject this cluster uses on NATS.
    pub nats_prefix: String,
    /// How long a stopping node may take before it exits regardless.
    pub shutdown_deadline: Duration,
    /// The SFU's UDP socket (port 0: any free port).
    pub sfu_udp: SocketAddr,
    /// The address put in the SFU's ICE candidates; None: the bound one.
    pub sfu_public_ip: Option<std::net::IpAddr>,
    /// How many open microphones an SFU call carries at once (0: every one).
    pub sfu_audible: usize,
}

/// How log lines are written to stderr (`CALLHUB_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines, coloured only on a terminal.
    Text,
    /// One JSON object a line, for log shippers.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("expected text or json".into()),
        }
    }
}

/// A database URL without its password, for logs.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}@{host}{}", &rest[authority_end..])
        }
        None => url.to_owned(),
    }
}

/// Mail, SMS and the outbox worker that sends them (`CALLHUB_SMTP_URL`, …).
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// `smtp://host:port`, `smtp://host?tls=required` (STARTTLS), `smtps://user:pass@host`;
    /// unset: mails are logged, not sent.
    pub smtp_url: Option<String>,
    /// The sender of invitations.
    pub mail_from: String,
    /// Generic SMS provider: POST `{"to", "body"}` here.
    pub sms_webhook_url: Option<String>,
    pub twilio: Option<TwilioConfig>,
    /// The first retry's delay; each further one doubles it, up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// How long a delivery is retried before it is marked failed.
    pub retry_for: Duration,
    /// How long a claimed delivery is a worker's before another may take it.
    pub lease: Duration,
    /// Deliveries sent at once by this node.
    pub concurrency: u32,
    /// How often the outbox is polled when nothing wakes the worker.
    pub poll_interval: Duration,
    /// Whether webhooks may point at loopback, private or link-local addresses.
    pub webhook_allow_private: bool,
}

#[derive(Debug, Clone)]
pub struct TwilioConfig {
    pub account_sid: String,
    pub auth_token: String,
    pub from: String,
    pub base_url: String,
}

/// Where the settings come from: the environment over `callhub.toml`.
pub struct Source {
    file: HashMap<String, String>,
}

impl Source {
    pub fn load() -> anyhow::Result<Source> {
        // A file named on purpose must be there; the default one is optional.
        let named = std::env::var("CALLHUB_CONFIG")
            .ok()
            .filter(|p| !p.is_empty());
        let path = named.clone().unwrap_or_else(|| "callhub.toml".into());
        let mut file = HashMap::new();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(e) if named.is_some() => bail!("CALLHUB_CONFIG={path:?} cannot be read: {e}"),
            Err(_) => None,
        };
        if let Some(text) = text {
            let table: toml::Table = text
                .parse()
                .with_context(|| format!("{path} is not valid TOML"))?;
            for (k, v) in table {
                let key = k.to_uppercase();
                let key = if key.starts_with("CALLHUB_") {
                    key
                } else {
                    format!("CALLHUB_{key}")
                };
                let value = match v {
                    toml::Value::String(s) => s,
                    other => other.to_string(),
                };
                file.insert(key, value);
            }
        }
        Ok(Source { file })
    }

    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key)
            .ok()
            .or_else(|| self.file.get(key).cloned())
            .filter(|v| !v.is_empty())
    }

    fn parse<T: std::str::FromStr>(&self, key: &str, default: T) -> anyhow::Result<T>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|e| anyhow::anyhow!("{key}={v:?}: {e}")),
        }
    }

    fn secs(&self, key: &str, default: u64) -> anyhow::Result<Duration> {
        Ok(Duration::from_secs(self.parse(key, default)?))
    }

    fn list(&self, key: &str) -> Vec<String> {
        self.get(key)
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The host of a URL, for the default sender address.
fn public_host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => host.split(':').next().unwrap_or(host),
    };
    if host.is_empty() {
        "localhost".into()
    } else {
        host.to_owned()
    }
}

impl Config {
    pub fn from_env() -> anyhow::Result<Config> {
        Self::from_source(&Source::load()?)
    }

    pub fn from_source(src: &Source) -> anyhow::Result<Config> {
        let listen: SocketAddr = src.parse("CALLHUB_LISTEN", "127.0.0.1:8080".parse()?)?;
        let data_dir = PathBuf::from(src.get("CALLHUB_DATA_DIR").unwrap_or_else(|| "data".into()));
        let database_url = src
            .get("CALLHUB_DATABASE_URL")
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("callhub.db").display()));
        let ring_timeout = src.secs("CALLHUB_RING_TIMEOUT_SECS", 60)?;
        if ring_timeout.is_zero() {
            bail!("CALLHUB_RING_TIMEOUT_SECS must be at least 1");
        }
        let public_url = src
            .get("CALLHUB_PUBLIC_URL")
            .unwrap_or_else(|| format!("http://{listen}"))
            .trim_end_matches('/')
            .to_owned();
        let twilio = match src.get("CALLHUB_TWILIO_ACCOUNT_SID") {
            None => None,
            Some(account_sid) => {
                let need = |key: &str| {
                    src.get(key)
                        .with_context(|| format!("{key} is needed with CALLHUB_TWILIO_ACCOUNT_SID"))
                };
                Some(TwilioConfig {
                    account_sid,
                    auth_token: need("CALLHUB_TWILIO_AUTH_TOKEN")?,
                    from: need("CALLHUB_TWILIO_FROM")?,
                    base_url: src
                        .get("CALLHUB_TWILIO_BASE_URL")
                        .unwrap_or_else(|| "https://api.twilio.com".into())
                        .trim_end_matches('/')
                        .to_owned(),
                })
            }
        };
        let delivery = DeliveryConfig {
            smtp_url: src.get("CALLHUB_SMTP_URL"),
            mail_from: src
                .get("CALLHUB_MAIL_FROM")
                .unwrap_or_else(|| format!("callhub@{}", public_host(&public_url))),
            sms_webhook_url: src.get("CALLHUB_SMS_WEBHOOK_URL"),
            twilio,
            backoff: Duration::from_millis(src.parse("CALLHUB_DELIVERY_BACKOFF_MILLIS", 10_000)?),
            max_backoff: src.secs("CALLHUB_DELIVERY_MAX_BACKOFF_SECS", 3600)?,
            retry_for: src.secs("CALLHUB_DELIVERY_RETRY_SECS", 24 * 3600)?,
            lease: src.secs("CALLHUB_DELIVERY_LEASE_SECS", 120)?,
            concurrency: src.parse("CALLHUB_DELIVERY_CONCURRENCY", 8)?,
            poll_interval: Duration::from_millis(src.parse("CALLHUB_DELIVERY_POLL_MILLIS", 1000)?),
            webhook_allow_private: src.parse("CALLHUB_WEBHOOK_ALLOW_PRIVATE", false)?,
        };
        if delivery.backoff.is_zero() || delivery.concurrency == 0 {
            bail!(
                "CALLHUB_DELIVERY_BACKOFF_MILLIS and CALLHUB_DELIVERY_CONCURRENCY must be at least 1"
            );
        }
        if delivery.lease.is_zero() {
            // Keep it longer than a send may take (20 s): a shorter lease lets a slow
            // send be taken again by another worker and arrive twice.
            bail!("CALLHUB_DELIVERY_LEASE_SECS must be at least 1");
        }
        let cfg = Config {
            listen,
            public_url,
            database_url,
            data_dir,
            jwt_secret: src.get("CALLHUB_JWT_SECRET"),
            ring_timeout,
            rejoin_grace: src.secs("CALLHUB_REJOIN_GRACE_SECS", 30)?,
            ws_ping_interval: src.secs("CALLHUB_WS_PING_SECS", 15)?,
            access_token_ttl: src.secs("CALLHUB_ACCESS_TOKEN_TTL_SECS", 900)?,
            refresh_token_ttl: src.secs("CALLHUB_REFRESH_TOKEN_TTL_SECS", 30 * 24 * 3600)?,
            turn_urls: src.list("CALLHUB_TURN_URLS"),
            turn_secret: src.get("CALLHUB_TURN_SECRET"),
            cors_origins: src.list("CALLHUB_CORS_ORIGINS"),
            pool: PoolSettings {
                synchronous: src.parse("CALLHUB_DB_SYNCHRONOUS", Default::default())?,
                max_connections: src.parse("CALLHUB_DB_MAX_CONNECTIONS", 16)?,
                acquire_timeout: src.secs("CALLHUB_DB_ACQUIRE_TIMEOUT_SECS", 5)?,
                statement_timeout: src.secs("CALLHUB_DB_STATEMENT_TIMEOUT_SECS", 10)?,
            },
            tick_interval: Duration::from_millis(src.parse("CALLHUB_TICK_MILLIS", 200)?),
            login_rate_per_ip: src.parse("CALLHUB_LOGIN_RATE_PER_IP", 30)?,
            login_failures_per_account: src.parse("CALLHUB_LOGIN_FAILURES_PER_ACCOUNT", 5)?,
            guest_failures_per_ip: src.parse("CALLHUB_GUEST_FAILURES_PER_IP", 10)?,
            delivery,
            max_call_contacts: src.parse(
                "CALLHUB_MAX_CALL_CONTACTS",
                callhub_core::rules::DEFAULT_MAX_CONTACTS,
            )?,
            invites_per_hour: src.parse("CALLHUB_INVITES_PER_HOUR", 1000)?,
            request_read_timeout: src.secs("CALLHUB_REQUEST_READ_TIMEOUT_SECS", 10)?,
            connections_per_ip: src.parse("CALLHUB_CONNECTIONS_PER_IP", 1000)?,
            gauge_refresh: Duration::from_millis(src.parse("CALLHUB_GAUGE_REFRESH_MILLIS", 5000)?),
            log_format: src.parse("CALLHUB_LOG_FORMAT", LogFormat::Text)?,
            nats_url: src.get("CALLHUB_NATS_URL"),
            nats_prefix: src
                .get("CALLHUB_NATS_PREFIX")
                .unwrap_or_else(|| "callhub".into()),
            shutdown_deadline: src.secs("CALLHUB_SHUTDOWN_SECS", 30)?,
            sfu_udp: src.parse("CALLHUB_SFU_UDP", SocketAddr::new(listen.ip(), 50000))?,
            sfu_public_ip: src
                .get("CALLHUB_SFU_PUBLIC_IP")
                .map(|ip| {
                    ip.parse()
                        .map_err(|e| anyhow::anyhow!("CALLHUB_SFU_PUBLIC_IP={ip:?}: {e}"))
                })
                .transpose()?,
            sfu_audible: src.parse("CALLHUB_SFU_AUDIBLE", callhub_sfu::AUDIBLE)?,
        };
        if cfg.max_call_contacts < 2 || cfg.invites_per_hour == 0 || cfg.connections_per_ip == 0 {
            bail!(
                "CALLHUB_MAX_CALL_CONTACTS must be at least 2, CALLHUB_INVITES_PER_HOUR and CALLHUB_CONNECTIONS_PER_IP at least 1"
            );
        }
        if cfg.request_read_timeout.is_zero() {
            bail!("CALLHUB_REQUEST_READ_TIMEOUT_SECS must be at least 1");
        }
        if cfg.gauge_refresh.is_zero() {
            bail!("CALLHUB_GAUGE_REFRESH_MILLIS must be at least 1");
        }
        if cfg.nats_prefix.is_empty()
            || !cfg
                .nats_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bail!("CALLHUB_NATS_PREFIX must be letters, digits, - and _ (one NATS subject token)");
        }
        if cfg.pool.max_connections == 0 {
            bail!("CALLHUB_DB_MAX_CONNECTIONS must be at least 1");
        }
        Ok(cfg)
    }

    /// The SQLite file, when the database is one.
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        callhub_store::sqlite_path(&self.database_url)
            .filter(|p| !p.as_os_str().is_empty() && p.as_os_str() != ":memory:")
            .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.to_owned()))
    }

    /// The database as an operator looks for it: SQLite's absolute path, or the
    /// PostgreSQL URL without its password.
    pub fn database_shown(&self) -> String {
        if let Some(file) = self.sqlite_file() {
            return format!("SQLite {}", file.display());
        }
        let url = &self.database_url;
        match (url.split_once("://"), url.rsplit_once('@')) {
            (Some((scheme, rest)), Some((_, host))) => {
                let user = rest.split('@').next().unwrap_or("");
                let user = user.split(':').next().unwrap_or(user);
                format!("{scheme}://{user}@{host}")
            }
            _ => url.clone(),
        }
    }

    /// A configuration for tests and embedding: defaults, on the given database.
    pub fn with_database(database_url: &str, data_dir: PathBuf) -> Config {
        let mut cfg = Self::from_source(&Source {
            file: HashMap::new(),
        })
        .expect("defaults are valid");
        cfg.database_url = database_url.to_owned();
        cfg.data_dir = data_dir;
        // Embedded servers (tests, benchmarks) run side by side: each SFU on a free port.
        cfg.sfu_udp = SocketAddr::new(cfg.listen.ip(), 0);
        cfg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_sender_is_at_the_public_host() {
        assert_eq!(
            public_host("https://calls.example.org/base"),
            "calls.example.org"
        );
        assert_eq!(public_host("http://127.0.0.1:8080"), "127.0.0.1");
        assert_eq!(public_host("http://u:p@[::1]:80/"), "::1");
    }

    #[test]
    fn logged_database_urls_carry_no_password() {
        assert_eq!(
            redacted("postgres://callhub:s3cret@db.example.org:5432/callhub?sslmode=require"),
            "postgres://callhub@db.example.org:5432/callhub?sslmode=require"
        );
        assert_eq!(
            redacted("sqlite://data/callhub.db"),
            "sqlite://data/callhub.db"
        );
        assert_eq!(redacted("postgres://db/x"), "postgres://db/x");
    }
}
