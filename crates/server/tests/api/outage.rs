//! A database that goes away: `/health` and requests answer 503 problems, and the
//! node recovers by itself when the database is back. PostgreSQL only: the test
//! puts a TCP proxy it can cut between the node and the server.
#![cfg(postgres_tests)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use callhub_core::{CallType, Role};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use crate::helpers::*;

struct Proxy {
    addr: std::net::SocketAddr,
    up: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let links = Arc::new(Mutex::new(Vec::new()));
        let (up2, links2) = (up.clone(), links.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused in effect
                }
                let target = target.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                links2.lock().unwrap().push(link.abort_handle());
            }
        });
        Proxy { addr, up, links }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for l in self.links.lock().unwrap().drain(..) {
            l.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// The `host:port` of a `postgres://user@host:port/db` URL.
fn server_of(url: &str) -> String {
    let authority = url.split_once("://").unwrap().1.split('/').next().unwrap();
    let host = authority.rsplit('@').next().unwrap();
    if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    }
}

/// The same URL pointing at another `host:port`.
fn with_server(url: &str, addr: std::net::SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let user = authority
        .rsplit_once('@')
        .map(|(u, _)| format!("{u}@"))
        .unwrap_or_default();
    format!("{scheme}://{user}{addr}/{path}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_answers_503_and_the_node_recovers_by_itself() {
    let db = TestDb::new(Backend::Postgres).await;
    let target = server_of(&db.url);
    let proxy = Proxy::start(target).await;
    let proxied = with_server(&db.url, proxy.addr);
    let mut cfg = test_config(&db);
    cfg.database_url = proxied;
    cfg.pool.acquire_timeout = Duration::from_secs(1);
    cfg.pool.statement_timeout = Duration::from_secs(2);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = callhub_server::Server::start(cfg, listener).await.unwrap();
    let app = TestApp {
        url: server.url(),
        server,
        backend: Backend::Postgres,
        db,
    };
    let a = app.user("alice", &[Role::User]).await;
    let b = app.user("bob", &[Role::User]).await;
    a.rtc()
        .create_call_for_contacts(&call_request(CallType::Sfu, &[&b]))
        .await
        .unwrap();
    assert_eq!(app.raw("GET", "/health", None, None).await.status, 200);
    let token = a.token().await;

    proxy.cut();
    let health = app.raw("GET", "/health", None, None).await;
    health.assert_problem(503, "database");
    let body = serde_json::to_string(&call_request(CallType::Sfu, &[&b])).unwrap();
    let create = app
        .raw("POST", "/rtc/createCall", Some(&token), Some(&body))
        .await;
    create.assert_problem(503, "database");
    assert!(create.headers.contains_key("retry-after"));

    proxy.restore();
    eventually(15, || async {
        app.raw("GET", "/health", None, None).await.status == 200
    })
    .await;
    let again = app
        .raw("POST", "/rtc/createCall", Some(&token), Some(&body))
        .await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(
        a.rtc()
            .get_call_logs(&Default::default())
            .await
            .unwrap()
            .total_elements,
        2
    );
}
