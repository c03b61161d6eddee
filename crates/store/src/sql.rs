//! The `Store` on SQL, one implementation for SQLite and PostgreSQL through sqlx's
//! `Any` driver. Where the two differ (locking, transaction start) `Dialect` says.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use callhub_core::text::{Domain, Email, PhoneNumber, TeamName, UserId};
use callhub_core::{
    Call, CallStatus, Contact, ContactOrigin, ContactSpec, Delivery, Event, Team, Transition,
    UserDbId, UserInfo, deliveries, notifications,
};
use chrono::{DateTime, Utc};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyConnection, AnyPool, ConnectOptions, Connection, Executor, Row};
use uuid::Uuid;

use crate::db::{Cells, Db, Val};
use crate::readers::Readers;
use crate::writer::{Updated, Writer};
use crate::*;

/// The columns `call_from_row` reads, in its order.
macro_rules! call_fields {
    () => {
        "id, call_id, domain, title, reason, call_type, status, anonymous_join_allowed, inform_others_directly, \
         planned_at, created_at, started_at, ended_at, broker_user_id, ring_pending_at, teams, guest_token_hash, version"
    };
}

macro_rules! call_select {
    () => {
        concat!("SELECT ", call_fields!(), " FROM calls")
    };
}

/// The columns `contact_from_row` reads, in its order.
macro_rules! contact_fields {
    () => {
        "contact_id, origin, display_name, domain, email, phone_number, user_db_id, user_id, ringing_since"
    };
}

/// The columns `event_from_row` reads, in its order.
macro_rules! event_fields {
    () => {
        "id, kind, at, contact_id"
    };
}

/// PostgreSQL: a call with its contacts and events in one query (three were three
/// statements' work for the server, most of it per statement, and three round
/// trips). Contacts and events come as JSON arrays of rows, in the columns
/// `contact_from_row` and `event_from_row` read; `whole_call_from_row` reads it.
macro_rules! call_whole {
    () => {
        concat!(
            "SELECT ",
            call_fields!(),
            ", CAST((SELECT COALESCE(json_agg(json_build_array(",
            contact_fields!(),
            ") ORDER BY contact_id), '[]') FROM call_contacts WHERE call_pk = calls.id) AS TEXT), \
             CAST((SELECT COALESCE(json_agg(json_build_array(",
            event_fields!(),
            ") ORDER BY id), '[]') FROM call_events WHERE call_pk = calls.id) AS TEXT) FROM calls"
        )
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// When an SQLite commit is on disk (`CALLHUB_DB_SYNCHRONOUS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// The WAL is synced at checkpoints: a commit survives the process's death
    /// (`kill -9`) at once, and a power cut or OS crash only once the next
    /// checkpoint has run; the file is never corrupted.
    #[default]
    Normal,
    /// The WAL is synced at every commit: a commit survives a power cut too.
    Full,
}

impl FromStr for Synchronous {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "normal" => Ok(Synchronous::Normal),
            "full" => Ok(Synchronous::Full),
            _ => Err("expected normal or full".into()),
        }
    }
}

/// Connection-pool settings (`CALLHUB_DB_*`).
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// SQLite only: when a commit is durable.
    pub synchronous: Synchronous,
    pub max_connections: u32,
    /// How long a request waits for a free connection before it fails with 503.
    pub acquire_timeout: Duration,
    /// PostgreSQL's `statement_timeout`; SQLite's busy timeout.
    pub statement_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            synchronous: Synchronous::Normal,
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
        }
    }
}

/// The store on SQLite (a writer thread for calls, a writer connection for the
/// rest, several readers, WAL) or PostgreSQL
/// (one pool; a call is locked with `SELECT … FOR UPDATE` while it changes).
#[derive(Clone)]
pub struct SqlStore {
    dialect: Dialect,
    write: AnyPool,
    read: AnyPool,
    ring_timeout: chrono::Duration,
    /// How to open more connections: `background` makes pools of its own.
    options: AnyConnectOptions,
    settings: PoolSettings,
    directory: std::sync::Arc<crate::directory::DirectoryCache>,
    /// SQLite: the thread that writes call transitions (`writer.rs`).
    pub(crate) writer: Option<std::sync::Arc<Writer>>,
    /// SQLite: the connections the hot reads run on, inline (`readers.rs`).
    readers: Option<std::sync::Arc<Readers>>,
}

/// Runs a read (`$read`, a future over `$db: &mut impl Db`): on SQLite inline on
/// one of the store's rusqlite readers, elsewhere on a connection of its pool.
macro_rules! read {
    ($store:expr, |$db:ident| $read:expr) => {
        match &$store.readers {
            Some(readers) => readers.with(|$db| crate::db::at_once($read)),
            None => {
                let mut conn = $store.read.acquire().await.map_err(db_error)?;
                let $db = &mut *conn;
                $read.await
            }
        }
    };
}

pub(crate) fn db_error(e: sqlx::Error) -> StoreError {
    match &e {
        // A connection cut mid-query can also surface as a protocol error (the
        // stream ended inside a message) or, on SQLite, as its worker gone.
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
        sqlx::Error::Database(d) => {
            // 57014: statement timeout; 57P01..03: admin shutdown / cannot connect now; 08*: connection.
            let code = d.code().unwrap_or_default();
            if code == "57014"
                || code.starts_with("57P")
                || code.starts_with("08")
                || code == "5"
                || code == "6"
            {
                StoreError::Unavailable(e.to_string())
            } else if d.is_unique_violation() {
                StoreError::Conflict(d.message().to_owned())
            } else {
                StoreError::Database(e)
            }
        }
        _ => StoreError::Database(e),
    }
}

pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn opt_time(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.map(time)
}

fn parse<T: FromStr>(s: &str) -> Result<T> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("unknown stored name {s:?}")))
}

fn roles_text(roles: &[callhub_core::Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

macro_rules! user_columns {
    () => {
        "u.id, u.user_id, d.name, u.display_name, u.email, u.phone_number, u.roles"
    };
}
const USER_COLUMNS: &str = user_columns!();

macro_rules! user_select {
    () => {
        concat!(
            "SELECT ",
            user_columns!(),
            " FROM users u JOIN domains d ON d.id = u.domain_id"
        )
    };
}

const USER_BY_ID: &str = concat!(user_select!(), " WHERE u.id = $1");
const USER_BY_NAME: &str = concat!(user_select!(), " WHERE d.name = $1 AND u.user_id = $2");
/// The account of a live session: its refresh-token family is not revoked.
const SESSION_USER: &str = concat!(
    user_select!(),
    " JOIN token_families f ON f.user_db_id = u.id WHERE u.id = $1 AND f.id = $2 AND f.revoked_at IS NULL"
);

/// The one account `sql` (a `user_select!` query) finds, if any.
async fn one_user<D: Db>(db: &mut D, sql: &str, args: &[Val]) -> Result<Option<UserInfo>> {
    Ok(db.rows(sql, args, user_from_row).await?.pop())
}

fn user_from_row(r: &dyn Cells) -> Result<UserInfo> {
    let roles = r.req_text(6)?;
    Ok(UserInfo {
        user_db_id: r.req_int(0)?,
        user_id: r.req_text(1)?,
        domain: r.req_text(2)?,
        display_name: r.req_text(3)?,
        email: r.text(4)?,
        phone_number: r.text(5)?,
        roles: roles
            .split(',')
            .filter(|s| !s.is_empty())
            .map(parse)
            .collect::<Result<_>>()?,
    })
}

async fn sqlite_pool(
    options: &AnyConnectOptions,
    settings: &PoolSettings,
    max: u32,
) -> Result<AnyPool> {
    let busy = settings.statement_timeout.as_millis();
    let synchronous = match settings.synchronous {
        Synchronous::Normal => "PRAGMA synchronous = NORMAL",
        Synchronous::Full => "PRAGMA synchronous = FULL",
    };
    AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(settings.acquire_timeout)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                // WAL: readers never block the writer. synchronous=NORMAL: a commit
                // is in the WAL file before it returns, so kill -9 loses nothing
                // answered; only a power cut may lose the last commits. FULL
                // syncs the WAL at every commit (see `Synchronous`).
                conn.execute("PRAGMA journal_mode = WAL").await?;
                conn.execute(synchronous).await?;
                conn.execute("PRAGMA foreign_keys = ON").await?;
                conn.execute(sqlx::AssertSqlSafe(format!("PRAGMA busy_timeout = {busy}")))
                    .await?;
                Ok(())
            })
        })
        .connect_with(options.clone())
        .await
        .map_err(db_error)
}

/// A PostgreSQL pool that connects on demand (`SET statement_timeout` on each).
fn postgres_pool(options: &AnyConnectOptions, settings: &PoolSettings, max: u32) -> AnyPool {
    let timeout = settings.statement_timeout.as_millis();
    AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(settings.acquire_timeout)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                conn.execute(sqlx::AssertSqlSafe(format!(
                    "SET statement_timeout = {timeout}"
                )))
                .await?;
                Ok(())
            })
        })
        .connect_lazy_with(options.clone())
}

/// The file of a `sqlite://path` (or `sqlite:path`) URL; `None` for other databases.
pub fn sqlite_path(url: &str) -> Option<&Path> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    Some(Path::new(rest.split('?').next().unwrap_or_default()))
}

/// `host:port` of a PostgreSQL URL, as an operator would look it up.
fn server_address(options: &AnyConnectOptions) -> String {
    let url = &options.database_url;
    let host = url.host_str().unwrap_or("localhost");
    format!("{host}:{}", url.port().unwrap_or(5432))
}

/// Why a connection could not be made, in an operator's words.
fn cause(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
            std::io::ErrorKind::TimedOut => "connection timed out".into(),
            _ => io.to_string(),
        },
        sqlx::Error::Database(d) => d.message().to_owned(),
        other => other.to_string(),
    }
}

