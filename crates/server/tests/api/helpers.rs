//! The test harness: a real server on a free port with a fresh database (SQLite
#![allow(dead_code)] // parts serve only the PostgreSQL half of the suite
//! in a temporary directory, or a PostgreSQL database made for the test and
//! dropped after), and users logged in through the SDK.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use callhub_client::api::{ContactInput, CreateCallRequest};
use callhub_client::{Client, RtcControllerApi};
use callhub_core::text::{DisplayName, Domain, Email, UserId};
use callhub_core::{CallLog, CallType, EventType, Role, UserInfo};
use callhub_server::auth::hash_password;
use callhub_server::{Config, Server};
use callhub_store::NewUser;
use serde_json::Value;
use sqlx::Connection;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates each test once per backend: `sqlite::name` and `postgres::name`.
macro_rules! backend_tests {
    ($( $(#[$meta:meta])* async fn $name:ident($backend:ident: Backend) $body:block )*) => {
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $( $(#[$meta])* #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { let $backend = crate::helpers::Backend::Sqlite; $body } )*
        }
        #[cfg(postgres_tests)]
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $( $(#[$meta])* #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { let $backend = crate::helpers::Backend::Postgres; $body } )*
        }
    };
}
pub(crate) use backend_tests;

pub const PASSWORD: &str = "correct horse battery";

/// A fresh database for one test, and where it lives.
pub struct TestDb {
    pub url: String,
    pub dir: PathBuf,
    pg_name: Option<String>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        callhub_client::install_tls_provider();
        let dir = std::env::temp_dir().join(format!("callhub-test-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        match backend {
            Backend::Sqlite => TestDb {
                url: format!("sqlite://{}", dir.join("callhub.db").display()),
                dir,
                pg_name: None,
            },
            Backend::Postgres => {
                let admin = admin_url();
                let name = format!("callhub_test_{}", Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .expect("PostgreSQL at CALLHUB_TEST_DATABASE_URL");
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                let url = with_database(&admin, &name);
                TestDb {
                    url,
                    dir,
                    pg_name: Some(name),
                }
            }
        }
    }
}

fn admin_url() -> String {
    std::env::var("CALLHUB_TEST_DATABASE_URL")
        .expect("CALLHUB_TEST_DATABASE_URL for the PostgreSQL tests")
}

/// The same server URL with another database name.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = base[authority_end..]
        .find('/')
        .map(|i| i + authority_end)
        .unwrap_or(base.len());
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(name) = self.pg_name.take() {
            // Drop runs outside async: a thread of its own with a small runtime.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url()).await {
                        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                            .execute(&mut conn)
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

pub struct TestApp {
    pub server: Server,
    pub url: String,
    pub backend: Backend,
    pub db: TestDb,
}

pub fn test_config(db: &TestDb) -> Config {
    let mut cfg = Config::with_database(&db.url, db.dir.clone());
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    cfg.tick_interval = Duration::from_millis(50);
    cfg.pool.max_connections = 8;
    // The suite's webhook receivers run on loopback; the SSRF test turns this off.
    cfg.delivery.webhook_allow_private = true;
    cfg
}

static LOG: std::sync::Once = std::sync::Once::new();

/// `TEST_LOG=1` logs the test servers at info, `TEST_LOG=<filter>` (as in
/// `CALLHUB_LOG`, e.g. `callhub_sfu=debug,info`) with that filter.
pub fn init_log() {
    LOG.call_once(|| {
        if let Ok(filter) = std::env::var("TEST_LOG") {
            let filter = if filter.is_empty() || filter == "1" {
                "info".to_owned()
            } else {
                filter
            };
            tracing_subscriber::fmt().with_env_filter(filter).init();
        }
    });
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, tune: impl FnOnce(&mut Config)) -> TestApp {
        init_log();
        let db = TestDb::new(backend).await;
        let mut cfg = test_config(&db);
        tune(&mut cfg);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        cfg.public_url = format!("http://{}", listener.local_addr().unwrap());
        let server = Server::start(cfg, listener).await.expect("server starts");
        TestApp {
            url: server.url(),
            server,
            backend,
            db,
        }
    }

    /// Makes an account and logs it in through the SDK.
    pub async fn user(&self, user_id: &str, roles: &[Role]) -> TestUser {
        self.user_in("ubimax", user_id, roles).await
    }

    pub async fn user_in(&self, domain: &str, user_id: &str, roles: &[Role]) -> TestUser {
        let info = self
            .server
            .app
            .store
            .create_user(NewUser {
                domain: Domain::parse("domain", domain).unwrap(),
                user_id: UserId::parse("userId", user_id).unwrap(),
                display_name: DisplayName::parse("displayName", &user_id.to_uppercase()).unwrap(),
                email: Some(Email::parse("email", &format!("{user_id}@example.org")).unwrap()),
                phone_number: None,
                roles: roles.to_vec(),
                password_hash: hash_password(PASSWORD.into()).await.unwrap(),
            })
            .await
            .unwrap();
        let client = Client::new(&self.url);
        client.login(user_id, PASSWORD, Some(domain)).await.unwrap();
        TestUser { info, client }
    }

    /// A raw request, for the cases the SDK would never send.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Answer {
        self.raw_from([127, 0, 0, 1], method, path, token, body)
            .await
    }

    /// A raw request from another loopback address (127.0.0.0/8 all reach the
    /// server), for limits kept per client address.
    pub async fn raw_from(
        &self,
        from: [u8; 4],
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Answer {
        let client = reqwest::Client::builder()
            .local_address(std::net::IpAddr::from(from))
            .build()
            .unwrap();
        let mut req = client.request(method.parse().unwrap(), format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_owned());
        }
        Answer::of(req.send().await.unwrap()).await
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub json: Value,
    pub text: String,
}

impl Answer {
    pub async fn of(res: reqwest::Response) -> Answer {
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        Answer {
            status,
            headers,
            json: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    /// Asserts a problem+json answer with this status whose detail mentions `needle`.
    pub fn assert_problem(&self, status: u16, needle: &str) {
        assert_eq!(self.status, status, "status of {}", self.text);
        let ct = self
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert_eq!(
            ct, "application/problem+json",
            "content type of {}",
            self.text
        );
        assert_eq!(
            self.json["status"], status,
            "problem status in {}",
            self.text
        );
        assert_eq!(self.json["type"], "about:blank");
        let detail = self.json["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(needle),
            "detail {detail:?} should mention {needle:?}"
        );
    }
}

pub struct TestUser {
    pub info: UserInfo,
    pub client: Client,
}

impl TestUser {
    pub fn rtc(&self) -> RtcControllerApi {
        self.client.rtc()
    }

    pub fn id(&self) -> i64 {
        self.info.user_db_id
    }

    pub async fn token(&self) -> String {
        self.client.access_token().await.unwrap()
    }

    /// This user as a contact, as the seed's connector writes one.
    pub fn contact(&self) -> ContactInput {
        ContactInput {
            display_name: Some(self.info.display_name.clone()),
            domain: Some(self.info.domain.clone()),
            email: self.info.email.clone(),
            phone_number: Some(String::new()),
            user_db_id: Some(self.info.user_db_id),
            user_id: Some(self.info.user_id.clone()),
        }
    }
}

pub fn call_request(call_type: CallType, invited: &[&TestUser]) -> CreateCallRequest {
    CreateCallRequest {
        call_title: "Test Call".into(),
        call_reason: callhub_core::CallReason::Standard,
        call_type,
        invited_contacts: invited.iter().map(|u| u.contact()).collect(),
        invited_teams: vec![],
        join_anonymous_allowed: false,
        inform_others_directly: None,
        creator_user: None,
        planned_date_time: None,
    }
}

/// The broker flow's parties: a connector with the broker role, the smart-glasses
/// user it calls for, and the expert.
pub struct BrokerParties {
    pub connector: TestUser,
    pub glasses: TestUser,
    pub expert: TestUser,
}

impl TestApp {
    pub async fn broker_parties(&self) -> BrokerParties {
        BrokerParties {
            connector: self.user("connector", &[Role::Broker]).await,
            glasses: self.user("glasses", &[Role::User]).await,
            expert: self.user("expert", &[Role::User]).await,
        }
    }
}

/// The seed's broker request: on behalf of the glasses user, inviting the expert
/// and the connector itself.
pub fn broker_request(
    glasses: &TestUser,
    expert: &TestUser,
    connector: &TestUser,
) -> CreateCallRequest {
    let mut req = call_request(CallType::Sfu, &[expert, connector]);
    req.creator_user = Some(glasses.id());
    req
}

/// `(type, userId)` of each event, the way a reader of the log sees it.
pub fn events(log: &CallLog) -> Vec<(EventType, String)> {
    log.call_events
        .iter()
        .map(|e| (e.kind, e.contact.user_id.clone().unwrap_or_default()))
        .collect()
}

pub fn ev(kind: EventType, user: &str) -> (EventType, String) {
    (kind, user.to_owned())
}

/// Polls until `check` holds (timers run in the background), for at most `secs`.
pub async fn eventually<F, Fut>(secs: u64, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not met within {secs}s");
}

/// A port nobody listens on right now, for a server a test starts itself,
/// often later (an SMTP sink after an outage, a node restarted on its port).
/// Taken below the kernel's ephemeral range (32768 and up), where no client
/// connection or `:0` bind of another test can take it in the meantime (one
/// did: an SMTP sink found its port taken); a new one each call, checked free.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Test binaries run one after another; each starts elsewhere in the range.
    let start = std::process::id() * 157;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20_000 + (start.wrapping_add(n) % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The sum of a metric's samples (every label) in a node's `/metrics`.
pub async fn metric(url: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
