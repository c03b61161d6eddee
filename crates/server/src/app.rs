//! The running node: its state, its router, and its start and stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use callhub_core::Rules;
use callhub_store::{SqlStore, Store};
use chrono::{DateTime, Utc};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

use crate::auth::{RateLimiter, Tokens, load_or_make_secret};
use crate::config::Config;
use crate::error::problem;
use crate::{routes, worker};

pub struct App {
    pub store: Arc<dyn Store>,
    /// The same database on connections of its own, for the deadline worker and
    /// the outbox: requests that hold every pooled connection cannot delay a ring
    /// timeout or a delivery.
    pub background: Arc<dyn Store>,
    pub tokens: Tokens,
    pub config: Config,
    pub rules: Rules,
    pub login_per_ip: RateLimiter,
    /// Failed logins per account and client address: past it, that address is refused.
    pub login_failures: RateLimiter,
    /// Failed logins per account from any address: past it, answers are slowed.
    pub login_failures_account: RateLimiter,
    /// Verified against when a login names no account, so both answers take as long.
    pub dummy_hash: String,
    pub metrics: Metrics,
    pub hub: crate::hub::Hub,
    /// Wrong guest-link tokens per client address.
    pub guest_failures: RateLimiter,
    /// External invitations (mail and SMS) per account and hour.
    pub invitations: RateLimiter,
    pub senders: crate::outbox::Senders,
    pub presence: crate::presence::Tracker,
    /// The bus to the other nodes (`CALLHUB_NATS_URL`); None: one node.
    pub bus: Option<crate::bus::Bus>,
    /// The node's SFU (`CALLHUB_SFU_UDP`).
    pub sfu: crate::sfu::SfuNode,
    /// getCallLogById's answers per call and version.
    pub call_logs: crate::call_logs::CallLogs,
}

pub use crate::metrics::Metrics;

/// The current time at the store's precision (milliseconds).
pub fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).expect("now is representable")
}

/// Connections of the background work's own pool (SQLite: its readers).
pub const BACKGROUND_CONNECTIONS: u32 = 4;

impl App {
    pub async fn new(config: Config) -> anyhow::Result<Arc<App>> {
        // reqwest is built without a crypto provider of its own: SMS and webhooks over HTTPS use ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ring_timeout = chrono::Duration::from_std(config.ring_timeout)?;
        let store = SqlStore::connect(&config.database_url, &config.pool, ring_timeout).await?;
        let background = store.background(BACKGROUND_CONNECTIONS).await?;
        let bus = match &config.nats_url {
            Some(url) => Some(crate::bus::Bus::connect(url, &config.nats_prefix).await?),
            None => None,
        };
        let sfu =
            crate::sfu::SfuNode::bind(config.sfu_udp, config.sfu_public_ip, config.sfu_audible)?;
        let secret = load_or_make_secret(config.jwt_secret.as_deref(), &config.data_dir)?;
        Ok(Arc::new(App {
            store: Arc::new(store),
            background: Arc::new(background),
            tokens: Tokens::new(&secret, config.access_token_ttl, config.refresh_token_ttl),
            rules: Rules {
                ring_timeout,
                max_contacts: config.max_call_contacts,
            },
            login_per_ip: RateLimiter::new(config.login_rate_per_ip, Duration::from_secs(60)),
            login_failures: RateLimiter::new(
                config.login_failures_per_account,
                Duration::from_secs(300),
            ),
            login_failures_account: RateLimiter::new(
                config.login_failures_per_account.saturating_mul(10),
                Duration::from_secs(300),
            ),
            dummy_hash: crate::auth::hash_password(crate::auth::random_token()).await?,
            metrics: Metrics::default(),
            hub: crate::hub::Hub::default(),
            guest_failures: RateLimiter::new(config.guest_failures_per_ip, Duration::from_secs(60)),
            invitations: RateLimiter::new(config.invites_per_hour, Duration::from_secs(3600)),
            senders: crate::outbox::Senders::new(&config.delivery)?,
            presence: Default::default(),
            bus,
            sfu,
            call_logs: Default::default(),
            config,
        }))
    }
}

impl App {
    /// Hands committed messages to the sockets of their users, on every node.
    pub fn publish(&self, messages: &[callhub_store::Message]) {
        self.hub.deliver(messages);
        if let Some(bus) = &self.bus
            && !messages.is_empty()
        {
            bus.messages(self, messages);
        }
    }

    /// Sends a frame that is not stored (signaling) to every socket of `owner`, on
    /// every node.
    pub fn send_transient(&self, owner: &crate::hub::Owner, frame: &str) {
        self.hub.send_transient(owner, frame);
        if let Some(bus) = &self.bus {
            bus.transient(self, owner, frame);
        }
    }

    /// Sends frames that are not stored to the guests of `call`, on every node.
    pub fn send_to_guests(&self, call: uuid::Uuid, frames: &[String]) {
        self.hub.send_to_guests(call, frames);
        if let Some(bus) = &self.bus {
            bus.guests(self, call, frames);
        }
    }

    /// Closes the sockets of a revoked refresh-token family, on every node.
    pub fn revoke_family(&self, family: &str) {
        self.hub.revoke_family(family);
        if let Some(bus) = &self.bus {
            bus.revoke(self, family);
        }
    }