impl SqlStore {
    /// Opens (creating where needed) and migrates the database at `url`:
    /// `sqlite://path/to/file.db` or `postgres://…`.
    pub async fn connect(
        url: &str,
        settings: &PoolSettings,
        ring_timeout: chrono::Duration,
    ) -> Result<SqlStore> {
        sqlx::any::install_default_drivers();
        let store = if url.starts_with("sqlite:") {
            Self::connect_sqlite(url, settings).await?
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Self::connect_postgres(url, settings).await?
        } else {
            return Err(StoreError::Unavailable(format!(
                "unsupported database URL {url:?}: use sqlite://… or postgres://…"
            )));
        };
        let store = SqlStore {
            ring_timeout,
            ..store
        };
        migrate::run(&store.write, store.dialect).await?;
        let (writer, readers) = match sqlite_path(url) {
            Some(path) => (
                Some(std::sync::Arc::new(Writer::start(
                    path,
                    settings,
                    ring_timeout,
                )?)),
                Some(std::sync::Arc::new(Readers::open(
                    path,
                    settings,
                    settings.max_connections.clamp(1, 8) as usize,
                )?)),
            ),
            None => (None, None),
        };
        Ok(SqlStore {
            writer,
            readers,
            ..store
        })
    }

    /// Brings the schema of the database at `url` up to migration `last` only, and
    /// no further: a test of a migration writes rows in the schema before it.
    #[doc(hidden)]
    pub async fn migrate_until(url: &str, last: i64) -> Result<()> {
        sqlx::any::install_default_drivers();
        let store = if url.starts_with("sqlite:") {
            Self::connect_sqlite(url, &PoolSettings::default()).await?
        } else {
            Self::connect_postgres(url, &PoolSettings::default()).await?
        };
        migrate::run_until(&store.write, store.dialect, last).await
    }

    async fn connect_sqlite(url: &str, settings: &PoolSettings) -> Result<SqlStore> {
        crate::writer::configure_sqlite();
        let path = sqlite_path(url).unwrap_or(Path::new(""));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot create data directory {}: {e}",
                    dir.display()
                ))
            })?;
        }
        let url = if url.contains('?') {
            url.to_owned()
        } else {
            format!("{url}?mode=rwc")
        };
        let options = AnyConnectOptions::from_str(&url).map_err(db_error)?;
        // Call transitions go to the writer thread (`writer.rs`, started after the
        // migrations); the other writes share one sqlx connection. The two take
        // the file's lock with BEGIN IMMEDIATE (never a read upgraded to a write,
        // which SQLite would refuse at once) and wait for each other up to the
        // busy timeout.
        let write = sqlite_pool(&options, settings, 1).await?;
        let read = sqlite_pool(&options, settings, settings.max_connections.clamp(1, 8)).await?;
        Ok(SqlStore {
            dialect: Dialect::Sqlite,
            write,
            read,
            ring_timeout: chrono::Duration::zero(),
            options,
            settings: settings.clone(),
            directory: Default::default(),
            writer: None,
            readers: None,
        })
    }

    async fn connect_postgres(url: &str, settings: &PoolSettings) -> Result<SqlStore> {
        let options = AnyConnectOptions::from_str(url).map_err(db_error)?;
        let pool = postgres_pool(&options, settings, settings.max_connections);
        // Fail at start when the server is not there, rather than at the first request:
        // one attempt, whose cause is named (the pool would retry until its timeout and
        // report only that it timed out).
        let at = server_address(&options);
        match tokio::time::timeout(settings.acquire_timeout, options.connect()).await {
            Err(_) => {
                return Err(StoreError::Unavailable(format!(
                    "no answer within {} s at {at}",
                    settings.acquire_timeout.as_secs()
                )));
            }
            Ok(Err(e)) => return Err(StoreError::Unavailable(format!("{} at {at}", cause(&e)))),
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
            }
        }
        Ok(SqlStore {
            dialect: Dialect::Postgres,
            write: pool.clone(),
            read: pool,
            ring_timeout: chrono::Duration::zero(),
            options,
            settings: settings.clone(),
            directory: Default::default(),
            writer: None,
            readers: None,
        })
    }

    /// The same database on connections of its own, for background work (ring
    /// timeouts, planned starts, the outbox): requests that hold every pooled
    /// connection cannot starve it. SQLite keeps its one writer (the file has one
    /// anyway) and gets readers of its own.
    pub async fn background(&self, max_connections: u32) -> Result<SqlStore> {
        let max = max_connections.max(1);
        let (write, read) = match self.dialect {
            Dialect::Sqlite => (
                self.write.clone(),
                sqlite_pool(&self.options, &self.settings, max).await?,
            ),
            Dialect::Postgres => {
                let pool = postgres_pool(&self.options, &self.settings, max);
                (pool.clone(), pool)
            }
        };
        Ok(SqlStore {
            write,
            read,
            ..self.clone()
        })
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub async fn close(&self) {
        if let Some(writer) = &self.writer {
            writer.close().await;
        }
        self.write.close().await;
        self.read.close().await;
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        match self.dialect {
            Dialect::Sqlite => self
                .write
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(db_error),
            Dialect::Postgres => self.write.begin().await.map_err(db_error),
        }
    }

    async fn domain_id(conn: &mut AnyConnection, name: &str) -> Result<i64> {
        sqlx::query("INSERT INTO domains (name) VALUES ($1) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
        sqlx::query_scalar("SELECT id FROM domains WHERE name = $1")
            .bind(name)
            .fetch_one(&mut *conn)
            .await
            .map_err(db_error)
    }
}

/// Loads a call with its contacts and events. `lock`: PostgreSQL's row lock, held
/// while the call changes (SQLite's writer is alone anyway).
pub(crate) async fn load_call<D: Db>(
    db: &mut D,
    dialect: Dialect,
    call_id: Uuid,
    lock: bool,
) -> Result<Option<Call>> {
    let id = [Val::Text(Some(call_id.to_string()))];
    if dialect == Dialect::Postgres {
        if lock {
            // Its own statement: a statement's snapshot is taken before it waits for
            // a lock, so a read in the same statement would miss what the holder of
            // the lock wrote (found by the test of twenty answers at once).
            db.exec("SELECT 1 FROM calls WHERE call_id = $1 FOR UPDATE", &id)
                .await?;
        }
        let sql = concat!(call_whole!(), " WHERE call_id = $1");
        return Ok(db.rows(sql, &id, whole_call_from_row).await?.pop());
    }
    let sql = concat!(call_select!(), " WHERE call_id = $1");
    let Some(mut call) = db.rows(sql, &id, call_from_row).await?.pop() else {
        return Ok(None);
    };
    fill_call(db, &mut call).await?;
    Ok(Some(call))
}

/// A call's `version` (None: no such call), one lookup by key.
pub(crate) async fn load_version<D: Db>(db: &mut D, call_id: Uuid) -> Result<Option<i64>> {
    let id = [Val::Text(Some(call_id.to_string()))];
    let version = db
        .rows("SELECT version FROM calls WHERE call_id = $1", &id, |r| {
            r.req_int(0)
        })
        .await?;
    Ok(version.into_iter().next())
}

/// The columns a new call's row is written with, in `call_values`' order.
macro_rules! call_columns {
    () => {
        "call_id, domain, title, reason, call_type, status, anonymous_join_allowed, \
         inform_others_directly, planned_at, created_at, started_at, ended_at, broker_user_id, \
         ring_pending_at, next_deadline, teams, guest_token_hash"
    };
}
pub(crate) use call_columns;

const INSERT_CALL: &str = concat!(
    "INSERT INTO calls (",
    call_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) RETURNING id"
);

pub(crate) const CONTACT_COLUMNS: &str = "call_pk, contact_id, origin, display_name, domain, email, phone_number, \
     user_db_id, user_id, ringing_since, joined";
pub(crate) const EVENT_COLUMNS: &str = "call_pk, kind, at, contact_id";
pub(crate) const DELIVERY_COLUMNS: &str = "call_pk, channel, contact_id, event_id, webhook_id, recipient, status, \
     created_at, next_attempt_at";

/// A new call's row, in `call_columns!()` order.
pub(crate) fn call_values(call: &Call, ring_timeout: chrono::Duration) -> Result<Vec<Val>> {
    let at = |t: Option<DateTime<Utc>>| Val::Int(t.map(ms));
    Ok(vec![
        Val::Text(Some(call.call_id.to_string())),
        Val::text(&call.domain),
        Val::text(&call.title),
        Val::text(call.reason.as_str()),
        Val::text(call.call_type.as_str()),
        Val::text(call.status.as_str()),
        Val::Int(Some(i64::from(call.anonymous_join_allowed))),
        Val::Int(Some(i64::from(call.inform_others_directly))),
        at(call.planned_at),
        at(Some(call.created_at)),
        at(call.started_at),
        at(call.ended_at),
        Val::Int(call.broker),
        at(call.ring_pending_at),
        Val::Int(call.next_deadline(ring_timeout).map(ms)),
        Val::Text(Some(teams_text(call)?)),
        Val::Text(call.guest_token_hash.clone()),
    ])
}

