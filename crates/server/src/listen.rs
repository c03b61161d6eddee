//! The accept loop: HTTP/1 with upgrades (WebSockets), as `axum::serve` does
//! with the features we build it with, plus what it lacks against clients that hold connections: a deadline
//! for a request's headers (and, through `BodyReadTimeout`, its body), and a bound
//! on the connections one client address may hold open.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// How long a request's body may take to arrive, read by `ApiJson`.
#[derive(Debug, Clone, Copy)]
pub struct BodyReadTimeout(pub Duration);

/// The limits of the accept loop (`CALLHUB_REQUEST_READ_TIMEOUT_SECS`,
/// `CALLHUB_CONNECTIONS_PER_IP`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub read_timeout: Duration,
    pub connections_per_ip: usize,
}

/// Open connections per client address.
#[derive(Default)]
struct Open(Mutex<HashMap<IpAddr, usize>>);

/// One counted connection; uncounted when dropped.
struct Slot {
    open: Arc<Open>,
    ip: IpAddr,
}

impl Open {
    fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<Slot> {
        let mut open = self.0.lock().expect("connection count lock");
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot {
            open: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.0.lock().expect("connection count lock");
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Serves `router` until `shutdown`, then lets the requests under way finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let open = Arc::new(Open::default());
    let (closed_tx, closed_rx) = tokio::sync::watch::channel(());
    let stop = CancellationToken::new();
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of files or similar: wait a little rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let Some(slot) = open.take(peer.ip(), limits.connections_per_ip) else {
            tracing::debug!(%peer, "too many connections from this address; closing");
            drop(tcp);
            continue;
        };
        // Small answers go out at once: without TCP_NODELAY a response written in
        // two parts waits for the client's delayed ACK (about 20-40 ms at low load).
        let _ = tcp.set_nodelay(true);
        let service = router
            .clone()
            .map_request(move |mut req: axum::http::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req.extensions_mut()
                    .insert(BodyReadTimeout(limits.read_timeout));
                req.map(Body::new)
            });
        let service = TowerToHyperService::new(service);
        let stop = stop.clone();
        let closed_rx = closed_rx.clone();
        tokio::spawn(async move {
            // The header deadline also runs while a kept-alive connection waits for
            // its next request, so idle connections are closed after it too.
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.read_timeout)
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::trace!(error = %e, "connection ended");
                    }
                }
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(slot);
            drop(closed_rx);
        });
    }
    drop(listener);
    stop.cancel();
    drop(closed_rx);
    closed_tx.closed().await;
}
