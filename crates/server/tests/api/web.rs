//! The web client as served: its pages under a strict CSP, revalidation by ETag,
//! compression, every module it imports present, and the guest page's statuses.

use std::io::Read;

use callhub_core::{CallType, Role};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use crate::helpers::*;

async fn get(
    app: &TestApp,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut req = reqwest::Client::new().get(format!("{}{path}", app.url));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    (status, headers, res.bytes().await.unwrap().to_vec())
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> &'h str {
    headers.get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
}

/// The policy of a client page: only its own files, only this server to talk to.
fn assert_client_html(app: &TestApp, headers: &HeaderMap) {
    assert!(
        header(headers, "content-type").starts_with("text/html"),
        "{headers:?}"
    );
    assert_eq!(header(headers, "x-content-type-options"), "nosniff");
    let csp = header(headers, "content-security-policy");
    let host = app.url.trim_start_matches("http://");
    for part in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "media-src 'self' blob: mediastream:",
        &format!("connect-src 'self' ws://{host} wss://{host}"),
        "object-src 'none'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "CSP lacks {part}: {csp}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
}

/// The relative modules a file imports (`from './x.js'`, `src="/assets/x.js"`).
fn imports(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (open, base) in [
        ("from './", "/assets/"),
        ("src=\"/", "/"),
        ("href=\"/", "/"),
    ] {
        for piece in text.split(open).skip(1) {
            let end = piece.find(['\'', '"']).unwrap();
            found.push(format!("{base}{}", &piece[..end]));
        }
    }
    found
}