fn teams_text(call: &Call) -> Result<String> {
    serde_json::to_string(&call.teams).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// What `UPDATE_CALL` writes of a changed call (`$1` its id): the fields a
/// transition can change. Every change of an existing call is written so, and
/// its version counts them.
pub(crate) fn call_update_values(call: &Call, ring_timeout: chrono::Duration) -> Result<Vec<Val>> {
    let at = |t: Option<DateTime<Utc>>| Val::Int(t.map(ms));
    Ok(vec![
        Val::Int(Some(call.id)),
        Val::text(call.status.as_str()),
        at(call.started_at),
        at(call.ended_at),
        at(call.ring_pending_at),
        Val::Int(call.next_deadline(ring_timeout).map(ms)),
        Val::Text(Some(teams_text(call)?)),
    ])
}

/// The contacts `old` already had whose ringing, origin or presence in the call
/// changed, each as `UPDATE_CONTACT`'s row: the call's id, the contact's, its
/// ringing since, its origin, and whether it is joined.
pub(crate) fn changed_contact_rows(old: &Call, call: &Call) -> Vec<Vec<Val>> {
    let was_joined = old.joined();
    let joined = call.joined();
    old.contacts
        .iter()
        .zip(&call.contacts)
        .filter_map(|(was, c)| {
            let now_in = joined.contains(&c.id);
            (was.ringing_since != c.ringing_since
                || was.origin != c.origin
                || was_joined.contains(&c.id) != now_in)
                .then(|| {
                    vec![
                        Val::Int(Some(call.id)),
                        Val::Int(Some(c.id)),
                        Val::Int(c.ringing_since.map(ms)),
                        Val::text(c.origin.as_str()),
                        Val::Int(Some(i64::from(now_in))),
                    ]
                })
        })
        .collect()
}

/// The rows of the contacts from `from` on, in `CONTACT_COLUMNS` order.
pub(crate) fn contact_rows(call: &Call, from: usize) -> Vec<Vec<Val>> {
    let joined = call.joined();
    call.contacts[from..]
        .iter()
        .map(|c| {
            let s = &c.spec;
            vec![
                Val::Int(Some(call.id)),
                Val::Int(Some(c.id)),
                Val::text(c.origin.as_str()),
                Val::Text(s.display_name.clone()),
                Val::Text(s.domain.clone()),
                Val::Text(s.email.clone()),
                Val::Text(s.phone_number.clone()),
                Val::Int(s.user_db_id),
                Val::Text(s.user_id.clone()),
                Val::Int(c.ringing_since.map(ms)),
                Val::Int(Some(i64::from(joined.contains(&c.id)))),
            ]
        })
        .collect()
}

/// The rows of the events from `from` on, in `EVENT_COLUMNS` order.
pub(crate) fn event_rows(call: &Call, from: usize) -> Vec<Vec<Val>> {
    call.events[from..]
        .iter()
        .map(|e| {
            vec![
                Val::Int(Some(call.id)),
                Val::text(e.kind.as_str()),
                Val::Int(Some(ms(e.at))),
                Val::Int(Some(e.contact)),
            ]
        })
        .collect()
}

/// The users the transition rang (their pop-up says whether they are busy).
pub(crate) fn rang_users(t: &Transition) -> Vec<UserDbId> {
    t.outcome
        .rang
        .iter()
        .filter_map(|&id| t.call.contact(id).user_db_id())
        .collect()
}

pub(crate) const UPDATE_CALL: &str = "UPDATE calls SET status = $2, started_at = $3, ended_at = $4, ring_pending_at = $5, \
     next_deadline = $6, teams = $7, version = version + 1 WHERE id = $1";

const UPDATE_CONTACT: &str = "UPDATE call_contacts SET ringing_since = $3, origin = $4, joined = $5 \
     WHERE call_pk = $1 AND contact_id = $2";

/// Writes what changed from `old` (contacts and events past its length, every
/// contact's ringing, the call's own fields), the messages it sends, and its
/// outbox deliveries; answers the messages and how many deliveries. SQLite's
/// write, statement by statement (each a function call on its writer thread);
/// PostgreSQL's is `pg`'s, where each statement is a round trip.
pub(crate) async fn save<D: Db>(
    db: &mut D,
    ring_timeout: chrono::Duration,
    old: Option<&Call>,
    t: &mut Transition,
) -> Result<(Vec<Message>, usize)> {
    let call = &mut t.call;
    match old {
        None => {
            let args = call_values(call, ring_timeout)?;
            call.id = db
                .rows(INSERT_CALL, &args, |r| r.req_int(0))
                .await?
                .pop()
                .ok_or_else(|| StoreError::Corrupt("INSERT … RETURNING gave no id".into()))?;
        }
        Some(old) => {
            call.version = old.version + 1;
            db.exec(UPDATE_CALL, &call_update_values(call, ring_timeout)?)
                .await?;
        }
    }
    let old_contacts = old.map_or(0, |c| c.contacts.len());
    insert_rows(
        db,
        &format!("INSERT INTO call_contacts ({CONTACT_COLUMNS})"),
        "",
        contact_rows(call, old_contacts),
    )
    .await?;
    if let Some(old) = old {
        for args in changed_contact_rows(old, call) {
            db.exec(UPDATE_CONTACT, &args).await?;
        }
    }
    let old_events = old.map_or(0, |c| c.events.len());
    // One statement for the new events. Ids grow in the order of the rows on both
    // backends (a sequence is drawn row by row), so the sorted ids are theirs in order.
    let mut ids = insert_rows(
        db,
        &format!("INSERT INTO call_events ({EVENT_COLUMNS})"),
        " RETURNING id",
        event_rows(call, old_events),
    )
    .await?;
    ids.sort_unstable();
    if ids.len() != call.events.len() - old_events {
        return Err(StoreError::Corrupt("an event was not given an id".into()));
    }
    for (e, id) in call.events[old_events..].iter_mut().zip(ids) {
        e.id = id;
    }
    // A callee already in another call still rings; their pop-up says the call waits.
    let rang = rang_users(t);
    let busy = busy_in_other_calls(db, &rang, t.call.id).await?;
    let messages = write_messages(db, notifications(t, old_events, &busy)).await?;
    let deliveries = write_deliveries(db, t, old_events).await?;
    Ok((messages, deliveries))
}

/// The outbox rows of a transition: its invitations' rows (an invitation per
/// contact and channel, in `DELIVERY_COLUMNS` order) and the ids of the events to
/// deliver to each live webhook of the call's domain.
pub(crate) fn planned_deliveries(
    t: &Transition,
    old_events: usize,
    now: i64,
) -> (Vec<Vec<Val>>, Vec<i64>) {
    let call = &t.call;
    let mut invitations = Vec::new();
    let mut events = Vec::new();
    for d in deliveries(t, old_events) {
        match d {
            Delivery::Invitation {
                contact,
                channel,
                to,
            } => invitations.push(vec![
                Val::Int(Some(call.id)),
                Val::text(channel.as_str()),
                Val::Int(Some(contact)),
                Val::Int(None),
                Val::Int(None),
                Val::Text(Some(to)),
                Val::text("pending"),
                Val::Int(Some(now)),
                Val::Int(Some(now)),
            ]),
            Delivery::Event { index } => events.push(call.events[index].id),
        }
    }
    (invitations, events)
}

/// Writes the outbox rows of a transition: an invitation per contact and channel,
/// and each new event once per live webhook of the call's domain.
async fn write_deliveries<D: Db>(db: &mut D, t: &Transition, old_events: usize) -> Result<usize> {
    let call = &t.call;
    let now = Utc::now().timestamp_millis();
    let (invitations, events) = planned_deliveries(t, old_events, now);
    let mut written = invitations.len() as u64;
    insert_rows(
        db,
        &format!("INSERT INTO deliveries ({DELIVERY_COLUMNS})"),
        "",
        invitations,
    )
    .await?;
    if !events.is_empty() {
        // Each event once per live webhook of the domain, in one statement, in event
        // order: the worker keeps a webhook's deliveries of a call in id order.
        let sql = format!(
            "INSERT INTO deliveries ({DELIVERY_COLUMNS}) \
             SELECT CAST($1 AS BIGINT), 'webhook', NULL, e.id, w.id, w.url, 'pending', CAST($2 AS BIGINT), \
             CAST($2 AS BIGINT) FROM call_events e, webhooks w \
             WHERE e.call_pk = $1 AND w.domain = $3 AND w.deleted_at IS NULL AND e.id IN ({}) ORDER BY e.id, w.id",
            placeholders(4, events.len())
        );
        let mut args = vec![
            Val::Int(Some(call.id)),
            Val::Int(Some(now)),
            Val::text(&call.domain),
        ];
        args.extend(events.into_iter().map(|id| Val::Int(Some(id))));
        written += db.exec(&sql, &args).await?;
    }
    Ok(written as usize)
}

/// Inserts rows with one statement per hundred (each statement is a round trip to
/// the database, and round trips bound a write); answers the first column of what
/// `tail` (` RETURNING …` or nothing) returns.
async fn insert_rows<D: Db>(
    db: &mut D,
    head: &str,
    tail: &str,
    rows: Vec<Vec<Val>>,
) -> Result<Vec<i64>> {
    let mut out = Vec::new();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        // Moved, not cloned: a message body's text is kilobytes.
        let chunk: Vec<Vec<Val>> = rows.by_ref().take(100).collect();
        let values: usize = chunk.iter().map(Vec::len).sum();
        let mut sql = String::with_capacity(head.len() + tail.len() + 16 + 7 * values);
        sql.push_str(head);
        sql.push_str(" VALUES ");
        let mut n = 0;
        for (i, row) in chunk.iter().enumerate() {
            sql.push_str(if i == 0 { "(" } else { ", (" });
            push_placeholders(&mut sql, n + 1, row.len());
            n += row.len();
            sql.push(')');
        }
        sql.push_str(tail);
        let args: Vec<Val> = chunk.into_iter().flatten().collect();
        out.extend(db.rows(&sql, &args, |r| r.req_int(0)).await?);
    }
    Ok(out)
}

const ENTRY_COLUMNS: &str = "d.id, c.call_id, d.channel, d.contact_id, d.event_id, d.webhook_id, d.recipient, d.status, \
     d.attempts, d.created_at, d.next_attempt_at, d.done_at, d.last_error";