    /// Whether `owner` has a socket open on any node.
    pub fn connected(&self, owner: &crate::hub::Owner) -> bool {
        self.hub.is_connected(owner)
            || self
                .bus
                .as_ref()
                .is_some_and(|bus| bus.remote_connected(owner))
    }

    /// What follows a commit: its messages to the sockets (and its events to the
    /// call's guests, who have no stored messages), presence where someone joined
    /// or left, and a nudge to the outbox worker when it wrote deliveries (they wait
    /// for it, not the request).
    pub fn after_commit(self: &Arc<Self>, committed: &callhub_store::Committed) {
        self.publish(&committed.messages);
        let call = &committed.call;
        if call
            .contacts
            .iter()
            .any(|c| c.origin == callhub_core::ContactOrigin::Guest)
        {
            let frames: Vec<String> = committed
                .new_events()
                .iter()
                .map(|e| {
                    let event = callhub_core::Notification::CallEvent {
                        call_id: call.call_id,
                        event: call.event_view(e),
                        call_status: call.status,
                    };
                    serde_json::to_string(&event).expect("a notification serializes")
                })
                .collect();
            self.send_to_guests(call.call_id, &frames);
        }
        crate::presence::call_changed(self, committed);
        self.sfu.call_changed(self, committed);
        if committed.deliveries > 0 {
            self.senders.wake.notify_one();
        }
    }
}

/// The policy of HTML the server makes itself (the docs page, error pages): no
/// script, nothing from elsewhere, no framing. Pages with a script of their own
/// (the web client, the guest page) send their own policy, which is kept.
pub const STRICT_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `nosniff` on every answer, so a browser never runs a JSON or text answer as a
/// script or page; a strict CSP on HTML that has none.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let headers = res.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if html && !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(STRICT_CSP),
        );
    }
    res
}

pub fn router(app: Arc<App>) -> Router {
    let (api, _) = routes::api().split_for_parts();
    let mut router = api
        .merge(routes::meta::router())
        .merge(routes::web::router())
        .fallback(|| async { problem(StatusCode::NOT_FOUND, "no such route".into()) })
        .method_not_allowed_fallback(|| async {
            problem(
                StatusCode::METHOD_NOT_ALLOWED,
                "this route does not take that method".into(),
            )
        })
        .layer(DefaultBodyLimit::max(1024 * 1024))
        .layer(CatchPanicLayer::custom(|_| {
            problem(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
        }))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::observe::observe,
        ));
    if !app.config.cors_origins.is_empty() {
        let origins: Vec<HeaderValue> = app
            .config
            .cors_origins
            .iter()
            .filter_map(|o| o.parse().ok())
            .collect();
        router = router.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
                // Name what the preflight asks for: a `*` would not cover Authorization.
                .allow_headers(AllowHeaders::mirror_request())
                .max_age(Duration::from_secs(600)),
        );
    }
    router
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(app)
}

/// How long a stopping node waits for its sockets' closing handshakes.
const SOCKETS_CLOSE_WITHIN: Duration = Duration::from_secs(5);

/// A node serving on a listener, with its background workers.
pub struct Server {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    /// Stops the accept loop; it then lets the requests under way finish.
    stop_accepting: CancellationToken,
    serve: JoinHandle<()>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Server {
    pub async fn start(config: Config, listener: TcpListener) -> anyhow::Result<Server> {
        let app = App::new(config).await?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let stop_accepting = CancellationToken::new();
        let router = router(app.clone());
        let limits = crate::listen::Limits {
            read_timeout: app.config.request_read_timeout,
            connections_per_ip: app.config.connections_per_ip,
        };
        let serve = tokio::spawn(crate::listen::serve(
            listener,
            router,
            limits,
            stop_accepting.clone(),
        ));
        let tasks = vec![
            tokio::spawn(worker::run(app.clone(), shutdown.clone())),
            tokio::spawn(crate::outbox::run(app.clone(), shutdown.clone())),
            tokio::spawn(crate::bus::run(app.clone(), shutdown.clone())),
            tokio::spawn(crate::sfu::run(app.clone(), shutdown.clone())),
            tokio::spawn(crate::presence::run(app.clone(), shutdown.clone())),
            tokio::spawn(crate::metrics::refresh(
                app.clone(),
                app.config.gauge_refresh,
                shutdown.clone(),
            )),
        ];
        let c = &app.config;
        tracing::info!(%addr, database = %crate::config::redacted(&c.database_url), docs = %format!("{}/docs", c.public_url),
            cors_origins = %if c.cors_origins.is_empty() { "none".into() } else { c.cors_origins.join(",") }, "callhub listening");
        Ok(Server {
            addr,
            app,
            stop_accepting,
            serve,
            shutdown,
            tasks,
        })
    }

    /// Stops accepting, closes the sockets (1001: their clients reconnect, to
    /// another node behind a load balancer), finishes the requests under way, then
    /// stops the workers (the bus last tells the other nodes this one is gone).
    /// `main` bounds it by `CALLHUB_SHUTDOWN_SECS`.
    pub async fn stop(self) {
        self.stop_accepting.cancel();
        crate::sfu::drain(&self.app).await;
        self.app.hub.close_all();
        let deadline = std::time::Instant::now() + SOCKETS_CLOSE_WITHIN;
        while self
            .app
            .hub
            .connected
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = self.serve.await;
        // A socket upgraded by a request that was under way.
        self.app.hub.close_all();
        self.shutdown.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}