backend_tests! {
    async fn the_client_is_served_at_root_under_a_strict_csp(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let (status, headers, body) = get(&app, "/", &[]).await;
        assert_eq!(status, 200);
        assert_client_html(&app, &headers);
        let html = String::from_utf8(body).unwrap();
        assert!(html.contains(r#"<script type="module" src="/assets/main.js"></script>"#), "{html}");
        assert!(!html.contains("<script>") && !html.contains("style="), "nothing inline: the CSP would block it");
        // The client's own route for a call opens the same page.
        let (status, headers, call_page) = get(&app, &format!("/call/{}", uuid::Uuid::new_v4()), &[]).await;
        assert_eq!(status, 200);
        assert_client_html(&app, &headers);
        assert_eq!(String::from_utf8(call_page).unwrap(), html);
    }

    async fn every_file_the_client_loads_is_served_and_names_no_other_host(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let mut todo = vec!["/".to_owned()];
        let mut seen = std::collections::BTreeSet::new();
        while let Some(path) = todo.pop() {
            if !seen.insert(path.clone()) {
                continue;
            }
            let (status, headers, body) = get(&app, &path, &[]).await;
            assert_eq!(status, 200, "{path}");
            assert_eq!(header(&headers, "x-content-type-options"), "nosniff", "{path}");
            let text = String::from_utf8(body).unwrap();
            if path.ends_with(".js") {
                assert!(header(&headers, "content-type").starts_with("text/javascript"), "{path}: {headers:?}");
            }
            // No CDN, no web font, no beacon: the only absolute URL is the SVG namespace.
            let foreign: Vec<&str> = text
                .match_indices("http")
                .map(|(i, _)| &text[i..(i + 40).min(text.len())])
                .filter(|s| (s.starts_with("http://") || s.starts_with("https://")) && !s.starts_with("http://www.w3.org/2000/svg"))
                .collect();
            assert!(foreign.is_empty(), "{path} names another host: {foreign:?}");
            todo.extend(imports(&text));
        }
        for must in ["/assets/main.js", "/assets/session.js", "/assets/socket.js", "/assets/mesh.js", "/assets/style.css"] {
            assert!(seen.contains(must), "{must} not reached from /: {seen:?}");
        }
    }

    async fn client_files_revalidate_by_etag_and_compress_when_asked(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        for path in ["/", "/assets/main.js", "/assets/style.css"] {
            let (status, headers, plain) = get(&app, path, &[]).await;
            assert_eq!(status, 200);
            let etag = header(&headers, "etag").to_owned();
            assert!(!etag.is_empty(), "{path} has no ETag");
            assert!(header(&headers, "cache-control").contains("no-cache"), "a new release is seen at once");
            let (status, _, body) = get(&app, path, &[("if-none-match", &etag)]).await;
            assert_eq!((status, body.len()), (StatusCode::NOT_MODIFIED, 0), "{path}");
            let (status, _, _) = get(&app, path, &[("if-none-match", "\"stale\"")]).await;
            assert_eq!(status, 200, "{path}: a stale ETag gets the file");

            let (status, headers, gz) = get(&app, path, &[("accept-encoding", "gzip")]).await;
            assert_eq!(status, 200);
            assert_eq!(header(&headers, "content-encoding"), "gzip", "{path}");
            assert!(header(&headers, "vary").contains("Accept-Encoding"));
            let mut unzipped = Vec::new();
            flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut unzipped).unwrap();
            assert_eq!(unzipped, plain, "{path}: gzip carries the same file");
            let (_, headers, br) = get(&app, path, &[("accept-encoding", "gzip, br")]).await;
            assert_eq!(header(&headers, "content-encoding"), "br", "{path}");
            assert!(br.len() < plain.len(), "{path}: {} bytes brotli of {}", br.len(), plain.len());
        }
    }

    async fn unknown_paths_stay_problems_not_the_client(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        for path in ["/rtc/noSuchRoute", "/assets/nope.js", "/nope", "/call/x/y"] {
            app.raw("GET", path, None, None).await.assert_problem(404, "no such");
        }
    }

    async fn the_guest_link_opens_the_client_and_refusals_keep_their_statuses(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let alice = app.user("alice", &[Role::User]).await;
        let bob = app.user("bob", &[Role::User]).await;
        let mut req = call_request(CallType::Mesh, &[&bob]);
        req.join_anonymous_allowed = true;
        req.call_title = r#"Pump "7" </title><script>"#.into();
        let call = alice.rtc().create_call_for_contacts(&req).await.unwrap();
        let link = call.join_url.clone().unwrap();
        let path = link.trim_start_matches(&app.url).to_owned();

        let (status, headers, body) = get(&app, &path, &[]).await;
        assert_eq!(status, 200);
        assert_client_html(&app, &headers);
        assert_eq!(header(&headers, "referrer-policy"), "no-referrer", "the token stays on this site");
        let html = String::from_utf8(body).unwrap();
        assert!(html.contains(r#"<script type="module" src="/assets/main.js"></script>"#), "the client reads the link itself: {html}");
        // What the guest joins, escaped: the title is the creator's text.
        assert!(html.contains(r#"<meta name="callhub:call-title" content="Pump &quot;7&quot; &lt;/title&gt;&lt;script&gt;">"#), "{html}");
        assert!(html.contains(r#"<meta name="callhub:inviter" content="ALICE">"#), "{html}");
        assert!(!html.contains("<script>"));
        let etag = header(&headers, "etag").to_owned();
        let (status, _, _) = get(&app, &path, &[("if-none-match", &etag)]).await;
        assert_eq!(status, 304);

        let wrong = format!("/join/{}?t=guessed", call.call_id);
        let (status, headers, body) = get(&app, &wrong, &[("if-none-match", &etag)]).await;
        assert_eq!(status, 404, "a refusal is never a 304");
        assert_client_html(&app, &headers);
        assert!(String::from_utf8(body).unwrap().contains("no call with this guest link"));
        let (status, _, _) = get(&app, "/join/not-a-call?t=x", &[]).await;
        assert_eq!(status, 404);

        let closed = alice.rtc().create_call_for_contacts(&call_request(CallType::Mesh, &[&bob])).await.unwrap();
        let (_, token) = callhub_client::parse_guest_link(&link).unwrap();
        let (status, headers, _) = get(&app, &format!("/join/{}?t={token}", closed.call_id), &[]).await;
        assert_eq!(status, 403);
        assert_client_html(&app, &headers);

        alice.rtc().end_call(call.call_id).await.unwrap();
        let (status, _, body) = get(&app, &path, &[]).await;
        assert_eq!(status, 409);
        assert!(String::from_utf8(body).unwrap().contains("ended"));
    }
}