fn entry_from_row(r: &dyn Cells) -> Result<OutboxEntry> {
    let call_id = r.req_text(1)?;
    let status = r.req_text(7)?;
    Ok(OutboxEntry {
        id: r.req_int(0)?,
        call_id: call_id
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("call id {call_id:?}")))?,
        channel: parse(&r.req_text(2)?)?,
        contact: r.int(3)?,
        event_id: r.int(4)?,
        webhook_id: r.int(5)?,
        recipient: r.req_text(6)?,
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("delivery status {status:?}")))?,
        attempts: r.req_int(8)?,
        created_at: time(r.req_int(9)?),
        next_attempt_at: time(r.req_int(10)?),
        done_at: opt_time(r.int(11)?),
        last_error: r.text(12)?,
    })
}

/// Leases up to `limit` due deliveries until `lease_until` and answers them, in id
/// order: due, not leased, and (for a webhook) no earlier delivery of the same call
/// to the same webhook still pending, so events reach a receiver in their order.
/// Taken in the order they fell due, which the index of pending deliveries gives
/// (in id order SQLite read every delivery ever made, sent ones too, at every
/// claim). PostgreSQL: SKIP LOCKED lets workers on several nodes claim side by
/// side; SQLite has one writer, so the claim is atomic already.
async fn claim_deliveries<D: Db>(
    db: &mut D,
    dialect: Dialect,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<OutboxEntry>> {
    let pick = "UPDATE deliveries SET locked_until = $2, attempts = attempts + 1 WHERE id IN (\
         SELECT d.id FROM deliveries d WHERE d.status = 'pending' AND d.next_attempt_at <= $1 \
         AND (d.locked_until IS NULL OR d.locked_until <= $1) \
         AND NOT EXISTS (SELECT 1 FROM deliveries p WHERE p.call_pk = d.call_pk AND p.webhook_id = d.webhook_id \
         AND p.id < d.id AND p.status = 'pending') \
         ORDER BY d.next_attempt_at, d.id LIMIT $3";
    let args = [
        Val::Int(Some(ms(now))),
        Val::Int(Some(ms(lease_until))),
        Val::Int(Some(i64::from(limit))),
    ];
    if dialect == Dialect::Postgres {
        // One statement, its own transaction: the claim and the read of what it claimed.
        let claim = format!(
            "WITH d AS ({pick} FOR UPDATE SKIP LOCKED) RETURNING *) \
             SELECT {ENTRY_COLUMNS} FROM d JOIN calls c ON c.id = d.call_pk ORDER BY d.id"
        );
        return db.rows(&claim, &args, entry_from_row).await;
    }
    let ids = db
        .rows(&format!("{pick}) RETURNING id"), &args, |r| r.req_int(0))
        .await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // One read for all of them (`limit` is tens), not one per delivery.
    let read = format!(
        "SELECT {ENTRY_COLUMNS} FROM deliveries d JOIN calls c ON c.id = d.call_pk \
         WHERE d.id IN ({}) ORDER BY d.id",
        placeholders(1, ids.len())
    );
    let ids: Vec<Val> = ids.into_iter().map(|id| Val::Int(Some(id))).collect();
    db.rows(&read, &ids, entry_from_row).await
}

fn webhook_from_row(r: &AnyRow) -> Result<Webhook> {
    Ok(Webhook {
        id: r.try_get(0).map_err(db_error)?,
        domain: r.try_get(1).map_err(db_error)?,
        url: r.try_get(2).map_err(db_error)?,
        secret: r.try_get(3).map_err(db_error)?,
        created_at: time(r.try_get(4).map_err(db_error)?),
    })
}

/// Gives each message the next `seq` of its user and stores it. The counters of a
/// hundred users move in one statement. (SQLite: PostgreSQL writes messages in
/// `pg`'s one statement.)
async fn write_messages<D: Db>(
    db: &mut D,
    messages: Vec<(UserDbId, callhub_core::Notification)>,
) -> Result<Vec<Message>> {
    let mut users: Vec<UserDbId> = messages.iter().map(|(u, _)| *u).collect();
    users.sort_unstable();
    users.dedup();
    let mut next = std::collections::HashMap::new();
    for chunk in users.chunks(100) {
        // `$1` a user, `$2` how many messages they get, and so on.
        let cases: String = (0..chunk.len())
            .map(|i| format!(" WHEN ${} THEN CAST(${} AS BIGINT)", 2 * i + 1, 2 * i + 2))
            .collect();
        let ids = (0..chunk.len())
            .map(|i| format!("${}", 2 * i + 1))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "UPDATE users SET last_seq = last_seq + CASE id{cases} END WHERE id IN ({ids}) \
             RETURNING id, last_seq"
        );
        let mut args = Vec::with_capacity(2 * chunk.len());
        for &u in chunk {
            let n = messages.iter().filter(|(m, _)| *m == u).count() as i64;
            args.extend([Val::Int(Some(u)), Val::Int(Some(n))]);
        }
        for (u, last) in db
            .rows(&sql, &args, |r| Ok((r.req_int(0)?, r.req_int(1)?)))
            .await?
        {
            let n = messages.iter().filter(|(m, _)| *m == u).count() as i64;
            next.insert(u, last - n + 1);
        }
    }
    let now = Utc::now().timestamp_millis();
    // Each distinct body once; ids grow in the order of the rows, as events' do.
    let (bodies, which) = after_seqs(&messages)?;
    let mut body_ids = insert_rows(
        db,
        "INSERT INTO message_bodies (rest, created_at)",
        " RETURNING id",
        bodies
            .iter()
            .map(|b| vec![Val::text(b), Val::Int(Some(now))])
            .collect(),
    )
    .await?;
    body_ids.sort_unstable();
    if body_ids.len() != bodies.len() {
        return Err(StoreError::Corrupt(
            "a message body was not given an id".into(),
        ));
    }
    let mut out = Vec::with_capacity(messages.len());
    let mut rows = Vec::with_capacity(messages.len());
    for ((user, _), body) in messages.iter().zip(which) {
        let Some(seq) = next.get_mut(user) else {
            continue; // an account deleted since
        };
        rows.push(vec![
            Val::Int(Some(*user)),
            Val::Int(Some(*seq)),
            Val::Int(Some(body_ids[body])),
            Val::Int(Some(now)),
        ]);
        out.push(Message {
            user: *user,
            seq: *seq,
            body: with_seq(*seq, &bodies[body]),
        });
        *seq += 1;
    }
    insert_rows(
        db,
        "INSERT INTO user_messages (user_db_id, seq, body_id, created_at)",
        "",
        rows,
    )
    .await?;
    Ok(out)
}

/// `{"seq":N` and the rest of a message (`after_seq`). PostgreSQL's one-statement
/// insert of a call (crates/store/src/pg.rs) writes the same concatenation.
pub(crate) fn with_seq(seq: i64, rest: &str) -> String {
    format!("{{\"seq\":{seq}{rest}")
}

/// `after_seq` of the distinct notifications among `messages`, in order of first
/// use, each serialized once, and for each message the index of its own: a
/// transition's new events go alike to every member of the call, and its pop-up
/// to every callee (ten invitees: 32 messages, 3 or 4 distinct).
pub(crate) fn after_seqs(
    messages: &[(UserDbId, callhub_core::Notification)],
) -> Result<(Vec<String>, Vec<usize>)> {
    let mut notes: Vec<&callhub_core::Notification> = Vec::new();
    let mut texts = Vec::new();
    let mut which = Vec::with_capacity(messages.len());
    for (_, note) in messages {
        which.push(match notes.iter().rposition(|n| *n == note) {
            Some(i) => i,
            None => {
                texts.push(after_seq(note)?);
                notes.push(note);
                notes.len() - 1
            }
        });
    }
    Ok((texts, which))
}

/// What follows `{"seq":N` in a message: the notification's fields, each after a
/// comma, and the closing brace. Written straight to text: this runs on SQLite's
/// writer thread, once per message, and a `serde_json::Value` in between (a map
/// per object) cost more than the rest.
pub(crate) fn after_seq(note: &callhub_core::Notification) -> Result<String> {
    let mut json = serde_json::to_string(note).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    if !json.starts_with('{') {
        return Err(StoreError::Corrupt(format!(
            "a notification is not an object: {json}"
        )));
    }
    if json.starts_with("{}") {
        json.replace_range(..1, "");
    } else {
        json.replace_range(..1, ",");
    }
    Ok(json)
}

/// Tells every node's directory that an account or team was added.
async fn bump_directory<D: Db>(db: &mut D) -> Result<()> {
    db.exec(
        "UPDATE directory_changes SET version = version + 1 WHERE id = 1",
        &[],
    )
    .await?;
    Ok(())
}
/// `$first, $first+1, …` for `n` bound values of an `IN (…)` list.
fn placeholders(first: usize, n: usize) -> String {
    let mut s = String::with_capacity(5 * n);
    push_placeholders(&mut s, first, n);
    s
}

/// Appends `placeholders(first, n)` to `sql` (the writer builds a statement's text
/// for every transition: one string, not one per placeholder).
fn push_placeholders(sql: &mut String, first: usize, n: usize) {
    use std::fmt::Write;
    for i in first..first + n {
        if i > first {
            sql.push_str(", ");
        }
        let _ = write!(sql, "${i}");
    }
}

/// `SELECT user`, one row for each of the `n` users bound from `$first` on who is
/// joined in a call that has not ended (other than the call bound at `$except`):
/// who is busy. Each is settled by the first such call found, however many calls
/// they are joined in (a `DISTINCT` over all of them grew with the calls).
pub(crate) fn busy_select(first: usize, n: usize, except: Option<usize>) -> String {
    let values = (first..first + n)
        .map(|i| format!("(${i})"))
        .collect::<Vec<_>>()
        .join(", ");
    let except = except.map_or(String::new(), |e| format!(" AND cc.call_pk <> ${e}"));
    format!(
        "SELECT v.column1 FROM (VALUES {values}) v WHERE EXISTS (SELECT 1 FROM call_contacts cc \
         JOIN calls c ON c.id = cc.call_pk WHERE cc.user_db_id = v.column1 AND cc.joined = 1 \
         AND c.status <> 'Ended'{except})"
    )
}

