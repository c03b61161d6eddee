//! The served OpenAPI document describes every route of the wire contract, and
//! every route it describes is served.

use crate::helpers::*;

/// The routes of API.md's Authentication, Calls, Anonymous guests and Operating
/// sections, and the admin routes of issue 5 (webhooks, deliveries).
const CONTRACT: &[(&str, &str)] = &[
    ("post", "/login"),
    ("post", "/refresh"),
    ("post", "/logout"),
    ("post", "/rtc/createCall"),
    ("get", "/rtc/getCallLogById"),
    ("get", "/rtc/getCallLogs"),
    ("post", "/rtc/joinCall"),
    ("post", "/rtc/declineCall"),
    ("post", "/rtc/leaveCall"),
    ("post", "/rtc/endCall"),
    ("post", "/rtc/inviteContacts"),
    ("get", "/rtc/iceServers"),
    ("post", "/rtc/joinAnonymous"),
    ("get", "/join/{callId}"),
    ("post", "/admin/webhooks"),
    ("get", "/admin/webhooks"),
    ("delete", "/admin/webhooks/{id}"),
    ("get", "/admin/deliveries"),
    ("get", "/health"),
    ("get", "/metrics"),
];

backend_tests! {
    async fn every_contract_route_is_documented_and_every_documented_route_is_served(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let doc = app.raw("GET", "/openapi.json", None, None).await;
        assert_eq!(doc.status, 200);
        assert!(doc.json["openapi"].as_str().unwrap().starts_with("3.1"));
        let paths = doc.json["paths"].as_object().unwrap();
        for (method, path) in CONTRACT {
            assert!(paths.get(*path).and_then(|p| p.get(*method)).is_some(), "{method} {path} is missing from /openapi.json");
        }
        for (path, ops) in paths {
            for method in ops.as_object().unwrap().keys() {
                let a = app.raw(&method.to_uppercase(), path, None, None).await;
                assert!(a.status != 404 || a.json["detail"] != "no such route", "{method} {path} is documented but not served");
                assert_ne!(a.status, 405, "{method} {path} is documented but not served with that method");
            }
        }
        let schemas = doc.json["components"]["schemas"].as_object().unwrap();
        for s in ["CallLog", "CallLogContact", "CallEvent", "Team", "CreateCallRequest", "Problem", "UserInfo", "TokenResponse",
                  "GuestJoinRequest", "GuestJoinResponse", "WebhookInfo", "DeliveryList"] {
            assert!(schemas.contains_key(s), "schema {s} is documented");
        }
        assert_eq!(paths["/rtc/createCall"]["post"]["operationId"], "createCallForContacts");
    }

    async fn docs_page_and_health_and_metrics_answer(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let docs = app.raw("GET", "/docs", None, None).await;
        assert_eq!(docs.status, 200);
        assert!(docs.text.contains("/rtc/createCall") && docs.text.contains("anonymousJoinAllow"));
        let page = &docs.text;
        // Rendered, self-contained HTML: no raw Markdown, nothing loaded from elsewhere.
        assert!(!page.contains('`'), "raw Markdown backticks on /docs");
        assert!(page.contains("<code>CallLog</code>"), "inline code is rendered");
        assert!(!page.contains("<script") && !page.contains("src=\"http"), "external resources on /docs");
        assert!(page.contains("string | null"), "nullable types are shown");
        // A table of contents entry and an example request for every operation.
        let doc = app.raw("GET", "/openapi.json", None, None).await.json;
        let mut operations = 0;
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for method in ops.as_object().unwrap().keys() {
                operations += 1;
                let slug = path.replace(['{', '}'], "").replace('/', "-");
                let anchor = format!("op-{method}{slug}");
                assert!(page.contains(&format!("href=\"#{anchor}\"")), "no contents entry for {anchor}");
                assert!(page.contains(&format!("id=\"{anchor}\"")), "no section for {anchor}");
            }
        }
        assert_eq!(page.matches("<h4>Example</h4>").count(), operations, "one example request per operation");
        assert!(page.contains("curl -fsS -X POST"), "examples are curl commands");
        let health = app.raw("GET", "/health", None, None).await;
        assert_eq!((health.status, &health.json["status"]), (200, &serde_json::json!("ok")));
        app.raw("GET", "/nope", None, None).await;
        let metrics = app.raw("GET", "/metrics", None, None).await;
        assert!(metrics.text.contains("callhub_http_responses_total{class=\"4xx\"} 1"), "{}", metrics.text);
    }
}

/// The SDKs' types are generated from `callhub openapi`: it must be the served document.
#[tokio::test]
async fn the_openapi_command_prints_the_served_document() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_callhub"))
        .arg("openapi")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let app = TestApp::spawn(Backend::Sqlite).await;
    let served = app.raw("GET", "/openapi.json", None, None).await;
    assert_eq!(printed, served.json);
    assert_eq!(
        printed["paths"]["/rtc/getCallLogs"]["get"]["operationId"],
        "getCallLogs"
    );
}
