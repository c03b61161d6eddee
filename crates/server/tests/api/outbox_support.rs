//! Real parts for the delivery tests: an SMTP server process (aiosmtpd, run by
//! `tests/support/smtp_sink.py`) that keeps each mail as a file, and an HTTP server
//! that records every request (SMS providers, webhook receivers).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use mail_parser::{MessageParser, MimeHeaders};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use uuid::Uuid;

/// aiosmtpd on 127.0.0.1:`port`, killed when dropped.
pub struct SmtpSink {
    pub port: u16,
    pub dir: PathBuf,
    _child: Child,
}

impl SmtpSink {
    pub async fn start(port: u16) -> SmtpSink {
        let dir = std::env::temp_dir().join(format!("callhub-mails-{}", Uuid::new_v4().simple()));
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/smtp_sink.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(&dir)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs tests/support/smtp_sink.py (needs aiosmtpd: python3 -m pip install aiosmtpd)");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the SMTP sink starts within 20 s")
            .unwrap();
        assert_eq!(
            ready.as_deref(),
            Some("ready"),
            "the SMTP sink did not start (is aiosmtpd installed?)"
        );
        SmtpSink {
            port,
            dir,
            _child: child,
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every mail received so far.
    pub fn mails(&self) -> Vec<Mail> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut mails: Vec<Mail> = entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
            .map(|e| Mail::parse(&std::fs::read(e.path()).unwrap()))
            .collect();
        mails.sort_by(|a, b| a.message_id.cmp(&b.message_id));
        mails
    }

    pub fn mails_to(&self, to: &str) -> Vec<Mail> {
        self.mails().into_iter().filter(|m| m.to == to).collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A received mail, taken apart.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: String,
    pub subject: String,
    pub message_id: String,
    pub text: String,
    pub html: String,
    /// The `text/calendar` attachment, with its content type.
    pub ics: Option<(String, String)>,
}

impl Mail {
    pub fn parse(raw: &[u8]) -> Mail {
        let m = MessageParser::default()
            .parse(raw)
            .expect("a parsable mail");
        let addr = |a: Option<&mail_parser::Address>| {
            a.and_then(|a| a.first())
                .and_then(|a| a.address())
                .unwrap_or_default()
                .to_owned()
        };
        let ics = m.attachments().find_map(|a| {
            let ct = a.content_type()?;
            (ct.ctype() == "text" && ct.subtype() == Some("calendar")).then(|| {
                let params: Vec<String> = ct
                    .attributes()
                    .into_iter()
                    .flatten()
                    .map(|at| format!("{}={}", at.name, at.value))
                    .collect();
                (
                    format!("text/calendar; {}", params.join("; ")),
                    String::from_utf8_lossy(a.contents()).into_owned(),
                )
            })
        });
        Mail {
            from: addr(m.from()),
            to: addr(m.to()),
            subject: m.subject().unwrap_or_default().to_owned(),
            message_id: m.message_id().unwrap_or_default().to_owned(),
            text: m.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
            html: m.body_html(0).map(|t| t.into_owned()).unwrap_or_default(),
            ics,
        }
    }

    /// The first link into `/join/` the text carries.
    pub fn guest_link(&self) -> Option<String> {
        guest_link(&self.text)
    }
}

/// The first `http…/join/…` link in a text.
pub fn guest_link(text: &str) -> Option<String> {
    text.split_whitespace()
        .find(|w| w.starts_with("http") && w.contains("/join/"))
        .map(|w| w.trim_end_matches(['.', ',', ')', '"']).to_owned())
}

/// One request an HTTP recorder saw.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }
}

#[derive(Default)]
struct Log {
    seen: Vec<Recorded>,
    /// Requests still to refuse with 500 (to make the sender retry).
    fail_next: usize,
}

/// An HTTP server on loopback that records every request and answers 200 (or 500
/// while told to fail).
pub struct Recorder {
    pub url: String,
    log: Arc<Mutex<Log>>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    pub async fn start() -> Recorder {
        Self::start_on(0).await
    }

    pub async fn start_on(port: u16) -> Recorder {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Log::default()));
        let app = axum::Router::new().fallback(record).with_state(log.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Recorder { url, log, task }
    }

    pub fn seen(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().seen.clone()
    }

    /// Answer the next `n` requests with 500 (they are recorded all the same).
    pub fn fail_next(&self, n: usize) {
        self.log.lock().unwrap().fail_next = n;
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    State(log): State<Arc<Mutex<Log>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut log = log.lock().unwrap();
    log.seen.push(Recorded {
        path: uri.to_string(),
        headers,
        body,
    });
    if log.fail_next > 0 {
        log.fail_next -= 1;
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}
