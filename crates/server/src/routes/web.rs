//! The web client: its files embedded in the binary (compressed, with ETags) and
//! served at `/`, `/assets/…` and its own pages, every HTML answer under a strict CSP.

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header, uri::Authority};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use memory_serve::CacheControl;
use sha2::{Digest, Sha256};
use tower::ServiceExt;

use crate::error::problem;

/// The client's own pages: each opens its single page, which routes by path.
/// (The guest page, `/join/{callId}`, is `guest::guest_page`: it checks the link first.)
const PAGES: &[&str] = &["/call/{callId}"];

/// The embedded files as one router, built once: building it copies them.
fn files() -> &'static Router {
    static FILES: OnceLock<Router> = OnceLock::new();
    FILES.get_or_init(|| {
        let mut serve = memory_serve::load!()
            .index_file(Some("/index.html"))
            // Nothing is cache-busted by name: browsers revalidate (a 304 by ETag)
            // so a new release is seen at once.
            .html_cache_control(CacheControl::NoCache)
            .cache_control(CacheControl::NoCache)
            // Its defaults compress only in release builds: tests serve what a release serves.
            .enable_brotli(true)
            .enable_gzip(true);
        for page in PAGES {
            serve = serve.add_alias(page, "/index.html");
        }
        serve
            .into_router()
            .fallback(|| async { problem(StatusCode::NOT_FOUND, "no such file".into()) })
    })
}

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let files = files().clone();
    let mut router = Router::new()
        .route_service("/", files.clone())
        .route_service("/assets/{*file}", files.clone());
    for page in PAGES {
        router = router.route_service(page, files.clone());
    }
    router.layer(middleware::from_fn(client_headers))
}

async fn client_headers(req: Request, next: Next) -> Response {
    let host = host(req.headers());
    let mut res = next.run(req).await;
    secure(&mut res, host.as_ref());
    res
}

/// The client's page (`index.html`) as an answer to a request with `headers`,
/// honouring its `If-None-Match` and `Accept-Encoding`.
pub async fn client_page(headers: &HeaderMap) -> Response {
    let mut req = Request::builder().method(Method::GET).uri("/");
    for name in [header::ACCEPT_ENCODING, header::IF_NONE_MATCH] {
        if let Some(v) = headers.get(&name) {
            req = req.header(name, v);
        }
    }
    let req = req.body(Body::empty()).expect("a request to / is valid");
    let mut res = match files().clone().oneshot(req).await {
        Ok(res) => res,
        Err(never) => match never {},
    };
    secure_for(&mut res, headers);
    res
}

/// The guest page: the client's page naming the call and who invites (in `<meta>`
/// tags the client reads), so a guest knows what they join before giving a name.
/// Its own ETag, as the page differs per call.
pub async fn guest_page(headers: &HeaderMap, title: &str, inviter: &str) -> Response {
    let plain = client_page(&HeaderMap::new()).await;
    let Ok(page) = axum::body::to_bytes(plain.into_body(), 1 << 20).await else {
        return problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the client's page is unreadable".into(),
        );
    };
    let page = String::from_utf8_lossy(&page).replacen(
        "<title>callhub</title>",
        &format!(
            "<title>{t} · callhub</title>\n  <meta name=\"callhub:call-title\" content=\"{t}\">\n  \
             <meta name=\"callhub:inviter\" content=\"{i}\">",
            t = esc(title),
            i = esc(inviter),
        ),
        1,
    );
    let etag = format!("\"{:x}\"", Sha256::digest(page.as_bytes()));
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes());
    let mut res = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Html(page).into_response()
    };
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    secure_for(&mut res, headers);
    res
}

/// Text for HTML, attribute values included.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `secure` for an answer to a request with `headers`.
pub fn secure_for(res: &mut Response, headers: &HeaderMap) {
    secure(res, host(headers).as_ref());
}

/// The host the browser reached us at, when it is a well-formed authority (it goes
/// into a header, so nothing else is let through).
fn host(headers: &HeaderMap) -> Option<Authority> {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<Authority>().ok())
}

/// The headers of every answer of the client: no sniffing, and for HTML a policy
/// that lets the page load only its own files and talk only to this server.
pub fn secure(res: &mut Response, host: Option<&Authority>) {
    let not_modified = res.status() == StatusCode::NOT_MODIFIED;
    let h = res.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    let is_html = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if !is_html && !not_modified {
        return;
    }
    // CSP Level 3 lets 'self' cover ws(s) of the same host; older browsers need it named.
    let sockets = host
        .map(|a| format!(" ws://{a} wss://{a}"))
        .unwrap_or_default();
    let csp = format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
         media-src 'self' blob: mediastream:; connect-src 'self'{sockets}; font-src 'self'; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    // The guest page's address carries its token: never hand it to another site.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}