/// Found accounts, each with whether it is among `busy`.
fn directory_entries(people: Vec<UserInfo>, busy: &[UserDbId]) -> Vec<DirectoryEntry> {
    people
        .into_iter()
        .map(|user| DirectoryEntry {
            busy: busy.contains(&user.user_db_id),
            user,
        })
        .collect()
}

/// Those of `users` joined in a live call other than `except` (a call's own pk).
pub(crate) async fn busy_in_other_calls<D: Db>(
    db: &mut D,
    users: &[UserDbId],
    except: i64,
) -> Result<Vec<UserDbId>> {
    let mut busy = Vec::new();
    for chunk in users.chunks(100) {
        let sql = busy_select(2, chunk.len(), Some(1));
        let mut args = vec![Val::Int(Some(except))];
        args.extend(chunk.iter().map(|&u| Val::Int(Some(u))));
        busy.extend(db.rows(&sql, &args, |r| r.req_int(0)).await?);
    }
    Ok(busy)
}

/// An attempt's row; `$1` its delivery.
macro_rules! insert_attempt {
    ($values:literal) => {
        concat!(
            "INSERT INTO delivery_attempts (delivery_id, attempt, started_at, finished_at, outcome, detail) VALUES ",
            $values
        )
    };
}

/// What comes of a delivery after an attempt: `$1` its id, then `$2`–`$5`.
macro_rules! update_delivery {
    () => {
        "UPDATE deliveries SET status = $2, next_attempt_at = COALESCE($3, next_attempt_at), \
         done_at = $4, locked_until = NULL, last_error = COALESCE($5, last_error) WHERE id = $1 AND status = 'pending'"
    };
}

const INSERT_ATTEMPT: &str = insert_attempt!("($1, $2, $3, $4, $5, $6)");

/// Both in one statement, its own transaction (PostgreSQL): the update's values
/// first (`$1`–`$5`), then the attempt's after the delivery's id (`$6`–`$10`).
const FINISH_DELIVERY: &str = concat!(
    "WITH attempt AS (",
    insert_attempt!("($1, $6, $7, $8, $9, $10)"),
    ") ",
    update_delivery!()
);

/// Records an attempt at delivery `id` and what comes next (done, or retried at a
/// time). SQLite, which has no `INSERT` inside `WITH`: two statements, in the
/// caller's transaction; PostgreSQL: one.
pub(crate) async fn finish_delivery<D: Db>(
    db: &mut D,
    dialect: Dialect,
    id: i64,
    attempt: &Attempt,
    result: &AttemptResult,
) -> Result<()> {
    let error = if attempt.outcome == "error" {
        attempt.detail.clone()
    } else {
        None
    };
    let (status, next, done) = match result {
        AttemptResult::Done(status) => (*status, None, Some(ms(attempt.finished_at))),
        AttemptResult::Retry(at) => (DeliveryStatus::Pending, Some(ms(*at)), None),
    };
    let mut args = vec![
        Val::Int(Some(id)),
        Val::text(status.as_str()),
        Val::Int(next),
        Val::Int(done),
        Val::Text(error),
    ];
    let attempt = [
        Val::Int(Some(attempt.attempt)),
        Val::Int(Some(ms(attempt.started_at))),
        Val::Int(Some(ms(attempt.finished_at))),
        Val::text(&attempt.outcome),
        Val::Text(attempt.detail.clone()),
    ];
    if dialect == Dialect::Postgres {
        args.extend(attempt);
        db.exec(FINISH_DELIVERY, &args).await?;
        return Ok(());
    }
    let mut attempt_args = vec![Val::Int(Some(id))];
    attempt_args.extend(attempt);
    db.exec(INSERT_ATTEMPT, &attempt_args).await?;
    db.exec(update_delivery!(), &args).await?;
    Ok(())
}

fn call_from_row(r: &dyn Cells) -> Result<Call> {
    let call_id = r.req_text(1)?;
    let teams = r.req_text(15)?;
    Ok(Call {
        id: r.req_int(0)?,
        call_id: call_id
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("call id {call_id:?}")))?,
        domain: r.req_text(2)?,
        title: r.req_text(3)?,
        reason: parse(&r.req_text(4)?)?,
        call_type: parse(&r.req_text(5)?)?,
        status: parse(&r.req_text(6)?)?,
        anonymous_join_allowed: r.req_int(7)? != 0,
        inform_others_directly: r.req_int(8)? != 0,
        planned_at: opt_time(r.int(9)?),
        created_at: time(r.req_int(10)?),
        started_at: opt_time(r.int(11)?),
        ended_at: opt_time(r.int(12)?),
        broker: r.int(13)?,
        ring_pending_at: opt_time(r.int(14)?),
        guest_token_hash: r.text(16)?,
        contacts: Vec::new(),
        teams: serde_json::from_str(&teams).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        events: Vec::new(),
        version: r.req_int(17)?,
    })
}

async fn fill_call<D: Db>(db: &mut D, call: &mut Call) -> Result<()> {
    let pk = [Val::Int(Some(call.id))];
    call.contacts = db
        .rows(
            concat!(
                "SELECT ",
                contact_fields!(),
                " FROM call_contacts WHERE call_pk = $1 ORDER BY contact_id"
            ),
            &pk,
            contact_from_row,
        )
        .await?;
    call.events = db
        .rows(
            concat!(
                "SELECT ",
                event_fields!(),
                " FROM call_events WHERE call_pk = $1 ORDER BY id"
            ),
            &pk,
            event_from_row,
        )
        .await?;
    check_contacts(call)
}

fn contact_from_row(r: &dyn Cells) -> Result<Contact> {
    Ok(Contact {
        id: r.req_int(0)?,
        origin: parse::<ContactOrigin>(&r.req_text(1)?)?,
        spec: ContactSpec {
            display_name: r.text(2)?,
            domain: r.text(3)?,
            email: r.text(4)?,
            phone_number: r.text(5)?,
            user_db_id: r.int(6)?,
            user_id: r.text(7)?,
        },
        ringing_since: opt_time(r.int(8)?),
    })
}

fn event_from_row(r: &dyn Cells) -> Result<Event> {
    Ok(Event {
        id: r.req_int(0)?,
        kind: parse(&r.req_text(1)?)?,
        at: time(r.req_int(2)?),
        contact: r.req_int(3)?,
    })
}

fn check_contacts(call: &Call) -> Result<()> {
    if call.contacts.is_empty()
        || call
            .contacts
            .iter()
            .enumerate()
            .any(|(i, c)| c.id != i as i64 + 1)
    {
        return Err(StoreError::Corrupt(format!(
            "contacts of call {} are not numbered 1..n",
            call.call_id
        )));
    }
    Ok(())
}

/// The call of a `call_whole!()` row, contacts and events with it.
fn whole_call_from_row(r: &dyn Cells) -> Result<Call> {
    let mut call = call_from_row(r)?;
    call.contacts = json_rows(&r.req_text(18)?, contact_from_row)?;
    call.events = json_rows(&r.req_text(19)?, event_from_row)?;
    check_contacts(&call)?;
    Ok(call)
}

/// Maps each row of a JSON array of rows (arrays of values).
fn json_rows<T>(json: &str, f: fn(&dyn Cells) -> Result<T>) -> Result<Vec<T>> {
    let rows: Vec<JsonRow> = serde_json::from_str(json)
        .map_err(|e| StoreError::Corrupt(format!("rows as JSON: {e}")))?;
    rows.iter().map(|r| f(r)).collect()
}

/// A row read from JSON: an array of numbers, strings and nulls.
#[derive(serde::Deserialize)]
struct JsonRow(Vec<serde_json::Value>);

