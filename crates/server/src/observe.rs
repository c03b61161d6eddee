//! Every request: a request id (the client's `x-request-id` or a new one) that the
//! response and any problem+json body carry, one info log line, and its metrics.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{counter, histogram};

use crate::app::App;
use crate::metrics::{HTTP_DURATION, HTTP_RESPONSES};

pub const REQUEST_ID: &str = "x-request-id";

tokio::task_local! {
    /// The id of the request being answered, for the problem+json it may produce.
    static CURRENT: Arc<str>;
}

/// The id of the request this task answers, if it answers one.
pub fn request_id() -> Option<String> {
    CURRENT.try_with(|id| id.to_string()).ok()
}

/// A client's id is kept when it is short and plain, so it cannot forge log lines.
fn usable(id: &HeaderValue) -> Option<&str> {
    let id = id.to_str().ok()?;
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
    (!id.is_empty() && id.len() <= 128 && id.chars().all(plain)).then_some(id)
}

/// Methods as labels: the standard ones by name, anything else as `other`, so a
/// client cannot grow the label set.
fn method_label(m: &Method) -> &'static str {
    ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
        .into_iter()
        .find(|k| *k == m.as_str())
        .unwrap_or("other")
}

pub async fn observe(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id: Arc<str> = match req.headers().get(REQUEST_ID).and_then(usable) {
        Some(id) => id.into(),
        None => uuid::Uuid::new_v4().simple().to_string().into(),
    };
    let method = method_label(req.method());
    // The route template, not the path: bounded labels, no ids in them.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched".to_owned(), |p| p.as_str().to_owned());
    let mut res = CURRENT.scope(id.clone(), next.run(req)).await;
    let elapsed = started.elapsed();
    let status = res.status().as_u16();
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, v);
    }
    tracing::info!(
        method,
        route,
        status,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        request_id = %id,
        "request"
    );
    let class = format!("{}xx", (status / 100).clamp(1, 5));
    app.metrics.record(|| {
        counter!(HTTP_RESPONSES, "class" => class).increment(1);
        histogram!(HTTP_DURATION, "method" => method, "route" => route, "status" => status.to_string())
            .record(elapsed.as_secs_f64());
    });
    res
}
