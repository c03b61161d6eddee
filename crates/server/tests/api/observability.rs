//! What an operator watches: `/metrics` after real traffic (and every metric the
//! Grafana dashboard queries), request ids in problems, and the log a real
//! `callhub serve` process writes.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use callhub_core::{CallType, Notification, Role};
use serde_json::Value;

use crate::deliveries::external;
use crate::helpers::*;
use crate::outbox_support::Recorder;
use crate::sockets::{device, expect};

/// The sum of the samples of `name` (any labels) whose labels contain `labels`.
fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let (series, value) = rest.rsplit_once(' ')?;
            let matches = (series.is_empty() || series.starts_with('{')) && series.contains(labels);
            matches.then(|| value.parse::<f64>().ok()).flatten()
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

async fn metrics(app: &TestApp) -> String {
    let answer = app.raw("GET", "/metrics", None, None).await;
    assert_eq!(answer.status, 200);
    answer.text
}

/// Reads `/metrics` until `check` holds of it, for at most `secs`; the last reading.
async fn metrics_when(app: &TestApp, secs: u64, check: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let text = metrics(app).await;
        if check(&text) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not within {secs}s:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn get_with_id(app: &TestApp, path: &str, request_id: &str) -> Answer {
    let req = reqwest::Client::new().get(format!("{}{path}", app.url));
    Answer::of(req.header("x-request-id", request_id).send().await.unwrap()).await
}

/// The metric names the dashboard's queries use.
fn dashboard_metrics() -> Vec<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/grafana/callhub.json"
    );
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 5, "the dashboard has its panels' queries");
    let mut names: Vec<String> = exprs
        .iter()
        .flat_map(|e| {
            e.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("callhub_"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

fn collect_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::String(s) if k == "expr" => out.push(s.clone()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

backend_tests! {
    async fn health_of_a_single_node_is_unchanged_without_nats(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let health = app.raw("GET", "/health", None, None).await;
        assert_eq!(health.status, 200);
        assert_eq!(health.json, serde_json::json!({"status": "ok"}));
        let metrics = app.raw("GET", "/metrics", None, None).await.text;
        assert!(metrics.contains("callhub_gaps_filled_total 0"), "shown at zero from the start");
        assert!(!metrics.contains("callhub_bus_connected"), "no bus on one node");
    }

    async fn metrics_show_the_traffic_that_made_them_and_all_the_dashboard_queries(backend: Backend) {
        let sms = Recorder::start().await;
        sms.fail_next(1);
        let sms_url = format!("{}/sms", sms.url);
        let app = TestApp::spawn_with(backend, |c| {
            c.gauge_refresh = Duration::from_millis(50);
            c.ring_timeout = Duration::from_secs(2);
            c.delivery.sms_webhook_url = Some(sms_url);
            crate::deliveries::quick_retries(c);
        })
        .await;
        let caller = app.user("caller", &[Role::User]).await;
        let tester = app.user("tester", &[Role::User]).await;
        let mut watch = device(&app, &tester).await;
        let mut req = call_request(CallType::Sfu, &[&tester]);
        req.invited_contacts.push(external("Field", Some("field@example.com"), Some("+4917612345678")));
        let call = caller.rtc().create_call_for_contacts(&req).await.unwrap();
        expect(&mut watch, 5, |n| matches!(n, Notification::IncomingCall { .. }).then_some(())).await;
        app.raw("POST", "/login", None, Some(r#"{"username":"caller","password":"wrong password"}"#)).await;

        // While it rings: the gauges, refreshed from the store.
        let text = metrics_when(&app, 2, |t| sample(t, "callhub_contacts_ringing", "") == Some(1.0)).await;
        assert_eq!(sample(&text, "callhub_calls", "status=\"Started\""), Some(1.0), "{text}");
        assert_eq!(sample(&text, "callhub_sockets_open", ""), Some(1.0), "{text}");
        // The SMS failed once, is retried and sent; the two mails are logged (no SMTP server).
        metrics_when(&app, 10, |t| {
            sample(t, "callhub_deliveries_sent_total", "") == Some(1.0)
                && sample(t, "callhub_delivery_delay_seconds_count", "channel=\"mail\"") == Some(2.0)
                && sample(t, "callhub_outbox_backlog", "channel=\"sms\"") == Some(0.0)
        })
        .await;
        // The caller ends that call; a second one rings until it times out (a deadline the worker fires).
        caller.rtc().end_call(call.call_id).await.unwrap();
        caller.rtc().create_call_for_contacts(&call_request(CallType::Mesh, &[&tester])).await.unwrap();
        let text = metrics_when(&app, 10, |t| {
            sample(t, "callhub_deadlines_fired_total", "").unwrap_or(0.0) >= 1.0
                && sample(t, "callhub_calls", "status=\"Ended\"") == Some(2.0)
        })
        .await;

        for (name, labels) in [
            ("callhub_http_responses_total", "class=\"2xx\""),
            ("callhub_http_responses_total", "class=\"4xx\""),
            ("callhub_http_request_duration_seconds_count", "route=\"/rtc/createCall\""),
            ("callhub_http_request_duration_seconds_bucket", "status=\"401\""),
            ("callhub_calls_created_total", ""),
            ("callhub_call_commands_total", ""),
            ("callhub_logins_failed_total", ""),
            ("callhub_deadlines_fired_total", ""),
            ("callhub_deliveries_sent_total", ""),
            ("callhub_delivery_retries_total", ""),
            ("callhub_delivery_delay_seconds_count", "channel=\"sms\""),
            ("callhub_call_popup_seconds_count", ""),
        ] {
            let value = sample(&text, name, labels).unwrap_or(0.0);
            assert!(value >= 1.0, "{name}{{{labels}}} is {value} after the traffic that makes it:\n{text}");
        }
        assert_eq!(sample(&text, "callhub_deliveries_failed_total", ""), Some(0.0), "shown before any failure");
        assert!(!text.contains(&call.call_id.to_string()), "no ids in labels");
        for name in dashboard_metrics() {
            assert!(sample(&text, &name, "").is_some(), "the dashboard queries {name}, which /metrics lacks:\n{text}");
        }
    }

    async fn a_problem_carries_the_request_id_of_its_response(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let made = app.raw("GET", "/rtc/getCallLogs", None, None).await;
        made.assert_problem(401, "Authorization");
        let id = made.headers["x-request-id"].to_str().unwrap();
        assert_eq!(id.len(), 32, "a new id: {id}");
        assert_eq!(made.json["requestId"], id);

        let kept = get_with_id(&app, "/no/such/route", "connector-7f3a:42").await;
        kept.assert_problem(404, "no such route");
        assert_eq!(kept.headers["x-request-id"], "connector-7f3a:42");
        assert_eq!(kept.json["requestId"], "connector-7f3a:42");

        let forged = get_with_id(&app, "/health", "a b\" level=error").await;
        assert_ne!(forged.headers["x-request-id"], "a b\" level=error", "an id with spaces and quotes is replaced");
    }
}

/// A `callhub serve` child process on a free port with a data dir of its own, its
/// stderr piped and read line by line; killed when dropped.
struct Served {
    child: Child,
    err: BufReader<std::process::ChildStderr>,
    lines: Vec<String>,
    dir: std::path::PathBuf,
}

impl Served {
    /// Started, and its log read up to and including the start line.
    fn start(format: &str) -> Served {
        callhub_client::install_tls_provider();
        let dir =
            std::env::temp_dir().join(format!("callhub-log-{}", uuid::Uuid::new_v4().simple()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_callhub"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CALLHUB_DATA_DIR", &dir)
            .env("CALLHUB_LISTEN", "127.0.0.1:0")
            .env("CALLHUB_SFU_UDP", "127.0.0.1:0")
            .env("CALLHUB_LOG_FORMAT", format)
            .env("CALLHUB_CORS_ORIGINS", "https://app.example.org")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let err = BufReader::new(child.stderr.take().unwrap());
        let mut served = Served {
            child,
            err,
            lines: Vec::new(),
            dir,
        };
        served.read_until("callhub listening");
        served
    }

    /// Reads lines until one contains `needle`; that line.
    fn read_until(&mut self, needle: &str) -> String {
        loop {
            let mut line = String::new();
            let read = self.err.read_line(&mut line).unwrap_or(0);
            assert!(read > 0, "no line with {needle:?} in {:?}", self.lines);
            self.lines.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn a_served_log_written_to_a_pipe_has_no_colour_codes_and_names_each_request() {
    let mut served = Served::start("text");
    let start = served.lines.last().unwrap().clone();
    let addr = start
        .split("addr=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert!(
        start.contains("sqlite://")
            && start.contains("/docs")
            && start.contains("https://app.example.org"),
        "{start}"
    );
    let res = reqwest::get(format!("http://{addr}/health")).await.unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let request = served.read_until(&id);
    for part in [
        "INFO",
        "method=\"GET\"",
        "route=\"/health\"",
        "status=200",
        "duration_ms=",
    ] {
        assert!(request.contains(part), "{part} in {request}");
    }
    let all = served.lines.concat();
    assert!(!all.contains('\u{1b}'), "no ESC bytes in {all:?}");
}

#[tokio::test]
async fn the_json_log_format_writes_one_json_object_a_line() {
    let mut served = Served::start("json");
    let start: Value = serde_json::from_str(served.lines.last().unwrap()).unwrap();
    let addr = start["addr"].as_str().unwrap().to_owned();
    assert!(
        start["database"].as_str().unwrap().starts_with("sqlite://"),
        "{start}"
    );
    assert_eq!(start["cors_origins"], "https://app.example.org");
    assert!(
        start["docs"].as_str().unwrap().ends_with("/docs"),
        "{start}"
    );
    let res = reqwest::get(format!("http://{addr}/nope")).await.unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let request: Value = serde_json::from_str(&served.read_until(&id)).unwrap();
    for line in &served.lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        assert!(v["level"].is_string() && v["message"].is_string(), "{line}");
    }
    assert_eq!(
        (
            &request["method"],
            &request["route"],
            &request["status"],
            &request["request_id"]
        ),
        (
            &"GET".into(),
            &"unmatched".into(),
            &404.into(),
            &Value::from(id)
        )
    );
    assert!(request["duration_ms"].as_f64().is_some());
}