impl Cells for JsonRow {
    fn int(&self, i: usize) -> Result<Option<i64>> {
        match self.0.get(i) {
            Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::Number(n)) if n.is_i64() => Ok(n.as_i64()),
            v => Err(StoreError::Corrupt(format!(
                "column {i} is not an integer: {v:?}"
            ))),
        }
    }
    fn text(&self, i: usize) -> Result<Option<String>> {
        match self.0.get(i) {
            Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            v => Err(StoreError::Corrupt(format!(
                "column {i} is not text: {v:?}"
            ))),
        }
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn health(&self) -> Result<()> {
        read!(self, |db| db.rows("SELECT 1", &[], |r| r.req_int(0))).map(drop)
    }

    async fn create_user(&self, user: NewUser) -> Result<UserInfo> {
        let mut tx = self.begin_write().await?;
        let domain = Self::domain_id(&mut tx, user.domain.as_str()).await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (domain_id, user_id, display_name, email, phone_number, roles, password_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(domain)
        .bind(user.user_id.as_str())
        .bind(user.display_name.as_str())
        .bind(user.email.as_ref().map(Email::as_str))
        .bind(user.phone_number.as_ref().map(PhoneNumber::as_str))
        .bind(roles_text(&user.roles))
        .bind(&user.password_hash)
        .bind(Utc::now().timestamp_millis())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| match db_error(e) {
            StoreError::Conflict(_) => {
                StoreError::Conflict(format!("user {:?} exists in domain {:?}", user.user_id, user.domain))
            }
            e => e,
        })?;
        bump_directory(&mut *tx).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(UserInfo {
            user_db_id: id,
            user_id: user.user_id.into(),
            domain: user.domain.into(),
            display_name: user.display_name.into(),
            email: user.email.map(String::from),
            phone_number: user.phone_number.map(String::from),
            roles: user.roles,
        })
    }

    async fn user(&self, id: UserDbId) -> Result<Option<UserInfo>> {
        let args = [Val::Int(Some(id))];
        read!(self, |db| one_user(db, USER_BY_ID, &args))
    }

    async fn session_user(&self, id: UserDbId, family: &str) -> Result<Option<UserInfo>> {
        let args = [Val::Int(Some(id)), Val::text(family)];
        read!(self, |db| one_user(db, SESSION_USER, &args))
    }

    async fn user_by_name(&self, domain: &Domain, user_id: &UserId) -> Result<Option<UserInfo>> {
        let args = [Val::text(domain.as_str()), Val::text(user_id.as_str())];
        read!(self, |db| one_user(db, USER_BY_NAME, &args))
    }

    async fn users_in(
        &self,
        domain: &str,
        ids: &[UserDbId],
        names: &[UserId],
    ) -> Result<Vec<UserInfo>> {
        let mut found = Vec::new();
        // Each chunk far below either database's limit on bound values.
        for chunk in ids.chunks(500) {
            // Users first, by key: joined the other way round, SQLite (without
            // statistics) walked the domain's every account to find the ten.
            let sql = format!(
                concat!(
                    "SELECT ",
                    user_columns!(),
                    " FROM users u CROSS JOIN domains d WHERE d.id = u.domain_id AND u.id IN ({}) AND d.name = $1"
                ),
                placeholders(2, chunk.len())
            );
            let mut args = vec![Val::text(domain)];
            args.extend(chunk.iter().map(|&id| Val::Int(Some(id))));
            found.extend(read!(self, |db| db.rows(&sql, &args, user_from_row))?);
        }
        for chunk in names.chunks(500) {
            let sql = format!(
                concat!(user_select!(), " WHERE d.name = $1 AND u.user_id IN ({})"),
                placeholders(2, chunk.len())
            );
            let mut args = vec![Val::text(domain)];
            args.extend(chunk.iter().map(|n| Val::text(n.as_str())));
            found.extend(read!(self, |db| db.rows(&sql, &args, user_from_row))?);
        }
        Ok(found)
    }

    async fn login_candidates(
        &self,
        user_id: &UserId,
        domain: Option<&Domain>,
    ) -> Result<Vec<(UserInfo, String)>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS}, u.password_hash FROM users u JOIN domains d ON d.id = u.domain_id \
             WHERE u.user_id = $1 AND ($2 IS NULL OR d.name = $2) ORDER BY u.id LIMIT 2"
        ));
        let rows = sqlx::query(sql)
            .bind(user_id.as_str())
            .bind(domain.map(Domain::as_str))
            .fetch_all(&self.read)
            .await
            .map_err(db_error)?;
        rows.iter()
            .map(|r| Ok((user_from_row(r)?, r.try_get(7).map_err(db_error)?)))
            .collect()
    }

    async fn create_team(
        &self,
        domain: &Domain,
        name: &TeamName,
        members: &[UserId],
    ) -> Result<(Team, Vec<UserInfo>)> {
        let mut tx = self.begin_write().await?;
        let domain_id = Self::domain_id(&mut tx, domain.as_str()).await?;
        let id: i64 =
            sqlx::query_scalar("INSERT INTO teams (domain_id, name) VALUES ($1, $2) RETURNING id")
                .bind(domain_id)
                .bind(name.as_str())
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| match db_error(e) {
                    StoreError::Conflict(_) => {
                        StoreError::Conflict(format!("team {name:?} exists in domain {domain:?}"))
                    }
                    e => e,
                })?;
        let mut unique: Vec<&UserId> = members.iter().collect();
        unique.sort();
        unique.dedup();
        for member in unique {
            let done = sqlx::query(
                "INSERT INTO team_members (team_id, user_db_id) \
                 SELECT $1, id FROM users WHERE domain_id = $2 AND user_id = $3 ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(domain_id)
            .bind(member.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            if done.rows_affected() == 0 {
                return Err(StoreError::Conflict(format!(
                    "no user {member:?} in domain {domain:?}"
                )));
            }
        }
        bump_directory(&mut *tx).await?;
        tx.commit().await.map_err(db_error)?;
        self.team(&TeamRef::Id(id))
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn team(&self, team: &TeamRef) -> Result<Option<(Team, Vec<UserInfo>)>> {
        let row = match team {
            TeamRef::Id(id) => {
                sqlx::query("SELECT t.id, t.name, d.name FROM teams t JOIN domains d ON d.id = t.domain_id WHERE t.id = $1")
                    .bind(*id)
                    .fetch_optional(&self.read)
                    .await
            }
            TeamRef::Name { domain, name } => sqlx::query(
                "SELECT t.id, t.name, d.name FROM teams t JOIN domains d ON d.id = t.domain_id \
                 WHERE d.name = $1 AND t.name = $2",
            )
            .bind(domain.as_str())
            .bind(name.as_str())
            .fetch_optional(&self.read)
            .await,
        }
        .map_err(db_error)?;
        let Some(row) = row else { return Ok(None) };
        let team = Team {
            id: row.try_get(0).map_err(db_error)?,
            name: row.try_get(1).map_err(db_error)?,
            domain: row.try_get(2).map_err(db_error)?,
        };
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM team_members m JOIN users u ON u.id = m.user_db_id \
             JOIN domains d ON d.id = u.domain_id WHERE m.team_id = $1 ORDER BY u.id"
        ));
        let rows = sqlx::query(sql)
            .bind(team.id)
            .fetch_all(&self.read)
            .await
            .map_err(db_error)?;
        let members = rows
            .iter()
            .map(|r| user_from_row(r))
            .collect::<Result<_>>()?;
        Ok(Some((team, members)))
    }

    async fn directory(
        &self,
        domain: &str,
        needle: &str,
        size: u32,
    ) -> Result<(Vec<DirectoryEntry>, Vec<Team>)> {
        let mut conn = self.read.acquire().await.map_err(db_error)?;
        // SQLite: one hop to its worker thread when the listing held is current:
        // search it first, then read the directory version and who among the
        // found is busy in one statement; a listing that turns out old is
        // reloaded below. (Measured: 0.36-0.38 of /health at saturation instead
        // of 0.25-0.30. On PostgreSQL the combined statement measured no better
        // than two, so it keeps them.)
        if self.dialect == Dialect::Sqlite
            && let Some(listing) = self.directory.latest(domain)
        {
            let (people, teams) = listing.search(needle, size as usize);
            let ids: Vec<UserDbId> = people.iter().map(|u| u.user_db_id).collect();
            let sql = if ids.is_empty() {
                "SELECT CAST(0 AS BIGINT), version FROM directory_changes WHERE id = 1".to_owned()
            } else {
                format!(
                    "SELECT CAST(0 AS BIGINT), version FROM directory_changes WHERE id = 1 \
                     UNION ALL SELECT CAST(1 AS BIGINT), busy.column1 FROM ({}) busy",
                    busy_select(1, ids.len(), None)
                )
            };
            // Only placeholders are spliced in; every value is bound.
            let mut q = sqlx::query_as::<_, (i64, i64)>(sqlx::AssertSqlSafe(sql));
            for u in &ids {
                q = q.bind(*u);
            }
            let rows = q.fetch_all(&mut *conn).await.map_err(db_error)?;
            let version = rows.iter().find(|r| r.0 == 0).map(|r| r.1);
            if version.is_some_and(|v| crate::directory::DirectoryCache::current(&listing, v)) {
                let busy: Vec<UserDbId> = rows.iter().filter(|r| r.0 == 1).map(|r| r.1).collect();
                return Ok((directory_entries(people, &busy), teams));
            }
        }
        let version: i64 = sqlx::query_scalar("SELECT version FROM directory_changes WHERE id = 1")
            .fetch_one(&mut *conn)
            .await
            .map_err(db_error)?;
        let listing = match self.directory.get(domain, version) {
            Some(listing) => listing,
            None => {
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {USER_COLUMNS} FROM users u JOIN domains d ON d.id = u.domain_id WHERE d.name = $1"
                ));
                let rows = sqlx::query(sql)
                    .bind(domain)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(db_error)?;
                let users = rows
                    .iter()
                    .map(|r| user_from_row(r))
                    .collect::<Result<_>>()?;
                let rows = sqlx::query(
                    "SELECT t.id, t.name FROM teams t JOIN domains d ON d.id = t.domain_id WHERE d.name = $1",
                )
                .bind(domain)
                .fetch_all(&mut *conn)
                .await
                .map_err(db_error)?;
                let teams = rows
                    .iter()
                    .map(|r| {
                        Ok(Team {
                            id: r.try_get(0).map_err(db_error)?,
                            name: r.try_get(1).map_err(db_error)?,
                            domain: domain.to_owned(),
                        })
                    })
                    .collect::<Result<_>>()?;
                let listing =
                    std::sync::Arc::new(crate::directory::Listing::new(version, users, teams));
                self.directory.put(domain, listing.clone());
                listing
            }
        };
        let (people, teams) = listing.search(needle, size as usize);
        let ids: Vec<UserDbId> = people.iter().map(|u| u.user_db_id).collect();
        let busy = busy_in_other_calls(&mut *conn, &ids, 0).await?;
        Ok((directory_entries(people, &busy), teams))
    }

    async fn busy_users(&self, users: &[UserDbId]) -> Result<Vec<UserDbId>> {
        read!(self, |db| busy_in_other_calls(db, users, 0))
    }

    async fn start_token_family(
        &self,
        family: &str,
        user: UserDbId,
        token_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO token_families (id, user_db_id, created_at) VALUES ($1, $2, $3)")
            .bind(family)
            .bind(user)
            .bind(Utc::now().timestamp_millis())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family_id, expires_at) VALUES ($1, $2, $3)",
        )
        .bind(token_hash)
        .bind(family)
        .bind(ms(expires_at))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        new_hash: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<Rotation> {
        let mut tx = self.begin_write().await?;
        let lock = match self.dialect {
            Dialect::Postgres => {
                "SELECT t.family_id, t.expires_at, t.spent_at, f.user_db_id, f.revoked_at FROM refresh_tokens t \
                 JOIN token_families f ON f.id = t.family_id WHERE t.token_hash = $1 FOR UPDATE OF f"
            }
            Dialect::Sqlite => {
                "SELECT t.family_id, t.expires_at, t.spent_at, f.user_db_id, f.revoked_at FROM refresh_tokens t \
                 JOIN token_families f ON f.id = t.family_id WHERE t.token_hash = $1"
            }
        };
        let Some(row) = sqlx::query(lock)
            .bind(old_hash)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?
        else {
            return Ok(Rotation::Invalid);
        };
        let family: String = row.try_get(0).map_err(db_error)?;
        let expires: i64 = row.try_get(1).map_err(db_error)?;
        let spent: Option<i64> = row.try_get(2).map_err(db_error)?;
        let user: i64 = row.try_get(3).map_err(db_error)?;
        let revoked: Option<i64> = row.try_get(4).map_err(db_error)?;
        if revoked.is_some() {
            return Ok(Rotation::Invalid);
        }
        if spent.is_some() {
            sqlx::query("UPDATE token_families SET revoked_at = $2 WHERE id = $1")
                .bind(&family)
                .bind(ms(now))
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            tx.commit().await.map_err(db_error)?;
            return Ok(Rotation::Reused { family });
        }
        if expires <= ms(now) {
            return Ok(Rotation::Invalid);
        }
        sqlx::query("UPDATE refresh_tokens SET spent_at = $2 WHERE token_hash = $1")
            .bind(old_hash)
            .bind(ms(now))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family_id, expires_at) VALUES ($1, $2, $3)",
        )
        .bind(new_hash)
        .bind(&family)
        .bind(ms(expires_at))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(Rotation::Rotated { user, family })
    }

    async fn revoke_token_family(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>> {
        let mut tx = self.begin_write().await?;
        let family: Option<String> =
            sqlx::query_scalar("SELECT family_id FROM refresh_tokens WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
        if let Some(family) = &family {
            sqlx::query(
                "UPDATE token_families SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            )
            .bind(family)
            .bind(ms(now))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(family)
    }

    async fn token_family_revoked(&self, family: &str) -> Result<bool> {
        let args = [Val::text(family)];
        let revoked = read!(self, |db| db.rows(
            "SELECT revoked_at FROM token_families WHERE id = $1",
            &args,
            |r| r.int(0)
        ))?;
        Ok(revoked.first().is_none_or(|r| r.is_some()))
    }

    async fn sfu_node(&self, call: Uuid) -> Result<Option<String>> {
        sfu_node_on(&self.read, call).await
    }

    async fn claim_sfu_node(
        &self,
        call: Uuid,
        node: &str,
        expected: Option<&str>,
    ) -> Result<String> {
        // One statement: of two nodes claiming at once, the second finds the
        // first's id and takes nothing.
        sqlx::query(
            "UPDATE calls SET sfu_node = $2 WHERE call_id = $1 \
             AND (sfu_node = $3 OR (sfu_node IS NULL AND $4 = 1))",
        )
        .bind(call.to_string())
        .bind(node)
        .bind(expected.unwrap_or(""))
        .bind(i64::from(expected.is_none()))
        .execute(&self.write)
        .await
        .map_err(db_error)?;
        sfu_node_on(&self.write, call).await?.ok_or_else(|| {
            StoreError::Conflict("the call's SFU node was released meanwhile".into())
        })
    }

    async fn release_sfu_node(&self, node: &str) -> Result<u64> {
        let done = sqlx::query("UPDATE calls SET sfu_node = NULL WHERE sfu_node = $1")
            .bind(node)
            .execute(&self.write)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected())
    }

    async fn insert_call(&self, mut created: Transition) -> Result<Committed> {
        if let Some(writer) = &self.writer {
            return writer.insert(created).await;
        }
        let (messages, deliveries) = if self.dialect == Dialect::Postgres {
            let mut conn = self.write.acquire().await.map_err(db_error)?;
            crate::pg::insert_call(&mut *conn, self.ring_timeout, &mut created).await?
        } else {
            // SQLite before its writer thread started (migrations, setup).
            let mut tx = self.begin_write().await?;
            let saved = save(&mut *tx, self.ring_timeout, None, &mut created).await?;
            tx.commit().await.map_err(db_error)?;
            saved
        };
        Ok(Committed {
            call: created.call,
            messages,
            deliveries,
            old_events: 0,
        })
    }

    async fn update_call(&self, call_id: Uuid, update: CallUpdate<'_>) -> Result<Committed> {
        if let Some(writer) = &self.writer {
            let old = self.call(call_id).await?.ok_or(StoreError::NotFound)?;
            return update_on(writer, old, update).await;
        }
        let mut tx = self.begin_write().await?;
        let old = load_call(&mut *tx, self.dialect, call_id, true)
            .await?
            .ok_or(StoreError::NotFound)?;
        let mut t = update(&old)?;
        if t.call == old {
            return Ok(Committed::unchanged(old));
        }
        let (messages, deliveries) = if self.dialect == Dialect::Postgres {
            crate::pg::update_call(&mut *tx, self.ring_timeout, &old, &mut t).await?
        } else {
            save(&mut *tx, self.ring_timeout, Some(&old), &mut t).await?
        };
        tx.commit().await.map_err(db_error)?;
        Ok(Committed {
            call: t.call,
            messages,
            deliveries,
            old_events: old.events.len(),
        })
    }

    async fn call(&self, call_id: Uuid) -> Result<Option<Call>> {
        read!(self, |db| load_call(db, self.dialect, call_id, false))
    }

    async fn call_version(&self, call_id: Uuid) -> Result<Option<i64>> {
        read!(self, |db| load_version(db, call_id))
    }

    async fn calls_of_user(
        &self,
        user: UserDbId,
        status: Option<CallStatus>,
        page: u32,
        size: u32,
    ) -> Result<(Vec<Call>, i64)> {
        const MINE: &str = "(id IN (SELECT call_pk FROM call_contacts WHERE user_db_id = $1) OR broker_user_id = $1) \
                            AND ($2 IS NULL OR status = $2)";
        let mut conn = self.read.acquire().await.map_err(db_error)?;
        let status = status.map(|s| s.as_str());
        let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM calls WHERE {MINE}"
        )))
        .bind(user)
        .bind(status)
        .fetch_one(&mut *conn)
        .await
        .map_err(db_error)?;
        let page_of = format!(" WHERE {MINE} ORDER BY id DESC LIMIT $3 OFFSET $4");
        let args = [
            Val::Int(Some(user)),
            Val::Text(status.map(str::to_owned)),
            Val::Int(Some(i64::from(size))),
            Val::Int(Some(i64::from(page) * i64::from(size))),
        ];
        if self.dialect == Dialect::Postgres {
            // Each call whole, in the one query (as `load_call` reads one).
            let sql = format!("{}{page_of}", call_whole!());
            return Ok((conn.rows(&sql, &args, whole_call_from_row).await?, total));
        }
        let sql = format!("{}{page_of}", call_select!());
        let mut calls = conn.rows(&sql, &args, call_from_row).await?;
        for call in &mut calls {
            fill_call(&mut *conn, call).await?;
        }
        Ok((calls, total))
    }

    async fn due_calls(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Uuid>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT call_id FROM calls WHERE next_deadline IS NOT NULL AND next_deadline <= $1 \
             ORDER BY next_deadline LIMIT $2",
        )
        .bind(ms(now))
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await
        .map_err(db_error)?;
        ids.iter()
            .map(|s| {
                s.parse()
                    .map_err(|_| StoreError::Corrupt(format!("call id {s:?}")))
            })
            .collect()
    }

    async fn create_webhook(&self, domain: &str, url: &str, secret: &str) -> Result<Webhook> {
        let mut tx = self.begin_write().await?;
        let now = Utc::now().timestamp_millis();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO webhooks (domain, url, secret, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(domain)
        .bind(url)
        .bind(secret)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(Webhook {
            id,
            domain: domain.to_owned(),
            url: url.to_owned(),
            secret: secret.to_owned(),
            created_at: time(now),
        })
    }

    async fn webhooks(&self, domain: &str) -> Result<Vec<Webhook>> {
        let rows = sqlx::query(
            "SELECT id, domain, url, secret, created_at FROM webhooks WHERE domain = $1 AND deleted_at IS NULL ORDER BY id",
        )
        .bind(domain)
        .fetch_all(&self.read)
        .await
        .map_err(db_error)?;
        rows.iter().map(webhook_from_row).collect()
    }

    async fn webhook(&self, id: i64) -> Result<Option<Webhook>> {
        let row = sqlx::query(
            "SELECT id, domain, url, secret, created_at FROM webhooks WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(id)
        .fetch_optional(&self.read)
        .await
        .map_err(db_error)?;
        row.as_ref().map(webhook_from_row).transpose()
    }

    async fn delete_webhook(&self, domain: &str, id: i64) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let now = Utc::now().timestamp_millis();
        let done = sqlx::query(
            "UPDATE webhooks SET deleted_at = $3 WHERE id = $1 AND domain = $2 AND deleted_at IS NULL",
        )
        .bind(id)
        .bind(domain)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE deliveries SET status = 'cancelled', done_at = $2, locked_until = NULL \
             WHERE webhook_id = $1 AND status = 'pending'",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>> {
        // Most polls find nothing: ask a reader first and leave the writer alone.
        let due: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM deliveries WHERE status = 'pending' AND next_attempt_at <= $1 \
             AND (locked_until IS NULL OR locked_until <= $1) LIMIT 1",
        )
        .bind(ms(now))
        .fetch_optional(&self.read)
        .await
        .map_err(db_error)?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        // SQLite: on sqlx's connection, beside the writer thread. Claims are a
        // commit per batch of deliveries, and the writer thread is what bounds
        // createCall (measured: on the writer, createCall at saturation fell 7-16%).
        if self.dialect == Dialect::Postgres {
            // One statement: no transaction block around it.
            let mut conn = self.write.acquire().await.map_err(db_error)?;
            return claim_deliveries(&mut *conn, self.dialect, now, lease_until, limit).await;
        }
        let mut tx = self.begin_write().await?;
        let out = claim_deliveries(&mut *tx, self.dialect, now, lease_until, limit).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(out)
    }

    async fn finish_delivery(
        &self,
        id: i64,
        attempt: Attempt,
        result: AttemptResult,
    ) -> Result<()> {
        // SQLite: on the writer thread, with the call transitions queued there (one
        // writer holds the file's lock; a second would wait for it, sleeping).
        if let Some(writer) = &self.writer {
            return writer.finish_delivery(id, attempt, result).await;
        }
        if self.dialect == Dialect::Postgres {
            let mut conn = self.write.acquire().await.map_err(db_error)?;
            return finish_delivery(&mut *conn, self.dialect, id, &attempt, &result).await;
        }
        let mut tx = self.begin_write().await?;
        finish_delivery(&mut *tx, self.dialect, id, &attempt, &result).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn deliveries_of_call(
        &self,
        call_id: Uuid,
        page: u32,
        size: u32,
    ) -> Result<(Vec<(OutboxEntry, Vec<Attempt>)>, i64)> {
        let mut conn = self.read.acquire().await.map_err(db_error)?;
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM deliveries d JOIN calls c ON c.id = d.call_pk WHERE c.call_id = $1",
        )
        .bind(call_id.to_string())
        .fetch_one(&mut *conn)
        .await
        .map_err(db_error)?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY_COLUMNS} FROM deliveries d JOIN calls c ON c.id = d.call_pk WHERE c.call_id = $1 \
             ORDER BY d.id LIMIT $2 OFFSET $3"
        )))
        .bind(call_id.to_string())
        .bind(i64::from(size))
        .bind(i64::from(page) * i64::from(size))
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?;
        let entries = rows
            .iter()
            .map(|r| entry_from_row(r))
            .collect::<Result<Vec<_>>>()?;
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return Ok((Vec::new(), total));
        };
        // The page's attempts in one read: its ids are a range of the call's.
        let mut attempts: HashMap<i64, Vec<Attempt>> = HashMap::new();
        for r in sqlx::query(
            "SELECT a.delivery_id, a.attempt, a.started_at, a.finished_at, a.outcome, a.detail \
             FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id JOIN calls c ON c.id = d.call_pk \
             WHERE c.call_id = $1 AND a.delivery_id BETWEEN $2 AND $3 ORDER BY a.id",
        )
        .bind(call_id.to_string())
        .bind(first.id)
        .bind(last.id)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?
        {
            attempts
                .entry(r.try_get(0).map_err(db_error)?)
                .or_default()
                .push(Attempt {
                    attempt: r.try_get(1).map_err(db_error)?,
                    started_at: time(r.try_get(2).map_err(db_error)?),
                    finished_at: time(r.try_get(3).map_err(db_error)?),
                    outcome: r.try_get(4).map_err(db_error)?,
                    detail: r.try_get(5).map_err(db_error)?,
                });
        }
        let out = entries
            .into_iter()
            .map(|e| {
                let a = attempts.remove(&e.id).unwrap_or_default();
                (e, a)
            })
            .collect();
        Ok((out, total))
    }

    async fn gauges(&self) -> Result<crate::Gauges> {
        let count_by = |sql: &'static str| async move {
            sqlx::query_as::<_, (String, i64)>(sql)
                .fetch_all(&self.read)
                .await
                .map_err(db_error)
        };
        let ringing: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM call_contacts cc JOIN calls c ON c.id = cc.call_pk \
             WHERE cc.ringing_since IS NOT NULL AND c.status <> 'Ended'",
        )
        .fetch_one(&self.read)
        .await
        .map_err(db_error)?;
        Ok(crate::Gauges {
            calls_by_status: count_by("SELECT status, COUNT(*) FROM calls GROUP BY status").await?,
            ringing,
            backlog_by_channel: count_by(
                "SELECT channel, COUNT(*) FROM deliveries WHERE status = 'pending' GROUP BY channel",
            )
            .await?,
        })
    }

    async fn last_seq(&self, user: UserDbId) -> Result<i64> {
        let args = [Val::Int(Some(user))];
        let seq = read!(self, |db| db.rows(
            "SELECT last_seq FROM users WHERE id = $1",
            &args,
            |r| r.req_int(0)
        ))?;
        seq.first().copied().ok_or(StoreError::NotFound)
    }

    async fn messages_since(&self, user: UserDbId, seq: i64, limit: u32) -> Result<Vec<Message>> {
        let args = [
            Val::Int(Some(user)),
            Val::Int(Some(seq)),
            Val::Int(Some(i64::from(limit))),
        ];
        read!(self, |db| {
            db.rows(
                "SELECT m.seq, b.rest FROM user_messages m JOIN message_bodies b ON b.id = m.body_id \
                 WHERE m.user_db_id = $1 AND m.seq > $2 ORDER BY m.seq LIMIT $3",
                &args,
                |r| {
                    let seq = r.req_int(0)?;
                    Ok(Message {
                        user,
                        seq,
                        body: with_seq(seq, &r.req_text(1)?),
                    })
                },
            )
        })
    }

    async fn users_with_messages_since(&self, since: DateTime<Utc>) -> Result<Vec<UserDbId>> {
        // Served by the index on created_at.
        sqlx::query_scalar("SELECT DISTINCT user_db_id FROM user_messages WHERE created_at >= $1")
            .bind(ms(since))
            .fetch_all(&self.read)
            .await
            .map_err(db_error)
    }

    async fn prune_messages(&self, before: DateTime<Utc>) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM user_messages WHERE created_at < $1")
            .bind(ms(before))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        // A body is written with its messages, at their `created_at`: it goes with them.
        sqlx::query("DELETE FROM message_bodies WHERE created_at < $1")
            .bind(ms(before))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(done.rows_affected())
    }
}

/// `update_call` on SQLite: the rules run here, on the call as last committed
/// (`old`, read inline), and the writer stores their outcome only if the call is
/// still what they saw (the rules cannot go to its thread: they borrow from the
/// caller). A call that changed meanwhile is handed back, and the rules run again
/// on it.
async fn update_on(writer: &Writer, mut old: Call, update: CallUpdate<'_>) -> Result<Committed> {
    loop {
        let t = update(&old)?;
        if t.call == old {
            return Ok(Committed::unchanged(old));
        }
        match writer.update(old, t).await? {
            Updated::Saved(committed) => return Ok(committed),
            Updated::Stale(Some(now)) => old = now,
            Updated::Stale(None) => return Err(StoreError::NotFound),
        }
    }
}

/// The call's SFU node, read on `pool` (the writer's, right after a claim).
async fn sfu_node_on(pool: &sqlx::AnyPool, call: Uuid) -> Result<Option<String>> {
    let node: Option<Option<String>> =
        sqlx::query_scalar("SELECT sfu_node FROM calls WHERE call_id = $1")
            .bind(call.to_string())
            .fetch_optional(pool)
            .await
            .map_err(db_error)?;
    node.ok_or(StoreError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_numbered_message_is_its_notification_with_seq() {
        let note = callhub_core::Notification::RingingStopped {
            call_id: Uuid::new_v4(),
            reason: callhub_core::StopReason::AnsweredElsewhere,
        };
        let body: serde_json::Value =
            serde_json::from_str(&with_seq(42, &after_seq(&note).unwrap())).unwrap();
        let mut expected = serde_json::to_value(&note).unwrap();
        expected["seq"] = 42.into();
        assert_eq!(body, expected);
    }

    #[test]
    fn each_message_gets_its_own_notification_when_several_are_alike() {
        let stopped = |reason| callhub_core::Notification::RingingStopped {
            call_id: Uuid::nil(),
            reason,
        };
        let (a, b) = (
            stopped(callhub_core::StopReason::AnsweredElsewhere),
            stopped(callhub_core::StopReason::Missed),
        );
        let notes = vec![
            (1, a.clone()),
            (2, b.clone()),
            (3, a.clone()),
            (1, b.clone()),
        ];
        let (texts, which) = after_seqs(&notes).unwrap();
        assert_eq!(which.len(), 4);
        for ((_, note), i) in notes.iter().zip(&which) {
            assert_eq!(texts[*i], after_seq(note).unwrap());
        }
        // Alike ones share one serialization.
        assert_eq!(texts.len(), 2);
        assert_eq!(which[0], which[2]);
        assert_eq!(which[1], which[3]);
    }

    /// `PRAGMA synchronous` of the writer and of a reader of a store opened with `sync`.
    async fn synchronous_of(sync: Synchronous) -> (i64, i64) {
        sqlx::any::install_default_drivers();
        let dir = std::env::temp_dir().join(format!("callhub-sync-{}", Uuid::new_v4()));
        let url = format!("sqlite://{}/callhub.db", dir.display());
        let settings = PoolSettings {
            synchronous: sync,
            ..Default::default()
        };
        let store = SqlStore::connect(&url, &settings, chrono::Duration::seconds(30))
            .await
            .unwrap();
        let pragma = |pool: AnyPool| async move {
            sqlx::query_scalar::<_, i64>("PRAGMA synchronous")
                .fetch_one(&pool)
                .await
                .unwrap()
        };
        let got = (
            pragma(store.write.clone()).await,
            pragma(store.read.clone()).await,
        );
        store.close().await;
        let _ = std::fs::remove_dir_all(dir);
        got
    }

    #[tokio::test]
    async fn sqlite_commits_sync_as_the_setting_says() {
        assert_eq!(synchronous_of(Synchronous::Normal).await, (1, 1));
        assert_eq!(synchronous_of(Synchronous::Full).await, (2, 2));
        assert_eq!("FULL".parse(), Ok(Synchronous::Full));
        assert!("off".parse::<Synchronous>().is_err(), "only normal or full");
    }
}
